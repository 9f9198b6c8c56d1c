"""The Celery worker serves its own metrics: a job run in its prefork pool is counted there.

The worker is a subprocess (`celery -A app.jobs.worker worker`, prefork like production) with
WORKER_METRICS_PORT and PROMETHEUS_MULTIPROC_DIR; jobs are queued through the web application
to the same Redis. The offline provider answers, so nothing leaves the machine.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from apiflask import APIFlask
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session

from app.auth.models import Role, User
from app.config import Settings
from app.content.models import Course
from app.jobs.models import Job, JobStatus
from tests.conftest import PASSWORD, TEST_SECRET, bearer
from tests.processes import base_env, celery_worker_command, free_port, launch, stop

pytestmark = [pytest.mark.commits, pytest.mark.redis, pytest.mark.xdist_group("worker")]

WAIT_SECONDS = 60.0


@pytest.fixture
def worker_metrics_url(
    settings: Settings, redis_url: str, job_queue: str, tmp_path: Path, db_connection: object
) -> Iterator[str]:
    multiproc_dir = tmp_path / "prometheus"
    multiproc_dir.mkdir()
    port = free_port()
    env = base_env(
        tmp_path,
        SECRET_KEY=TEST_SECRET,
        DATABASE_URL=settings.database_url,
        REDIS_URL=redis_url,
        CELERY_BROKER_URL=redis_url,
        JOB_QUEUE=job_queue,
        WORKER_METRICS_PORT=str(port),
        PROMETHEUS_MULTIPROC_DIR=str(multiproc_dir),
    )
    process = launch(celery_worker_command("metrics"), tmp_path, env, tmp_path / "worker.log")
    try:
        yield f"http://127.0.0.1:{port}/metrics"
    finally:
        stop(process)  # a warm shutdown: the pool's processes exit with it


def jobs_total(url: str, status: str) -> float | None:
    """mastery_jobs_total{kind="generate_items", status} from the worker, None if unreachable."""
    try:
        text = httpx.get(url, timeout=2).text
    except httpx.TransportError:
        return None
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "mastery_jobs_total"
        and sample.labels == {"kind": "generate_items", "status": status}
    )


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)  # polling another process; nothing to wait on
    raise AssertionError(f"timed out waiting for {what}")


def test_a_job_run_by_the_worker_is_counted_on_the_worker_metrics_endpoint(
    web: APIFlask,
    worker_metrics_url: str,
    make_user: Callable[..., User],
    make_course: Callable[..., Course],
    db_session: Session,
) -> None:
    owner = make_user(Role.INSTRUCTOR)
    course = make_course(owner)
    client = web.test_client()
    tokens = client.post(
        "/auth/login", json={"email": owner.email, "password": PASSWORD}
    ).get_json()
    wait_for(lambda: jobs_total(worker_metrics_url, "succeeded") == 0, "the worker to serve")

    response = client.post(
        f"/skills/{course.skills[0].id}/generation-jobs",
        json={"count": 2},
        headers=bearer(tokens["access_token"]),
    )
    assert response.status_code == 202, response.get_json()
    job_id = uuid.UUID(response.get_json()["id"])

    def succeeded() -> bool:
        db_session.expire_all()
        job = db_session.get(Job, job_id)
        return job is not None and job.status is JobStatus.SUCCEEDED

    wait_for(succeeded, "the worker to finish the job")
    # The pool process counted both transitions; the main process serves them. It counts right
    # after its commit, so the row can be visible a moment before the count.
    wait_for(lambda: jobs_total(worker_metrics_url, "succeeded") == 1, "the success counted")
    assert jobs_total(worker_metrics_url, "running") == 1
    assert jobs_total(worker_metrics_url, "succeeded") == 1
