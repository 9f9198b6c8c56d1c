"""Liveness (`/healthz`) and readiness (`/readyz`: database, object storage and, when configured,
Redis).

`/readyz` is public and unlimited (probes must always get through), and one verdict costs a
database query, a Redis connection and a storage write, which can take seconds on a failing
dependency. Each process therefore reuses its verdict for `READINESS_CACHE_SECONDS`, and only
one request at a time computes it: a flood costs each process one check per interval.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from apiflask import APIBlueprint
from flask import current_app
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.db import get_session
from app.errors import ProblemError
from app.storage import StorageError, get_storage

logger = logging.getLogger(__name__)

bp = APIBlueprint("health", __name__, tag="Operations")

# Long enough that a flood of probes costs one check per process per interval, short enough
# that a load balancer still sees a dependency fail within its usual 5-10 s probe period.
READINESS_CACHE_SECONDS = 2.0
EXTENSION = "mastery.readiness"


class ReadinessCache:
    """The last readiness verdict of this process, reused for `seconds`."""

    def __init__(
        self,
        seconds: float = READINESS_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._seconds = seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._checks: dict[str, str] | None = None
        self._checked_at = 0.0

    def get(self, check: Callable[[], dict[str, str]]) -> dict[str, str]:
        # Waiting callers get the verdict the first one computed, not a check each.
        with self._lock:
            now = self._clock()
            if self._checks is None or now - self._checked_at >= self._seconds:
                self._checks = check()
                self._checked_at = self._clock()
            return dict(self._checks)


@bp.get("/healthz")
@bp.doc(responses={200: "The process is alive"})
def healthz() -> Any:
    """Liveness: answers while the process can serve HTTP; touches no dependency."""
    return {"status": "ok"}


def _check_database() -> str:
    try:
        get_session().execute(text("SELECT 1"))
    except SQLAlchemyError as error:
        logger.warning("readiness: database unavailable: %s", type(error).__name__)
        return "unavailable"
    return "ok"


def _check_redis() -> str:
    url = current_app.extensions["mastery.settings"].redis_url
    if not url:
        return "not configured"
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    except redis.RedisError as error:
        logger.warning("readiness: redis unavailable: %s", type(error).__name__)
        return "unavailable"
    finally:
        client.close()
    return "ok"


def _check_storage() -> str:
    try:
        get_storage().check()
    except StorageError as error:
        logger.warning("readiness: storage unavailable: %s", error)
        return "unavailable"
    return "ok"


@bp.get("/readyz")
@bp.doc(responses={200: "Every dependency answers", 503: "A dependency is unavailable"})
def readyz() -> Any:
    """Readiness: the database, object storage and (when configured) Redis answer.

    The verdict is at most two seconds old: each process checks at most once per interval."""
    cache: ReadinessCache = current_app.extensions.setdefault(EXTENSION, ReadinessCache())
    checks = cache.get(
        lambda: {
            "database": _check_database(),
            "redis": _check_redis(),
            "storage": _check_storage(),
        }
    )
    if "unavailable" in checks.values():
        raise ProblemError(
            "A dependency is unavailable.", status=503, slug="not-ready", extra={"checks": checks}
        )
    return {"status": "ok", "checks": checks}
