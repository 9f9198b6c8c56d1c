"""Error reporting with Sentry: on only when `SENTRY_DSN` is set.

`init_sentry` runs from create_app, so the web processes and the Celery worker (which builds
the app with create_app) both report; it initialises the SDK once per process and DSN (tests
build many apps). Events carry `environment` (APP_ENV), `release` (`mastery@<version>`), a
`request_id` tag and a user context of id and role only. Default PII is off (see `init_sentry`),
stack frames carry no local variables, the SDK's own EventScrubber runs, and
`scrub_event` runs last on every event and breadcrumb: it drops the Authorization, Cookie and
Set-Cookie headers, replaces the value of every token, password, API key or secret key found
anywhere (request body, extra, contexts, breadcrumbs, frame variables), and masks e-mail
addresses, bearer tokens and JWTs inside any string.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import sentry_sdk
import structlog
from flask import has_request_context
from sentry_sdk.integrations.celery import CeleryIntegration
from sentry_sdk.integrations.flask import FlaskIntegration
from sentry_sdk.types import Event, Hint

from app.config import Settings
from app.observability.logging import authenticated_user
from app.observability.request_id import current_request_id

FILTERED = "[Filtered]"
EMAIL_MASK = "[email]"
# A key whose name contains any of these (case-insensitive) has its value replaced: `token`
# covers access_token and refresh_token, `password` current_password and new_password, and
# `authorization` / `cookie` the WSGI environ's HTTP_AUTHORIZATION and HTTP_COOKIE.
SENSITIVE_KEY_PARTS = (
    "password",
    "passwd",
    "token",
    "secret",
    "api_key",
    "apikey",
    "authorization",
    "cookie",
)
DROPPED_HEADERS = frozenset({"authorization", "cookie", "set-cookie", "proxy-authorization"})
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+")
JWT = re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# `password='…'`, `"refresh_token": "…"`, `api_key=…` inside a repr, a message or a query string.
KEY_VALUE = re.compile(
    r"(?i)(['\"]?\b(?:access_token|refresh_token|current_password|new_password|password|"
    r"api_key|secret_key|secret|token)['\"]?\s*[:=]\s*)(['\"]?)[^'\",&\s)}]+"
)

_active_dsn: str | None = None


def _sensitive(key: object) -> bool:
    if not isinstance(key, str):
        return False
    name = key.lower().replace("-", "_")
    return any(part in name for part in SENSITIVE_KEY_PARTS)


def scrub_text(text: str) -> str:
    """Mask e-mail addresses, bearer tokens, JWTs and `password=…`-style values in a string."""
    text = BEARER.sub(rf"\1 {FILTERED}", text)
    text = JWT.sub(FILTERED, text)
    text = KEY_VALUE.sub(rf"\1\2{FILTERED}", text)
    return EMAIL.sub(EMAIL_MASK, text)


def scrub(value: Any) -> Any:
    """`value` with sensitive keys' values replaced and every string scrubbed, recursively."""
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, Mapping):
        return {
            key: FILTERED if _sensitive(key) and item is not None else scrub(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        # Header lists arrive as [name, value] pairs.
        if len(value) == 2 and _sensitive(value[0]):
            return [value[0], FILTERED]
        return [scrub(item) for item in value]
    return value


def _drop_headers(request: Any) -> None:
    if not isinstance(request, dict):
        return
    headers = request.get("headers")
    if isinstance(headers, dict):
        request["headers"] = {
            name: value for name, value in headers.items() if name.lower() not in DROPPED_HEADERS
        }
    request.pop("cookies", None)


def _request_id() -> str | None:
    bound = structlog.contextvars.get_contextvars().get("request_id")
    return current_request_id() or (str(bound) if bound else None)


def _user() -> dict[str, object] | None:
    if not has_request_context():
        return None
    user_id, role = authenticated_user()
    if user_id is None:
        return None
    return {"id": user_id, "role": role or ""}


def scrub_event(event: Event, _hint: Hint) -> Event | None:
    """`before_send`: tag the request id, set the user to id and role, scrub everything."""
    request_id = _request_id()
    if request_id:
        event.setdefault("tags", {})["request_id"] = request_id
    user = _user()
    if user is not None:
        event["user"] = user
    elif "user" in event:
        kept = event.get("user") or {}
        event["user"] = {k: v for k, v in kept.items() if k in ("id", "role")}
    _drop_headers(event.get("request"))
    scrubbed: Event = scrub(dict(event))
    return scrubbed


def scrub_breadcrumb(crumb: dict[str, Any], _hint: dict[str, Any]) -> dict[str, Any] | None:
    """`before_breadcrumb`: the same scrubbing for breadcrumbs as they are recorded."""
    scrubbed: dict[str, Any] = scrub(crumb)
    return scrubbed


def init_sentry(settings: Settings, release: str) -> bool:
    """Start the SDK when SENTRY_DSN is set (once per process and DSN); True when on."""
    global _active_dsn
    dsn = settings.sentry_dsn
    if not dsn:
        return False
    if dsn == _active_dsn and sentry_sdk.get_client().is_active():
        return True
    sentry_sdk.init(
        dsn=dsn,
        environment=settings.app_env,
        release=f"mastery@{release}",
        # No `send_default_pii`: unset is False (no IP address, cookies or user identity from
        # the integrations), and sentry-sdk 2.75 deprecates passing it. `data_collection` is
        # not passed either: passing it turns off the SDK's own EventScrubber.
        # No frame variables: the scrubber knows names, not values, and a frame's locals can
        # hold a decrypted signing key (`cached` in Keyring.verification_secret), a provider
        # key or an answer key under any name. A stack trace without them is still a trace.
        include_local_variables=False,
        max_request_body_size="medium",
        traces_sample_rate=settings.sentry_traces_sample_rate,
        integrations=[FlaskIntegration(), CeleryIntegration()],
        before_send=scrub_event,
        before_send_transaction=scrub_event,
        before_breadcrumb=scrub_breadcrumb,
    )
    _active_dsn = dsn
    return True


def shutdown() -> None:
    """Flush and close the client, leaving the SDK off (tests; the process exit does it too)."""
    global _active_dsn
    client = sentry_sdk.get_client()
    if client.is_active():
        client.close(timeout=2)
    sentry_sdk.get_global_scope().set_client(None)  # the SDK's non-recording client again
    _active_dsn = None


def tag_request() -> None:
    """Tag the current scope with the request id (before_request, when Sentry is on)."""
    request_id = current_request_id()
    if request_id:
        sentry_sdk.set_tag("request_id", request_id)
