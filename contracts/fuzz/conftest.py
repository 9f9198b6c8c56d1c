"""Fixtures of the fuzzer: the application on real Postgres and Redis, and a user per role.

In process (the default) the harness plugins are loaded (`-p tests.plugins.services -p
tests.plugins.database`, as `nox -s fuzz` does): the database is a migrated per-worker clone,
every test's writes roll back, and each test gets fresh accounts made in the database.

Against a live deployment (`FUZZ_BASE_URL`, `nox -s fuzz -- --url URL`) nothing local is
used: one fresh account per role is registered through the API for the whole run, and
instructor and admin accounts are promoted by the admin named in `FUZZ_ADMIN_EMAIL` /
`FUZZ_ADMIN_PASSWORD`.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from apiflask import APIFlask
from sqlalchemy.orm import Session

from app import create_app
from app.auth import passwords
from app.auth.models import Role, User
from app.config import Settings
from app.db import get_database

FUZZ_SECRET = "fuzz-secret-key-that-is-long-enough-0123456789"
PASSWORD = "fuzzing passphrase that is long"  # a throwaway test credential
ROLES = ("anonymous", "learner", "instructor", "admin")
BASE_URL = os.environ.get("FUZZ_BASE_URL", "").rstrip("/")
REPORT_DIR = Path("reports/fuzz")
# Requests sent, by "METHOD /path" (filled by test_api.py's after_call hook), for the summary.
CALLS: Counter[str] = Counter()
STARTED = pytest.StashKey[float]()


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # the controller (or a run without xdist)
        REPORT_DIR.mkdir(parents=True, exist_ok=True)
        for stale in REPORT_DIR.glob("calls-*.json"):
            stale.unlink()
        config.stash[STARTED] = time.monotonic()


def pytest_sessionfinish(session: pytest.Session) -> None:
    worker = getattr(session.config, "workerinput", {}).get("workerid", "main")
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    (REPORT_DIR / f"calls-{worker}.json").write_text(json.dumps(dict(CALLS)))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if hasattr(terminalreporter.config, "workerinput"):
        return
    calls: Counter[str] = Counter()
    for part in REPORT_DIR.glob("calls-*.json"):
        calls.update(json.loads(part.read_text()))
    started = terminalreporter.config.stash.get(STARTED, time.monotonic())
    profile = os.environ.get("FUZZ_PROFILE", "gate")
    terminalreporter.write_line(
        f"fuzz: {sum(calls.values())} requests to {len(calls)} operations "
        f"(profile {profile}, seed {os.environ.get('FUZZ_SEED', 'default')}) "
        f"in {time.monotonic() - started:.0f} s"
    )


@dataclass(frozen=True)
class Caller:
    """Who the fuzzer is this test: a role and, unless anonymous, a fresh account."""

    role: str
    email: str | None = None
    password: str = PASSWORD


def fresh_email(role: str) -> str:
    return f"fuzz-{role}-{uuid.uuid4().hex[:12]}@fuzz.mastery.test"


@pytest.fixture(scope="session")
def fuzz_settings(
    worker_database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    return Settings(
        _env_file=None,
        app_env="test",
        secret_key=FUZZ_SECRET,
        database_url=worker_database_url,
        redis_url=redis_url,
        jobs_eager=True,
        ratelimit_enabled=False,  # limits have their own tests; here they would only hide bugs
        storage_url=f"file://{tmp_path_factory.mktemp('fuzz-storage')}",
    )


@pytest.fixture(scope="session")
def fuzz_session_app(fuzz_settings: Settings) -> Iterator[APIFlask]:
    app = create_app(fuzz_settings)
    yield app
    get_database(app).engine.dispose()


@pytest.fixture
def fuzz_app(request: pytest.FixtureRequest) -> Iterator[APIFlask | None]:
    """In process: every request of one test runs inside the test's transaction (rolled back
    after). Live: None."""
    if BASE_URL:
        yield None
        return
    app: APIFlask = request.getfixturevalue("fuzz_session_app")
    yield request.getfixturevalue("bind_app")(app)  # tests/plugins/database.py


@pytest.fixture(scope="session")
def live_callers() -> dict[str, Caller]:
    """One account per role on the live target, for the whole run (its login and register
    limits would not allow one per test)."""
    admin_email = os.environ.get("FUZZ_ADMIN_EMAIL")
    admin_password = os.environ.get("FUZZ_ADMIN_PASSWORD")
    if not admin_email or not admin_password:
        pytest.fail(
            "fuzzing a live deployment needs an admin to promote the fuzzer's instructor and "
            "admin accounts: set FUZZ_ADMIN_EMAIL and FUZZ_ADMIN_PASSWORD",
            pytrace=False,
        )
    with httpx.Client(base_url=BASE_URL, timeout=30) as http:
        admin = _live_token(http, admin_email, admin_password)
        callers = {"anonymous": Caller("anonymous")}
        for role in ROLES[1:]:
            email = fresh_email(role)
            body = {"email": email, "password": PASSWORD, "display_name": f"Fuzz {role}"}
            created = http.post("/auth/register", json=body)
            assert created.status_code == 201, created.text
            if role != "learner":
                promoted = http.patch(
                    f"/admin/users/{created.json()['id']}",
                    json={"role": role},
                    headers={"Authorization": f"Bearer {admin}"},
                )
                assert promoted.status_code == 200, promoted.text
            callers[role] = Caller(role, email)
    return callers


def _live_token(http: httpx.Client, email: str, password: str) -> str:
    response = http.post("/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, f"login as {email} failed: {response.text}"
    token: str = response.json()["access_token"]
    return token


@pytest.fixture(params=ROLES)
def caller(request: pytest.FixtureRequest) -> Caller:
    """A fresh account of the role (in the test's transaction; on a live target, per run)."""
    role: str = request.param
    if BASE_URL:
        callers: dict[str, Caller] = request.getfixturevalue("live_callers")
        return callers[role]
    if role == "anonymous":
        return Caller(role)
    session = Session(
        bind=request.getfixturevalue("db_connection"), join_transaction_mode="create_savepoint"
    )
    email = fresh_email(role)
    session.add(
        User(
            email=email,
            display_name=f"Fuzz {role}",
            role=Role(role),
            password_hash=passwords.hash_password(PASSWORD),
        )
    )
    session.commit()
    session.close()
    return Caller(role, email)


def live_login(caller: Caller) -> Any:
    """An access token for `caller` from the live target."""
    assert caller.email is not None
    with httpx.Client(base_url=BASE_URL, timeout=30) as http:
        return _live_token(http, caller.email, caller.password)
