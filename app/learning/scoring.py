"""Scoring answers. MCQ is exact; short answers use a rule-based scorer for now.

The AI grader (a later issue) plugs in behind the same `Grade` result, and this scorer stays
as its fallback, so the rules are deliberately simple and explainable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

CORRECT_AT = 0.8
_WORD = re.compile(r"[a-z0-9]+")


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
    """Full marks for the reference answer (ignoring case, punctuation and spacing); otherwise
    the share of the reference's words the answer contains, correct from 80 %."""
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
    return Grade(correct, score, feedback, "rules")
