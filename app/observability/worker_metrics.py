"""The Celery worker's own metrics endpoint.

Job transitions past `queued` (`running`, `succeeded`, `failed`, `dead`) and the AI calls of
generation jobs happen in the worker, which serves no HTTP. With `WORKER_METRICS_PORT` set, the
worker's main process serves the Prometheus text format on `WORKER_METRICS_ADDR` (default
127.0.0.1: an internal bind, so no token) from the `worker_init` signal. The prefork pool's
children do the work, so the values reach the main process only through
`PROMETHEUS_MULTIPROC_DIR` (a directory of the worker's own, not the web server's); a child's
live gauges are dropped when it exits.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from celery.signals import worker_init, worker_process_shutdown
from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from app.config import Settings
from app.observability.metrics import multiprocess_dir

logger = logging.getLogger(__name__)


def registry() -> CollectorRegistry:
    """Every process's values in multiprocess mode, else this process's registry."""
    if multiprocess_dir() is None:
        return REGISTRY
    merged = CollectorRegistry(auto_describe=False)
    MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
    return merged


def init_worker(settings: Settings) -> None:
    """Serve the worker's metrics once the worker starts, when WORKER_METRICS_PORT is set."""
    port = settings.worker_metrics_port
    if port is None:
        return

    def serve(**_kwargs: Any) -> None:
        if multiprocess_dir() is None:
            logger.warning(
                "metrics.worker_single_process: PROMETHEUS_MULTIPROC_DIR is not set, so the "
                "values counted in the prefork pool's processes are not served"
            )
        start_http_server(port, addr=settings.worker_metrics_addr, registry=registry())
        logger.info("metrics.worker_serving addr=%s port=%d", settings.worker_metrics_addr, port)

    def forget_process(**_kwargs: Any) -> None:
        if multiprocess_dir() is not None:
            mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]

    worker_init.connect(serve, weak=False)
    worker_process_shutdown.connect(forget_process, weak=False)
