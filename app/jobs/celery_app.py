"""The Celery application of one Flask application, and the tasks it runs.

With a broker (CELERY_BROKER_URL, else REDIS_URL) tasks go to Redis and a worker
(`celery -A app.jobs.worker worker`) runs them; with none, or JOBS_EAGER=true, they run
in-process at once, so the platform works with no services at all. Delivery is at least once:
acknowledged late, so a pool process that dies mid-task has its message re-queued by the
worker's main process at once. A worker that dies whole (SIGKILL of its process group, a lost
machine) re-queues nothing, and Redis would return its message only after the visibility
timeout (an hour): the sweeper every worker runs (app/jobs/sweeper.py) re-queues such a job
from its row shortly after its deadline instead. The job row makes every duplicate safe.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

import structlog
from celery import Celery, Task
from celery.signals import setup_logging
from flask import Flask, current_app

from app.config import Settings
from app.jobs import metrics
from app.observability.request_id import current_request_id

logger = logging.getLogger(__name__)

GENERATE_ITEMS_TASK = "mastery.jobs.generate_items"
EXTENSION = "mastery.celery"
# Seconds a hard time limit leaves after the soft one, for the task to record its failure.
HARD_LIMIT_GRACE = 30
# The message header that carries the web request's id into the task (its log lines carry it).
REQUEST_ID_HEADER = "request_id"


@setup_logging.connect(weak=False)
def _keep_json_logging(**_kwargs: Any) -> None:
    """A receiver here tells the Celery worker not to install its own log handlers: the app
    (create_app, app.observability.logging) already routes every logger to JSON on stderr."""


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
        # Redis returns an unacknowledged message to the queue after this long. It must exceed
        # the longest a worker holds a message (a retry's backoff, a deferral to a deadline, the
        # hard time limit) or that message runs twice; recovering a vanished worker is the
        # sweeper's job, not this (docs/decisions/0004-stuck-job-recovery.md).
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
    metrics.init_app(app)
    return celery


def get_celery(app: Flask | None = None) -> Celery:
    celery: Celery = (app or current_app).extensions[EXTENSION]
    return celery


def is_eager(app: Flask | None = None) -> bool:
    return bool(get_celery(app).conf.task_always_eager)


def enqueue_generation(job_id: uuid.UUID) -> None:
    """Send a generation job to the broker (or run it now, when eager), with the request id."""
    request_id = current_request_id() or structlog.contextvars.get_contextvars().get("request_id")
    send_generation(get_celery(), job_id, str(request_id) if request_id else None)


def send_generation(celery: Celery, job_id: uuid.UUID, request_id: str | None) -> None:
    """Publish (or, eager, run) one delivery of a generation job; `request_id` travels as a
    header so the run's log lines carry it."""
    headers = {REQUEST_ID_HEADER: request_id} if request_id else {}
    celery.tasks[GENERATE_ITEMS_TASK].apply_async(args=(str(job_id),), headers=headers)


def task_request_id(task: Task[Any, Any]) -> str | None:
    """The request id a task was sent with: Celery exposes custom headers as attributes of
    `task.request` (and, for some paths, in `task.request.headers`)."""
    value = getattr(task.request, REQUEST_ID_HEADER, None)
    if not value:
        value = (getattr(task.request, "headers", None) or {}).get(REQUEST_ID_HEADER)
    return str(value) if value else None


def _register_tasks(celery: Celery, app: Flask, settings: Settings) -> None:
    timeout = timedelta(seconds=settings.job_timeout_seconds)

    @celery.task(name=GENERATE_ITEMS_TASK, bind=True, max_retries=None, shared=False)
    def generate_items(task: Task[Any, Any], job_id: str) -> str | None:
        from app.db import get_session
        from app.jobs import generation
        from app.jobs.runtime import job_provider, load_material

        # Every line of this run (job events, AI usage, provider retries) carries the id of the
        # request that queued the job; eager runs inside that request keep its binding.
        with structlog.contextvars.bound_contextvars(
            request_id=task_request_id(task) or current_request_id(), job_id=job_id
        ):
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
