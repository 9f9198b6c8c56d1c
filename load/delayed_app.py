"""The platform with an artificial delay on `GET /sessions/{id}/next`: how the load gate is
shown to fail on purpose (`nox -s load -- --inject-delay-ms 150`). Never part of the product.

    LOAD_INJECT_DELAY_MS=150 python -m gunicorn 'load.delayed_app:create()' -c gunicorn.conf.py
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from app import create_app

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def delayed(inner: WSGIApp, seconds: float) -> WSGIApp:
    def middleware(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/sessions/") and path.endswith("/next"):
            time.sleep(seconds)  # the regression being simulated: a slow next-item query
        return inner(environ, start_response)

    return middleware


def create() -> WSGIApp:
    platform = create_app()
    seconds = float(os.environ.get("LOAD_INJECT_DELAY_MS", "0")) / 1000
    # Replacing the WSGI callable is the point: Flask types it as a method.
    platform.wsgi_app = delayed(platform.wsgi_app, seconds)  # type: ignore[method-assign,assignment]
    return platform
