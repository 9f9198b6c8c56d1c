"""Subprocesses started for real, and waiting for them: gunicorn and Celery workers for the
integration tests, the throwaway servers of the test harness (tests/plugins/), and whole stacks
for the orchestrators (ops/drill/alert_drill.py, ops/staging/staging.py, load/run.py).

Each process gets an environment of its own (never the developer's `.env`: it runs in a
temporary directory) and writes its output to a log file to read on failure. `wait_until` is
the one polling helper of the tests and the orchestrators alike.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import psycopg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
# The local server the orchestrators fall back to (trust auth, as on the CI machines).
DEFAULT_SERVER_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"

T = TypeVar("T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def pid_alive(pid: int) -> bool:
    """True while process `pid` of this host exists (someone else's counts: it is alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts a TCP connection on `host:port` (never raises)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def base_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    """A minimal environment for the platform: test profile, storage in `tmp_path`."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "APP_ENV": "test",
        "STORAGE_URL": f"file://{tmp_path / 'storage'}",
        **settings,
    }


def celery_worker_command(name: str) -> list[str]:
    """A prefork worker of one process, as in production but quiet on the cluster chatter."""
    return [
        sys.executable,
        *("-m", "celery", "-A", "app.jobs.worker", "worker"),
        *("--pool", "prefork", "--concurrency", "1", "--loglevel", "INFO"),
        *("--without-gossip", "--without-mingle", "--without-heartbeat"),
        *("--hostname", f"{name}-{uuid.uuid4().hex[:6]}@%h"),
    ]


def launch(
    command: list[str], tmp_path: Path, env: dict[str, str] | None, log: Path
) -> subprocess.Popen[bytes]:
    """Start `command` in `tmp_path` (no `.env` there), its output going to `log`; `env=None`
    inherits this process's environment."""
    with log.open("wb") as sink:
        return subprocess.Popen(  # noqa: S603 - a fixed command line
            command, cwd=tmp_path, env=env, stdout=sink, stderr=subprocess.STDOUT
        )


def stop(process: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """A graceful stop (SIGTERM), then SIGKILL if it does not exit in time."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class ProcessGroup:
    """An orchestrator's child processes, each logging to `<logs>/<name>.log` and stopped by its
    own pid (never a process group or a name match, so nothing else on the machine is touched).

    `failure` is the exception `check_alive` raises, so each orchestrator reports a crashed
    child in its own terms; `announce` prints progress lines in the orchestrator's format;
    `cwd` is where the children run (default: the logs directory).
    """

    def __init__(
        self,
        logs: Path,
        failure: type[Exception] = RuntimeError,
        announce: Callable[[str], None] = lambda _line: None,
        cwd: Path | None = None,
    ) -> None:
        self.logs = logs
        self.cwd = cwd or logs
        self.failure = failure
        self.announce = announce
        self.children: dict[str, subprocess.Popen[bytes]] = {}

    def start(
        self, name: str, command: list[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start `command` as `name` in the group's working directory (default: the logs
        directory); `env=None` inherits this process's environment."""
        self.announce(f"starting {name}: {' '.join(command)}")
        child = launch(command, self.cwd, env, self.logs / f"{name}.log")
        self.children[name] = child
        return child

    def check_alive(self) -> None:
        for name, child in self.children.items():
            if child.poll() is not None:
                raise self.failure(f"{name} exited with {child.returncode}; see its log below")

    def stop(self, name: str, timeout: float = 20) -> None:
        stop(self.children.pop(name), timeout)

    def stop_all(self, timeout: float = 20) -> None:
        """SIGTERM to every child at once (their graceful shutdowns overlap), then wait in
        reverse start order; a child still running after `timeout` gets SIGKILL."""
        children = {name: self.children.pop(name) for name in reversed(list(self.children))}
        for child in children.values():
            if child.poll() is None:
                child.terminate()
        started = time.monotonic()
        for name, child in children.items():
            stop(child, timeout=max(0.1, started + timeout - time.monotonic()))
            self.announce(f"{name} stopped after {time.monotonic() - started:.1f} s")

    def print_logs(self, lines: int = 30, patterns: tuple[str, ...] = ("*.log",)) -> None:
        """The last `lines` lines of every log matching `patterns` under the logs directory."""
        for pattern in patterns:
            for log in sorted(self.logs.glob(pattern)):
                tail = log.read_text(errors="replace").splitlines()[-lines:]
                print(f"--- last {len(tail)} lines of {log.name} ---", *tail, sep="\n", flush=True)


def wait_until(
    what: str,
    check: Callable[[], T | None],
    timeout: float,
    alive: Callable[[], None] | None = None,
    *,
    failure: type[Exception] = TimeoutError,
    interval: float = 0.1,
) -> T:
    """Poll `check` until it returns something truthy, and return that.

    `what` names the awaited thing in the error: `failure(f"{what}: not within N s")` after
    `timeout` seconds, or whatever `alive` raises as soon as it does (a child process died). A
    connection error counts as "not yet": the thing polled is usually a server still starting.
    """
    deadline = time.monotonic() + timeout
    while True:
        if alive is not None:
            alive()
        value: T | None
        try:
            value = check()
        except (httpx.HTTPError, OSError):
            value = None
        if value:
            return value
        if time.monotonic() >= deadline:
            raise failure(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)  # another process gives nothing to wait on but its answers


@dataclass(frozen=True)
class ScratchDatabase:
    name: str
    url: str  # SQLAlchemy URL for the platform (postgresql+psycopg)
    admin_dsn: str  # libpq DSN of the server's maintenance database, for CREATE/DROP and stats


@contextmanager
def scratch_database(
    server_url: str | None,
    prefix: str,
    failure: type[Exception] = RuntimeError,
    announce: Callable[[str], None] = lambda _line: None,
) -> Iterator[ScratchDatabase]:
    """A new, empty database named `<prefix>_<random>` on `server_url`'s server (default: the
    local one), dropped at the end even if the caller fails."""
    server = make_url(server_url or DEFAULT_SERVER_URL)
    name = f"{prefix}_{secrets.token_hex(4)}"
    admin_dsn = server.set(
        drivername="postgresql", database=server.database or "postgres"
    ).render_as_string(hide_password=False)
    try:
        with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=5) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')  # a name made here, not input
    except psycopg.Error as error:
        raise failure(
            f"cannot create a scratch database on {server.render_as_string()}: {error}. "
            "Start Postgres there, or point the *_DATABASE_URL variable at a server where the "
            "user may CREATE DATABASE"
        ) from error
    announce(f"scratch database {name} on {server.host}:{server.port}")
    try:
        url = server.set(drivername="postgresql+psycopg", database=name)
        yield ScratchDatabase(name, url.render_as_string(hide_password=False), admin_dsn)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        announce(f"dropped {name}")
