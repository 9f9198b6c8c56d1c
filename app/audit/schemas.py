"""Audit-log responses and filters."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from app.pagination import PageQuery


class AuditQuery(PageQuery):
    model_config = ConfigDict(extra="forbid")

    actor_id: uuid.UUID | None = None
    action: str | None = Field(
        None, max_length=64, description="Exact action name, e.g. auth.login_failed"
    )
    since: AwareDatetime | None = Field(
        None, description="Inclusive lower bound (ISO 8601 with an offset, e.g. Z)"
    )
    until: AwareDatetime | None = Field(
        None, description="Exclusive upper bound (ISO 8601 with an offset, e.g. Z)"
    )


class AuditOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    occurred_at: datetime
    actor_id: uuid.UUID | None
    action: str
    target_type: str | None
    target_id: str | None
    request_id: str | None
    ip: str | None
    details: dict[str, Any]


class AuditPage(BaseModel):
    items: list[AuditOut]
    next_cursor: str | None
