"""Scoring answers. MCQ is exact; short answers are graded by the AI provider, and the
rule-based scorer here answers whenever the provider cannot (`graded_by: "fallback"`), so the
rules are deliberately simple and explainable.

Whatever graded it, feedback never reveals the reference answer: a learner sees items again in
later sessions. A model's feedback that contains the whole reference answer is replaced.
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
from app.ai.runtime import log_usage
from app.observability import metrics

CORRECT_AT = 0.8
OPERATION_GRADE = "grade_short_answer"
FALLBACK = "fallback"
_WORD = re.compile(r"[a-z0-9]+")
_ANY_WORD = re.compile(r"\w+")
GUARDED_FEEDBACK = {
    True: "Correct: your answer covers what the question asks.",
    False: "Not quite: your answer misses part of what the question asks.",
}

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
        metrics.record_ai_call(OPERATION_GRADE, provider.name, seconds, error=error)
        metrics.record_ai_fallback(OPERATION_GRADE, provider.name)
        # The class only: a provider's error text may quote what it was sent.
        logger.warning(
            "ai.grade_fallback provider=%s error=%s item_id=%s",
            provider.name,
            type(error).__name__,
            request.item_id,
        )
        return score_short_answer(request.reference_answer, request.response)
    seconds = time.perf_counter() - started
    metrics.record_ai_call(OPERATION_GRADE, provider.name, seconds, usage=result.usage)
    log_usage(result, item_id=request.item_id, **ids)
    feedback = result.feedback
    if reveals(feedback, request.reference_answer):
        logger.warning(
            "ai.feedback_replaced provider=%s reason=reveals-answer item_id=%s",
            result.provider,
            request.item_id,
        )
        feedback = GUARDED_FEEDBACK[result.correct]
    return Grade(result.correct, result.score, feedback, result.provider)


def reveals(text: str, secret: str) -> bool:
    """Does `text` contain the whole of `secret`, ignoring case, accents, punctuation and
    spacing? An empty secret reveals nothing."""
    hidden = _normalised(secret)
    return bool(hidden) and f" {hidden} " in f" {_normalised(text)} "


def _normalised(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(char for char in decomposed if not unicodedata.combining(char))
    return " ".join(_ANY_WORD.findall(plain))
