"""Security controls that apply to every request: HTTPS behind a proxy, security headers,
CORS and rate limits.

Each control lives in its own module with an `init_app`; `init_app` below wires them in order.
Order matters for `before_request` hooks (the HTTPS redirect runs before anything that could
consume the request) and is otherwise free.
"""

from __future__ import annotations

from flask import Flask

from app.config import Settings
from app.security import cors, headers, https, rate_limits


def init_app(app: Flask, settings: Settings) -> None:
    https.init_app(app, settings)
    headers.init_app(app, settings)
    cors.init_app(app, settings)
    rate_limits.init_app(app, settings)
