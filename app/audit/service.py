"""Writing and searching audit records.

A record is added to the caller's session and committed with the action it records, so an
action and its audit record succeed or fail together.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from flask import has_request_context, request
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit.models import AuditRecord
from app.audit.schemas import AuditQuery
from app.observability.request_id import current_request_id
from app.pagination import paginate


def record(
    session: Session,
    action: str,
    *,
    actor_id: uuid.UUID | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditRecord:
    """Add an audit record for `action`; request id and client IP come from the request."""
    entry = AuditRecord(
        actor_id=actor_id,
        action=action,
        target_type=target_type,
        target_id=target_id,
        request_id=current_request_id(),
        ip=request.remote_addr if has_request_context() else None,
        details=details or {},
    )
    session.add(entry)
    return entry


def search(session: Session, query: AuditQuery) -> tuple[Sequence[AuditRecord], str | None]:
    """A page of audit records matching the query's filters, newest first."""
    statement = select(AuditRecord)
    if query.actor_id is not None:
        statement = statement.where(AuditRecord.actor_id == query.actor_id)
    if query.action is not None:
        statement = statement.where(AuditRecord.action == query.action)
    if query.since is not None:
        statement = statement.where(AuditRecord.occurred_at >= query.since)
    if query.until is not None:
        statement = statement.where(AuditRecord.occurred_at < query.until)
    return paginate(session, statement, AuditRecord.occurred_at, AuditRecord.id, query)
