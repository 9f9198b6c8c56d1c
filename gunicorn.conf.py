"""Gunicorn settings for Mastery: `python -m gunicorn 'app:create_app()' -c gunicorn.conf.py`.

Bind, workers and timeouts come from the command line or `GUNICORN_CMD_ARGS`. Each concern
keeps its settings and hooks in its own section below; add a section rather than editing
another one.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
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


# --- Process model (docs/load-testing.md "The stack") ---------------------------------------------
# GUNICORN_WORKERS and GUNICORN_THREADS set the worker processes and the threads of each (the
# gthread worker when threads > 1); unset, gunicorn's own defaults or the command line apply,
# and `--workers`/`--threads` on the command line still win. Each worker's database pool holds
# one connection per thread, so no thread waits for a connection (DATABASE_POOL_SIZE, unless set).

if os.environ.get("GUNICORN_WORKERS"):
    workers = int(os.environ["GUNICORN_WORKERS"])
if os.environ.get("GUNICORN_THREADS"):
    threads = int(os.environ["GUNICORN_THREADS"])
    os.environ.setdefault("DATABASE_POOL_SIZE", str(max(threads, 1)))

# --- end of Process model -------------------------------------------------------------------------


# --- Load-test CPU accounting (load/stack.py, docs/load-testing.md "CPU per request") -------------
# Off unless MASTERY_CPU_ACCOUNTING_DIR is set (only the load stack sets it). Each worker adds
# the CPU time of the thread serving a request (time.thread_time around the request) to a total
# per "METHOD /route/{id}" and writes its totals to <dir>/cpu-<pid>.json every 0.5 s. The load
# runner splits the workers' whole CPU time (psutil) between routes in these proportions.

_CPU_DIR_ENV = "MASTERY_CPU_ACCOUNTING_DIR"
_cpu_totals: dict[str, list[float]] = {}
_cpu_lock = threading.Lock()
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _route_of(method: str, path: str) -> str:
    return f"{method} " + _UUID.sub("{id}", path)


def pre_request(worker: Any, req: Any) -> None:
    if os.environ.get(_CPU_DIR_ENV):
        req.mastery_cpu_started = time.thread_time()


def post_request(worker: Any, req: Any, environ: Any, resp: Any) -> None:
    started = getattr(req, "mastery_cpu_started", None)
    if started is None:
        return
    spent = time.thread_time() - started
    with _cpu_lock:
        total = _cpu_totals.setdefault(_route_of(req.method, req.path), [0, 0.0])
        total[0] += 1
        total[1] += spent


def _write_cpu_totals(directory: str) -> None:
    with _cpu_lock:
        document = json.dumps({route: list(total) for route, total in _cpu_totals.items()})
    target = Path(directory) / f"cpu-{os.getpid()}.json"
    scratch = target.with_suffix(".tmp")
    scratch.write_text(document)
    scratch.replace(target)  # readers never see half a file


def post_worker_init(worker: Any) -> None:
    directory = os.environ.get(_CPU_DIR_ENV)
    if not directory:
        return

    # The runner reads the totals between load shapes, while the worker lives on.
    def flush_every_half_second() -> None:
        while True:
            time.sleep(0.5)
            _write_cpu_totals(directory)

    threading.Thread(target=flush_every_half_second, daemon=True).start()


def worker_exit(server: Any, worker: Any) -> None:
    directory = os.environ.get(_CPU_DIR_ENV)
    if directory:
        _write_cpu_totals(directory)


# --- end of Load-test CPU accounting --------------------------------------------------------------
