"""Liveness (`/healthz`) and readiness (`/readyz`: database, object storage and, when configured,
Redis)."""

from __future__ import annotations

import logging
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
    """Readiness: the database, object storage and (when configured) Redis answer."""
    checks = {
        "database": _check_database(),
        "redis": _check_redis(),
        "storage": _check_storage(),
    }
    if "unavailable" in checks.values():
        raise ProblemError(
            "A dependency is unavailable.", status=503, slug="not-ready", extra={"checks": checks}
        )
    return {"status": "ok", "checks": checks}
