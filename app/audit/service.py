"""Writing audit records. Callers decide when to commit: the record shares their transaction."""

from __future__ import annotations

import uuid
from typing import Any

from flask import has_request_context, request
from sqlalchemy.orm import Session

from app.audit.models import AuditRecord
from app.observability.request_id import current_request_id


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
