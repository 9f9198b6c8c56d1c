"""A real Celery worker on real Redis and Postgres runs generation jobs, and recovers them.

The worker is a subprocess (`celery -A app.jobs.worker worker`, prefork like production) in a
process group of its own, and the AI provider is a small OpenAI-compatible HTTP server in this
process, so the real client runs in the worker and the test decides when the model "answers".
Killing a worker SIGKILLs its whole group, as the OOM killer or a lost machine would: nothing
of it records or acknowledges anything. Data is committed for real (`commits`): the worker has
its own connections.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis
from apiflask import APIFlask
from kombu import Connection
from kombu.transport.redis import Channel as RedisChannel
from kombu.transport.redis import QoS as RedisQoS
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.audit.models import AuditRecord
from app.auth.models import Role, User
from app.config import Settings
from app.content.models import Course, Item
from app.jobs.errors import WORKER_LOST_NO_ATTEMPT_LEFT, WORKER_LOST_REQUEUED
from app.jobs.models import Job, JobStatus
from tests.ai_fakes import completion_body, drafts
from tests.conftest import TEST_SECRET, bearer
from tests.sentry_fakes import serve_envelopes
from tools.processes import base_env, celery_worker_command, wait_until

pytestmark = [pytest.mark.commits, pytest.mark.redis, pytest.mark.xdist_group("worker")]

# A job's time limit and deadline. The kill tests wait for it to pass, so it is short, but a
# first task in a fresh pool process (connect, build the client, call, insert) under coverage
# on a busy machine must fit well inside it, or an honest run retries and counts two attempts.
JOB_TIMEOUT_SECONDS = 10
WAIT_SECONDS = 60


# --- a fake OpenAI-compatible endpoint ------------------------------------------------------------


@dataclass
class FakeLLM:
    """Answers chat completions with valid drafts, once `gate` is open."""

    gate: threading.Event = field(default_factory=threading.Event)
    received: threading.Event = field(default_factory=threading.Event)
    calls: int = 0
    url: str = ""
    status: int = 200  # 400: the provider refuses (a permanent error: the job fails at once)

    def answer(self) -> dict[str, Any]:
        self.calls += 1
        self.received.set()
        self.gate.wait(WAIT_SECONDS)
        return completion_body(drafts(5))


@pytest.fixture
def fake_llm() -> Iterator[FakeLLM]:
    llm = FakeLLM()
    llm.gate.set()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # the http.server hook name
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = json.dumps(llm.answer()).encode()
            try:
                self.send_response(llm.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:  # the worker that asked was killed
                pass

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    llm.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield llm
    llm.gate.set()
    server.shutdown()
    server.server_close()


# --- the worker process ---------------------------------------------------------------------------


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    log: Path

    def children(self) -> list[int]:
        """Pids of the prefork pool's processes."""
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[1]) == self.process.pid:
                pids.append(int(stat.parent.name))
        return pids

    def kill(self) -> None:
        """SIGKILL the worker's process group, pool included: nothing gets to clean up."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # its own session: pgid == pid
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.kill()

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]


@pytest.fixture
def worker_env(
    settings: Settings, redis_url: str, fake_llm: FakeLLM, tmp_path: Path, job_queue: str
) -> dict[str, str]:
    return base_env(
        tmp_path,
        JOB_QUEUE=job_queue,
        SECRET_KEY=TEST_SECRET,
        DATABASE_URL=settings.database_url,
        REDIS_URL=redis_url,
        CELERY_BROKER_URL=redis_url,
        AI_PROVIDER="openai",
        AI_BASE_URL=fake_llm.url,
        AI_MODEL="fake-model",
        AI_API_KEY="sk-worker-test",
        JOB_TIMEOUT_SECONDS=str(JOB_TIMEOUT_SECONDS),
        # Above the job's deadline: a task deferred to the deadline (an ETA message the worker
        # holds unacknowledged) must not be restored to the queue before it runs.
        JOB_VISIBILITY_TIMEOUT_SECONDS=str(3 * JOB_TIMEOUT_SECONDS),
    )


@pytest.fixture
def start_worker(
    worker_env: dict[str, str], tmp_path: Path, db_connection: Any
) -> Iterator[Callable[[], Worker]]:
    """Start workers; all are killed before the database is cleaned (db_connection).

    Redis is left alone: the test's queue is its own (`job_queue`), and emptying the shared
    logical database would drop another run's messages."""
    workers: list[Worker] = []

    def start() -> Worker:
        log = tmp_path / f"worker-{len(workers)}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(  # a fixed command line
                celery_worker_command(f"test{len(workers)}"),
                cwd=tmp_path,
                env=worker_env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a process group of its own, as under a supervisor
            )
        worker = Worker(process, log)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture
def owner_and_course(
    make_user: Callable[..., User], make_course: Callable[..., Course]
) -> tuple[User, Course]:
    owner = make_user(Role.INSTRUCTOR)
    return owner, make_course(owner)


def create_job(web: APIFlask, owner: User, course: Course, count: int = 3) -> uuid.UUID:
    client = web.test_client()
    tokens = client.post(
        "/auth/login", json={"email": owner.email, "password": "correct horse battery staple"}
    ).get_json()
    response = client.post(
        f"/skills/{course.skills[0].id}/generation-jobs",
        json={"count": count},
        headers=bearer(tokens["access_token"]),
    )
    assert response.status_code == 202, response.get_json()
    assert response.get_json()["status"] == "queued"
    return uuid.UUID(response.get_json()["id"])


def wait_for(
    condition: Callable[[], bool],
    what: str,
    workers: list[Worker],
    timeout: float = WAIT_SECONDS,
) -> None:
    try:
        wait_until(what, condition, timeout, interval=0.2)
    except TimeoutError as timed_out:
        logs = "\n\n".join(worker.output() for worker in workers)
        raise AssertionError(f"{timed_out}; worker output:\n{logs}") from None


def unacknowledged(client: redis.Redis, queue: str) -> list[str]:
    """Delivery tags of the messages of `queue` delivered and not acknowledged (kombu's
    `unacked` hash: [message, exchange, routing key] by delivery tag)."""
    return [
        tag.decode() if isinstance(tag, bytes) else tag
        for tag, raw in client.hgetall("unacked").items()
        if json.loads(raw)[2] == queue
    ]


def broker_holds_nothing(client: redis.Redis, queue: str) -> bool:
    """True when Redis holds no message of `queue`: none waiting in its lists (one per priority
    step, all named after the queue) and none delivered but unacknowledged. With late
    acknowledgement a delivery stays unacknowledged until its run ended, so then every delivery
    so far has run to its end."""
    waiting = sum(int(client.llen(key)) for key in client.scan_iter(match=f"{queue}*"))
    return waiting == 0 and not unacknowledged(client, queue)


def job_row(db_session: Session, job_id: uuid.UUID) -> Job:
    db_session.expire_all()
    job = db_session.get(Job, job_id)
    assert job is not None
    return job


def item_count(db_session: Session, job_id: uuid.UUID) -> int:
    return (
        db_session.scalar(
            select(func.count()).select_from(Item).where(Item.source_job_id == job_id)
        )
        or 0
    )


def finished(db_session: Session, job_id: uuid.UUID) -> Callable[[], bool]:
    return lambda: job_row(db_session, job_id).status.finished


def test_a_generation_job_runs_end_to_end_on_a_worker(
    web: APIFlask,
    start_worker: Callable[[], Worker],
    owner_and_course: tuple[User, Course],
    fake_llm: FakeLLM,
    db_session: Session,
) -> None:
    worker = start_worker()

    job_id = create_job(web, *owner_and_course, count=3)
    wait_for(finished(db_session, job_id), "the job to finish", [worker])

    job = job_row(db_session, job_id)
    assert (job.status, job.attempts, job.last_error) == (
        JobStatus.SUCCEEDED,
        1,
        None,
    ), worker.output()
    assert job.result is not None
    assert job.result["provider"] == "openai"
    assert item_count(db_session, job_id) == 3
    assert fake_llm.calls == 1
    assert_worker_logs_carry_the_request_id(worker, job)


def job_events(worker: Worker, job: Job) -> list[dict[str, Any]]:
    """The platform's JSON lines about `job` in the worker's log (Celery's own "received" line
    is logged before the task runs)."""
    events = [
        json.loads(line)
        for line in worker.log.read_text(errors="replace").splitlines()
        if line.startswith("{")
    ]
    return [
        e for e in events if str(job.id) in json.dumps(e) and str(e["logger"]).startswith("app.")
    ]


def event_names(events: list[dict[str, Any]]) -> set[str]:
    return {str(e["event"]).split(" ", 1)[0] for e in events}


def assert_worker_logs_carry_the_request_id(worker: Worker, job: Job) -> None:
    """The worker logs JSON lines, and the job's lines carry the id of the web request that
    queued it (sent as a task header; the job row keeps it too)."""
    assert job.request_id
    # The task logs its success right after the commit the test saw: wait for the line.
    wait_for(lambda: "job.succeeded" in event_names(job_events(worker, job)), "the log", [worker])
    for_job = job_events(worker, job)
    assert {"job.running", "job.succeeded", "ai.usage"} <= event_names(for_job), worker.output()
    assert {e["request_id"] for e in for_job} == {job.request_id}, worker.output()


def test_a_job_failing_on_a_worker_reaches_sentry_with_the_request_id(
    web: APIFlask,
    start_worker: Callable[[], Worker],
    worker_env: dict[str, str],
    owner_and_course: tuple[User, Course],
    fake_llm: FakeLLM,
    db_session: Session,
) -> None:
    fake_llm.status = 400  # logged as job.failed at ERROR: Sentry's logging integration reports it
    with serve_envelopes() as sentry_server:
        worker_env["SENTRY_DSN"] = sentry_server.url
        worker = start_worker()
        job_id = create_job(web, *owner_and_course, count=2)
        wait_for(finished(db_session, job_id), "the job to fail", [worker])
        job = job_row(db_session, job_id)
        assert job.status is JobStatus.FAILED, worker.output()
        assert job.request_id

        def reported() -> list[dict[str, Any]]:
            return [
                e
                for e in sentry_server.events()
                if e.get("tags", {}).get("request_id") == job.request_id
            ]

        wait_for(lambda: bool(reported()), "the worker's Sentry event", [worker])
        event = reported()[0]
        assert event["environment"] == "test"
        assert "sk-worker-test" not in sentry_server.text()  # the AI key never leaves
        assert str(job_id) in json.dumps(event)


def test_a_pool_process_killed_mid_task_is_redelivered_and_completes_once(
    web: APIFlask,
    start_worker: Callable[[], Worker],
    owner_and_course: tuple[User, Course],
    fake_llm: FakeLLM,
    db_session: Session,
    redis_client: redis.Redis,
    job_queue: str,
) -> None:
    worker = start_worker()
    fake_llm.gate.clear()  # the model "thinks" until the test says otherwise

    job_id = create_job(web, *owner_and_course, count=3)
    wait_for(fake_llm.received.is_set, "the worker to call the model", [worker])
    assert job_row(db_session, job_id).status is JobStatus.RUNNING
    (child,) = worker.children()
    os.kill(child, signal.SIGKILL)  # the task dies mid-call; the message was not acknowledged
    fake_llm.gate.set()

    # Redelivered at once, the task finds the job running within its deadline and looks again
    # when it passes; then it takes the job over.
    wait_for(finished(db_session, job_id), "the redelivered job to finish", [worker])

    job = job_row(db_session, job_id)
    assert (job.status, job.attempts) == (JobStatus.SUCCEEDED, 2), worker.output()
    assert item_count(db_session, job_id) == 3
    # Every delivery of the job's messages (the killed one, its redelivery, a deferral) has run
    # to its end once none is left in the broker: a duplicate would have added items by then.
    wait_for(
        partial(broker_holds_nothing, redis_client, job_queue),
        "the broker to hold no message of the job's queue",
        [worker],
    )
    assert item_count(db_session, job_id) == 3
    assert job_row(db_session, job_id).status is JobStatus.SUCCEEDED


def audit_actions(db_session: Session, job_id: uuid.UUID) -> list[tuple[str, str | None]]:
    """(action, via) of the job's audit records, oldest first."""
    records = db_session.scalars(
        select(AuditRecord)
        .where(AuditRecord.target_id == str(job_id))
        .order_by(AuditRecord.occurred_at)
    )
    return [(record.action, record.details.get("via")) for record in records]


def test_a_worker_killed_whole_mid_task_is_recovered_by_a_fresh_worker_without_an_operator(
    web: APIFlask,
    start_worker: Callable[[], Worker],
    worker_env: dict[str, str],
    owner_and_course: tuple[User, Course],
    fake_llm: FakeLLM,
    db_session: Session,
) -> None:
    """The operator's report of issue 16: every setting at its default but the job timeout."""
    del worker_env["JOB_VISIBILITY_TIMEOUT_SECONDS"]  # the default hour: Redis returns nothing
    first = start_worker()
    fake_llm.gate.clear()  # the provider is slow: the first run waits on it
    job_id = create_job(web, *owner_and_course, count=3)
    wait_for(fake_llm.received.is_set, "the worker to call the model", [first])
    assert job_row(db_session, job_id).status is JobStatus.RUNNING

    first.kill()  # the whole process group, mid-call: no acknowledgement, no row update
    killed_at = time.monotonic()
    second = start_worker()  # a fresh worker at once, as a supervisor restarts one
    fake_llm.gate.set()  # the provider answers the next call at once

    wait_for(
        finished(db_session, job_id),
        "a fresh worker to finish the job",
        [first, second],
        timeout=3 * JOB_TIMEOUT_SECONDS,  # the promise: within three job timeouts of the kill
    )
    recovered = time.monotonic() - killed_at
    print(f"recovery: SIGKILL -> succeeded in {recovered:.1f} s (JOB_TIMEOUT_SECONDS=10)")

    job = job_row(db_session, job_id)
    assert (job.status, job.attempts) == (JobStatus.SUCCEEDED, 2), second.output()
    assert job.last_error == WORKER_LOST_REQUEUED
    assert item_count(db_session, job_id) == 3
    assert fake_llm.calls == 2
    assert audit_actions(db_session, job_id) == [("job.created", None), ("job.requeued", "sweeper")]
    assert "job.swept" in event_names(job_events(second, job))


def called(llm: FakeLLM, times: int) -> bool:
    return llm.calls >= times


def test_a_job_that_kills_its_worker_every_time_ends_dead_after_its_attempts(
    web: APIFlask,
    start_worker: Callable[[], Worker],
    worker_env: dict[str, str],
    owner_and_course: tuple[User, Course],
    fake_llm: FakeLLM,
    db_session: Session,
) -> None:
    worker_env["JOB_TIMEOUT_SECONDS"] = "8"  # three rounds of deadline + sweep: keep them short
    del worker_env["JOB_VISIBILITY_TIMEOUT_SECONDS"]
    fake_llm.gate.clear()  # no run ever gets an answer: each one's worker dies first
    workers = [start_worker()]
    job_id = create_job(web, *owner_and_course, count=2)

    for run in (1, 2, 3):
        wait_for(partial(called, fake_llm, run), f"run {run} to call the model", workers)
        workers[-1].kill()  # the job "kills its worker": the whole group, mid-call
        workers.append(start_worker())
    wait_for(finished(db_session, job_id), "the job to end", workers)

    job = job_row(db_session, job_id)
    assert (job.status, job.attempts, job.max_attempts) == (JobStatus.DEAD, 3, 3), job.last_error
    assert job.last_error == WORKER_LOST_NO_ATTEMPT_LEFT
    assert fake_llm.calls == 3  # no fourth run
    assert item_count(db_session, job_id) == 0
    assert audit_actions(db_session, job_id) == [
        ("job.created", None),
        ("job.requeued", "sweeper"),
        ("job.requeued", "sweeper"),
        ("job.dead", "sweeper"),
    ]


def test_with_the_sweeper_off_an_operator_requeue_completes_a_killed_workers_job_once(
    web: APIFlask,
    start_worker: Callable[[], Worker],
    worker_env: dict[str, str],
    owner_and_course: tuple[User, Course],
    fake_llm: FakeLLM,
    db_session: Session,
    redis_client: redis.Redis,
    redis_url: str,
    job_queue: str,
) -> None:
    worker_env["JOB_SWEEP_INTERVAL_SECONDS"] = "0"  # the manual path of docs/runbooks/stuck-jobs.md
    first = start_worker()
    fake_llm.gate.clear()
    job_id = create_job(web, *owner_and_course, count=2)
    wait_for(fake_llm.received.is_set, "the worker to call the model", [first])
    first.kill()  # parent and pool: nobody is left to redeliver or record anything
    fake_llm.gate.set()
    (original,) = unacknowledged(redis_client, job_queue)  # the killed run's delivery

    job = job_row(db_session, job_id)
    assert job.status is JobStatus.RUNNING
    assert job.deadline_at is not None
    wait_for(
        lambda: str(job_id) in web.test_cli_runner().invoke(args=["jobs", "stuck"]).output,
        "`flask jobs stuck` to list the job",
        [first],
    )

    second = start_worker()
    result = web.test_cli_runner().invoke(args=["jobs", "requeue", "--stuck"])
    assert result.exit_code == 0, result.output
    assert f"{job_id}: re-queued" in result.output
    wait_for(finished(db_session, job_id), "the re-queued job to finish", [first, second])

    job = job_row(db_session, job_id)
    assert job.status is JobStatus.SUCCEEDED, second.output()
    assert (job.attempts, job.max_attempts) == (2, 4)  # counted, not reset; 3 more allowed
    assert job.last_error == "re-queued by an operator (it was stuck)"
    assert item_count(db_session, job_id) == 2
    # The killed run's delivery was never acknowledged. A worker's kombu puts it back in the
    # queue once the visibility timeout has passed, on a scan of the unacknowledged index it runs
    # about every 100 s; the test makes kombu's own restore of that one delivery now instead,
    # then waits for the returned delivery to find the job finished.
    with Connection(redis_url) as broker:
        channel = broker.default_channel
        assert isinstance(channel, RedisChannel)
        assert isinstance(channel.qos, RedisQoS)
        channel.qos.restore_by_tag(original)
    wait_for(
        lambda: "job.already_finished" in event_names(job_events(second, job)),
        "the original delivery to come back and find the job finished",
        [first, second],
    )
    wait_for(
        partial(broker_holds_nothing, redis_client, job_queue),
        "the broker to hold no message of the job's queue",
        [second],
    )
    assert item_count(db_session, job_id) == 2
    assert job_row(db_session, job_id).status is JobStatus.SUCCEEDED
    assert "no stuck jobs" in web.test_cli_runner().invoke(args=["jobs", "stuck"]).output
