"""Scoring answers without I/O: exact MCQ grades, the rule-based short-answer fallback, the
provider's grade and its fallback, and the guard that keeps feedback from revealing the key."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from app.ai import AIProviderError, GradingRequest
from app.ai.errors import ProviderUnavailableError
from app.ai.models import GradeResult, Usage
from app.learning import scoring
from app.learning.scoring import (
    BARE_FEEDBACK,
    CORRECT_AT,
    FEEDBACK_MAX_CHARS,
    GUARDED_FEEDBACK,
    Grade,
    grade_short_answer,
    reveals,
    safe_feedback,
    score_mcq,
    score_short_answer,
    unwritten_keywords,
    words,
)

CHOICES = [{"text": "Paris", "correct": True}, {"text": "Lyon", "correct": False}]


def request(
    response: str,
    reference: str = "photosynthesis converts light",
    rubric: list[str] | None = None,
) -> GradingRequest:
    return GradingRequest(
        item_id="item-1",
        stem="What does the leaf do?",
        reference_answer=reference,
        rubric=rubric or [],
        response=response,
    )


# --- MCQ --------------------------------------------------------------------------------------


def test_the_correct_choice_scores_full_marks_exactly() -> None:
    assert score_mcq(CHOICES, 0) == Grade(True, 1.0, "Correct.", "exact")


def test_a_wrong_choice_scores_zero_without_naming_the_right_one() -> None:
    assert score_mcq(CHOICES, 1) == Grade(False, 0.0, "Not quite.", "exact")


# --- the rule-based short-answer scorer ---------------------------------------------------------


def test_words_are_lowercase_letters_and_digits_only() -> None:
    assert words("It's CO2, not H-2-O!") == ["it", "s", "co2", "not", "h", "2", "o"]


def test_the_reference_answer_itself_scores_full_marks_whatever_its_case_and_punctuation() -> None:
    grade = score_short_answer("Light, water.", "  LIGHT water ")
    assert grade == Grade(True, 1.0, "Correct.", "fallback")


def test_the_score_is_the_share_of_reference_words_present_rounded_to_three_places() -> None:
    grade = score_short_answer("one two three", "one and two")
    assert grade.score == 0.667
    assert grade.correct is False
    assert grade.feedback == "Not quite: about 67% of the expected answer."
    assert grade.graded_by == "fallback"


def test_all_reference_words_in_another_order_are_correct_but_not_full_marks_text() -> None:
    grade = score_short_answer("light water air", "air water light")
    assert grade.score == 1.0
    assert grade.feedback == "Correct."


def test_eighty_percent_of_the_words_is_correct_and_mostly_right() -> None:
    grade = score_short_answer("a b c d e", "a b c d")
    assert grade.score == CORRECT_AT == 0.8
    assert grade.correct is True
    assert grade.feedback == "Mostly right."


def test_just_under_eighty_percent_is_not_correct() -> None:
    grade = score_short_answer("a b c d e f g h i j k l", "a b c d e f g h i")
    assert grade.score == 0.75
    assert grade.correct is False


def test_a_reference_without_words_scores_zero_for_any_answer() -> None:
    grade = score_short_answer("?!", "anything at all")
    assert grade.score == 0.0
    assert grade.correct is False
    assert grade.feedback == "Not quite: about 0% of the expected answer."


def test_repeated_answer_words_do_not_count_twice() -> None:
    assert score_short_answer("light water", "light light light").score == 0.5


# --- feedback that could reveal the key ----------------------------------------------------------


def test_feedback_naming_a_key_word_the_learner_did_not_write_is_replaced() -> None:
    grade_request = request("plants make food", reference="chlorophyll absorbs light")
    assert unwritten_keywords("Think about chlorophyll.", grade_request) == {"chlorophyll"}
    assert safe_feedback("Think about chlorophyll.", False, grade_request, "p") == (
        GUARDED_FEEDBACK[False]
    )
    assert safe_feedback("Well done, chlorophyll!", True, grade_request, "p") == (
        GUARDED_FEEDBACK[True]
    )


def test_feedback_may_repeat_key_words_the_learner_wrote_itself() -> None:
    grade_request = request("chlorophyll absorbs light", reference="chlorophyll absorbs light")
    assert unwritten_keywords("Yes, chlorophyll absorbs light.", grade_request) == set()
    assert safe_feedback("Yes, chlorophyll absorbs light.", True, grade_request, "p") == (
        "Yes, chlorophyll absorbs light."
    )


def test_rubric_keywords_are_part_of_the_key() -> None:
    grade_request = request("it grows", reference="growth", rubric=["mentions sunlight"])
    assert unwritten_keywords("What about sunlight?", grade_request) == {"sunlight"}


def test_keywords_match_across_case_accents_punctuation_and_a_plural_s() -> None:
    grade_request = request("no idea", reference="Café enzymes")
    assert unwritten_keywords("CAFE... enzyme!", grade_request) == {"cafe", "enzyme"}


def test_stopwords_and_short_or_double_s_endings_are_not_singularised() -> None:
    grade_request = request("none", reference="gas glass bus the")
    # "gas" and "bus" are too short to lose an s; "glass" ends in "ss"; "the" is a stopword.
    assert unwritten_keywords("gas glass bus the", grade_request) == {"gas", "glass", "bus"}
    assert unwritten_keywords("ga glas bu", grade_request) == set()


def test_when_even_the_guarded_sentence_would_reveal_the_key_a_bare_mark_is_given() -> None:
    grade_request = request("nothing", reference="question answer covers")
    assert safe_feedback("The answer is question.", True, grade_request, "p") == BARE_FEEDBACK[True]
    assert safe_feedback("answer", False, grade_request, "p") == BARE_FEEDBACK[False]


def test_replaced_feedback_is_logged_with_the_grader_and_item_but_not_the_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    grade_request = request("x", reference="chlorophyll")
    with caplog.at_level(logging.WARNING, logger=scoring.__name__):
        safe_feedback("chlorophyll", False, grade_request, "offline")
    message = caplog.records[-1].getMessage()
    assert "provider=offline" in message
    assert "item_id=item-1" in message
    assert "chlorophyll" not in message


def test_long_feedback_is_cut_at_a_word_within_the_cap_with_an_ellipsis() -> None:
    feedback = "word " * 200
    capped = safe_feedback(feedback, True, request("x"), "p")
    assert len(capped) <= FEEDBACK_MAX_CHARS
    assert capped.endswith("word\u2026")
    assert len(capped) > FEEDBACK_MAX_CHARS - 10


def test_feedback_of_exactly_the_cap_is_kept_whole() -> None:
    feedback = "a" * FEEDBACK_MAX_CHARS
    assert safe_feedback(feedback, True, request("x"), "p") == feedback
    longer = "b" * (FEEDBACK_MAX_CHARS - 5) + " cccccc"
    assert safe_feedback(longer, True, request("x"), "p") == "b" * (FEEDBACK_MAX_CHARS - 5) + (
        "\u2026"
    )


def test_reveals_finds_the_whole_secret_as_words_ignoring_case_accents_and_punctuation() -> None:
    assert reveals("The answer: CRÈME brûlée!", "creme brulee")
    assert not reveals("creme brulees", "creme brulee")  # whole words only
    assert not reveals("brulee creme", "creme brulee")
    assert not reveals("anything", "")
    assert not reveals("anything", "  ?! ")


# --- the provider, and its fallback --------------------------------------------------------------


class Grader:
    name = "fake"

    def __init__(self, result: GradeResult | None = None, error: Exception | None = None):
        self.result, self.error = result, error
        self.requests: list[GradingRequest] = []

    def grade_short_answer(self, item: GradingRequest) -> GradeResult:
        self.requests.append(item)
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


def result(**changes: Any) -> GradeResult:
    values: dict[str, Any] = {
        "score": 0.9,
        "correct": True,
        "feedback": "Good reasoning.",
        "provider": "fake",
        "template": "grade_short_answer",
        "template_version": 1,
        "usage": Usage(prompt_tokens=3, completion_tokens=2, total_tokens=5),
    }
    values.update(changes)
    return GradeResult(**values)


def test_the_providers_grade_is_returned_and_named_after_it() -> None:
    grader = Grader(result())
    grade = grade_short_answer(grader, request("chlorophyll"))  # type: ignore[arg-type]  # a stand-in provider
    assert grade == Grade(True, 0.9, "Good reasoning.", "fake")
    assert grader.requests == [request("chlorophyll")]


def test_the_providers_feedback_is_guarded_too() -> None:
    grader = Grader(result(feedback="You forgot photosynthesis.", correct=False, score=0.2))
    grade = grade_short_answer(grader, request("light"))  # type: ignore[arg-type]  # a stand-in provider
    assert grade == Grade(False, 0.2, GUARDED_FEEDBACK[False], "fake")


@pytest.mark.parametrize("error", [AIProviderError("boom"), ProviderUnavailableError("down")])
def test_a_provider_error_falls_back_to_the_rules_and_says_so(
    error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    grader = Grader(error=error)
    with caplog.at_level(logging.WARNING, logger=scoring.__name__):
        grade = grade_short_answer(
            grader,  # type: ignore[arg-type]  # a stand-in provider
            request("photosynthesis converts light"),
        )
    assert grade == Grade(True, 1.0, "Correct.", "fallback")
    message = caplog.records[-1].getMessage()
    assert message.startswith("ai.grade_fallback provider=fake")
    assert f"error={type(error).__name__}" in message
    assert "boom" not in message
    assert "down" not in message


def test_the_fallbacks_partial_grade_keeps_its_score() -> None:
    grade = grade_short_answer(
        Grader(error=AIProviderError("x")),  # type: ignore[arg-type]  # a stand-in provider
        request("photosynthesis"),
    )
    assert grade == Grade(False, 0.333, "Not quite: about 33% of the expected answer.", "fallback")


def test_an_error_that_is_not_the_providers_is_not_swallowed() -> None:
    with pytest.raises(ValueError, match="bug"):
        grade_short_answer(Grader(error=ValueError("bug")), request("x"))  # type: ignore[arg-type]  # a stand-in provider
