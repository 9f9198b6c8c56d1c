"""The Celery worker serves its own metrics: a job run in its prefork pool is counted there,
behind the metrics token once one is set, and never exposed without one.

The worker is a subprocess (`celery -A app.jobs.worker worker`, prefork like production) with
WORKER_METRICS_PORT and PROMETHEUS_MULTIPROC_DIR; jobs are queued through the web application
to the same Redis. The offline provider answers, so nothing leaves the machine.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from apiflask import APIFlask
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session

from app.auth.models import Role, User
from app.config import Settings
from app.content.models import Course
from app.jobs.models import Job, JobStatus
from app.observability import worker_metrics
from tests.conftest import PASSWORD, TEST_SECRET, bearer
from tools.processes import (
    base_env,
    celery_worker_command,
    free_port,
    launch,
    stop,
    wait_until,
)

pytestmark = [pytest.mark.commits, pytest.mark.redis, pytest.mark.xdist_group("worker")]

WAIT_SECONDS = 60.0
METRICS_TOKEN = "worker-metrics-token-for-tests-0123456789"

StartWorker = Callable[..., tuple[str, subprocess.Popen[bytes]]]


@pytest.fixture
def start_metrics_worker(
    settings: Settings, redis_url: str, job_queue: str, tmp_path: Path, db_connection: object
) -> Iterator[StartWorker]:
    """Start a worker serving its metrics (settings changed by keyword): (URL, process)."""
    started: list[subprocess.Popen[bytes]] = []

    def start(**settings_env: str) -> tuple[str, subprocess.Popen[bytes]]:
        multiproc_dir = tmp_path / f"prometheus-{len(started)}"
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
            **settings_env,
        )
        log = tmp_path / f"worker-{len(started)}.log"
        process = launch(celery_worker_command("metrics"), tmp_path, env, log)
        started.append(process)
        return f"http://127.0.0.1:{port}/metrics", process

    yield start
    for process in started:
        stop(process)  # a warm shutdown: the pool's processes exit with it


@pytest.fixture
def worker_metrics_url(start_metrics_worker: StartWorker) -> str:
    return start_metrics_worker()[0]


def jobs_total(url: str, status: str, token: str | None = None) -> float | None:
    """mastery_jobs_total{kind="generate_items", status} from the worker, None if unreachable."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        text = httpx.get(url, timeout=2, headers=headers).text
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
    wait_until(what, condition, WAIT_SECONDS, failure=AssertionError, interval=0.2)


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


def test_with_a_metrics_token_the_worker_answers_only_the_bearer_of_it(
    start_metrics_worker: StartWorker,
) -> None:
    url, _process = start_metrics_worker(METRICS_TOKEN=METRICS_TOKEN)

    def answers() -> bool:
        try:
            return httpx.get(url, timeout=2).status_code == 401
        except httpx.TransportError:
            return False

    wait_for(answers, "the worker to serve (and refuse an anonymous scrape)")
    refused = httpx.get(url, timeout=2, headers={"Authorization": "Bearer not-the-token"})
    served = httpx.get(url, timeout=2, headers={"Authorization": f"Bearer {METRICS_TOKEN}"})

    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"] == "Bearer"
    assert "mastery_" not in refused.text
    assert served.status_code == 200
    names = {family.name for family in text_string_to_metric_families(served.text)}
    assert "mastery_jobs_swept" in names  # the sweeper counts where it runs: here


def test_a_worker_refuses_to_expose_its_metrics_without_a_token(
    start_metrics_worker: StartWorker, tmp_path: Path
) -> None:
    exposed = "0.0.0.0"  # noqa: S104 - the exposed address under test
    _url, process = start_metrics_worker(WORKER_METRICS_ADDR=exposed)

    assert process.wait(timeout=WAIT_SECONDS) != 0
    log = (tmp_path / "worker-0.log").read_text(errors="replace")
    assert "WORKER_METRICS_ADDR=0.0.0.0" in log
    assert "METRICS_TOKEN" in log


def test_the_endpoint_serves_the_registry_behind_the_token_in_this_process() -> None:
    registry = CollectorRegistry()
    Counter("mastery_jobs_swept", "a sample", registry=registry).inc()
    port = free_port()
    server = worker_metrics.serve("127.0.0.1", port, registry, METRICS_TOKEN)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        anonymous = httpx.get(url, timeout=5)
        bearer_of_it = httpx.get(
            url, timeout=5, headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
        )
    finally:
        server.shutdown()
        server.server_close()

    assert anonymous.status_code == 401
    assert bearer_of_it.status_code == 200
    assert "mastery_jobs_swept_total 1.0" in bearer_of_it.text
