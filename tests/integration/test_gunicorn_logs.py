"""Under gunicorn (gunicorn.conf.py's `logconfig_dict`), gunicorn's own lines and the app's come
out on stderr as one JSON object per line, in the same shape, with no plain access log."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from app.observability.logging import LEADING_FIELDS
from tools.processes import ROOT, base_env, launch, stop, wait_until

LISTENING = re.compile(r"Listening at: (http://127\.0\.0\.1:\d+)")


def read_events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_gunicorn_and_app_lines_share_the_json_shape(tmp_path: Path) -> None:
    log = tmp_path / "gunicorn.log"
    env = base_env(
        tmp_path,
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite'}",
        LOG_LEVEL="INFO",
    )
    command = [
        sys.executable,
        *("-m", "gunicorn", "app:create_app()", "-c", str(ROOT / "gunicorn.conf.py")),
        *("--bind", "127.0.0.1:0", "--workers", "2", "--chdir", str(ROOT)),
        *("--control-socket", str(tmp_path / "gunicorn.ctl")),
    ]
    process = launch(command, tmp_path, env, log)
    try:
        deadline = time.monotonic() + 90  # a busy 2-core machine boots workers slowly
        listening = wait_until(
            "gunicorn to log its address", lambda: LISTENING.search(log.read_text()), 90
        )
        url = listening.group(1)
        response = None
        while response is None and time.monotonic() < deadline:
            try:
                # The listening socket queues the request while the workers boot, so wait for
                # the answer rather than send it again (a retry would log a second access line).
                response = httpx.get(
                    f"{url}/healthz?probe=1",
                    headers={"X-Request-ID": "gunicorn-0001"},
                    timeout=60,
                )
            except httpx.ConnectError:  # not accepting yet
                time.sleep(0.1)
        assert response is not None
        assert response.status_code == 200
        wait_until("the access line", lambda: '"http.request"' in log.read_text(), 10)
    finally:
        stop(process)

    events = read_events(log)  # every line is JSON, start-up and shutdown included
    assert all(list(e)[: len(LEADING_FIELDS)] == list(LEADING_FIELDS) for e in events)
    gunicorn = [e for e in events if e["logger"] == "gunicorn.error"]
    assert any(str(e["event"]).startswith("Booting worker") for e in gunicorn), events
    assert any(str(e["event"]).startswith("Shutting down") for e in gunicorn), events
    (access,) = [e for e in events if e["event"] == "http.request"]
    assert (access["request_id"], access["route"], access["status"]) == (
        "gunicorn-0001",
        "/healthz",
        200,
    )
    assert not [e for e in events if e["logger"] == "gunicorn.access"], "a second access line"
    assert "probe=1" not in log.read_text(), "the query string is logged"
