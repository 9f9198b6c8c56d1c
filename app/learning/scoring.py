"""Scoring answers. MCQ is exact; short answers are graded by the AI provider, and the
rule-based scorer here answers whenever the provider cannot (`graded_by: "fallback"`), so the
rules are deliberately simple and explainable.

Whatever graded it, feedback never reveals the answer key: a learner sees items again in later
sessions, and feedback that named a missing word of it turned grading into an oracle (issue 17).
Feedback that contains any keyword of the reference answer or the rubric that the learner did
not write is replaced by a fixed sentence, and feedback is capped at `FEEDBACK_MAX_CHARS`.
"""

from __future__ import annotations

import logging
import re
import time
import unicodedata
import uuid
from dataclasses import dataclass
from typing import Any

from app.ai import AIProviderError, GradingRequest, Provider
from app.ai import metrics as ai_metrics
from app.ai.runtime import log_usage
from app.ai.text import STOPWORDS

CORRECT_AT = 0.8
OPERATION_GRADE = "grade_short_answer"
FALLBACK = "fallback"
_WORD = re.compile(r"[a-z0-9]+")
_ANY_WORD = re.compile(r"\w+")
GUARDED_FEEDBACK = {
    True: "Correct: your answer covers what the question asks.",
    False: "Not quite: your answer misses part of what the question asks.",
}
# When even the guarded sentence would name a keyword of the key ("question", "answer"...).
BARE_FEEDBACK = {True: "\u2713", False: "\u2717"}
FEEDBACK_MAX_CHARS = 400

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Grade:
    correct: bool
    score: float
    feedback: str
    graded_by: str


def score_mcq(choices: list[dict[str, Any]], chosen: int) -> Grade:
    """`chosen` is the index of the picked choice; the caller has checked it is in range."""
    correct = bool(choices[chosen]["correct"])
    # The key never reaches a learner (DESIGN.md): items come back in later sessions.
    feedback = "Correct." if correct else "Not quite."
    return Grade(correct, 1.0 if correct else 0.0, feedback, "exact")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def score_short_answer(reference: str, answer: str) -> Grade:
    """The fallback scorer: full marks for the reference answer (ignoring case, punctuation and
    spacing); otherwise the share of the reference's words the answer contains, correct from
    80 %."""
    expected, given = words(reference), set(words(answer))
    if not expected:
        score = 0.0
    elif words(answer) == expected:
        score = 1.0
    else:
        score = round(sum(word in given for word in expected) / len(expected), 3)
    correct = score >= CORRECT_AT
    # Coverage of the expected words, never the words themselves: the key stays secret.
    feedback = (
        "Correct."
        if score == 1.0
        else "Mostly right." if correct else f"Not quite: about {score:.0%} of the expected answer."
    )
    return Grade(correct, score, feedback, FALLBACK)


def grade_short_answer(
    provider: Provider, request: GradingRequest, **ids: uuid.UUID | str
) -> Grade:
    """The provider's grade (`graded_by` names it); on any provider error, the rules'
    (`graded_by: "fallback"`). Called outside any database transaction: it may take seconds."""
    started = time.perf_counter()
    try:
        result = provider.grade_short_answer(request)
    except AIProviderError as error:
        seconds = time.perf_counter() - started
        ai_metrics.record_ai_call(OPERATION_GRADE, provider.name, seconds, error=error)
        ai_metrics.record_ai_fallback(OPERATION_GRADE, provider.name)
        # The class only: a provider's error text may quote what it was sent.
        logger.warning(
            "ai.grade_fallback provider=%s error=%s item_id=%s",
            provider.name,
            type(error).__name__,
            request.item_id,
        )
        fallback = score_short_answer(request.reference_answer, request.response)
        feedback = safe_feedback(fallback.feedback, fallback.correct, request, FALLBACK)
        return Grade(fallback.correct, fallback.score, feedback, FALLBACK)
    seconds = time.perf_counter() - started
    ai_metrics.record_ai_call(OPERATION_GRADE, provider.name, seconds, usage=result.usage)
    log_usage(result, item_id=request.item_id, **ids)
    feedback = safe_feedback(result.feedback, result.correct, request, result.provider)
    return Grade(result.correct, result.score, feedback, result.provider)


def safe_feedback(feedback: str, correct: bool, request: GradingRequest, graded_by: str) -> str:
    """`feedback` capped in length, or a fixed sentence when it names a keyword of the
    reference answer or the rubric that the learner's response does not contain."""
    if len(feedback) > FEEDBACK_MAX_CHARS:
        feedback = feedback[: FEEDBACK_MAX_CHARS - 1].rsplit(" ", 1)[0] + "\u2026"
    if not unwritten_keywords(feedback, request):
        return feedback
    logger.warning(
        "ai.feedback_replaced provider=%s reason=reveals-answer item_id=%s",
        graded_by,
        request.item_id,
    )
    guarded = GUARDED_FEEDBACK[correct]
    return BARE_FEEDBACK[correct] if unwritten_keywords(guarded, request) else guarded


def unwritten_keywords(text: str, request: GradingRequest) -> set[str]:
    """Keywords of the answer key (reference answer and rubric) in `text` that the learner's
    response does not contain. Compared as normalised tokens: case, accents, punctuation,
    spacing and a plural `s` make no difference; stopwords are not keywords."""
    key = _keywords(" ".join([request.reference_answer, *request.rubric]))
    return _keywords(text) & (key - _keywords(request.response))


def _keywords(text: str) -> set[str]:
    return {_singular(token) for token in _normalised(text).split() if token not in STOPWORDS}


def _singular(token: str) -> str:
    return (
        token[:-1] if len(token) > 3 and token.endswith("s") and not token.endswith("ss") else token
    )


def reveals(text: str, secret: str) -> bool:
    """Does `text` contain the whole of `secret`, ignoring case, accents, punctuation and
    spacing? An empty secret reveals nothing."""
    hidden = _normalised(secret)
    return bool(hidden) and f" {hidden} " in f" {_normalised(text)} "


def _normalised(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(char for char in decomposed if not unicodedata.combining(char))
    return " ".join(_ANY_WORD.findall(plain))
