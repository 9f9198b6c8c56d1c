"""Structured logs: one JSON object per line on stderr, from structlog and stdlib logging alike.

Every line has `timestamp` (UTC, ISO 8601), `level`, `event`, `logger` and, inside a request or
a job, `request_id`; whatever else the call site passed comes along as fields. The platform's
own `logging.getLogger(__name__)` call sites, and libraries (celery, werkzeug, sqlalchemy,
gunicorn), go through the same `ProcessorFormatter`, so everything an operator reads has one
shape. `extra={...}` fields of a stdlib record become fields of the line (app.security uses
that: its `event` extra names the event).

The request id is bound with structlog's contextvars for the whole request
(`bind_request_context`) and for a whole Celery task (`app.jobs.celery_app`), so every line
logged meanwhile — job events, AI usage, provider retries — carries it without the call site
knowing. Each request ends with one access event, `http.request` (see `init_app`).

`configure_logging` runs once per process (create_app calls it; tests build many apps). When
the root logger already has a handler using this formatter (gunicorn's `logconfig_dict` in
gunicorn.conf.py installs one before the app loads), no second one is added. Handlers others
installed (pytest's caplog) are left alone.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
import time
from typing import Any

import structlog
from flask import Flask, Response, g, request
from structlog.typing import Processor

from app.observability.request_id import current_request_id

ACCESS_EVENT = "http.request"
UNMATCHED_ROUTE = "unmatched"
ACCESS_LOGGER = "app.access"
# Marks the root handler this module installed, so a second configuration finds it.
_HANDLER_MARK = "_mastery_json_handler"
_RULE_ARGUMENT = re.compile(r"<(?:[^<>:]+:)?([^<>]+)>")

# The fixed fields, first on every line, in this order; request_id is null outside requests/jobs.
LEADING_FIELDS = ("timestamp", "level", "event", "logger", "request_id")

# Libraries that say routine things at INFO on every start (one line per plugin, per process).
QUIET_LOGGERS = {"alembic.runtime.plugins": logging.WARNING}

_configured = False

access_logger = logging.getLogger(ACCESS_LOGGER)


def _shared_processors() -> list[Processor]:
    """What every line gets, whether it came from structlog or from stdlib logging."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
    ]


def _leading_fields_first(
    _logger: Any, _method: str, event_dict: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    ordered = {key: event_dict.pop(key, None) for key in LEADING_FIELDS}
    ordered.update(event_dict)
    return ordered


def _drop_formatter_attributes(
    _logger: Any, _method: str, event_dict: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """`message` and `asctime` are set on a record by whichever formatter ran first (pytest's,
    another handler's); they are not extras, and the message is already the event."""
    event_dict.pop("message", None)
    event_dict.pop("asctime", None)
    return event_dict


def json_formatter() -> structlog.stdlib.ProcessorFormatter:
    """The formatter of every handler: a JSON object per record, on one line.

    Also the `()` factory gunicorn.conf.py's `logconfig_dict` names."""
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            *_shared_processors(),
            structlog.stdlib.ExtraAdder(),
            _drop_formatter_attributes,
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _leading_fields_first,
            structlog.processors.JSONRenderer(default=str, sort_keys=False),
        ],
    )


def _has_json_handler(logger: logging.Logger) -> bool:
    return any(
        isinstance(handler.formatter, structlog.stdlib.ProcessorFormatter)
        for handler in logger.handlers
    )


def configure_logging(level: str = "INFO") -> None:
    """Route structlog and stdlib logging to JSON lines on stderr at `level` (once per process)."""
    global _configured
    if _configured:
        return
    structlog.configure(
        processors=[
            *_shared_processors(),
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    root = logging.getLogger()
    if not _has_json_handler(root):
        # sys.__stderr__: the process's real stderr, which Celery's stdout redirection (a logging
        # proxy) and test-capture objects that come and go do not replace.
        handler = logging.StreamHandler(sys.__stderr__ or sys.stderr)
        handler.setFormatter(json_formatter())
        setattr(handler, _HANDLER_MARK, True)
        root.addHandler(handler)
    root.setLevel(level.upper())
    for name, quieter in QUIET_LOGGERS.items():
        library = logging.getLogger(name)
        if library.level == logging.NOTSET:
            library.setLevel(quieter)
    _configured = True


@functools.cache  # a route's template never changes; the rules are a fixed set
def route_template(rule: str | None) -> str:
    """`/sessions/<uuid:session_id>/next` as `/sessions/{session_id}/next` (the OpenAPI form);
    `unmatched` when no rule matched (404s), so raw paths never become log fields or metric
    labels. The access log and the request metrics both name routes with it."""
    if not rule:
        return UNMATCHED_ROUTE
    return _RULE_ARGUMENT.sub(r"{\1}", rule)


def bind_request_context() -> None:
    """Bind the request id for every line logged while the request is handled."""
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=current_request_id())
    g.request_started = time.perf_counter()


def authenticated_user() -> tuple[str | None, str | None]:
    """The id and role of the request's verified user, without a database query.

    flask-jwt-extended keeps the user it loaded for `@authenticated` in `g`; the attributes are
    read from the loaded state only (an expired attribute would be a query), falling back to
    the verified token's `sub` and `role` claims."""
    loaded = g.get("_jwt_extended_jwt_user")
    if not loaded:
        return None, None
    claims = g.get("_jwt_extended_jwt") or {}
    user_id = claims.get("sub")
    role = claims.get("role")
    user = loaded.get("loaded_user")
    state = getattr(user, "__dict__", {})
    if state.get("id") is not None:
        user_id = state["id"]
    if state.get("role") is not None:
        role = state["role"]
    role_value = getattr(role, "value", role)
    return (
        str(user_id) if user_id is not None else None,
        str(role_value) if role_value is not None else None,
    )


def log_access(response: Response) -> Response:
    """The request's access event: route template, never the raw path or query string."""
    started = g.get("request_started")
    duration_ms = (time.perf_counter() - started) * 1000 if started is not None else None
    fields: dict[str, Any] = {
        "method": request.method,
        "route": route_template(request.url_rule.rule if request.url_rule else None),
        "status": response.status_code,
        "duration_ms": round(duration_ms, 2) if duration_ms is not None else None,
    }
    user_id, role = authenticated_user()
    if user_id is not None:
        fields["user_id"] = user_id
        fields["role"] = role
    fields["event"] = ACCESS_EVENT
    access_logger.info(ACCESS_EVENT, extra=fields)
    return response


def _clear_request_context(_error: BaseException | None) -> None:
    structlog.contextvars.clear_contextvars()


def init_app(app: Flask, level: str = "INFO") -> None:
    """Configure logging (once per process) and log one access event per request.

    Register it right after request_id.init_app: its before_request must run before any hook
    that may answer early (HTTPS redirects, rate limits) so those requests are timed too."""
    configure_logging(level)
    app.before_request(bind_request_context)
    app.after_request(log_access)
    app.teardown_request(_clear_request_context)
