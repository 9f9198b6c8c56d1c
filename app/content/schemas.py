"""Request and response bodies of the content routes."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.auth.schemas import StrictInput
from app.content.models import CourseStatus
from app.pagination import PageQuery

Title = Field(min_length=1, max_length=200, pattern=r"\S")
Description = Field(default="", max_length=5000)


class CourseIn(StrictInput):
    title: str = Title
    description: str = Description


class CoursePatch(StrictInput):
    title: str | None = Field(None, min_length=1, max_length=200, pattern=r"\S")
    description: str | None = Field(None, max_length=5000)
    status: CourseStatus | None = None

    @model_validator(mode="after")
    def _something_to_change(self) -> CoursePatch:
        if self.title is None and self.description is None and self.status is None:
            raise ValueError("give at least one of title, description, status")
        return self


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
    name: str = Title
    description: str = Description


class SkillPatch(StrictInput):
    name: str | None = Field(None, min_length=1, max_length=200, pattern=r"\S")
    description: str | None = Field(None, max_length=5000)

    @model_validator(mode="after")
    def _something_to_change(self) -> SkillPatch:
        if self.name is None and self.description is None:
            raise ValueError("give at least one of name, description")
        return self


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
