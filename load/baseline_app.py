"""The benchmark-only baseline: a bare WSGI app with one endpoint, `GET /baseline`, that runs
one primary-key SELECT and answers a small JSON document. Never part of the product.

The load stack serves it with the platform's gunicorn configuration (same workers, threads,
config file) against the same database, and loads it side by side with the platform; the
platform's CPU per request is reported as a multiple of this one's (docs/benchmarks.md). It is
what "the cheapest possible database-backed request on this stack" costs: WSGI, one pooled
psycopg connection, one indexed row, JSON out.

    BASELINE_DATABASE_URL=postgresql+psycopg://... python -m gunicorn load.baseline_app:app \
        -c gunicorn.conf.py
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import create_engine, text

_URL = os.environ.get("BASELINE_DATABASE_URL", "")
_POOL = int(os.environ.get("DATABASE_POOL_SIZE", "5"))
_engine = create_engine(_URL, pool_size=_POOL, pool_pre_ping=True) if _URL else None
_QUERY = text("SELECT id, email, role FROM users WHERE id = :id")
_target: Any = None

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def _pick_row() -> Any:
    assert _engine is not None  # noqa: S101 - checked by the caller
    with _engine.connect() as connection:
        return connection.execute(text("SELECT id FROM users ORDER BY id LIMIT 1")).scalar_one()


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    global _target
    path = environ.get("PATH_INFO", "")
    if path == "/healthz":
        body = b'{"status": "ok"}'
    elif path == "/baseline" and _engine is not None:
        if _target is None:
            _target = _pick_row()
        with _engine.connect() as connection:
            row = connection.execute(_QUERY, {"id": _target}).one()
        body = json.dumps({"id": str(row.id), "email": row.email, "role": str(row.role)}).encode()
    else:
        start_response("404 Not Found", [("Content-Type", "application/json")])
        return [b'{"status": 404}']
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]
