"""The offline provider: deterministic, sensible grading, hints that never give the answer."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.ai.models import GradingRequest, HintRequest, SkillBrief
from app.ai.offline import OfflineProvider
from app.ai.text import STOPWORDS, words
from contracts.prompts.conftest import GRADING, HINTING, SKILL

OFFLINE = OfflineProvider()


def test_generation_is_deterministic_and_records_its_origin() -> None:
    first = OFFLINE.generate_items(SKILL, 6)
    again = OfflineProvider().generate_items(SKILL.model_copy(), 6)

    assert first == again
    assert len(first.items) == 6
    assert (first.provider, first.template, first.template_version) == (
        "offline",
        "offline.generate_items",
        1,
    )
    assert first.usage is None


def test_generated_items_are_well_formed_and_drawn_from_the_description() -> None:
    items = OFFLINE.generate_items(SKILL, 4).items
    source = set(words(SKILL.description + " " + SKILL.material))

    mcqs = [item for item in items if item.kind == "mcq"]
    short = [item for item in items if item.kind == "short_answer"]
    assert mcqs
    assert short
    for item in mcqs:
        assert item.answer_index is not None
        assert len(item.choices) == len(set(item.choices)) == 4
        assert item.choices[item.answer_index] in source
        assert item.choices[item.answer_index] not in words(item.stem)  # blanked out
    for item in short:
        assert item.reference_answer
        assert item.rubric
        assert set(words(item.reference_answer)) <= source


def test_different_skills_get_different_items() -> None:
    other = SKILL.model_copy(update={"skill_id": "skill-0002"})

    assert OFFLINE.generate_items(SKILL, 4).items != OFFLINE.generate_items(other, 4).items


@pytest.mark.parametrize(
    "skill",
    [
        SkillBrief(skill_id="s", name="Go"),
        SkillBrief(skill_id="s", name="Sets", description="It is what it is."),
    ],
    ids=["name-only", "no-keywords"],
)
def test_generation_still_works_with_almost_nothing_to_go_on(skill: SkillBrief) -> None:
    items = OFFLINE.generate_items(skill, 3).items

    assert [item.kind for item in items] == ["mcq", "short_answer", "mcq"]
    assert all(item.stem for item in items)


def test_the_reference_answer_scores_one() -> None:
    exact = GRADING.model_copy(update={"response": GRADING.reference_answer.upper()})

    result = OFFLINE.grade_short_answer(exact)

    assert (result.score, result.correct) == (1.0, True)
    assert result.feedback.startswith("Correct")


def test_an_answer_covering_the_rubric_passes() -> None:
    answer = "Chlorophyll absorbs the red and blue light that drives photosynthesis; it names it."
    result = OFFLINE.grade_short_answer(GRADING.model_copy(update={"response": answer}))

    assert result.correct is True
    assert result.score >= 0.6


def test_unrelated_text_scores_low_without_naming_a_keyword() -> None:
    unrelated = GRADING.model_copy(update={"response": "The French revolution began in 1789."})

    result = OFFLINE.grade_short_answer(unrelated)

    assert (result.score, result.correct) == (0.0, False)
    assert result.feedback.startswith("Not yet")
    key = set(words(" ".join([GRADING.reference_answer, *GRADING.rubric])))
    assert not set(words(result.feedback)) & key - STOPWORDS  # issue 17: no "Think about …"


def test_a_partial_answer_gets_partial_credit() -> None:
    partial = GRADING.model_copy(update={"response": "chlorophyll"})

    result = OFFLINE.grade_short_answer(partial)

    assert 0 < result.score < 0.6
    assert result.feedback.startswith("Partly right")
    assert "chlorophyll" not in result.feedback.lower()  # not even which words counted


def test_grading_is_deterministic() -> None:
    assert OFFLINE.grade_short_answer(GRADING) == OFFLINE.grade_short_answer(GRADING)


def test_grading_with_nothing_to_compare_scores_zero() -> None:
    empty = GradingRequest(item_id="i", stem="?", reference_answer="", rubric=[], response="x")

    assert OFFLINE.grade_short_answer(empty).score == 0.0


def test_feedback_does_not_reveal_a_one_word_answer() -> None:
    item = GradingRequest(
        item_id="i", stem="Capital of France?", reference_answer="Paris", response="Lyon"
    )

    feedback = OFFLINE.grade_short_answer(item).feedback

    assert "paris" not in feedback.lower()
    assert "'p'" not in feedback.lower()  # not its first letter or length either


def test_hints_are_deterministic_and_come_from_the_rubric() -> None:
    hint = OFFLINE.hint(HINTING)

    assert hint == OFFLINE.hint(HINTING)
    assert hint.hint.startswith("Think about")
    rubric_words = set(words(" ".join(HINTING.rubric)))
    assert set(words(hint.hint)) & rubric_words


@pytest.mark.parametrize(
    ("reference", "rubric"),
    [
        ("Paris", []),
        ("Paris", ["names Paris"]),
        ("the mitochondria", ["mitochondria"]),
        ("Chlorophyll absorbs red and blue light.", ["mentions chlorophyll"]),
        ("", []),
    ],
)
def test_hints_never_contain_the_full_reference_answer(reference: str, rubric: list[str]) -> None:
    hint = OFFLINE.hint(
        HintRequest(item_id="i", stem="?", reference_answer=reference, rubric=rubric)
    )

    assert not contains_answer(hint.hint, reference)


@settings(deadline=None)  # correctness, not speed: a busy machine must not fail it
@given(
    answer=st.lists(
        st.sampled_from(["alpha", "beta", "gamma", "delta", "the", "of"]), min_size=1, max_size=4
    ),
    rubric=st.lists(st.sampled_from(["alpha", "beta", "gamma", "mentions delta"]), max_size=3),
    item_id=st.text(min_size=1, max_size=5),
)
def test_no_hint_ever_contains_a_full_answer_with_content_words(
    answer: list[str], rubric: list[str], item_id: str
) -> None:
    reference = " ".join(answer)
    hint = OFFLINE.hint(
        HintRequest(item_id=item_id, stem="?", reference_answer=reference, rubric=rubric)
    )

    if set(answer) - {"the", "of"}:
        assert not contains_answer(hint.hint, reference)


def contains_answer(text: str, answer: str) -> bool:
    """Does `text` contain the answer's words as a contiguous run?"""
    needle, haystack = words(answer), words(text)
    if not needle:
        return False
    return any(haystack[i : i + len(needle)] == needle for i in range(len(haystack)))
