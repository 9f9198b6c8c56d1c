"""User administration as plain functions over a session."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from app.admin.schemas import StatsOut, UsersQuery
from app.audit.models import AuditRecord
from app.audit.service import record as audit_record
from app.auth.models import Role, User
from app.auth.tokens import end_all_sessions
from app.content.models import Item, ItemStatus
from app.db import utcnow
from app.errors import Conflict, NotFound
from app.learning.models import Attempt
from app.pagination import paginate


def _like_escaped(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def list_users(session: Session, query: UsersQuery) -> tuple[Sequence[User], str | None]:
    """A page of users, newest first, filtered by search text, role and active flag."""
    statement = select(User)
    if query.q:
        pattern = _like_escaped(query.q.lower())
        statement = statement.where(
            or_(
                User.email.like(pattern, escape="\\"),
                func.lower(User.display_name).like(pattern, escape="\\"),
            )
        )
    if query.role is not None:
        statement = statement.where(User.role == query.role)
    if query.active is not None:
        statement = statement.where(User.is_active.is_(query.active))
    return paginate(session, statement, User.created_at, User.id, query)


def _utc_day(session: Session) -> ColumnElement[Any]:
    """The UTC calendar day of an attempt, computed by the database."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", Attempt.created_at), "YYYY-MM-DD")
    return func.date(Attempt.created_at)  # SQLite (local development) stores UTC already


def stats(session: Session) -> StatsOut:
    """Platform-wide counts for the admin dashboard."""
    by_role = {role.value: 0 for role in Role}
    for role, count in session.execute(select(User.role, func.count()).group_by(User.role)):
        by_role[role.value] = count
    active = session.scalar(select(func.count()).select_from(User).where(User.is_active)) or 0
    recent = session.scalar(
        select(func.count())
        .select_from(AuditRecord)
        .where(AuditRecord.occurred_at >= utcnow() - timedelta(hours=24))
    )
    by_status = {status.value: 0 for status in ItemStatus}
    for status, count in session.execute(select(Item.status, func.count()).group_by(Item.status)):
        by_status[status.value] = count
    today = utcnow().date()
    days = [today - timedelta(days=back) for back in range(6, -1, -1)]
    per_day = dict.fromkeys((day.isoformat() for day in days), 0)
    since = datetime.combine(days[0], time.min, tzinfo=UTC)
    day_column = _utc_day(session).label("day")
    for day, count in session.execute(
        select(day_column, func.count()).where(Attempt.created_at >= since).group_by(day_column)
    ):
        per_day[str(day)[:10]] = count
    return StatsOut(
        users_total=sum(by_role.values()),
        users_active=active,
        users_by_role=by_role,
        audit_records_last_24h=recent or 0,
        items_by_status=by_status,
        attempts_per_day=per_day,
    )


def update_user(
    session: Session,
    actor: User,
    user_id: uuid.UUID,
    role: Role | None,
    is_active: bool | None,
) -> User:
    """Change a user's role or active flag; deactivation also invalidates every token.

    A role change needs no revocation: the role is read from the database on every request.
    """
    # Lock the active admins first, always in id order, then the target: concurrent demotions
    # queue up instead of deadlocking, and two admins cannot demote each other to none.
    active_admins = session.scalars(
        select(User.id)
        .where(User.role == Role.ADMIN, User.is_active)
        .order_by(User.id)
        .with_for_update()
    ).all()
    user = session.get(User, user_id, with_for_update=True)
    if user is None:
        raise NotFound("No such user.")
    if user.id == actor.id:
        raise Conflict("Administrators cannot change their own role or status.", slug="self-change")
    loses_admin = user.role is Role.ADMIN and (
        (role is not None and role is not Role.ADMIN) or is_active is False
    )
    if loses_admin and user.is_active and len(active_admins) <= 1:
        raise Conflict(
            "The last active administrator cannot be demoted or deactivated.", slug="last-admin"
        )
    if role is not None and role is not user.role:
        audit_record(
            session,
            "admin.role_changed",
            actor_id=actor.id,
            target_type="user",
            target_id=str(user.id),
            details={"from": user.role.value, "to": role.value},
        )
        user.role = role
    if is_active is not None and is_active != user.is_active:
        user.is_active = is_active
        audit_record(
            session,
            "admin.user_reactivated" if is_active else "admin.user_deactivated",
            actor_id=actor.id,
            target_type="user",
            target_id=str(user.id),
        )
        if not is_active:  # every token stops working; reactivation does not revive them
            end_all_sessions(session, user, "deactivated")
    session.commit()
    return user
