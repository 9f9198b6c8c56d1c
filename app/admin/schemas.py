"""Bodies of the admin routes."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.auth.models import Role
from app.auth.schemas import StrictInput, UserOut
from app.pagination import PageQuery


class UserPatchIn(StrictInput):
    role: Role | None = None
    is_active: bool | None = None

    @model_validator(mode="after")
    def _something_to_change(self) -> UserPatchIn:
        if self.role is None and self.is_active is None:
            raise ValueError("give at least one of role, is_active")
        return self


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
