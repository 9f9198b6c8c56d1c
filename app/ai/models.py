"""Inputs and results of the provider operations.

Inputs carry ids and content only, never learner PII (`extra="forbid"` keeps it that way).
`*Output` models are what a model must return (their JSON schema is sent as the structured
output format); results add where they came from: provider, template and token usage.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- inputs --------------------------------------------------------------------------------------


class SkillBrief(_Strict):
    """What item generation knows about a skill."""

    skill_id: str
    name: str
    description: str = ""
    material: str = ""


class GradingRequest(_Strict):
    """A short-answer response to grade against its reference answer and rubric."""

    item_id: str
    stem: str
    reference_answer: str
    rubric: list[str] = Field(default_factory=list)
    response: str


class HintRequest(_Strict):
    """An item a learner asks a hint for; the hint must not give the answer away."""

    item_id: str
    stem: str
    reference_answer: str
    rubric: list[str] = Field(default_factory=list)


# --- what a model returns ------------------------------------------------------------------------


class ItemDraft(_Strict):
    """A draft item: `mcq` uses choices + answer_index, `short_answer` reference + rubric."""

    kind: Literal["mcq", "short_answer"]
    stem: str
    choices: list[str]
    answer_index: int | None
    reference_answer: str | None
    rubric: list[str]


class ItemsOutput(_Strict):
    items: list[ItemDraft]


class GradeOutput(_Strict):
    score: float = Field(ge=0.0, le=1.0)
    correct: bool
    feedback: str


class HintOutput(_Strict):
    hint: str


# --- results -------------------------------------------------------------------------------------


class Usage(_Strict):
    """Token usage reported by the provider for one operation (repair included)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
        )


class Provenance(_Strict):
    """Which provider and template produced a result, and what it cost when known."""

    provider: str
    template: str
    template_version: int
    usage: Usage | None = None


class GeneratedItems(ItemsOutput, Provenance):
    pass


class GradeResult(GradeOutput, Provenance):
    pass


class Hint(HintOutput, Provenance):
    pass
