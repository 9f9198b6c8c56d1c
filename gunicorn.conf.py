"""Gunicorn settings for Mastery: `python -m gunicorn 'app:create_app()' -c gunicorn.conf.py`.

Bind, workers and timeouts come from the command line or `GUNICORN_CMD_ARGS`. Each concern
keeps its settings and hooks in its own section below; add a section rather than editing
another one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

# --- Metrics (app/observability/metrics.py, docs/observability.md "Metrics") ----------------------
# With PROMETHEUS_MULTIPROC_DIR set, every worker writes its metric values to files in that
# directory and /metrics merges them. Files left by an earlier run would be merged too, so the
# master empties the directory at start; a dead worker's live gauges are dropped when it exits.

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _multiproc_dir() -> Path | None:
    value = os.environ.get(MULTIPROC_ENV)
    return Path(value) if value else None


def on_starting(server: Any) -> None:
    directory = _multiproc_dir()
    if directory is None:
        return
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()


def child_exit(server: Any, worker: Any) -> None:
    if _multiproc_dir() is None:
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


# --- end of Metrics -------------------------------------------------------------------------------


# --- Logs (app/observability/logging.py, docs/observability.md "Logs and errors") -----------------
# Gunicorn's own lines (master and workers: start-up, worker boot/exit, timeouts, errors) go
# through the same structlog formatter as the app's, as one JSON object per line on stderr.
# gunicorn's access log is off (its logger at WARNING; gunicorn only logs access at INFO): the
# app's `http.request` event replaces it, with the route template (not the raw path and query
# string), status, duration, request id, user id and role. Setting "gunicorn.access" to INFO
# below brings gunicorn's lines back, as JSON through the same handler.
# The app finds this root handler when it starts and does not add a second one.

logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "app.observability.logging.json_formatter"}},
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "stream": "ext://sys.stderr",
        }
    },
    "root": {"level": os.environ.get("LOG_LEVEL", "INFO").upper(), "handlers": ["stderr"]},
    # No level: gunicorn.error keeps --log-level. No handlers: both propagate to the root's.
    "loggers": {
        "gunicorn.error": {"handlers": [], "propagate": True},
        "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": True},
    },
}

# --- end of Logs ----------------------------------------------------------------------------------
