"""Security log lines: authentication and authorisation failures, at WARNING.

Each line names the event, a reason from a fixed vocabulary, the account when it is known (its
id, never its e-mail address), the request's method and path, and the request id — never a
password, a token or any part of one. The same fields are attached to the record as `extra`,
for structured (JSON) formatters.
"""

from __future__ import annotations

import logging

from flask import has_request_context, request
from flask_jwt_extended import get_jwt

from app.observability.request_id import current_request_id

logger = logging.getLogger("app.security")

MAX_REASON = 80


def current_user_id() -> str | None:
    """The subject of the request's verified access token, if one was verified."""
    if not has_request_context():
        return None
    try:
        subject = get_jwt().get("sub")
    except RuntimeError:  # no token was verified in this request
        return None
    return subject if isinstance(subject, str) else None


def failure(event: str, reason: str, *, user_id: object | None = None) -> None:
    """Log an authentication or authorisation failure."""
    request_id = current_request_id()
    route = f"{request.method} {request.path}" if has_request_context() else "-"
    reason = reason[:MAX_REASON]
    user = str(user_id) if user_id is not None else current_user_id()
    logger.warning(
        "%s reason=%s user_id=%s route=%s request_id=%s",
        event,
        reason,
        user or "-",
        route,
        request_id or "-",
        extra={
            "event": event,
            "reason": reason,
            "user_id": user,
            "route": route,
            "request_id": request_id,
        },
    )
