"""The benchmark-only baseline: a bare WSGI app, never part of the product.

`GET /baseline` runs one primary-key SELECT and answers a small JSON document. The load stack
serves it with the platform's gunicorn configuration (same workers, threads, config file)
against the same database, and loads it side by side with the platform; the platform's CPU per
request is reported as a multiple of this one's (docs/benchmarks.md). It is what "the cheapest
possible database-backed request on this stack" costs: WSGI, one pooled psycopg connection,
one indexed row, JSON out.

Two more routes measure the round trips of the platform's hot routes with no framework around
them, so a run shows how much of a ratio is protocol and how much is code:

- `GET /baseline/next-round-trips`: what `GET /sessions/{id}/next` sends over the wire, one
  Redis script call (the rate limit) and one transaction of five statements (its query budget);
- `GET /baseline/attempt-round-trips`: what an answer sends, two Redis script calls (the
  default and the per-user limit) and one transaction of six statements.

Their statements are the same primary-key SELECT; the platform's are bigger, so these are a
floor, not a model.

    BASELINE_DATABASE_URL=postgresql+psycopg://... REDIS_URL=redis://... \
        python -m gunicorn load.baseline_app:app -c gunicorn.conf.py
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import Any

import redis
from sqlalchemy import create_engine, text

_URL = os.environ.get("BASELINE_DATABASE_URL", "")
_POOL = int(os.environ.get("DATABASE_POOL_SIZE", "5"))
_engine = create_engine(_URL, pool_size=_POOL, pool_pre_ping=True) if _URL else None
_QUERY = text("SELECT id, email, role FROM users WHERE id = :id")
_redis = redis.Redis.from_url(os.environ["REDIS_URL"]) if os.environ.get("REDIS_URL") else None
# A counter with an expiry, in one script call: the shape of a rate-limit hit.
_HIT = (
    _redis.register_script(
        "local n = redis.call('incr', KEYS[1]) redis.call('expire', KEYS[1], 60) return n"
    )
    if _redis is not None
    else None
)
# Path -> (Redis script calls, statements in one transaction).
ROUND_TRIPS = {
    "/baseline/next-round-trips": (1, 5),
    "/baseline/attempt-round-trips": (2, 6),
}
_target: Any = None

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def _pick_row() -> Any:
    assert _engine is not None  # noqa: S101 - checked by the caller
    with _engine.connect() as connection:
        return connection.execute(text("SELECT id FROM users ORDER BY id LIMIT 1")).scalar_one()


def _round_trips(script_calls: int, statements: int) -> bytes:
    assert _engine is not None  # noqa: S101 - checked by the caller
    assert _HIT is not None  # noqa: S101 - checked by the caller
    for _ in range(script_calls):
        _HIT(keys=["baseline-hits"])
    with _engine.begin() as connection:  # BEGIN ... COMMIT, as a request's transaction
        for _ in range(statements):
            row = connection.execute(_QUERY, {"id": _target}).one()
    return json.dumps({"id": str(row.id), "statements": statements}).encode()


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    global _target
    path = environ.get("PATH_INFO", "")
    if path == "/healthz":
        body = b'{"status": "ok"}'
    elif _engine is not None and (path == "/baseline" or path in ROUND_TRIPS):
        if _target is None:
            _target = _pick_row()
        if path == "/baseline":
            with _engine.connect() as connection:
                row = connection.execute(_QUERY, {"id": _target}).one()
            body = json.dumps(
                {"id": str(row.id), "email": row.email, "role": str(row.role)}
            ).encode()
        elif _HIT is not None:
            body = _round_trips(*ROUND_TRIPS[path])
        else:
            start_response("503 Service Unavailable", [("Content-Type", "application/json")])
            return [b'{"status": 503, "detail": "REDIS_URL is not set"}']
    else:
        start_response("404 Not Found", [("Content-Type", "application/json")])
        return [b'{"status": 404}']
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]
