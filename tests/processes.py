"""Subprocesses the integration tests start for real: gunicorn and Celery workers.

Each gets an environment of its own (never the developer's `.env`: it runs in the test's
temporary directory) and writes its output to a log file the test can read on failure.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


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
    command: list[str], tmp_path: Path, env: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    """Start `command` in `tmp_path` (no `.env` there), its output going to `log`."""
    with log.open("wb") as sink:
        return subprocess.Popen(  # a fixed command line
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
