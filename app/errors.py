"""Errors: every failure leaves as `application/problem+json` (RFC 9457) with a request id.

Services raise `ProblemError` (or a subclass); framework errors (routing, body parsing,
validation, authentication) are converted here too, so no handler ever builds an error body
by hand and no response ever carries a stack trace.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import psycopg
from apiflask import APIFlask, HTTPError
from flask import Request, Response, current_app, json, request
from sqlalchemy.exc import DataError, InterfaceError, OperationalError
from werkzeug.datastructures import Headers
from werkzeug.exceptions import BadRequest, HTTPException, UnsupportedMediaType

from app.auth import security_log
from app.observability.request_id import current_request_id

PROBLEM_MIMETYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://mastery.example/problems/"
# No request body of this API nests deeper than 3; 32 leaves room and bounds the work a body
# can cause (a few hundred thousand levels fit in MAX_CONTENT_LENGTH and would overflow the
# parser's recursion into a 500).
MAX_JSON_DEPTH = 32
# A restart or failover takes seconds; clients that honour Retry-After come back after it.
DATABASE_RETRY_AFTER_SECONDS = 5

logger = logging.getLogger(__name__)


class ProblemError(Exception):
    """An error with an HTTP status that the client is meant to see."""

    status = 400
    slug: str | None = None

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        slug: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if status is not None:
            self.status = status
        if slug is not None:
            self.slug = slug
        self.headers = headers or {}
        self.extra = extra or {}


class NotFound(ProblemError):
    status = 404


class Conflict(ProblemError):
    status = 409


class Unauthorized(ProblemError):
    status = 401

    def __init__(self, detail: str, **kwargs: Any) -> None:
        headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
        super().__init__(detail, headers=headers, **kwargs)


class Forbidden(ProblemError):
    status = 403


def validation_problem(location: str, field: str, message: str) -> ProblemError:
    """A 422 shaped like the framework's own validation errors, for checks made in services."""
    return ProblemError(
        f"The request is invalid. {field}: {message}",
        status=422,
        slug="validation-error",
        extra={"errors": [{"location": location, "field": field, "messages": [message]}]},
    )


def problem_response(
    status: int,
    detail: str | None = None,
    *,
    slug: str | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Response:
    """Build a problem+json response; the title is always the status phrase."""
    title = HTTPStatus(status).phrase
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + slug if slug else "about:blank",
        "title": title,
        "status": status,
        "detail": detail or title,
        "request_id": current_request_id(),
        **(extra or {}),
    }
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_MIMETYPE)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _from_problem_error(error: ProblemError) -> Response:
    if error.status == 403:  # 401s are logged where they are raised, with their reason
        security_log.failure("authz.forbidden", error.slug or "forbidden")
    return problem_response(
        error.status, error.detail, slug=error.slug, headers=error.headers, extra=error.extra
    )


def _from_werkzeug(error: HTTPException) -> Response:
    headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
    return problem_response(error.code or 500, error.description, headers=headers)


def _from_apiflask(error: HTTPError) -> Response:
    """APIFlask raises HTTPError for input validation and `abort()`."""
    if error.status_code == 422 and isinstance(error.detail, dict):
        errors = [
            {"location": location, "field": field, "messages": messages}
            for location, fields in error.detail.items()
            for field, messages in fields.items()
        ]
        summary = "; ".join(f"{e['field']}: {' '.join(e['messages'])}" for e in errors)
        return problem_response(
            422,
            f"The request is invalid. {summary}",
            slug="validation-error",
            extra={"errors": errors},
        )
    detail = error.message if isinstance(error.message, str) else None
    headers = dict(Headers(error.headers or {}).items())
    return problem_response(error.status_code, detail, headers=headers)


# SQLSTATEs worth a retry: connection exceptions (08), operator intervention such as a shutdown
# or a server not yet accepting connections (57P), too many connections, serialization failure
# and deadlock (40001, 40P01), a lock not available and a statement timeout (55P03, 57014).
_TRANSIENT_SQLSTATES = ("08", "57P", "53300", "40001", "40P01", "55P03", "57014")


def is_transient_database_error(error: OperationalError | InterfaceError) -> bool:
    """Whether the database, not the request, failed in a way a retry can outlive: a lost or
    refused connection, a restart, overload, a deadlock. Everything else (a SQLite "no such
    table", a statement too big for an index) is a bug and stays a 500."""
    if error.connection_invalidated:
        return True
    if not isinstance(error.orig, psycopg.Error):
        return False
    sqlstate = error.orig.sqlstate
    # No SQLSTATE: the failure happened before the server answered (a refused connection).
    return sqlstate is None or sqlstate.startswith(_TRANSIENT_SQLSTATES)


def _from_database_error(error: OperationalError | InterfaceError) -> Response:
    """A transient database failure is a 503 to retry; the transaction did not commit, except in
    the one case no server can rule out (the connection lost during COMMIT), which is what
    Idempotency-Key replays are for. Either way Sentry hears of it."""
    if not is_transient_database_error(error):
        return _from_unexpected(error)
    logger.error(
        "database unavailable: %s",
        type(error.orig).__name__ if error.orig is not None else type(error).__name__,
        exc_info=error,
        extra={"request_id": current_request_id()},
    )
    return problem_response(
        503,
        "The database is unavailable for the moment; retry shortly (with the same "
        "Idempotency-Key where the operation takes one).",
        slug="database-unavailable",
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
    )


def _from_data_error(error: DataError) -> Response:
    """A value the database refuses (out of range, bad encoding) is the client's input."""
    logger.warning("database refused a value: %s", type(error.orig).__name__)
    return problem_response(400, "The request contains a value the database cannot store.")


def _from_unexpected(error: Exception) -> Response:
    logger.exception("unhandled error", extra={"request_id": current_request_id()})
    return problem_response(500, "An unexpected error occurred; quote the request id to support.")


def _require_json_body() -> None:
    """Answer 415 before validation when a JSON-body operation receives another media type."""
    if request.method not in ("POST", "PUT", "PATCH") or request.endpoint is None:
        return
    view = current_app.view_functions.get(request.endpoint)
    spec = getattr(view, "_spec", {})
    if spec.get("body") is None or spec.get("content_type") != "application/json":
        return
    if not request.is_json:
        raise UnsupportedMediaType("This operation accepts only application/json bodies.")


class JSONTooDeep(ValueError):
    """A JSON document nested deeper than MAX_JSON_DEPTH."""


def json_depth_exceeds(value: Any, limit: int) -> bool:
    """Whether `value` nests arrays and objects deeper than `limit` (iteratively: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


class _DepthLimitedJSON:
    """Wraps the app's JSON provider, refusing bodies nested deeper than MAX_JSON_DEPTH."""

    def __init__(self, provider: Any) -> None:
        self._provider = provider

    def __getattr__(self, name: str) -> Any:
        return getattr(self._provider, name)

    def loads(self, data: str | bytes, **kwargs: Any) -> Any:
        try:
            value = self._provider.loads(data, **kwargs)
        except RecursionError as error:
            raise JSONTooDeep() from error
        # A body with no more opening brackets than the limit cannot nest past it, so most
        # bodies skip the walk (bytes.count runs in C).
        if isinstance(data, bytes):
            brackets = data.count(b"[") + data.count(b"{")
        else:
            brackets = data.count("[") + data.count("{")
        if brackets > MAX_JSON_DEPTH and json_depth_exceeds(value, MAX_JSON_DEPTH):
            raise JSONTooDeep()
        return value


class JSONRequest(Request):
    """Names the problem when a JSON body does not parse (Flask's default text is generic) and
    refuses bodies nested deeper than MAX_JSON_DEPTH before any validation sees them."""

    # Flask assigns the app's JSON provider to every request; the property wraps whatever it is.
    @property
    def json_module(self) -> Any:
        return _DepthLimitedJSON(self.__dict__.get("_json_provider", json))

    @json_module.setter
    def json_module(self, provider: Any) -> None:
        self._json_provider = provider

    def on_json_loading_failed(self, e: ValueError | None) -> Any:
        if isinstance(e, JSONTooDeep):
            raise ProblemError(
                f"The request body nests arrays and objects deeper than {MAX_JSON_DEPTH} levels.",
                slug="json-too-deep",
            ) from e
        raise BadRequest("The request body is not valid JSON.") from e


def init_app(app: APIFlask) -> None:
    app.request_class = JSONRequest
    app.config["PROPAGATE_EXCEPTIONS"] = False  # the handlers below answer even in tests
    app.error_processor(_from_apiflask)
    app.register_error_handler(ProblemError, _from_problem_error)
    app.register_error_handler(HTTPException, _from_werkzeug)
    app.register_error_handler(DataError, _from_data_error)
    app.register_error_handler(OperationalError, _from_database_error)
    app.register_error_handler(InterfaceError, _from_database_error)
    app.register_error_handler(Exception, _from_unexpected)
    app.before_request(_require_json_body)
