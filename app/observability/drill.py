"""The alert drill switch: a way to make the platform fail on purpose, so the path from a 5xx
answer to a page (metrics, Prometheus rule, Alertmanager, receiver) can be proven end to end.

Off unless `DRILL_TOKEN` is set. With it set, a request carrying `X-Drill-Token: <DRILL_TOKEN>`
is answered `500` (problem+json, with its request id) before any view runs and without
touching the database; a request without the header, or with any other value, is untouched.
The switch is allowed in every environment (a drill in production is a legitimate exercise),
but it is logged: a warning at start-up in staging and production, and one per drill request.
`nox -s alert-drill` uses it; docs/runbooks/alerts.md describes the manual drill.
"""

from __future__ import annotations

import hmac
import logging

from flask import Flask, Response, request

from app.config import Settings
from app.errors import problem_response

HEADER = "X-Drill-Token"
SLUG = "alert-drill"

logger = logging.getLogger(__name__)


def drill_token(settings: Settings) -> str | None:
    """The configured drill token, or None when the switch is off (unset or blank)."""
    if settings.drill_token is None:
        return None
    token = settings.drill_token.get_secret_value()
    return token if token.strip() else None


def init_app(app: Flask, settings: Settings) -> None:
    """Install the drill hook when DRILL_TOKEN is set; otherwise do nothing at all."""
    token = drill_token(settings)
    if token is None:
        return
    if settings.is_hardened:
        logger.warning(
            "alert drill switch is ON in %s: requests with %s fail with 500 on purpose",
            settings.app_env,
            HEADER,
            extra={"event": "drill.enabled", "app_env": settings.app_env},
        )
    expected = token.encode()

    def fail_on_purpose() -> Response | None:
        offered = request.headers.get(HEADER)
        if offered is None or not hmac.compare_digest(offered.encode(), expected):
            return None
        logger.warning(
            "alert drill: answering 500 on purpose",
            extra={"event": "drill.failure"},
        )
        return problem_response(500, "Alert drill: this request failed on purpose.", slug=SLUG)

    app.before_request(fail_on_purpose)
