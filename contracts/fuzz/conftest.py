"""Fixtures of the fuzzer: the application on real Postgres and Redis, and a user per role.

Loaded with the harness plugins (`-p tests.plugins.services -p tests.plugins.database`, as
`nox -s fuzz` does), so the database is a migrated per-worker clone and every test's writes
roll back. `FUZZ_BASE_URL` points the same tests at a live deployment instead (see
`test_api.py`).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from apiflask import APIFlask
from sqlalchemy.engine import Connection
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


@dataclass(frozen=True)
class Caller:
    """Who the fuzzer is this run: a role and, unless anonymous, a fresh account."""

    role: str
    email: str | None = None
    password: str = PASSWORD


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
def fuzz_app(fuzz_session_app: APIFlask, db_connection: Connection) -> Iterator[APIFlask]:
    """Every request of one test runs inside the test's transaction (rolled back after)."""
    database = get_database(fuzz_session_app)
    database.bind_to_connection(db_connection)
    fuzz_session_app.extensions["mastery.keyring"].clear_cache()
    yield fuzz_session_app
    database.bind_to_engine()


@pytest.fixture(params=ROLES)
def caller(request: pytest.FixtureRequest, db_connection: Connection) -> Caller:
    """A fresh account of the role (created in the database; via the API on a live target)."""
    role: str = request.param
    if role == "anonymous" or BASE_URL:
        return Caller(role)
    session = Session(bind=db_connection, join_transaction_mode="create_savepoint")
    email = f"fuzz-{role}-{uuid.uuid4().hex[:12]}@example.com"
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
