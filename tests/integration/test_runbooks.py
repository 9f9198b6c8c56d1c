"""Every shell block of docs/runbooks/*.md runs here, as printed, against real services.

The convention and the parser are in tests/runbooks.py. Each test starts what its runbook is
about on loopback — a Celery worker on a throwaway redis-server, gunicorn, Prometheus with the
real rules, the platform in a thread, a fake OpenAI-compatible provider — runs the blocks with
bash, and checks the outcome the runbook promises, not only the exit status.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from apiflask import APIFlask
from celery import Celery
from pydantic import SecretStr
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session

from app import create_app
from app.auth.models import Role, User
from app.config import Settings
from app.content.models import Course
from app.db import get_database, utcnow
from app.jobs.models import Job, JobKind, JobStatus
from tests import runbooks
from tests.conftest import PASSWORD, TEST_SECRET
from tests.live_server import serving
from tests.runbooks import covers
from tests.unit.promql_names import RULE_FILES, metric_names, recorded_names
from tools.processes import (
    ROOT,
    base_env,
    celery_worker_command,
    free_port,
    launch,
    stop,
    wait_until,
)

DEADLINE = 30.0
VENV_BIN = str(Path(sys.executable).parent)
COMPOSE_FILE = ROOT / "docker-compose.yml"


def poll(condition: Callable[[], Any], what: str, timeout: float = DEADLINE) -> Any:
    """Wait for `condition()` to return something truthy; fail naming `what` at the deadline."""
    return wait_until(what, condition, timeout, failure=AssertionError, interval=0.2)


def require(tool: str, package: str) -> None:
    if shutil.which(tool) is None:
        pytest.fail(f"{tool} is not installed: `apt-get install {package}` (runbook tests need it)")


# --- the convention itself ------------------------------------------------------------------------


def test_every_shell_block_in_the_runbooks_is_tested_or_marked_manual() -> None:
    blocks = runbooks.all_blocks()
    assert len(blocks) > 20, "the parser found suspiciously few blocks"
    unmarked = [block.where for block in blocks if block.mark is None]
    assert not unmarked, (
        "runbook blocks without a mark (see docs/runbooks/README.md, 'How the runbooks are "
        f"tested'): {unmarked}"
    )


def test_every_manual_block_says_why_it_cannot_run_here() -> None:
    vague = [
        block.where
        for block in runbooks.all_blocks()
        if block.mark == "manual" and len(block.value.split()) < 4
    ]
    assert not vague, f"manual blocks need a reason of a few words: {vague}"


def test_tested_blocks_and_the_tests_that_run_them_match_one_to_one() -> None:
    tested = [block.key for block in runbooks.all_blocks() if block.mark == "test"]
    duplicates = sorted({key for key in tested if tested.count(key) > 1})
    assert not duplicates, f"block ids must be unique within a runbook: {duplicates}"
    untested = sorted(set(tested) - set(runbooks.COVERED))
    assert not untested, f"blocks marked runbook-test that no test covers: {untested}"
    stale = sorted(set(runbooks.COVERED) - set(tested))
    assert not stale, f"tests cover blocks that no longer exist: {stale}"


def test_the_parser_keeps_only_the_commands_of_console_blocks(tmp_path: Path) -> None:
    page = tmp_path / "example.md"
    page.write_text(
        "<!-- runbook-test: one -->\n"
        "```console\n$ echo a \\\n  b\na b\n$ true\n```\n\n"
        "```python\nprint('not shell')\n```\n\n"
        "```bash\nexit 1\n```\n\n"
        "```\nno language: shell too\n```\n"
    )

    first, second, third = runbooks.parse(page)

    assert (first.mark, first.value, first.script) == ("test", "one", "echo a \\\n  b\ntrue\n")
    assert (second.mark, second.line) == (None, 13)
    assert (third.mark, third.line) == (None, 17)


COMPOSE_VALUE_OPTIONS = {"--scale", "--since", "--tail", "-t", "--timeout", "-f", "--file"}


def compose_services_in(script: str) -> set[str]:
    """The services a `docker compose …` command line names (`--scale web=3` names web; `exec`
    and `run` name one service, then the command to run in it)."""
    names: set[str] = set()
    for line in script.splitlines():
        found = re.search(r"docker compose\s+(\w+)\s+(.*)", line.split("#")[0])
        if not found:
            continue
        words = found.group(2).split()
        index = 0
        while index < len(words):
            word = words[index]
            if word in COMPOSE_VALUE_OPTIONS:
                if word == "--scale" and index + 1 < len(words):
                    names.add(words[index + 1].split("=")[0])
                index += 2
                continue
            if not word.startswith("-"):
                names.add(word)
                if found.group(1) in ("exec", "run"):
                    break
            index += 1
    return names


def test_docker_compose_commands_in_the_runbooks_name_services_that_exist() -> None:
    used = {
        service: block.where
        for block in runbooks.all_blocks()
        for service in compose_services_in(block.script)
    }
    assert used, "no docker compose command found: the check is looking at the wrong blocks"
    assert COMPOSE_FILE.is_file(), f"{COMPOSE_FILE} is missing: the runbooks name its services"
    services = set(yaml.safe_load(COMPOSE_FILE.read_text())["services"])
    missing = {name: where for name, where in used.items() if name not in services}
    assert not missing, f"runbooks name services docker-compose.yml does not have: {missing}"


# --- shared services ------------------------------------------------------------------------------


@dataclass
class CeleryNode:
    """One Celery worker consuming its own queue on a throwaway redis-server."""

    redis_url: str
    queue: str
    name: str
    log: Path

    def env(self) -> dict[str, str]:
        return {
            "REDIS_URL": self.redis_url,
            "CELERY_BROKER_URL": self.redis_url,
            "JOB_QUEUE": self.queue,
            "JOBS_EAGER": "false",
        }


def start_redis(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    require("redis-server", "redis-server")
    port = free_port()
    process = launch(
        [
            "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        tmp,
        {"PATH": os.environ.get("PATH", "")},
        tmp / "redis.log",
    )

    def answers() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    poll(answers, "redis-server to listen")
    return process, f"redis://127.0.0.1:{port}/0"


@pytest.fixture(scope="module")
def celery_node(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CeleryNode]:
    tmp = tmp_path_factory.mktemp("celery-node")
    redis_process, redis_url = start_redis(tmp)
    command = celery_worker_command("runbook")
    at = command.index("--hostname") + 1
    command[at] = command[at].replace("%h", socket.gethostname())
    node = CeleryNode(redis_url, f"runbook-{uuid.uuid4().hex[:8]}", command[at], tmp / "worker.log")
    env = base_env(
        tmp,
        SECRET_KEY=TEST_SECRET,
        DATABASE_URL=settings.database_url,
        AI_PROVIDER="offline",
        # Its sweeper off: the stuck jobs the tests arrange must wait for the runbook's commands
        # (the sweeper itself: tests/integration/test_worker.py, and `jobs sweep` below).
        JOB_SWEEP_INTERVAL_SECONDS="0",
        **node.env(),
    )
    worker = launch(command, tmp, env, node.log)
    control = Celery(broker=redis_url)
    try:
        poll(
            lambda: worker.poll() is None
            and control.control.ping(destination=[node.name], timeout=0.5),
            f"the Celery worker {node.name} to answer a ping",
            timeout=60,
        )
        yield node
    except AssertionError as error:
        raise AssertionError(f"{error}\n{node.log.read_text(errors='replace')[-3000:]}") from None
    finally:
        stop(worker)
        stop(redis_process)


SHELL_TOOLS = {"bash": "bash", "curl": "curl", "jq": "jq", "psql": "postgresql-client"}


def shell_env(settings: Settings, tmp_path: Path, **variables: str) -> dict[str, str]:
    """An operator's shell: the app's environment plus the runbook's variables.

    The tools the runbooks assume (docs/runbooks/README.md) must be installed: a missing one
    fails the test with the package that provides it."""
    for tool, package in SHELL_TOOLS.items():
        require(tool, package)
    env = base_env(
        tmp_path,
        SECRET_KEY=TEST_SECRET,
        DATABASE_URL=settings.database_url,
        LOG_LEVEL="WARNING",
        **variables,
    )
    env["PATH"] = f"{VENV_BIN}:{env['PATH']}"
    return env


Serve = Callable[..., tuple[str, APIFlask]]


@pytest.fixture
def serve(settings: Settings) -> Iterator[Serve]:
    """Serve a fresh application (settings changed by keyword) over HTTP: (base URL, app)."""
    stack: list[Any] = []
    apps: list[APIFlask] = []

    def start(**updates: Any) -> tuple[str, APIFlask]:
        app = create_app(settings.model_copy(update=updates))
        apps.append(app)
        context = serving(app)
        stack.append(context)
        url: str = context.__enter__()
        return url, app

    yield start
    for context in reversed(stack):
        context.__exit__(None, None, None)
    for app in apps:
        get_database(app).engine.dispose()


@dataclass
class FakeProvider:
    """An OpenAI-compatible provider on loopback that accepts only `valid_keys`."""

    valid_keys: set[str]
    keys_seen: list[str] = field(default_factory=list)
    url: str = ""

    def authorised(self, header: str) -> bool:
        return header.removeprefix("Bearer ") in self.valid_keys


@pytest.fixture
def fake_provider() -> Iterator[FakeProvider]:
    provider = FakeProvider(valid_keys=set())
    draft = {
        "items": [
            {
                "kind": "mcq",
                "stem": f"Runbook question {n}?",
                "choices": ["yes", "no", "maybe"],
                "answer_index": 0,
                "reference_answer": None,
                "rubric": [],
            }
            for n in (1, 2)
        ]
    }

    class Handler(BaseHTTPRequestHandler):
        def reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # the http.server hook name
            ok = self.path.endswith("/models") and provider.authorised(
                self.headers.get("Authorization", "")
            )
            self.reply(200 if ok else 401, {"data": []} if ok else {"error": "invalid key"})

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            header = self.headers.get("Authorization", "")
            provider.keys_seen.append(header.removeprefix("Bearer "))
            if not provider.authorised(header):
                self.reply(401, {"error": {"message": "invalid key"}})
                return
            message = {"role": "assistant", "content": json.dumps(draft)}
            usage = {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}
            self.reply(200, {"choices": [{"index": 0, "message": message}], "usage": usage})

        def log_message(self, *_args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    provider.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield provider
    server.shutdown()
    server.server_close()


@dataclass
class Gunicorn:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def workers(self) -> set[int]:
        found = subprocess.run(
            ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True, check=False
        )
        return {int(pid) for pid in found.stdout.split()}


@pytest.fixture
def gunicorn(
    settings: Settings, tmp_path: Path, fake_provider: FakeProvider
) -> Iterator[Callable[[], Gunicorn]]:
    """Start gunicorn (2 workers) in `tmp_path`; the AI key is read from `tmp_path/ai_api_key`,
    which the test writes first."""
    started: list[Gunicorn] = []

    def start() -> Gunicorn:
        require("pgrep", "procps")
        port = free_port()
        env = base_env(
            tmp_path,
            DATABASE_URL=settings.database_url,
            SECRET_KEY=TEST_SECRET,
            JOBS_EAGER="true",
            RATELIMIT_ENABLED="false",
            AI_PROVIDER="openai",
            AI_BASE_URL=fake_provider.url,
            AI_MODEL="runbook-model",
            AI_API_KEY_FILE=str(tmp_path / "ai_api_key"),
            LOG_LEVEL="INFO",
        )
        command = [sys.executable, "-m", "gunicorn", "app:create_app()"]
        command += ["-c", str(ROOT / "gunicorn.conf.py"), "--bind", f"127.0.0.1:{port}"]
        command += ["--workers", "2", "--graceful-timeout", "10"]
        log = tmp_path / "gunicorn.log"
        server = Gunicorn(launch(command, tmp_path, env, log), f"http://127.0.0.1:{port}", log)
        started.append(server)

        def healthy() -> bool:
            if server.process.poll() is not None:
                raise AssertionError(f"gunicorn exited:\n{log.read_text(errors='replace')}")
            try:
                answered = httpx.get(f"{server.url}/healthz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False
            return answered and len(server.workers()) == 2

        poll(healthy, "gunicorn to answer /healthz with 2 workers", timeout=60)
        return server

    yield start
    for server in started:
        stop(server.process)


def stuck_job(db_session: Session, course: Course, status: JobStatus = JobStatus.RUNNING) -> Job:
    """A generation job whose worker vanished (running, past its deadline) or a dead one."""
    now = utcnow()
    running = status is JobStatus.RUNNING
    job = Job(
        kind=JobKind.GENERATE_ITEMS,
        status=status,
        skill_id=course.skills[0].id,
        created_by=course.owner_id,
        params={"count": 2},
        attempts=3 if not running else 1,
        max_attempts=3,
        started_at=now - timedelta(minutes=10),
        deadline_at=now - timedelta(minutes=5) if running else None,
        last_error=None if running else "ProviderUnavailableError: gave up",
    )
    db_session.add(job)
    db_session.commit()
    return job


def job_status(db_session: Session, job: Job) -> JobStatus:
    db_session.expire_all()
    found = db_session.scalar(select(Job.status).where(Job.id == job.id))
    assert found is not None
    return found


def succeeded(db_session: Session, job: Job) -> bool:
    return job_status(db_session, job) is JobStatus.SUCCEEDED


def login(base_url: str, email: str, password: str = PASSWORD) -> dict[str, Any]:
    response = httpx.post(
        f"{base_url}/auth/login", json={"email": email, "password": password}, timeout=30
    )
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    return tokens


def kid_of(token: str) -> str:
    import base64

    header = token.split(".")[0]
    kid: str = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]
    return kid


# --- rotate-jwt-keys.md ---------------------------------------------------------------------------


@pytest.mark.commits
@covers(
    "rotate-jwt-keys.md#list",
    "rotate-jwt-keys.md#rotate",
    "rotate-jwt-keys.md#check",
    "rotate-jwt-keys.md#revoke",
)
def test_rotating_signing_keys_keeps_old_tokens_valid_and_revoking_the_old_key_rejects_them(
    settings: Settings,
    tmp_path: Path,
    serve: Serve,
    make_user: Callable[..., User],
    db_session: Session,
) -> None:
    user = make_user(Role.LEARNER)
    app_url, app = serve()
    before = login(app_url, user.email)
    old_kid = kid_of(before["access_token"])
    env = shell_env(
        settings, tmp_path, APP=app_url, CHECK_EMAIL=user.email, CHECK_PASSWORD=PASSWORD
    )
    me = f"{app_url}/auth/me"

    listed = runbooks.run("rotate-jwt-keys.md#list", env, tmp_path).stdout
    assert old_kid in listed
    assert "(1 row)" in listed

    rotated = runbooks.run("rotate-jwt-keys.md#rotate", env, tmp_path).stdout
    new_kid = re.fullmatch(r"active signing key: (\w+)\n", rotated)
    assert new_kid is not None, rotated
    assert new_kid[1] != old_kid

    checked = runbooks.run("rotate-jwt-keys.md#check", env, tmp_path).stdout
    assert checked.strip() == new_kid[1]
    old_access = {"Authorization": f"Bearer {before['access_token']}"}
    assert httpx.get(me, headers=old_access, timeout=30).status_code == 200  # nobody is logged out

    revoked = runbooks.run(
        "rotate-jwt-keys.md#revoke", {**env, "OLD_KID": old_kid}, tmp_path
    ).stdout
    assert revoked.strip() == "UPDATE 1"
    app.extensions["mastery.keyring"].clear_cache()  # what the reload in the runbook does

    assert httpx.get(me, headers=old_access, timeout=30).status_code == 401
    refresh = httpx.post(
        f"{app_url}/auth/refresh", json={"refresh_token": before["refresh_token"]}, timeout=30
    )
    assert refresh.status_code == 401
    after = login(app_url, user.email)
    assert kid_of(after["access_token"]) == new_kid[1]


# --- rotate-ai-key.md -----------------------------------------------------------------------------


def generate_items(base_url: str, token: str, skill_id: uuid.UUID) -> None:
    """One generation job through the API: eager, so the AI call happens in the web worker."""
    response = httpx.post(
        f"{base_url}/skills/{skill_id}/generation-jobs",
        json={"count": 2},
        headers={"Authorization": f"Bearer {token}"},
        timeout=20,
    )
    assert response.status_code == 202, response.text


@pytest.mark.commits
@covers(
    "rotate-ai-key.md#check-new-key",
    "rotate-ai-key.md#write-file",
    "rotate-ai-key.md#reload-web",
)
def test_rotating_the_ai_key_and_reloading_gunicorn_sends_the_new_key_to_the_provider(
    settings: Settings,
    tmp_path: Path,
    gunicorn: Callable[[], Gunicorn],
    fake_provider: FakeProvider,
    make_course: Callable[..., Course],
    make_user: Callable[..., User],
) -> None:
    old_key, new_key = f"sk-old-{secrets.token_hex(8)}", f"sk-new-{secrets.token_hex(8)}"
    fake_provider.valid_keys = {old_key, new_key}
    key_file = tmp_path / "ai_api_key"
    key_file.write_text(f"{old_key}\n")
    owner = make_user(Role.INSTRUCTOR)
    course = make_course(owner=owner)
    server = gunicorn()
    token = login(server.url, owner.email)["access_token"]
    generate_items(server.url, token, course.skills[0].id)
    assert fake_provider.keys_seen[-1] == old_key
    env = shell_env(
        settings,
        tmp_path,
        AI_BASE_URL=fake_provider.url,
        AI_API_KEY_FILE=str(key_file),
        NEW_AI_API_KEY=new_key,
        GUNICORN_PID=str(server.process.pid),
    )

    checked = runbooks.run("rotate-ai-key.md#check-new-key", env, tmp_path).stdout
    assert checked.strip() == "200"
    wrong = {**env, "NEW_AI_API_KEY": "sk-not-a-key"}  # pragma: allowlist secret
    assert runbooks.run("rotate-ai-key.md#check-new-key", wrong, tmp_path).stdout.strip() == "401"

    runbooks.run("rotate-ai-key.md#write-file", env, tmp_path)
    assert key_file.read_text() == f"{new_key}\n"
    assert key_file.stat().st_mode & 0o077 == 0  # readable by its owner only

    old_workers = server.workers()
    runbooks.run("rotate-ai-key.md#reload-web", env, tmp_path)
    poll(
        lambda: not (server.workers() & old_workers) and len(server.workers()) == 2,
        "gunicorn to replace both workers after HUP",
    )
    assert server.process.poll() is None  # the master survived: no restart, no downtime

    generate_items(server.url, token, course.skills[0].id)
    assert fake_provider.keys_seen[-1] == new_key


# --- scale.md and incident-checklist.md -----------------------------------------------------------


def web_count(env: dict[str, str], tmp: Path) -> int:
    return int(runbooks.run("scale.md#web-count", env, tmp).stdout.strip())


@pytest.mark.commits
@covers(
    "scale.md#web-add",
    "scale.md#web-remove",
    "scale.md#web-count",
    "incident-checklist.md#health",
    "incident-checklist.md#follow-request",
)
def test_scaling_runbook_adds_and_removes_gunicorn_workers_and_the_incident_checks_work(
    settings: Settings, tmp_path: Path, gunicorn: Callable[[], Gunicorn]
) -> None:
    (tmp_path / "ai_api_key").write_text("sk-unused\n")
    server = gunicorn()
    env = shell_env(settings, tmp_path, APP=server.url, GUNICORN_PID=str(server.process.pid))

    assert web_count(env, tmp_path) == 2
    runbooks.run("scale.md#web-add", env, tmp_path)
    poll(lambda: web_count(env, tmp_path) == 3, "a third gunicorn worker after TTIN")
    runbooks.run("scale.md#web-remove", env, tmp_path)
    poll(lambda: web_count(env, tmp_path) == 2, "two gunicorn workers after TTOU")

    health = runbooks.run("incident-checklist.md#health", env, tmp_path).stdout.splitlines()
    assert health[0] == "healthz 200"
    assert json.loads(health[1])["status"] == "ok", health

    failed = httpx.get(f"{server.url}/courses", timeout=30)  # no token: a 401 with a request id
    request_id = failed.headers["X-Request-ID"]
    assert failed.json()["request_id"] == request_id

    def events() -> list[dict[str, Any]]:
        followed = runbooks.run(
            "incident-checklist.md#follow-request",
            {**env, "REQUEST_ID": request_id, "LOG_FILE": str(server.log)},
            tmp_path,
        ).stdout
        return [json.loads(line) for line in followed.splitlines()]

    found = poll(events, "the request's log events")
    assert {event["request_id"] for event in found} == {request_id}
    assert any(event.get("status") == 401 for event in found), found


def pool_processes(node: CeleryNode) -> int:
    """The worker's pool size, asked in-process (a `celery` command costs seconds to start)."""
    inspect = Celery(broker=node.redis_url).control.inspect([node.name], timeout=10)
    stats: dict[str, Any] = inspect.stats() or {}
    processes: list[int] = stats.get(node.name, {}).get("pool", {}).get("processes", [])
    return len(processes)


@covers("scale.md#worker-count", "scale.md#worker-grow", "scale.md#worker-shrink")
def test_scaling_runbook_grows_and_shrinks_a_celery_workers_pool(
    settings: Settings, tmp_path: Path, celery_node: CeleryNode
) -> None:
    env = shell_env(settings, tmp_path, WORKER=celery_node.name, **celery_node.env())
    poll(lambda: pool_processes(celery_node) == 1, "the worker to answer with a pool of 1")

    runbooks.run("scale.md#worker-grow", env, tmp_path)
    poll(lambda: pool_processes(celery_node) == 2, "a pool of 2 after pool_grow")
    counted = runbooks.run("scale.md#worker-count", env, tmp_path).stdout
    assert counted == f"{celery_node.name} 2\n"
    runbooks.run("scale.md#worker-shrink", env, tmp_path)
    poll(lambda: pool_processes(celery_node) == 1, "a pool of 1 after pool_shrink")


# --- stuck-jobs.md --------------------------------------------------------------------------------


@pytest.mark.commits
@covers(
    "stuck-jobs.md#workers-alive",
    "stuck-jobs.md#list",
    "stuck-jobs.md#sweep",
    "stuck-jobs.md#requeue-all",
    "stuck-jobs.md#requeue-one",
    "stuck-jobs.md#requeue-api",
)
def test_stuck_jobs_runbook_finds_stuck_jobs_and_a_worker_completes_them_after_a_sweep_or_requeue(
    settings: Settings,
    tmp_path: Path,
    serve: Serve,
    celery_node: CeleryNode,
    db_session: Session,
    make_course: Callable[..., Course],
    make_user: Callable[..., User],
) -> None:
    course = make_course()
    first, second = stuck_job(db_session, course), stuck_job(db_session, course)
    healthy = stuck_job(db_session, course)
    healthy.deadline_at = utcnow() + timedelta(minutes=5)
    db_session.commit()
    env = shell_env(settings, tmp_path, **celery_node.env())

    alive = runbooks.run("stuck-jobs.md#workers-alive", env, tmp_path).stdout
    assert alive.startswith("PONG\n")
    assert celery_node.name in alive

    listed = runbooks.run("stuck-jobs.md#list", env, tmp_path).stdout
    assert str(first.id) in listed
    assert str(second.id) in listed
    assert str(healthy.id) not in listed

    requeued = runbooks.run("stuck-jobs.md#requeue-all", env, tmp_path).stdout
    # "now queued", unless the worker was quicker than the command's last read of the row
    assert re.search(rf"{first.id}: re-queued \(now (queued|running|succeeded)\)", requeued)
    for job in (first, second):
        poll(partial(succeeded, db_session, job), f"the re-queued job {job.id} to succeed")
    assert job_status(db_session, healthy) is JobStatus.RUNNING

    lost, spent = stuck_job(db_session, course), stuck_job(db_session, course)
    spent.attempts = spent.max_attempts  # its lost run was its last attempt
    db_session.commit()
    swept = runbooks.run("stuck-jobs.md#sweep", env, tmp_path).stdout
    assert f"{lost.id}: requeued by the sweeper (attempts 1 of 3)\n" in swept
    assert f"{spent.id}: dead by the sweeper (attempts 3 of 3)\n" in swept
    assert str(healthy.id) not in swept
    poll(partial(succeeded, db_session, lost), "the swept job to succeed on the worker")
    assert job_status(db_session, spent) is JobStatus.DEAD
    assert runbooks.run("stuck-jobs.md#sweep", env, tmp_path).stdout == "nothing to sweep\n"

    dead = stuck_job(db_session, course, JobStatus.DEAD)
    one = runbooks.run("stuck-jobs.md#requeue-one", {**env, "JOB_ID": str(dead.id)}, tmp_path)
    assert re.fullmatch(rf"{dead.id}: re-queued \(now (queued|running|succeeded)\)\n", one.stdout)
    poll(partial(succeeded, db_session, dead), "the re-queued dead job to succeed")

    failed = stuck_job(db_session, course, JobStatus.DEAD)
    admin = make_user(Role.ADMIN)
    app_url, _app = serve(
        jobs_eager=False, celery_broker_url=celery_node.redis_url, job_queue=celery_node.queue
    )
    api_env = {
        **env,
        "APP": app_url,
        "JOB_ID": str(failed.id),
        "ADMIN_TOKEN": login(app_url, admin.email)["access_token"],
    }
    answer = runbooks.run("stuck-jobs.md#requeue-api", api_env, tmp_path).stdout
    assert json.loads(answer)["id"] == str(failed.id)
    assert json.loads(answer)["status"] in ("queued", "running", "succeeded")
    poll(partial(succeeded, db_session, failed), "the job retried through the API to succeed")


# --- alerts.md ------------------------------------------------------------------------------------

ALERT_BLOCKS = [
    "alerts.md#promq-example",
    "alerts.md#targetdown",
    "alerts.md#high5xxratio",
    "alerts.md#highp95latency",
    "alerts.md#aisuccessratelow",
    "alerts.md#oldestqueuedjobtooold",
    "alerts.md#jobstuckrunning",
    "alerts.md#refreshtokenreusespike",
    "alerts.md#errorbudgetburnfast",
    "alerts.md#errorbudgetburnslow",
]


def promql_queries() -> list[tuple[str, str]]:
    """(block key, query) of every `promq '…'` call in a tested alert block."""
    return [
        (key, query)
        for key in ALERT_BLOCKS
        for query in re.findall(r"promq '([^']+)'", runbooks.block(key).script)
    ]


def exposed_names(exposition: str) -> set[str]:
    names = {"up"}
    for family in re.findall(r"^# TYPE (\S+) \S+$", exposition, re.MULTILINE):
        names |= {family, *(family + suffix for suffix in ("_bucket", "_count", "_sum"))}
    return names


def test_every_promql_query_in_the_alert_runbook_names_metrics_that_exist(client: Any) -> None:
    queries = promql_queries()
    assert len(queries) >= 15, queries
    exposition = client.get("/metrics").get_data(as_text=True)
    known = recorded_names() | exposed_names(exposition)

    unknown = {
        query: sorted(metric_names(query) - known)
        for _key, query in queries
        if metric_names(query) - known
    }

    assert not unknown, f"queries select metrics nothing records or exposes: {unknown}"


def start_prometheus(
    tmp: Path, target: str, token_file: Path
) -> tuple[subprocess.Popen[bytes], str]:
    require("prometheus", "prometheus")
    port = free_port()
    config = {
        # A 2 s timeout: one slow scrape on a busy machine must not read as the target being down.
        "global": {"scrape_interval": "2s", "scrape_timeout": "2s", "evaluation_interval": "1s"},
        "rule_files": [str(rules) for rules in RULE_FILES],
        "scrape_configs": [
            {
                "job_name": "mastery",
                "authorization": {"type": "Bearer", "credentials_file": str(token_file)},
                "static_configs": [{"targets": [target]}],
            }
        ],
    }
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    command = ["prometheus", f"--config.file={tmp / 'prometheus.yml'}"]
    command += [f"--storage.tsdb.path={tmp / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"]
    process = launch(command, tmp, {"PATH": os.environ.get("PATH", "")}, tmp / "prometheus.log")
    return process, f"http://127.0.0.1:{port}"


@pytest.mark.commits
@covers("alerts.md#promq", *ALERT_BLOCKS)
def test_alert_runbook_first_checks_run_against_a_live_prometheus_and_platform(
    settings: Settings,
    tmp_path: Path,
    serve: Serve,
    celery_node: CeleryNode,
    fake_provider: FakeProvider,
) -> None:
    metrics_token = secrets.token_urlsafe(32)
    token_file = tmp_path / "metrics_token"
    token_file.write_text(metrics_token)
    app_url, _app = serve(metrics_token=SecretStr(metrics_token))
    prometheus, prom_url = start_prometheus(tmp_path, app_url.removeprefix("http://"), token_file)
    fake_provider.valid_keys = {"sk-current"}
    try:

        def scraped() -> bool:
            assert prometheus.poll() is None, (tmp_path / "prometheus.log").read_text()
            try:
                answer = httpx.get(f"{prom_url}/api/v1/query", params={"query": "up"}, timeout=2)
            except httpx.TransportError:
                return False
            results = answer.json()["data"]["result"] if answer.status_code == 200 else []
            return any(result["value"][1] == "1" for result in results)

        poll(scraped, "Prometheus to scrape the platform", timeout=60)
        env = shell_env(
            settings,
            tmp_path,
            APP=app_url,
            PROM=prom_url,
            METRICS_TOKEN_FILE=str(token_file),
            AI_BASE_URL=fake_provider.url,
            AI_API_KEY="sk-current",  # pragma: allowlist secret
            **celery_node.env(),
        )
        outputs = {
            key: runbooks.run(key, env, tmp_path, prelude=("alerts.md#promq",)).stdout
            for key in ALERT_BLOCKS
        }
        defined = runbooks.run("alerts.md#promq", env, tmp_path).stdout
    finally:
        stop(prometheus)

    target = outputs["alerts.md#targetdown"].splitlines()
    assert target[0] == "healthz 200"
    assert json.loads(target[1])["status"] == "ok"
    assert target[2] == "metrics 200"  # the token Prometheus reads is the one the app expects
    assert re.search(r'"job":"mastery".* 1$', target[3]), target
    assert defined == ""  # a definition prints nothing
    assert "provider 200" in outputs["alerts.md#aisuccessratelow"]
    queued = outputs["alerts.md#oldestqueuedjobtooold"]
    assert celery_node.name in queued
    assert "PONG" in queued
    assert "no stuck jobs" in queued
    stuck = outputs["alerts.md#jobstuckrunning"].splitlines()
    assert stuck[0] == '{"kind":"generate_items"} 0'  # none past its deadline
    assert stuck[1] == '{"kind":"generate_items"} 0'
    assert celery_node.name in outputs["alerts.md#jobstuckrunning"]
    assert stuck[-1] == "no stuck jobs"


# --- restore-from-backup.md -----------------------------------------------------------------------


@pytest.fixture
def restore_db(settings: Settings) -> Iterator[str]:
    """The name of a scratch database the runbook creates; dropped afterwards."""
    name = f"mastery_restore_{uuid.uuid4().hex[:12]}"
    yield name
    admin = create_engine(settings.database_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def table_rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                "users": list(conn.execute(text("SELECT id, email FROM users ORDER BY id"))),
                "courses": list(conn.execute(text("SELECT id, title FROM courses ORDER BY id"))),
                "skills": list(conn.execute(text("SELECT id, course_id FROM skills ORDER BY id"))),
            }
    finally:
        engine.dispose()


@pytest.mark.commits
@covers(
    "restore-from-backup.md#backup-now",
    "restore-from-backup.md#list",
    "restore-from-backup.md#verify",
    "restore-from-backup.md#restore",
)
def test_restore_runbook_restores_a_fresh_backup_into_a_new_database_with_its_objects(
    settings: Settings,
    tmp_path: Path,
    restore_db: str,
    make_course: Callable[..., Course],
    make_user: Callable[..., User],
) -> None:
    make_user(Role.ADMIN)
    make_course()
    material = tmp_path / "storage" / "materials" / "runbook.md"
    material.parent.mkdir(parents=True)
    material.write_text("# Fractions\nParts of the same size.\n")
    restored_storage = tmp_path / "restored-storage"
    env = shell_env(
        settings,
        tmp_path,
        BACKUP_URL=f"file://{tmp_path / 'backups'}",
        RESTORE_DB=restore_db,
        RESTORE_STORAGE_URL=f"file://{restored_storage}",
    )

    created = runbooks.run("restore-from-backup.md#backup-now", env, tmp_path).stdout
    backup_id = created.splitlines()[0].strip()
    assert backup_id in runbooks.run("restore-from-backup.md#list", env, tmp_path).stdout
    env["BACKUP_ID"] = backup_id
    verified = runbooks.run("restore-from-backup.md#verify", env, tmp_path).stdout
    assert f"backup {backup_id} verified" in verified

    restored = runbooks.run("restore-from-backup.md#restore", env, tmp_path).stdout
    assert re.search(r"restored backup \S+: \d+ tables and \d+ rows match the manifest", restored)
    assert re.search(r"restore took [\d.]+ s", restored)
    target_url = settings.database_url.rsplit("/", 1)[0] + f"/{restore_db}"
    assert table_rows(target_url) == table_rows(settings.database_url)
    assert table_rows(target_url)["users"]  # the comparison compared something
    copy = restored_storage / "materials" / "runbook.md"
    assert copy.read_text() == material.read_text()
