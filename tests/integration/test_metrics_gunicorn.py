"""Metrics under gunicorn with two workers (multiprocess mode): counts from every worker add up.

gunicorn runs as a subprocess with gunicorn.conf.py and `PROMETHEUS_MULTIPROC_DIR`, like
production; requests go over real HTTP. Each worker writes its counts to its own file in the
directory, so the test can also tell that both workers answered.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from app.config import Settings
from tests.conftest import TEST_SECRET
from tools.processes import ROOT, base_env, free_port, launch, stop, wait_until

pytestmark = [pytest.mark.commits, pytest.mark.xdist_group("gunicorn")]

STARTUP_SECONDS = 30.0
BATCH = 20


@dataclass
class Server:
    url: str
    multiproc_dir: Path
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@pytest.fixture
def gunicorn(settings: Settings, tmp_path: Path, db_connection: object) -> Iterator[Server]:
    multiproc_dir = tmp_path / "prometheus"
    multiproc_dir.mkdir()
    port = free_port()
    env = base_env(
        tmp_path,
        SECRET_KEY=TEST_SECRET,
        DATABASE_URL=settings.database_url,
        JOBS_EAGER="true",
        RATELIMIT_ENABLED="false",
        PROMETHEUS_MULTIPROC_DIR=str(multiproc_dir),
    )
    command = [
        sys.executable,
        *("-m", "gunicorn", "app:create_app()"),
        *("-c", str(ROOT / "gunicorn.conf.py")),
        *("-b", f"127.0.0.1:{port}", "-w", "2", "--chdir", str(ROOT)),
    ]
    log = tmp_path / "gunicorn.log"
    process = launch(command, tmp_path, env, log)
    server = Server(f"http://127.0.0.1:{port}", multiproc_dir, process, log)
    try:
        wait_until_serving(server)
        yield server
    finally:
        stop(process, timeout=15)


def wait_until_serving(server: Server) -> None:
    def running() -> None:
        assert server.process.poll() is None, f"gunicorn exited:\n{server.output()}"

    try:
        wait_until(
            "gunicorn to answer",
            # /openapi.json, not /healthz: the test counts every /healthz request it sends.
            lambda: httpx.get(f"{server.url}/openapi.json", timeout=1).status_code == 200,
            STARTUP_SECONDS,
            running,
        )
    except TimeoutError:
        pytest.fail(f"gunicorn did not answer within {STARTUP_SECONDS}s:\n{server.output()}")


def healthz_counts_by_pid(multiproc_dir: Path) -> dict[str, float]:
    """What each worker's own file says it counted for /healthz."""
    counts: dict[str, float] = {}
    for path in multiproc_dir.glob("counter_*.db"):
        pid = path.stem.removeprefix("counter_")
        values = MmapedDict.read_all_values_from_file(str(path))  # type: ignore[no-untyped-call]  # prometheus_client leaves it unannotated
        for key, value, _timestamp, _pos in values:
            if '"mastery_http_requests_total"' in key and '"/healthz"' in key:
                counts[pid] = counts.get(pid, 0.0) + value
    return counts


def send_healthz_batch(server: Server) -> None:
    def one(_: int) -> int:
        # A fresh connection per request, so either worker may accept it.
        return httpx.get(f"{server.url}/healthz", timeout=10).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert set(pool.map(one, range(BATCH))) == {200}


def test_request_counts_add_up_across_two_gunicorn_workers(gunicorn: Server) -> None:
    sent = 0
    # Concurrent batches until both workers have answered some (normally the first batch; on a
    # busy machine the second worker may still be booting, so this waits for it, up to a minute).
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        send_healthz_batch(gunicorn)
        sent += BATCH
        if len(healthz_counts_by_pid(gunicorn.multiproc_dir)) >= 2:
            break

    response = httpx.get(f"{gunicorn.url}/metrics", timeout=10)

    assert response.status_code == 200
    served_by = healthz_counts_by_pid(gunicorn.multiproc_dir)
    assert len(served_by) == 2, (served_by, gunicorn.output())
    assert sum(served_by.values()) == sent
    total = sum(
        sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if sample.name == "mastery_http_requests_total"
        and sample.labels == {"method": "GET", "route": "/healthz", "status": "200"}
    )
    assert total == sent
