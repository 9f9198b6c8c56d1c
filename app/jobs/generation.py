"""The item-generation job, as plain functions the Celery task calls.

A run has three short transactions and no lock held while the model thinks:

1. `claim`: lock the job row; a finished job, or one another worker is running within its
   deadline, is left alone; otherwise it becomes `running` with `attempts + 1` and a deadline.
   A job still `running` past its deadline lost its worker: this delivery takes it over, or
   ends it `dead` when the lost run was its last attempt (so a job that kills its worker every
   time stops after `max_attempts` runs instead of looping).
2. the skill's material from storage and the provider call, outside any transaction;
3. `succeed` or `fail`: lock the row again and write only if this run still owns it (same
   status and attempt number). The items and `succeeded` commit together, so a redelivered
   or re-queued job creates its items exactly once.

`attempts` counts every run that started (re-queues never reset it); `last_error` holds a safe
summary (app/jobs/errors.py) and the log the detail.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.ai import AIProviderError, GeneratedItems, ItemDraft, Provider, SkillBrief
from app.ai import metrics as ai_metrics
from app.ai.errors import AIConfigurationError, ProviderRequestError
from app.ai.runtime import log_usage
from app.content.models import Item, ItemKind, ItemOrigin, ItemStatus, Skill
from app.content.schemas import ChoiceIn, ItemIn
from app.db import utcnow
from app.jobs import metrics
from app.jobs.errors import (
    MAX_ERROR,
    WORKER_LOST_NO_ATTEMPT_LEFT,
    WORKER_LOST_TAKEN_OVER,
    NoValidItemsError,
    PermanentJobError,
    summary,
)
from app.jobs.models import Job, JobStatus

logger = logging.getLogger(__name__)

OPERATION = "generate_items"  # the AI operation a generation job calls
BACKOFF_BASE_SECONDS = 10.0
BACKOFF_MAX_SECONDS = 600.0
# Errors that the same input will hit again: retrying them only burns attempts and money.
PERMANENT_ERRORS: tuple[type[Exception], ...] = (ProviderRequestError, AIConfigurationError)

MaterialLoader = Callable[[Session, uuid.UUID], str]


@dataclass(frozen=True)
class Claim:
    """This run's hold on a job: valid while the row is `running` with the same attempt."""

    job_id: uuid.UUID
    attempt: int
    skill: SkillBrief
    skill_id: uuid.UUID
    count: int


@dataclass(frozen=True)
class Outcome:
    """What the task does next: nothing, retry after `retry_in`, or check back at `defer_to`."""

    status: JobStatus | None
    retry_in: float | None = None
    defer_to: datetime | None = None


def claim(
    session: Session, job_id: uuid.UUID, timeout: timedelta, now: datetime | None = None
) -> Claim | Outcome:
    """Take the job for this run, or say why not (an `Outcome` then)."""
    now = now or utcnow()
    job = session.get(Job, job_id, with_for_update=True)
    if job is None:
        session.rollback()
        logger.warning("job.missing job_id=%s", job_id)
        return Outcome(status=None)
    if job.status.finished:
        session.rollback()
        logger.info("job.already_finished job_id=%s status=%s", job_id, job.status)
        return Outcome(status=job.status)
    if job.status is JobStatus.RUNNING and job.deadline_at and job.deadline_at > now:
        deadline = job.deadline_at
        session.rollback()
        logger.info("job.running_elsewhere job_id=%s deadline=%s", job_id, deadline.isoformat())
        return Outcome(status=JobStatus.RUNNING, defer_to=deadline)
    kind = job.kind.value
    if job.status is JobStatus.RUNNING:
        # Its run vanished (worker killed or hung past the deadline): this delivery takes over,
        # unless that run was the last one the budget allows.
        logger.warning(
            "job.worker_lost job_id=%s attempt=%d/%d (running past its deadline)",
            job_id,
            job.attempts,
            job.max_attempts,
        )
        if job.attempts >= job.max_attempts:
            _finish(job, JobStatus.DEAD, WORKER_LOST_NO_ATTEMPT_LEFT, now)
            session.commit()
            metrics.record_job_transition(kind, JobStatus.DEAD)
            logger.error("job.dead job_id=%s: no attempt left after a lost worker", job_id)
            return Outcome(status=JobStatus.DEAD)
        job.last_error = WORKER_LOST_TAKEN_OVER
    skill = session.get(Skill, job.skill_id) if job.skill_id else None
    job.attempts += 1
    job.started_at = now
    job.finished_at = None
    if skill is None:
        _finish(job, JobStatus.FAILED, "the skill no longer exists", now)
        session.commit()
        metrics.record_job_transition(kind, JobStatus.FAILED)
        return Outcome(status=JobStatus.FAILED)
    job.status = JobStatus.RUNNING
    job.deadline_at = now + timeout
    count = int(job.params.get("count", 5))
    brief = SkillBrief(skill_id=str(skill.id), name=skill.name, description=skill.description)
    result = Claim(job_id=job.id, attempt=job.attempts, skill=brief, skill_id=skill.id, count=count)
    session.commit()
    metrics.record_job_transition(kind, JobStatus.RUNNING)
    logger.info("job.running job_id=%s attempt=%d", job_id, result.attempt)
    return result


def _owned(session: Session, held: Claim) -> Job | None:
    """The job row, locked, if this run still owns it."""
    job = session.get(Job, held.job_id, with_for_update=True)
    if job is None or job.status is not JobStatus.RUNNING or job.attempts != held.attempt:
        logger.warning(
            "job.lost_claim job_id=%s attempt=%d: another run took over; discarding this result",
            held.job_id,
            held.attempt,
        )
        session.rollback()
        return None
    return job


def _finish(job: Job, status: JobStatus, error: str | None, now: datetime) -> None:
    job.status = status
    job.deadline_at = None
    job.finished_at = now if status.finished else None
    if error is not None:
        job.last_error = error[:MAX_ERROR]


def to_item_in(draft: ItemDraft) -> ItemIn:
    """A model's draft as an authoring request; ValidationError when it is not a valid item."""
    if draft.kind == "mcq":
        choices = [
            ChoiceIn(text=text, correct=index == draft.answer_index)
            for index, text in enumerate(draft.choices)
        ]
        return ItemIn(kind=ItemKind.MCQ, prompt=draft.stem, choices=choices)
    return ItemIn(
        kind=ItemKind.SHORT_ANSWER,
        prompt=draft.stem,
        reference_answer=draft.reference_answer,
        rubric="\n".join(draft.rubric) or None,
    )


def succeed(session: Session, held: Claim, generated: GeneratedItems) -> Outcome:
    """Store the valid drafts as `draft` items with `origin: ai`, and the job as succeeded."""
    job = _owned(session, held)
    if job is None:
        return Outcome(status=None)
    existing = session.scalars(select(Item.id).where(Item.source_job_id == job.id)).all()
    if existing:  # cannot happen while the claim holds; kept as the last line of defence
        _finish(job, JobStatus.SUCCEEDED, None, utcnow())
        kind = job.kind.value
        session.commit()
        metrics.record_job_transition(kind, JobStatus.SUCCEEDED)
        return Outcome(status=JobStatus.SUCCEEDED)
    items, rejected = [], []
    for index, draft in enumerate(generated.items[: held.count]):
        try:
            data = to_item_in(draft)
        except ValidationError as error:
            rejected.append({"index": index, "errors": error.error_count()})
            continue
        items.append(
            Item(
                skill_id=held.skill_id,
                kind=data.kind,
                status=ItemStatus.DRAFT,
                origin=ItemOrigin.AI,
                prompt=data.prompt.strip(),
                choices=[c.model_dump() for c in data.choices] if data.choices else None,
                reference_answer=data.reference_answer,
                rubric=data.rubric,
                source_job_id=job.id,
            )
        )
    if not items:
        session.rollback()
        return fail(session, held, NoValidItemsError("the model returned no valid item"))
    session.add_all(items)
    session.flush()
    job.result = {
        "item_ids": [str(item.id) for item in items],
        "rejected": rejected,
        "provider": generated.provider,
        "template": f"{generated.template}.v{generated.template_version}",
        "usage": generated.usage.model_dump() if generated.usage else None,
    }
    _finish(job, JobStatus.SUCCEEDED, None, utcnow())
    kind = job.kind.value
    session.commit()
    metrics.record_job_transition(kind, JobStatus.SUCCEEDED)
    logger.info("job.succeeded job_id=%s items=%d rejected=%d", job.id, len(items), len(rejected))
    return Outcome(status=JobStatus.SUCCEEDED)


def backoff(attempt: int, rng: random.Random) -> float:
    """Seconds before retry `attempt` (1-based): exponential with up to 50 % jitter."""
    delay = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2.0 ** (attempt - 1))
    return delay * (1 + 0.5 * rng.random())


def fail(
    session: Session, held: Claim, error: Exception, rng: random.Random | None = None
) -> Outcome:
    """Record a failed run: back to `queued` for a retry, or `failed` / `dead` for good."""
    job = _owned(session, held)
    if job is None:
        return Outcome(status=None)
    # The row gets a safe summary; the detail (which may quote the provider) goes to the log,
    # whose lines carry the job id and the request id.
    message = summary(error)
    detail = f"{type(error).__name__}: {error}"
    now = utcnow()
    kind = job.kind.value
    if isinstance(error, (*PERMANENT_ERRORS, PermanentJobError)):
        _finish(job, JobStatus.FAILED, message, now)
    elif job.attempts >= job.max_attempts:
        _finish(job, JobStatus.DEAD, message, now)
    else:
        _finish(job, JobStatus.QUEUED, message, now)
        session.commit()
        metrics.record_job_transition(kind, JobStatus.QUEUED)
        delay = backoff(job.attempts, rng or random.Random())  # noqa: S311 - jitter only
        logger.warning(
            "job.retrying job_id=%s attempt=%d in=%.0fs error=%s",
            held.job_id,
            held.attempt,
            delay,
            detail,
        )
        return Outcome(status=JobStatus.QUEUED, retry_in=delay)
    status = job.status
    session.commit()
    metrics.record_job_transition(kind, status)
    logger.error("job.%s job_id=%s attempt=%d error=%s", status, held.job_id, held.attempt, detail)
    return Outcome(status=status)


def run(
    session: Session,
    job_id: uuid.UUID,
    provider: Provider,
    timeout: timedelta,
    load_material: MaterialLoader,
) -> Outcome:
    """One delivery of a generation job, start to finish."""
    held = claim(session, job_id, timeout)
    if isinstance(held, Outcome):
        return held
    try:
        # Read after the claim committed: no row stays locked while storage answers.
        material = load_material(session, held.skill_id)
        session.rollback()
        brief = held.skill.model_copy(update={"material": material})
        started = time.perf_counter()
        try:
            generated = provider.generate_items(brief, held.count)
        except AIProviderError as error:
            seconds = time.perf_counter() - started
            ai_metrics.record_ai_call(OPERATION, provider.name, seconds, error=error)
            raise
        seconds = time.perf_counter() - started
        ai_metrics.record_ai_call(OPERATION, provider.name, seconds, usage=generated.usage)
        log_usage(generated, job_id=str(held.job_id))
    except AIProviderError as error:
        return fail(session, held, error)
    except Exception as error:  # recorded on the row; the task retries it
        logger.exception("job.crashed job_id=%s", job_id)
        session.rollback()
        return fail(session, held, error)
    return succeed(session, held, generated)
