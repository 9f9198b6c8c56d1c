"""Bodies of the admin routes."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from app.auth.models import Role
from app.auth.schemas import UserOut
from app.pagination import PageQuery
from app.validation import PatchInput


class UserPatchIn(PatchInput):
    EXAMPLES = ({"role": "instructor"}, {"is_active": False})

    role: Role | None = None
    is_active: bool | None = None


class UsersQuery(PageQuery):
    model_config = ConfigDict(extra="forbid")

    q: str | None = Field(
        None, min_length=1, max_length=100, description="Substring of e-mail or display name"
    )
    role: Role | None = None
    active: bool | None = None


class UserPage(BaseModel):
    items: list[UserOut]
    next_cursor: str | None


class StatsOut(BaseModel):
    users_total: int
    users_active: int
    users_by_role: dict[str, int] = Field(description="Every role, zero included")
    audit_records_last_24h: int
    items_by_status: dict[str, int] = Field(description="Every item status, zero included")
    attempts_per_day: dict[str, int] = Field(
        description="Attempts per UTC day over the last 7 days (oldest first), zero days included"
    )
