"""Operating jobs: finding stuck ones and re-queuing them, from the CLI and the admin API."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest
from apiflask import APIFlask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit.models import AuditRecord
from app.auth.models import Role, User
from app.content.models import Course, Item
from app.db import utcnow
from app.jobs.models import Job, JobKind, JobStatus

AsUser = Callable[[User], dict[str, str]]
MakeJob = Callable[..., Job]


@pytest.fixture
def make_job(
    db_session: Session, make_course: Callable[..., Course], make_user: Callable[..., User]
) -> MakeJob:
    """A generation job row in any state; `overdue` puts a running job past its deadline."""
    course = make_course()

    def make(status: JobStatus = JobStatus.RUNNING, overdue: bool = True, attempts: int = 1) -> Job:
        now = utcnow()
        job = Job(
            kind=JobKind.GENERATE_ITEMS,
            status=status,
            skill_id=course.skills[0].id,
            created_by=course.owner_id,
            params={"count": 2},
            attempts=attempts,
            max_attempts=3,
            started_at=now - timedelta(minutes=10),
            deadline_at=(
                now + (-timedelta(minutes=5) if overdue else timedelta(minutes=5))
                if status is JobStatus.RUNNING
                else None
            ),
            last_error="ProviderUnavailableError: gave up" if status.finished else None,
        )
        db_session.add(job)
        db_session.commit()
        return job

    return make


def items_of(db_session: Session, job: Job) -> list[Item]:
    return list(db_session.scalars(select(Item).where(Item.source_job_id == job.id)))


def test_jobs_stuck_lists_only_running_jobs_past_their_deadline(
    app: APIFlask, make_job: MakeJob
) -> None:
    stuck = make_job(JobStatus.RUNNING, overdue=True)
    running = make_job(JobStatus.RUNNING, overdue=False)
    dead = make_job(JobStatus.DEAD)

    result = app.test_cli_runner().invoke(args=["jobs", "stuck"])

    assert result.exit_code == 0, result.output
    assert str(stuck.id) in result.output
    assert str(running.id) not in result.output
    assert str(dead.id) not in result.output
    assert "generate_items" in result.output


def test_jobs_stuck_says_so_when_there_are_none(app: APIFlask, make_job: MakeJob) -> None:
    make_job(JobStatus.RUNNING, overdue=False)

    result = app.test_cli_runner().invoke(args=["jobs", "stuck"])

    assert (result.exit_code, result.output.strip()) == (0, "no stuck jobs")


def test_requeue_one_stuck_job_runs_it_to_completion(
    app: APIFlask, make_job: MakeJob, db_session: Session
) -> None:
    stuck = make_job(JobStatus.RUNNING, overdue=True, attempts=3)

    result = app.test_cli_runner().invoke(args=["jobs", "requeue", str(stuck.id)])

    assert result.exit_code == 0, result.output
    assert f"{stuck.id}: re-queued" in result.output
    db_session.refresh(stuck)
    assert stuck.status is JobStatus.SUCCEEDED  # eager: the re-queued job ran at once
    # Every run counts (3 lost, 1 now); the fresh budget is 3 more runs than it had.
    assert (stuck.attempts, stuck.max_attempts) == (4, 6)
    assert stuck.last_error == "re-queued by an operator (it was stuck)"
    assert len(items_of(db_session, stuck)) == 2
    audit = db_session.scalar(select(AuditRecord).where(AuditRecord.action == "job.requeued"))
    assert audit is not None
    assert (audit.details["via"], audit.details["attempts"], audit.details["max_attempts"]) == (
        "cli",
        3,
        6,
    )


def test_requeue_all_stuck_jobs(app: APIFlask, make_job: MakeJob, db_session: Session) -> None:
    first, second = make_job(), make_job()
    healthy = make_job(JobStatus.RUNNING, overdue=False)

    result = app.test_cli_runner().invoke(args=["jobs", "requeue", "--stuck"])

    assert result.exit_code == 0, result.output
    for job in (first, second):
        db_session.refresh(job)
        assert job.status is JobStatus.SUCCEEDED
    db_session.refresh(healthy)
    assert healthy.status is JobStatus.RUNNING
    empty = app.test_cli_runner().invoke(args=["jobs", "requeue", "--stuck"])
    assert "no stuck jobs" in empty.output


def test_requeue_refuses_jobs_that_are_not_stuck_failed_or_dead(
    app: APIFlask, make_job: MakeJob, db_session: Session
) -> None:
    healthy = make_job(JobStatus.RUNNING, overdue=False)

    result = app.test_cli_runner().invoke(args=["jobs", "requeue", str(healthy.id)])

    assert result.exit_code == 1
    assert "not re-queued" in result.output
    db_session.refresh(healthy)
    assert (healthy.status, healthy.attempts) == (JobStatus.RUNNING, 1)


@pytest.mark.parametrize("args", [[], ["--stuck", str(uuid.UUID(int=1))]])
def test_requeue_needs_exactly_one_of_an_id_or_stuck(app: APIFlask, args: list[str]) -> None:
    result = app.test_cli_runner().invoke(args=["jobs", "requeue", *args])

    assert result.exit_code == 2
    assert "give a JOB_ID or --stuck" in result.output


def test_admin_lists_jobs_by_status_and_stuck(
    client: FlaskClient, make_job: MakeJob, make_user: Callable[..., User], as_user: AsUser
) -> None:
    stuck, dead = make_job(), make_job(JobStatus.DEAD)
    make_job(JobStatus.RUNNING, overdue=False)
    headers = as_user(make_user(Role.ADMIN))

    everything = client.get("/admin/jobs", headers=headers).get_json()
    dead_only = client.get("/admin/jobs?status=dead", headers=headers).get_json()
    stuck_only = client.get("/admin/jobs?stuck=true", headers=headers).get_json()

    assert len(everything["items"]) == 3
    assert [j["id"] for j in dead_only["items"]] == [str(dead.id)]
    assert [j["id"] for j in stuck_only["items"]] == [str(stuck.id)]
    paged = client.get("/admin/jobs?limit=2", headers=headers).get_json()
    assert len(paged["items"]) == 2
    assert paged["next_cursor"]


def test_admin_retry_requeues_a_dead_job_and_audits_it(
    client: FlaskClient,
    make_job: MakeJob,
    make_user: Callable[..., User],
    as_user: AsUser,
    db_session: Session,
) -> None:
    dead = make_job(JobStatus.DEAD, attempts=3)
    admin = make_user(Role.ADMIN)

    response = client.post(f"/admin/jobs/{dead.id}/retry", headers=as_user(admin))

    assert response.status_code == 202, response.get_json()
    job = response.get_json()
    assert (job["status"], job["attempts"], job["max_attempts"]) == ("succeeded", 4, 6)
    assert job["last_error"] == f"re-queued by {admin.display_name} (admin) (it was dead)"
    assert len(items_of(db_session, dead)) == 2
    audit = db_session.scalar(select(AuditRecord).where(AuditRecord.action == "job.requeued"))
    assert audit is not None
    assert (audit.actor_id, audit.details["from"], audit.details["via"]) == (
        admin.id,
        "dead",
        "http",
    )
    assert audit.details["last_error"] == "ProviderUnavailableError: gave up"  # what it was


@pytest.mark.parametrize("status", [JobStatus.SUCCEEDED, JobStatus.QUEUED])
def test_admin_retry_of_a_healthy_job_is_409(
    client: FlaskClient,
    make_job: MakeJob,
    make_user: Callable[..., User],
    as_user: AsUser,
    status: JobStatus,
) -> None:
    job = make_job(status)

    response = client.post(f"/admin/jobs/{job.id}/retry", headers=as_user(make_user(Role.ADMIN)))

    assert response.status_code == 409
    assert response.get_json()["type"].endswith("job-not-retryable")


def test_admin_retry_of_an_unknown_job_is_404(
    client: FlaskClient, make_user: Callable[..., User], as_user: AsUser
) -> None:
    response = client.post(
        f"/admin/jobs/{uuid.uuid4()}/retry", headers=as_user(make_user(Role.ADMIN))
    )

    assert response.status_code == 404
