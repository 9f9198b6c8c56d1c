"""The Celery application of one Flask application, and the tasks it runs.

With a broker (CELERY_BROKER_URL, else REDIS_URL) tasks go to Redis and a worker
(`celery -A app.jobs.worker worker`) runs them; with none, or JOBS_EAGER=true, they run
in-process at once, so the platform works with no services at all. Delivery is at least once:
acknowledged late, re-queued when a worker dies mid-task; the job row makes that safe.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

from celery import Celery, Task
from flask import Flask, current_app

from app.config import Settings

logger = logging.getLogger(__name__)

GENERATE_ITEMS_TASK = "mastery.jobs.generate_items"
EXTENSION = "mastery.celery"
# Seconds a hard time limit leaves after the soft one, for the task to record its failure.
HARD_LIMIT_GRACE = 30


def celery_config(settings: Settings) -> dict[str, Any]:
    broker = settings.broker_url
    return {
        "broker_url": broker or "memory://localhost/",
        "task_always_eager": broker is None,
        "task_eager_propagates": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_ignore_result": True,  # the job row is the result
        "task_default_queue": settings.job_queue,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_soft_time_limit": settings.job_timeout_seconds,
        "task_time_limit": settings.job_timeout_seconds + HARD_LIMIT_GRACE,
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": 3,
        # Redis redelivers an unacknowledged message after this long (a worker that vanished).
        "broker_transport_options": {"visibility_timeout": settings.job_visibility_timeout_seconds},
        # A broker that is down fails the request quickly instead of hanging it.
        "task_publish_retry_policy": {
            "max_retries": 2,
            "interval_start": 0,
            "interval_step": 0.5,
            "interval_max": 1,
        },
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,
    }


def init_app(app: Flask, settings: Settings) -> Celery:
    celery = Celery(app.import_name, set_as_current=False)
    celery.conf.update(celery_config(settings))
    _register_tasks(celery, app, settings)
    app.extensions[EXTENSION] = celery
    return celery


def get_celery(app: Flask | None = None) -> Celery:
    celery: Celery = (app or current_app).extensions[EXTENSION]
    return celery


def is_eager(app: Flask | None = None) -> bool:
    return bool(get_celery(app).conf.task_always_eager)


def enqueue_generation(job_id: uuid.UUID) -> None:
    """Send a generation job to the broker (or run it now, when eager)."""
    get_celery().tasks[GENERATE_ITEMS_TASK].apply_async(args=(str(job_id),))


def _register_tasks(celery: Celery, app: Flask, settings: Settings) -> None:
    timeout = timedelta(seconds=settings.job_timeout_seconds)

    @celery.task(name=GENERATE_ITEMS_TASK, bind=True, max_retries=None, shared=False)
    def generate_items(task: Task[Any, Any], job_id: str) -> str | None:
        from app.db import get_session
        from app.jobs import generation
        from app.jobs.runtime import job_provider, load_material

        while True:
            with app.app_context():
                outcome = generation.run(
                    get_session(), uuid.UUID(job_id), job_provider(app), timeout, load_material
                )
            if outcome.retry_in is None or not task.request.is_eager:
                break
            # Eager (development): the next attempt runs now; a request never sleeps on backoff.
        if outcome.retry_in is not None:
            raise task.retry(countdown=outcome.retry_in)
        if outcome.defer_to is not None and not task.request.is_eager:
            # Another delivery holds the job; look again when its deadline passes, so a
            # worker that died mid-task is taken over without an operator.
            raise task.retry(eta=outcome.defer_to + timedelta(seconds=1))
        return outcome.status.value if outcome.status else None
