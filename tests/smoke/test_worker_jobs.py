"""Smoke check of the background path: web → broker → Celery worker → database.

One generation job of one draft item on the smoke course's skill (deleted with the course; the
job row stays, as every job's does). Against a deployment with a paid AI provider this is one
small completion call per run.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.smoke.client import describe, expect
from tests.smoke.conftest import Account, Options

FINAL = {"succeeded", "failed", "dead"}


@pytest.mark.check("jobs: a generation job is run by the worker (queued -> succeeded)")
def test_a_generation_job_is_run_by_the_worker(
    api: httpx.Client, admin: Account, course: dict[str, Any], options: Options
) -> None:
    skill = course["skill"]
    response = api.post(
        f"/skills/{skill['id']}/generation-jobs", json={"count": 1}, headers=admin.headers
    )
    job = expect(response, 202)
    assert response.headers.get("Location") == f"/jobs/{job['id']}", describe(response)
    deadline = time.monotonic() + options.job_timeout
    while job["status"] not in FINAL and time.monotonic() < deadline:
        time.sleep(0.5)  # polling a remote job's status: there is nothing to wait on instead
        job = expect(api.get(f"/jobs/{job['id']}", headers=admin.headers), 200)
    assert job["status"] == "succeeded", f"after {options.job_timeout:.0f} s: {job}"
    assert len(job["result"]["item_ids"]) == 1, job
