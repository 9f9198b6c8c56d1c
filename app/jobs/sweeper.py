"""The sweeper: running jobs past their deadline go back to the queue without an operator.

A worker killed whole (SIGKILL of its process group: the OOM killer, a lost machine) records
nothing and acknowledges nothing. Its job row stays `running`, and Redis would hand the message
back only after the broker's visibility timeout (an hour by default), on a sweep of its own
that runs every ~100 s. So every worker also sweeps the job rows, in its main process, every
`JOB_SWEEP_INTERVAL_SECONDS` (by default a fifth of `JOB_TIMEOUT_SECONDS`, 1-60 s):

* running rows whose deadline passed more than `SWEEP_GRACE` ago are locked with
  `SELECT … FOR UPDATE SKIP LOCKED`: several workers sweeping at once take different rows and
  none waits, and a row a run is writing right now is skipped until the next pass;
* a job with an attempt left goes back to `queued` and a new message is published while its
  row is still locked (a failed publish rolls the pass back: a job is never `queued` without a
  message); one whose lost run was its last attempt ends `dead`. The next run's claim counts a
  new attempt, so a job that kills its worker every time ends `dead` after `max_attempts` runs;
* each action writes an audit record (`job.requeued` / `job.dead`, actor: none, via: sweeper),
  a safe `last_error`, a log line with the request id that queued the job, and
  `mastery_jobs_swept_total{kind, outcome}`.

A late original run cannot add items: its claim (status and attempt) no longer holds, so its
result is discarded (app/jobs/generation.py). Why a worker-side timer and not Celery beat or a
short visibility timeout: docs/decisions/0004-stuck-job-recovery.md.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from celery import Celery, bootsteps
from kombu.exceptions import OperationalError as KombuOperationalError
from sqlalchemy import create_engine, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from app.audit.service import record as audit_record
from app.config import Settings
from app.db import utcnow
from app.jobs import metrics
from app.jobs.celery_app import send_generation
from app.jobs.errors import WORKER_LOST_NO_ATTEMPT_LEFT, WORKER_LOST_REQUEUED
from app.jobs.models import Job, JobStatus

logger = logging.getLogger(__name__)

# How long past its deadline a job is left to its own run first: the task's soft time limit
# fires at the deadline, and its failure handler gets this long to record what happened.
SWEEP_GRACE = timedelta(seconds=2)
# Rows handled per pass; the rest wait for the next pass (a pass holds their locks meanwhile).
BATCH = 50
# The sweeper's own connection never waits long: the worker's event loop waits for it.
STATEMENT_TIMEOUT_MS = 5000
CONNECT_TIMEOUT_SECONDS = 5

# job id, the request id that queued it (None when unknown)
Publish = Callable[[uuid.UUID, str | None], None]


@dataclass(frozen=True)
class Swept:
    """What one pass did to one job."""

    job_id: uuid.UUID
    kind: str
    status: JobStatus  # queued (re-queued) or dead
    attempts: int
    max_attempts: int
    overdue_seconds: int
    request_id: str | None  # of the request that queued the job: its next run carries it

    @property
    def outcome(self) -> str:
        """The `outcome` label of mastery_jobs_swept_total."""
        return "requeued" if self.status is JobStatus.QUEUED else "dead"


def sweep(
    session: Session,
    publish: Publish,
    *,
    eager: bool = False,
    now: datetime | None = None,
    grace: timedelta = SWEEP_GRACE,
    limit: int = BATCH,
    strict: bool = False,
) -> list[Swept]:
    """One pass over the running jobs past their deadline (see the module docstring).

    `publish` sends a job to the broker; with `eager` (no broker: the job runs inside
    `publish`) the pass commits first and publishes after, since the run needs the row.
    A broker or database that is down rolls the pass back and is logged; the pass then returns
    [] (a worker's timer tries again later) or, with `strict` (an operator's command), raises.
    """
    now = now or utcnow()
    try:
        jobs = session.scalars(
            select(Job)
            .where(Job.status == JobStatus.RUNNING, Job.deadline_at < now - grace)
            .order_by(Job.deadline_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        if not jobs:
            session.rollback()
            return []
        swept = [_decide(session, job, now) for job in jobs]
        requeued = [done for done in swept if done.status is JobStatus.QUEUED]
        if not eager:
            for done in requeued:
                publish(done.job_id, done.request_id)
        session.commit()
    except (KombuOperationalError, OSError, SQLAlchemyError) as error:
        session.rollback()
        what = "database" if isinstance(error, SQLAlchemyError) else "broker"
        logger.warning("jobs.sweep_failed: %s unavailable (%s)", what, type(error).__name__)
        if strict:
            raise
        return []
    for done in swept:
        metrics.record_job_transition(done.kind, done.status)
        metrics.record_swept(done.kind, done.outcome)
        with structlog.contextvars.bound_contextvars(
            request_id=done.request_id, job_id=str(done.job_id)
        ):
            logger.warning(
                "job.swept job_id=%s outcome=%s attempts=%d/%d overdue=%ds",
                done.job_id,
                done.outcome,
                done.attempts,
                done.max_attempts,
                done.overdue_seconds,
            )
    if eager:
        for done in requeued:
            publish(done.job_id, done.request_id)
    return swept


def _decide(session: Session, job: Job, now: datetime) -> Swept:
    """Re-queue `job` or end it, with its audit record (not committed)."""
    overdue = int((now - job.deadline_at).total_seconds()) if job.deadline_at else 0
    if job.attempts >= job.max_attempts:
        job.status, job.last_error, job.finished_at = (
            JobStatus.DEAD,
            WORKER_LOST_NO_ATTEMPT_LEFT,
            now,
        )
        action = "job.dead"
    else:
        job.status, job.last_error, job.finished_at = JobStatus.QUEUED, WORKER_LOST_REQUEUED, None
        action = "job.requeued"
    job.deadline_at = None
    audit_record(
        session,
        action,
        target_type="job",
        target_id=str(job.id),
        details={
            "from": JobStatus.RUNNING.value,
            "reason": "worker lost",
            "via": "sweeper",
            "attempts": job.attempts,
            "max_attempts": job.max_attempts,
            "overdue_seconds": overdue,
        },
    )
    return Swept(
        job.id, job.kind.value, job.status, job.attempts, job.max_attempts, overdue, job.request_id
    )


# --- in the worker ----------------------------------------------------------------------------------


def sweep_engine(database_url: str) -> Engine:
    """The sweeper's engine in a worker's main process. No pool: the prefork pool's processes
    are forked from this process, and a connection kept open here would be shared with them.
    Postgres connections give up quickly, so a slow database cannot stall the worker's loop."""
    if database_url.startswith("sqlite"):
        return create_engine(database_url, poolclass=NullPool)
    options = f"-c statement_timeout={STATEMENT_TIMEOUT_MS} -c lock_timeout={STATEMENT_TIMEOUT_MS}"
    return create_engine(
        database_url,
        poolclass=NullPool,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS, "options": options},
    )


class Sweeper:
    """One worker's sweeper: an engine of its own and the Celery app it publishes through."""

    def __init__(self, celery: Celery, settings: Settings) -> None:
        self.celery = celery
        self.engine = sweep_engine(settings.database_url)

    def publish(self, job_id: uuid.UUID, request_id: str | None) -> None:
        send_generation(self.celery, job_id, request_id)

    def run_once(self) -> list[Swept]:
        try:
            with Session(self.engine) as session:
                return sweep(session, self.publish)
        except Exception:  # a timer callback must never take the worker's loop down
            logger.exception("jobs.sweep_crashed")
            return []

    def close(self) -> None:
        self.engine.dispose()


def install(celery: Celery, settings: Settings) -> None:
    """Make every worker of `celery` sweep every `settings.job_sweep_interval` seconds (nothing
    when the sweeper is off). The first pass runs a second after the worker starts, so a fresh
    worker takes over the jobs of the one it replaces at once."""
    configured = settings.job_sweep_interval
    if configured is None:
        return
    interval: float = configured

    class JobSweeper(bootsteps.StartStopStep):
        """Runs the sweeper on the worker's timer (its event loop, in the main process)."""

        requires = ("celery.worker.components:Timer", "celery.worker.components:Pool")

        def __init__(self, parent: Any, **kwargs: Any) -> None:
            super().__init__(parent, **kwargs)
            self.sweeper: Sweeper | None = None
            self.timers: list[Any] = []

        def start(self, parent: Any) -> None:
            self.sweeper = Sweeper(celery, settings)
            timer = parent.timer
            self.timers = [
                timer.call_after(min(1.0, interval), self.sweeper.run_once),
                timer.call_repeatedly(interval, self.sweeper.run_once),
            ]
            logger.info("jobs.sweeper_started interval=%.1fs", interval)

        def stop(self, parent: Any) -> None:
            for entry in self.timers:
                entry.cancel()
            self.timers = []
            if self.sweeper is not None:
                self.sweeper.close()
                self.sweeper = None

    celery.steps["worker"].add(JobSweeper)
