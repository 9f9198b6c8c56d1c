"""Bodies of the admin routes."""

from __future__ import annotations

from pydantic import model_validator

from app.auth.models import Role
from app.auth.schemas import StrictInput


class UserPatchIn(StrictInput):
    role: Role | None = None
    is_active: bool | None = None

    @model_validator(mode="after")
    def _something_to_change(self) -> UserPatchIn:
        if self.role is None and self.is_active is None:
            raise ValueError("give at least one of role, is_active")
        return self
