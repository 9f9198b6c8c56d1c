"""Creating, reading, listing and re-queuing jobs, as plain functions over a session.

The web side only writes `queued` rows and hands their ids to Celery; workers move them on
(app.jobs.generation). A job that cannot be handed to the broker is marked `failed` with the
reason, so it never sits in `queued` pretending to wait.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime

from flask import current_app
from kombu.exceptions import OperationalError as KombuOperationalError
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit.service import record as audit_record
from app.auth.models import Role, User
from app.config import Settings
from app.content.models import Skill
from app.content.service import get_skill, require_editor
from app.db import utcnow
from app.errors import Conflict, NotFound, ProblemError
from app.jobs import metrics
from app.jobs.celery_app import enqueue_generation
from app.jobs.errors import requeued_by
from app.jobs.models import Job, JobKind, JobStatus
from app.jobs.schemas import GenerationJobIn, JobsQuery
from app.observability.request_id import current_request_id
from app.pagination import paginate

logger = logging.getLogger(__name__)


def create_generation_job(
    session: Session, user: User, skill_id: uuid.UUID, data: GenerationJobIn, max_attempts: int
) -> Job:
    """Queue a job that drafts `count` items for a skill the caller may edit."""
    skill = get_skill(session, user, skill_id)
    require_editor(skill.course, user)
    job = Job(
        kind=JobKind.GENERATE_ITEMS,
        status=JobStatus.QUEUED,
        skill_id=skill.id,
        created_by=user.id,
        params={"count": data.count},
        attempts=0,
        max_attempts=max_attempts,
        request_id=current_request_id(),
    )
    session.add(job)
    session.flush()
    audit_record(
        session,
        "job.created",
        actor_id=user.id,
        target_type="job",
        target_id=str(job.id),
        details={"kind": job.kind.value, "skill_id": str(skill.id), "count": data.count},
    )
    job_id = job.id
    kind = job.kind.value
    session.commit()
    metrics.record_job_transition(kind, JobStatus.QUEUED)
    return dispatch(session, job_id)


def dispatch(session: Session, job_id: uuid.UUID) -> Job:
    """Hand a committed `queued` job to the broker; on failure mark it failed and answer 503.

    The caller has committed and must not touch the session until this returns: an eager run
    writes through its own session, and an open transaction here would hold it up (SQLite)
    or, in tests sharing one connection, roll its work back.
    """
    try:
        enqueue_generation(job_id)
    except (KombuOperationalError, OSError) as error:
        logger.exception("job.enqueue_failed job_id=%s", job_id)
        job = session.get(Job, job_id, with_for_update=True)
        failed_kind = None
        if job is not None and job.status is JobStatus.QUEUED:
            job.status = JobStatus.FAILED
            job.finished_at = utcnow()
            job.last_error = f"not queued: the broker is unavailable ({type(error).__name__})"
            failed_kind = job.kind.value
        session.commit()
        if failed_kind is not None:
            metrics.record_job_transition(failed_kind, JobStatus.FAILED)
        raise ProblemError(
            "The job queue is unavailable; the job was recorded as failed and can be retried.",
            status=503,
            slug="queue-unavailable",
            extra={"job_id": str(job_id)},
        ) from error
    job = session.get(Job, job_id, populate_existing=True)
    if job is None:  # pragma: no cover - job rows are never deleted
        raise NotFound("No such job.")
    return job


def get_job(session: Session, user: User, job_id: uuid.UUID) -> Job:
    """A job its creator, the skill's course owner or an admin may see; otherwise 404."""
    job = session.get(Job, job_id)
    if job is None or not _may_see(session, user, job):
        raise NotFound("No such job.")
    return job


def _may_see(session: Session, user: User, job: Job) -> bool:
    if user.role is Role.ADMIN or job.created_by == user.id:
        return True
    skill = session.get(Skill, job.skill_id) if job.skill_id else None
    return skill is not None and skill.course.owner_id == user.id


def list_jobs(session: Session, query: JobsQuery) -> tuple[Sequence[Job], str | None]:
    statement = select(Job)
    if query.status is not None:
        statement = statement.where(Job.status == query.status)
    if query.stuck:
        statement = statement.where(Job.status == JobStatus.RUNNING, Job.deadline_at < utcnow())
    return paginate(session, statement, Job.created_at, Job.id, query)


def stuck_jobs(session: Session, now: datetime | None = None) -> Sequence[Job]:
    """Running jobs past their deadline: their worker died or hangs."""
    now = now or utcnow()
    return session.scalars(
        select(Job)
        .where(Job.status == JobStatus.RUNNING, Job.deadline_at < now)
        .order_by(Job.deadline_at)
    ).all()


def is_stuck(job: Job, now: datetime | None = None) -> bool:
    return (
        job.status is JobStatus.RUNNING
        and job.deadline_at is not None
        and job.deadline_at < (now or utcnow())
    )


def requeue(
    session: Session,
    job_id: uuid.UUID,
    actor: User | None,
    reason: str,
    via: str,
    budget: int | None = None,
) -> Job:
    """Put a stuck, failed or dead job back in the queue with a fresh attempt budget.

    `attempts` keeps counting every run (it is never reset); the fresh budget raises
    `max_attempts` to `attempts + budget` (default: the settings' JOB_MAX_ATTEMPTS), so the job
    may run `budget` more times. Queued jobs and jobs running within their deadline are refused
    (409): the first would be queued twice, the second may still finish.
    """
    job = session.get(Job, job_id, with_for_update=True)
    if job is None:
        raise NotFound("No such job.")
    if not (job.status in (JobStatus.FAILED, JobStatus.DEAD) or is_stuck(job)):
        session.rollback()
        raise Conflict(
            f"A {job.status.value} job is not re-queued (only stuck, failed or dead ones).",
            slug="job-not-retryable",
        )
    if budget is None:
        settings: Settings = current_app.extensions["mastery.settings"]
        budget = settings.job_max_attempts
    previous, previous_error = job.status, job.last_error
    job.status = JobStatus.QUEUED
    job.max_attempts = job.attempts + budget
    job.deadline_at = None
    job.finished_at = None
    # An admin is named by display name (instructors read this); an operator at a shell is not
    # a platform user.
    who = f"{actor.display_name} (admin)" if actor is not None else "an operator"
    job.last_error = requeued_by(who, "stuck" if previous is JobStatus.RUNNING else previous.value)
    audit_record(
        session,
        "job.requeued",
        actor_id=actor.id if actor else None,
        target_type="job",
        target_id=str(job.id),
        details={
            "from": previous.value,
            "reason": reason,
            "via": via,
            "attempts": job.attempts,
            "max_attempts": job.max_attempts,
            "last_error": previous_error,
        },
    )
    job_id = job.id
    kind = job.kind.value
    session.commit()
    metrics.record_job_transition(kind, JobStatus.QUEUED)
    return dispatch(session, job_id)
