"""The pure parts of the generation job: a model's draft as an authoring request, and the delay
before a retry (tests/integration/test_jobs.py and test_generation_runs.py run the job itself)."""

from __future__ import annotations

import random

import pytest
from pydantic import ValidationError

from app.ai import ItemDraft
from app.content.models import ItemKind
from app.content.schemas import ChoiceIn
from app.jobs.generation import BACKOFF_BASE_SECONDS, BACKOFF_MAX_SECONDS, backoff, to_item_in
from tests.ai_fakes import FixedRandom


def mcq(answer_index: int | None, choices: tuple[str, ...] = ("red", "green", "blue")) -> ItemDraft:
    return ItemDraft(
        kind="mcq",
        stem="Which colour?",
        choices=list(choices),
        answer_index=answer_index,
        reference_answer=None,
        rubric=[],
    )


def short_answer(rubric: list[str], reference: str | None = "Because.") -> ItemDraft:
    return ItemDraft(
        kind="short_answer",
        stem="Why?",
        choices=[],
        answer_index=None,
        reference_answer=reference,
        rubric=rubric,
    )


@pytest.mark.parametrize("answer_index", [0, 1, 2])
def test_an_mcq_draft_marks_exactly_the_answer_as_correct(answer_index: int) -> None:
    item = to_item_in(mcq(answer_index))

    assert item.kind is ItemKind.MCQ
    assert item.prompt == "Which colour?"
    assert item.choices == [
        ChoiceIn(text=text, correct=index == answer_index)
        for index, text in enumerate(["red", "green", "blue"])
    ]
    assert item.reference_answer is None
    assert item.rubric is None


@pytest.mark.parametrize("answer_index", [None, 3, -1])
def test_an_mcq_draft_without_a_valid_answer_is_not_an_item(answer_index: int | None) -> None:
    with pytest.raises(ValidationError, match="exactly one choice must be correct"):
        to_item_in(mcq(answer_index))


def test_an_mcq_draft_with_one_choice_is_not_an_item() -> None:
    with pytest.raises(ValidationError):
        to_item_in(mcq(0, choices=("only",)))


def test_a_short_answer_draft_joins_its_rubric_one_criterion_a_line() -> None:
    item = to_item_in(short_answer(["names the cause", "gives an example"]))

    assert item.kind is ItemKind.SHORT_ANSWER
    assert item.prompt == "Why?"
    assert item.choices is None
    assert item.reference_answer == "Because."
    assert item.rubric == "names the cause\ngives an example"


def test_a_short_answer_draft_without_a_rubric_or_a_reference_is_not_an_item() -> None:
    with pytest.raises(ValidationError, match="reference_answer"):
        to_item_in(short_answer([]))
    with pytest.raises(ValidationError, match="reference_answer"):
        to_item_in(short_answer(["a criterion"], reference=None))


@pytest.mark.parametrize(
    ("attempt", "delay"), [(1, 10.0), (2, 20.0), (3, 40.0), (6, 320.0), (7, 600.0), (30, 600.0)]
)
def test_backoff_doubles_from_the_base_up_to_the_cap(attempt: int, delay: float) -> None:
    assert backoff(attempt, FixedRandom(0.0)) == delay


@pytest.mark.parametrize(("jitter", "factor"), [(0.0, 1.0), (0.5, 1.25), (0.999, 1.4995)])
def test_backoff_adds_up_to_half_the_delay_as_jitter(jitter: float, factor: float) -> None:
    assert backoff(1, FixedRandom(jitter)) == pytest.approx(BACKOFF_BASE_SECONDS * factor)
    assert backoff(30, FixedRandom(jitter)) == pytest.approx(BACKOFF_MAX_SECONDS * factor)


def test_backoff_with_a_real_generator_stays_within_its_bounds() -> None:
    rng = random.Random(15)
    delays = [backoff(2, rng) for _ in range(200)]

    assert all(20.0 <= delay < 30.0 for delay in delays)
    assert len(set(delays)) > 1  # jittered, not fixed
