"""User administration as plain functions over a session."""

from __future__ import annotations

import uuid

from sqlalchemy import update
from sqlalchemy.orm import Session

from app.audit.service import record as audit_record
from app.auth.models import RefreshFamily, Role, User
from app.db import utcnow
from app.errors import Conflict, NotFound


def update_user(
    session: Session,
    actor: User,
    user_id: uuid.UUID,
    role: Role | None,
    is_active: bool | None,
) -> User:
    """Change a user's role or active flag; deactivation also revokes every refresh family."""
    user = session.get(User, user_id, with_for_update=True)
    if user is None:
        raise NotFound("No such user.")
    if user.id == actor.id:
        raise Conflict("Administrators cannot change their own role or status.", slug="self-change")
    changes: dict[str, object] = {}
    if role is not None and role is not user.role:
        changes["role"] = {"from": user.role.value, "to": role.value}
        user.role = role
    if is_active is not None and is_active != user.is_active:
        changes["is_active"] = {"from": user.is_active, "to": is_active}
        user.is_active = is_active
        if not is_active:
            session.execute(
                update(RefreshFamily)
                .where(RefreshFamily.user_id == user.id, RefreshFamily.revoked_at.is_(None))
                .values(revoked_at=utcnow(), revoked_reason="deactivated")
            )
    if changes:
        audit_record(
            session,
            "admin.user_updated",
            actor_id=actor.id,
            target_type="user",
            target_id=str(user.id),
            details=changes,
        )
    session.commit()
    return user
