"""The sweeper on real Postgres: running jobs past their deadline go back to the queue (or end
`dead`), audited and counted, without blocking on rows another worker holds.

The sweeper's pass is a plain function (app/jobs/sweeper.py); here it publishes into a list, or,
through `flask jobs sweep`, runs the job eagerly. tests/integration/test_worker.py proves the
whole recovery with real workers killed mid-task.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import timedelta
from types import SimpleNamespace

import pytest
from apiflask import APIFlask
from celery import Celery
from kombu.asynchronous.timer import Timer
from kombu.exceptions import OperationalError as KombuOperationalError
from prometheus_client import REGISTRY
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from app.ai.offline import OfflineProvider
from app.audit.models import AuditRecord
from app.config import Settings
from app.content.models import Course, Item
from app.db import utcnow
from app.jobs import generation, sweeper
from app.jobs.celery_app import get_celery
from app.jobs.errors import WORKER_LOST_NO_ATTEMPT_LEFT, WORKER_LOST_REQUEUED
from app.jobs.models import Job, JobKind, JobStatus
from tests.conftest import MakeApp

TIMEOUT = timedelta(minutes=5)
MakeJob = Callable[..., Job]


@pytest.fixture
def make_job(db_session: Session, make_course: Callable[..., Course]) -> MakeJob:
    """A generation job row; `overdue` is how far a running job is past its deadline."""
    course = make_course()

    def make(
        status: JobStatus = JobStatus.RUNNING,
        overdue: timedelta = timedelta(minutes=1),
        attempts: int = 1,
        max_attempts: int = 3,
    ) -> Job:
        now = utcnow()
        job = Job(
            kind=JobKind.GENERATE_ITEMS,
            status=status,
            skill_id=course.skills[0].id,
            created_by=course.owner_id,
            params={"count": 2},
            attempts=attempts,
            max_attempts=max_attempts,
            request_id=uuid.uuid4().hex,
            started_at=now - TIMEOUT - overdue,
            deadline_at=now - overdue if status is JobStatus.RUNNING else None,
        )
        db_session.add(job)
        db_session.commit()
        return job

    return make


class Published(list[tuple[uuid.UUID, str | None]]):
    """A broker stand-in: what the pass published, in order."""

    def __call__(self, job_id: uuid.UUID, request_id: str | None) -> None:
        self.append((job_id, request_id))


def swept_total(outcome: str) -> float:
    labels = {"kind": "generate_items", "outcome": outcome}
    return REGISTRY.get_sample_value("mastery_jobs_swept_total", labels) or 0.0


def audits(db_session: Session, job: Job) -> list[AuditRecord]:
    return list(
        db_session.scalars(
            select(AuditRecord)
            .where(AuditRecord.target_id == str(job.id))
            .order_by(AuditRecord.occurred_at)
        )
    )


def items_of(db_session: Session, job: Job) -> list[Item]:
    return list(db_session.scalars(select(Item).where(Item.source_job_id == job.id)))


def test_a_running_job_past_its_deadline_is_requeued_published_and_audited(
    app: APIFlask, db_session: Session, make_job: MakeJob
) -> None:
    stuck = make_job(attempts=1)
    before = swept_total("requeued")
    published = Published()

    swept = sweeper.sweep(db_session, published)

    assert [(s.job_id, s.outcome, s.attempts, s.max_attempts) for s in swept] == [
        (stuck.id, "requeued", 1, 3)
    ]
    assert published == [(stuck.id, stuck.request_id)]  # the run keeps the original request id
    db_session.refresh(stuck)
    assert (stuck.status, stuck.attempts, stuck.deadline_at) == (JobStatus.QUEUED, 1, None)
    assert stuck.last_error == WORKER_LOST_REQUEUED
    (audit,) = audits(db_session, stuck)
    assert (audit.action, audit.actor_id, audit.target_type) == ("job.requeued", None, "job")
    assert audit.details["via"] == "sweeper"
    assert audit.details["reason"] == "worker lost"
    assert audit.details["overdue_seconds"] >= 60
    assert swept_total("requeued") == before + 1


def test_a_lost_run_that_was_the_last_attempt_ends_dead_and_is_not_published(
    app: APIFlask, db_session: Session, make_job: MakeJob
) -> None:
    spent = make_job(attempts=3, max_attempts=3)
    before = swept_total("dead")
    published = Published()

    (swept,) = sweeper.sweep(db_session, published)

    assert (swept.outcome, swept.status) == ("dead", JobStatus.DEAD)
    assert published == []
    db_session.refresh(spent)
    assert (spent.status, spent.attempts) == (JobStatus.DEAD, 3)
    assert spent.last_error == WORKER_LOST_NO_ATTEMPT_LEFT
    assert spent.finished_at is not None
    assert [audit.action for audit in audits(db_session, spent)] == ["job.dead"]
    assert swept_total("dead") == before + 1


def test_jobs_within_their_deadline_or_its_grace_and_other_statuses_are_left_alone(
    app: APIFlask, db_session: Session, make_job: MakeJob
) -> None:
    alive = make_job(overdue=-timedelta(minutes=4))  # still within its deadline
    just_late = make_job(overdue=sweeper.SWEEP_GRACE / 2)  # its own run may still record
    others = [make_job(status) for status in JobStatus if status is not JobStatus.RUNNING]
    published = Published()

    assert sweeper.sweep(db_session, published) == []

    assert published == []
    for job in (alive, just_late, *others):
        before = job.status
        db_session.refresh(job)
        assert job.status is before
        assert audits(db_session, job) == []


def test_a_broker_that_refuses_the_message_rolls_the_whole_pass_back(
    app: APIFlask, db_session: Session, make_job: MakeJob
) -> None:
    first, second = make_job(), make_job(overdue=timedelta(minutes=2))
    sent: list[uuid.UUID] = []

    def flaky(job_id: uuid.UUID, _request_id: str | None) -> None:
        if sent:
            raise KombuOperationalError("connection refused")
        sent.append(job_id)

    assert sweeper.sweep(db_session, flaky) == []

    for job in (first, second):  # still stuck: the next pass tries again
        db_session.refresh(job)
        assert job.status is JobStatus.RUNNING
        assert job.last_error is None
        assert audits(db_session, job) == []
    published = Published()
    assert len(sweeper.sweep(db_session, published)) == 2
    assert {job_id for job_id, _ in published} == {first.id, second.id}


def test_a_requeued_job_counts_its_next_run_and_a_late_original_result_is_discarded(
    app: APIFlask, db_session: Session, make_job: MakeJob
) -> None:
    job = make_job(status=JobStatus.QUEUED, attempts=0)
    original = generation.claim(db_session, job.id, TIMEOUT)
    assert isinstance(original, generation.Claim)
    past_deadline = utcnow() + TIMEOUT + sweeper.SWEEP_GRACE + timedelta(seconds=1)

    sweeper.sweep(db_session, Published(), now=past_deadline)
    rerun = generation.claim(db_session, job.id, TIMEOUT, now=past_deadline)
    assert isinstance(rerun, generation.Claim)
    drafts = OfflineProvider().generate_items(rerun.skill, rerun.count)

    assert generation.succeed(db_session, rerun, drafts).status is JobStatus.SUCCEEDED
    assert generation.succeed(db_session, original, drafts).status is None  # discarded
    db_session.refresh(job)
    assert (job.status, job.attempts) == (JobStatus.SUCCEEDED, 2)
    assert job.last_error == WORKER_LOST_REQUEUED  # the history stays after the success
    assert len(items_of(db_session, job)) == 2


def test_a_job_that_keeps_losing_its_worker_ends_dead_after_its_attempts(
    app: APIFlask, db_session: Session, make_job: MakeJob
) -> None:
    job = make_job(status=JobStatus.QUEUED, attempts=0, max_attempts=3)
    now = utcnow()
    runs = 0
    for _ in range(10):  # a loop would show as more runs than max_attempts
        if not isinstance(generation.claim(db_session, job.id, TIMEOUT, now=now), generation.Claim):
            break
        runs += 1  # ...and its worker dies at once: nothing is recorded
        now += TIMEOUT + sweeper.SWEEP_GRACE + timedelta(seconds=1)
        sweeper.sweep(db_session, Published(), now=now)
    db_session.refresh(job)

    assert runs == 3
    assert (job.status, job.attempts) == (JobStatus.DEAD, 3)
    assert [a.action for a in audits(db_session, job)] == [
        "job.requeued",
        "job.requeued",
        "job.dead",
    ]


def test_a_redelivery_that_finds_a_lost_last_attempt_ends_the_job_dead(
    app: APIFlask, db_session: Session, make_job: MakeJob
) -> None:
    spent = make_job(attempts=3, max_attempts=3)

    outcome = generation.claim(db_session, spent.id, TIMEOUT)

    assert isinstance(outcome, generation.Outcome)
    assert outcome.status is JobStatus.DEAD
    db_session.refresh(spent)
    assert (spent.status, spent.attempts, spent.last_error) == (
        JobStatus.DEAD,
        3,
        WORKER_LOST_NO_ATTEMPT_LEFT,
    )


def test_flask_jobs_sweep_requeues_and_the_eager_run_completes_the_job(
    app: APIFlask, db_session: Session, make_job: MakeJob
) -> None:
    stuck, spent = make_job(attempts=1), make_job(attempts=3, max_attempts=3)

    result = app.test_cli_runner().invoke(args=["jobs", "sweep"])

    assert result.exit_code == 0, result.output
    assert f"{stuck.id}: requeued by the sweeper (attempts 1 of 3)" in result.output
    assert f"{spent.id}: dead by the sweeper (attempts 3 of 3)" in result.output
    db_session.refresh(stuck)
    assert (stuck.status, stuck.attempts) == (JobStatus.SUCCEEDED, 2)  # eager: it ran at once
    assert len(items_of(db_session, stuck)) == 2
    again = app.test_cli_runner().invoke(args=["jobs", "sweep"])
    assert again.output.strip() == "nothing to sweep"


@pytest.fixture
def committed_jobs(
    engine: Engine, make_course: Callable[..., Course]
) -> Callable[[int], list[uuid.UUID]]:
    """Stuck jobs committed for real, so that two connections can compete for them."""

    def make(count: int) -> list[uuid.UUID]:
        course = make_course()
        with Session(engine) as session:
            jobs = [
                Job(
                    kind=JobKind.GENERATE_ITEMS,
                    status=JobStatus.RUNNING,
                    skill_id=course.skills[0].id,
                    created_by=course.owner_id,
                    params={"count": 1},
                    attempts=1,
                    max_attempts=3,
                    deadline_at=utcnow() - timedelta(minutes=1, seconds=index),
                )
                for index in range(count)
            ]
            session.add_all(jobs)
            session.commit()
            return [job.id for job in jobs]

    return make


@pytest.mark.commits
def test_workers_sweeping_at_once_skip_the_rows_another_holds_instead_of_waiting(
    engine: Engine, committed_jobs: Callable[[int], list[uuid.UUID]]
) -> None:
    held_id, free_id = committed_jobs(2)
    with Session(engine) as other_worker, Session(engine) as this_worker:
        # Another worker's pass (or a run's claim) holds one row...
        other_worker.execute(select(Job).where(Job.id == held_id).with_for_update()).scalar_one()
        this_worker.connection().exec_driver_sql("SET LOCAL lock_timeout = '2s'")

        published = Published()
        swept = sweeper.sweep(this_worker, published)

        # ...this one takes the other row at once (a wait would fail on the lock timeout).
        assert [s.job_id for s in swept] == [free_id]
        assert published == [(free_id, None)]
        other_worker.rollback()

        assert [s.job_id for s in sweeper.sweep(this_worker, Published())] == [held_id]


# --- the sweeper inside a worker ------------------------------------------------------------------


def test_a_pass_against_an_unreachable_database_logs_and_sweeps_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = sweeper.sweep_engine("postgresql+psycopg://postgres@127.0.0.1:9/nowhere")
    try:
        with Session(engine) as session, caplog.at_level(logging.WARNING, "app.jobs.sweeper"):
            assert sweeper.sweep(session, Published()) == []
    finally:
        engine.dispose()

    assert "jobs.sweep_failed: database unavailable" in caplog.text
    assert "127.0.0.1:9" not in caplog.text  # the class only: no host, no SQL


def test_the_sweepers_engine_keeps_no_connection_and_gives_up_quickly() -> None:
    postgres = sweeper.sweep_engine("postgresql+psycopg://postgres@127.0.0.1:5432/mastery")
    sqlite = sweeper.sweep_engine("sqlite://")

    assert isinstance(postgres.pool, NullPool)
    assert isinstance(sqlite.pool, NullPool)
    assert postgres.dialect.name == "postgresql"


@pytest.mark.commits
def test_a_workers_sweeper_publishes_to_the_broker_and_survives_a_crash(
    web: APIFlask,
    settings: Settings,
    committed_jobs: Callable[[int], list[uuid.UUID]],
    db_session: Session,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (stuck_id,) = committed_jobs(1)
    worker_sweeper = sweeper.Sweeper(get_celery(web), settings)
    try:
        swept = worker_sweeper.run_once()  # publishes to the test's own queue on Redis

        assert [(s.job_id, s.outcome) for s in swept] == [(stuck_id, "requeued")]
        job = db_session.get(Job, stuck_id)
        assert job is not None
        assert job.status is JobStatus.QUEUED

        def crash(*_args: object, **_kwargs: object) -> list[sweeper.Swept]:
            raise RuntimeError("a bug in a pass")

        monkeypatch.setattr(sweeper, "sweep", crash)
        with caplog.at_level(logging.ERROR, "app.jobs.sweeper"):
            assert worker_sweeper.run_once() == []  # the worker's event loop carries on
        assert "jobs.sweep_crashed" in caplog.text
    finally:
        worker_sweeper.close()


def test_the_sweeper_step_runs_on_the_workers_timer_and_stops_with_it(settings: Settings) -> None:
    celery = Celery("sweeper-step", set_as_current=False)
    on = settings.model_copy(update={"job_timeout_seconds": 10, "job_sweep_interval_seconds": None})
    off = settings.model_copy(update={"job_sweep_interval_seconds": 0})

    sweeper.install(celery, off)
    assert not any(step.__name__ == "JobSweeper" for step in celery.steps["worker"])
    sweeper.install(celery, on)
    (step_class,) = [step for step in celery.steps["worker"] if step.__name__ == "JobSweeper"]

    worker = SimpleNamespace(timer=Timer())
    step = step_class(worker)
    step.start(worker)
    try:
        etas = sorted(scheduled.eta for scheduled in worker.timer.queue)
        assert len(etas) == 2  # a first pass a second after start, then every 2 s
        assert etas[1] - etas[0] == pytest.approx(1.0, abs=0.1)
    finally:
        step.stop(worker)
    assert all(scheduled.entry.canceled for scheduled in worker.timer.queue)
    assert step.sweeper is None


def test_flask_jobs_sweep_with_the_broker_down_changes_nothing_and_says_so(
    make_app: MakeApp, db_session: Session, make_job: MakeJob
) -> None:
    stuck = make_job()
    broken = make_app(jobs_eager=False, celery_broker_url="redis://127.0.0.1:9/0")

    result = broken.test_cli_runner().invoke(args=["jobs", "sweep"])

    assert result.exit_code == 1
    assert "nothing swept: the broker or the database is unavailable" in result.output
    db_session.refresh(stuck)
    assert stuck.status is JobStatus.RUNNING
    assert audits(db_session, stuck) == []
