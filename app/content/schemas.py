"""Request and response bodies of the content routes."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, RootModel, model_validator

from app.auth.schemas import StrictInput
from app.content.models import CourseStatus, ItemKind, ItemOrigin, ItemStatus
from app.pagination import PageQuery
from app.validation import PatchInput

A_MIN, A_MAX = 0.2, 3.0
B_MIN, B_MAX = -4.0, 4.0

Title = Field(min_length=1, max_length=200, pattern=r"\S")
Description = Field(default="", max_length=5000)


class CourseIn(StrictInput):
    EXAMPLES = ({"title": "Fractions", "description": "Parts of a whole, from halves to ratios."},)

    title: str = Title
    description: str = Description


class CoursePatch(PatchInput):
    EXAMPLES = ({"status": "published"}, {"title": "Fractions and decimals"})

    title: str | None = Field(None, min_length=1, max_length=200, pattern=r"\S")
    description: str | None = Field(None, max_length=5000)
    status: CourseStatus | None = None


class CourseOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    owner_id: uuid.UUID
    title: str
    description: str
    status: CourseStatus
    created_at: datetime
    updated_at: datetime


class CoursesQuery(PageQuery):
    model_config = ConfigDict(extra="forbid")

    status: CourseStatus | None = None
    mine: bool = Field(False, description="Only courses the caller owns")


class CoursePage(BaseModel):
    items: list[CourseOut]
    next_cursor: str | None


class SkillIn(StrictInput):
    EXAMPLES = ({"name": "Adding fractions", "description": "Same and different denominators."},)

    name: str = Title
    description: str = Description


class SkillPatch(PatchInput):
    EXAMPLES = ({"description": "Same and different denominators, with mixed numbers."},)

    name: str | None = Field(None, min_length=1, max_length=200, pattern=r"\S")
    description: str | None = Field(None, max_length=5000)


class SkillOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    course_id: uuid.UUID
    name: str
    description: str
    created_at: datetime
    updated_at: datetime


class SkillPage(BaseModel):
    items: list[SkillOut]
    next_cursor: str | None


class ChoiceIn(StrictInput):
    text: str = Field(min_length=1, max_length=500)
    correct: bool = False


class ItemIn(StrictInput):
    """A new item. `mcq` needs 2-8 choices with exactly one correct; `short_answer` needs a
    reference answer and a rubric."""

    EXAMPLES = (
        {
            "kind": "mcq",
            "prompt": "What is 1/2 + 1/4?",
            "choices": [{"text": "3/4", "correct": True}, {"text": "2/6"}, {"text": "1/8"}],
            "a": 1.2,
            "b": -0.5,
        },
        {
            "kind": "short_answer",
            "prompt": "Why do fractions need a common denominator before adding?",
            "reference_answer": "Only parts of the same size can be counted together.",
            "rubric": "mentions parts of equal size\nmentions counting or adding the parts",
        },
    )

    kind: ItemKind
    prompt: str = Field(min_length=1, max_length=5000, pattern=r"\S")
    choices: list[ChoiceIn] | None = Field(None, min_length=2, max_length=8)
    reference_answer: str | None = Field(None, min_length=1, max_length=2000)
    rubric: str | None = Field(None, min_length=1, max_length=5000)
    a: float = Field(1.0, ge=A_MIN, le=A_MAX, description="IRT discrimination")
    b: float = Field(0.0, ge=B_MIN, le=B_MAX, description="IRT difficulty")

    @model_validator(mode="after")
    def _fits_its_kind(self) -> ItemIn:
        check_item_fields(self.kind, self.choices, self.reference_answer, self.rubric)
        return self


def check_item_fields(
    kind: ItemKind,
    choices: list[ChoiceIn] | None,
    reference_answer: str | None,
    rubric: str | None,
) -> None:
    if kind is ItemKind.MCQ:
        if choices is None:
            raise ValueError("choices: an mcq item needs 2-8 choices")
        if sum(choice.correct for choice in choices) != 1:
            raise ValueError("choices: exactly one choice must be correct")
        if reference_answer is not None or rubric is not None:
            raise ValueError("an mcq item has no reference_answer or rubric")
    else:
        if choices is not None:
            raise ValueError("choices: a short_answer item has no choices")
        if reference_answer is None or rubric is None:
            raise ValueError("a short_answer item needs reference_answer and rubric")


class ItemPatch(PatchInput):
    """Edits. On a published item only `status: retired` is accepted (scoring is frozen)."""

    EXAMPLES = ({"prompt": "What is 1/2 + 1/4? Simplify."}, {"status": "retired"})

    prompt: str | None = Field(None, min_length=1, max_length=5000, pattern=r"\S")
    choices: list[ChoiceIn] | None = Field(None, min_length=2, max_length=8)
    reference_answer: str | None = Field(None, min_length=1, max_length=2000)
    rubric: str | None = Field(None, min_length=1, max_length=5000)
    a: float | None = Field(None, ge=A_MIN, le=A_MAX)
    b: float | None = Field(None, ge=B_MIN, le=B_MAX)
    status: ItemStatus | None = Field(None, description="Only `retired` may be set here")

    @model_validator(mode="after")
    def _only_retiring(self) -> ItemPatch:
        if self.status is not None and self.status is not ItemStatus.RETIRED:
            raise ValueError("status: only 'retired' can be set; publish with POST .../publish")
        return self


class ChoiceOut(BaseModel):
    text: str


class ItemPublicOut(BaseModel):
    """What a learner sees: never the answer key, reference answer or rubric."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    skill_id: uuid.UUID
    kind: ItemKind
    prompt: str
    choices: list[ChoiceOut] | None


class AuthorChoiceOut(BaseModel):
    text: str
    correct: bool


class ItemOut(ItemPublicOut):
    """What the course's author and admins see."""

    choices: list[AuthorChoiceOut] | None  # type: ignore[assignment]  # authors see the key
    reference_answer: str | None
    rubric: str | None
    a: float
    b: float
    status: ItemStatus
    origin: ItemOrigin
    version: int
    previous_version_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime


class ItemsQuery(PageQuery):
    model_config = ConfigDict(extra="forbid")

    status: ItemStatus | None = None
    origin: ItemOrigin | None = None


class ItemView(RootModel[ItemOut | ItemPublicOut]):
    """Authors and admins get `ItemOut`; everyone else `ItemPublicOut`."""


class ItemPage(BaseModel):
    items: list[ItemOut | ItemPublicOut]
    next_cursor: str | None
