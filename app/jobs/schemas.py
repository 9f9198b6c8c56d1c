"""Request and response bodies of the job routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.auth.schemas import StrictInput
from app.jobs.models import JobKind, JobStatus
from app.pagination import PageQuery
from app.validation import JSONInt

MAX_GENERATED_ITEMS = 20


class GenerationJobIn(StrictInput):
    EXAMPLES = ({"count": 5},)

    count: JSONInt = Field(
        5, ge=1, le=MAX_GENERATED_ITEMS, description="How many draft items to generate"
    )


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: JobKind
    status: JobStatus
    skill_id: uuid.UUID | None
    created_by: uuid.UUID
    params: dict[str, Any]
    result: dict[str, Any] | None = Field(
        description="On success: the ids of the draft items created, provider and template"
    )
    attempts: int
    max_attempts: int
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    deadline_at: datetime | None = Field(
        description="While running: when the worker is presumed dead and the job stuck"
    )


class JobsQuery(PageQuery):
    status: JobStatus | None = Field(None, description="Only jobs in this status")
    stuck: bool = Field(False, description="Only running jobs past their deadline")


class JobPage(BaseModel):
    items: list[JobOut]
    next_cursor: str | None
