"""The Celery worker's own metrics endpoint.

Job transitions past `queued` (`running`, `succeeded`, `failed`, `dead`), the sweeper's actions
and the AI calls of generation jobs happen in the worker, which serves no HTTP. With
`WORKER_METRICS_PORT` set, the worker's main process serves the Prometheus text format on
`WORKER_METRICS_ADDR` (default 127.0.0.1) from the `worker_init` signal. The prefork pool's
children do the work, so the values reach the main process only through
`PROMETHEUS_MULTIPROC_DIR` (a directory of the worker's own, not the web server's); a child's
live gauges are dropped when it exits.

Access follows `/metrics`: with `METRICS_TOKEN` set, every request needs
`Authorization: Bearer <METRICS_TOKEN>` (401 otherwise), whatever the address. Without a token
the endpoint may only bind to a loopback address; the worker refuses to start with an exposed
bind (`0.0.0.0`, a private address…) and no token.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import threading
from collections.abc import Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from celery.signals import worker_init, worker_process_shutdown
from prometheus_client import REGISTRY, CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from app.config import Settings
from app.observability.metrics import bearer_matches, multiprocess_dir

logger = logging.getLogger(__name__)

UNAUTHORISED = b"Metrics need `Authorization: Bearer <METRICS_TOKEN>`.\n"


class ExposedWithoutTokenError(RuntimeError):
    """WORKER_METRICS_ADDR is not a loopback address and METRICS_TOKEN is not set."""


def registry() -> CollectorRegistry:
    """Every process's values in multiprocess mode, else this process's registry."""
    if multiprocess_dir() is None:
        return REGISTRY
    merged = CollectorRegistry(auto_describe=False)
    MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
    return merged


def is_loopback(addr: str) -> bool:
    """`localhost`, 127.0.0.0/8 or ::1; anything else (0.0.0.0 included) is exposed."""
    if addr.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(addr.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def protected(app: WSGIApplication, token: str | None) -> WSGIApplication:
    """`app` behind the bearer token (unchanged when there is none)."""
    if token is None:
        return app

    def guarded(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if bearer_matches(environ.get("HTTP_AUTHORIZATION", ""), token):
            return app(environ, start_response)
        start_response(
            "401 Unauthorized",
            [("Content-Type", "text/plain; charset=utf-8"), ("WWW-Authenticate", "Bearer")],
        )
        return [UNAUTHORISED]

    return guarded


def metrics_token(settings: Settings) -> str | None:
    """The token the endpoint requires; ExposedWithoutTokenError for an exposed bind without."""
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    if token is not None and token.strip():
        return token
    if not is_loopback(settings.worker_metrics_addr):
        raise ExposedWithoutTokenError(
            f"WORKER_METRICS_ADDR={settings.worker_metrics_addr} exposes the worker's metrics "
            "beyond this host: set METRICS_TOKEN (they then need it, as /metrics does) or bind "
            "127.0.0.1"
        )
    return None


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not logged (one line per scrape would drown the worker's log)."""


def serve(
    addr: str, port: int, collectors: CollectorRegistry, token: str | None
) -> ThreadingWSGIServer:
    """Serve `collectors` on addr:port from a daemon thread; returns the server."""

    class Server(ThreadingWSGIServer):
        address_family = socket.AF_INET6 if ":" in addr else socket.AF_INET

    app = protected(make_wsgi_app(collectors), token)
    server = make_server(addr.strip("[]"), port, app, Server, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def init_worker(settings: Settings) -> None:
    """Serve the worker's metrics once the worker starts, when WORKER_METRICS_PORT is set."""
    port = settings.worker_metrics_port
    if port is None:
        return
    token = metrics_token(settings)  # before the worker starts: a bad bind stops it here

    def start(**_kwargs: Any) -> None:
        if multiprocess_dir() is None:
            logger.warning(
                "metrics.worker_single_process: PROMETHEUS_MULTIPROC_DIR is not set, so the "
                "values counted in the prefork pool's processes are not served"
            )
        serve(settings.worker_metrics_addr, port, registry(), token)
        logger.info(
            "metrics.worker_serving addr=%s port=%d token=%s",
            settings.worker_metrics_addr,
            port,
            "required" if token else "none (loopback only)",
        )

    def forget_process(**_kwargs: Any) -> None:
        if multiprocess_dir() is not None:
            mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]

    worker_init.connect(start, weak=False)
    worker_process_shutdown.connect(forget_process, weak=False)
