"""The provider interface every AI implementation satisfies."""

from __future__ import annotations

from typing import Protocol

from app.ai.models import GeneratedItems, GradeResult, GradingRequest, Hint, HintRequest, SkillBrief


class Provider(Protocol):
    """Generate draft items, grade short answers, give hints. Failures raise AIProviderError."""

    name: str

    def generate_items(self, skill: SkillBrief, count: int) -> GeneratedItems: ...

    def grade_short_answer(self, item: GradingRequest) -> GradeResult: ...

    def hint(self, item: HintRequest) -> Hint: ...
