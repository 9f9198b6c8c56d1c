"""Shared fixtures. Service discovery and database isolation live in tests/plugins/."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from apiflask import APIFlask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from app import create_app
from app.auth import passwords
from app.auth.models import Role, User
from app.config import Settings
from app.content.models import Course, CourseStatus, Skill
from app.db import get_database

pytest_plugins = ["tests.plugins.services", "tests.plugins.database"]

INTEGRATION_DIR = Path(__file__).parent / "integration"
TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789"
PASSWORD = "correct horse battery staple"
# What the password-change helpers change it to.
NEW_PASSWORD = "violet kettle ferry mosaic"  # pragma: allowlist secret (a test password)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.path)).is_relative_to(INTEGRATION_DIR):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def settings(
    worker_database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    return Settings(
        _env_file=None,  # a developer's .env must not leak into tests
        app_env="test",
        secret_key=TEST_SECRET,
        database_url=worker_database_url,
        redis_url=redis_url,
        storage_url=f"file://{tmp_path_factory.mktemp('storage')}",  # never ./instance
        jobs_eager=True,  # jobs run in-process; tests/integration/test_worker.py runs a worker
        # Tests log in far more often than any client may; tests/integration/test_rate_limits.py
        # builds its own applications with the limits on.
        ratelimit_enabled=False,
    )


@pytest.fixture(scope="session")
def session_app(settings: Settings) -> Iterator[APIFlask]:
    app = create_app(settings)
    yield app
    get_database(app).engine.dispose()


BindApp = Callable[[APIFlask], APIFlask]
MakeApp = Callable[..., APIFlask]


@pytest.fixture
def app(session_app: APIFlask, bind_app: BindApp) -> APIFlask:
    """The application with every session routed through the test's connection."""
    return bind_app(session_app)


@pytest.fixture
def make_app(settings: Settings, bind_app: BindApp) -> Iterator[MakeApp]:
    """`make_app(**changes)`: an application of the test profile with `changes` to its settings,
    bound to the test's connection like `app` (tests/plugins/database.py, `bind_app`) unless the
    changes give it a database of its own (`database_url`); its pool is closed after the test."""
    made: list[APIFlask] = []

    def make(**changes: Any) -> APIFlask:
        app = create_app(settings.model_copy(update=changes))
        made.append(app)
        return app if "database_url" in changes else bind_app(app)

    yield make
    for app in made:
        get_database(app).engine.dispose()


@pytest.fixture
def client(app: APIFlask) -> FlaskClient:
    return app.test_client()


@pytest.fixture(scope="session")
def password_hash() -> str:
    """One Argon2id hash shared by factory users: hashing costs ~20 ms each time."""
    return passwords.hash_password(PASSWORD)


@pytest.fixture
def make_user(db_session: Session, password_hash: str) -> Callable[..., User]:
    counter = iter(range(1_000_000))

    def make(role: Role = Role.LEARNER, *, email: str | None = None, active: bool = True) -> User:
        n = next(counter)
        user = User(
            email=email or f"{role.value}{n}@example.com",
            password_hash=password_hash,
            display_name=f"{role.value.title()} {n}",
            role=role,
            is_active=active,
        )
        db_session.add(user)
        db_session.commit()
        return user

    return make


@pytest.fixture
def login(client: FlaskClient) -> Callable[[User], dict[str, str]]:
    """Log a user in through the API and return the token pair."""

    def do_login(user: User, password: str = PASSWORD) -> dict[str, str]:
        response = client.post("/auth/login", json={"email": user.email, "password": password})
        assert response.status_code == 200, response.get_json()
        tokens: dict[str, str] = response.get_json()
        return tokens

    return do_login


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def change_password(
    client: FlaskClient, access_token: str, current: str = PASSWORD, new: str = NEW_PASSWORD
) -> Any:
    """POST /auth/password as the holder of `access_token`; the response."""
    return client.post(
        "/auth/password",
        json={"current_password": current, "new_password": new},
        headers=bearer(access_token),
    )


@pytest.fixture
def as_user(login: Callable[[User], dict[str, str]]) -> Callable[[User], dict[str, str]]:
    """Authorization headers of a fresh login of `user`."""
    return lambda user: bearer(login(user)["access_token"])


def start_practice(client: FlaskClient, course: Course, headers: dict[str, str]) -> dict[str, Any]:
    """Enrol in `course` and start a session on its first skill; returns the session."""
    client.post(f"/courses/{course.id}/enrollments", headers=headers)
    response = client.post(
        "/sessions", json={"skill_id": str(course.skills[0].id)}, headers=headers
    )
    assert response.status_code == 201, response.get_json()
    session: dict[str, Any] = response.get_json()
    return session


@pytest.fixture
def make_course(db_session: Session, make_user: Callable[..., User]) -> Callable[..., Course]:
    """A course with one skill, owned by a fresh instructor unless an owner is given."""

    def make(owner: User | None = None, status: CourseStatus = CourseStatus.DRAFT) -> Course:
        course = Course(
            owner_id=(owner or make_user(Role.INSTRUCTOR)).id, title="Course", status=status
        )
        course.skills.append(Skill(name="Skill"))
        db_session.add(course)
        db_session.commit()
        return course

    return make


@pytest.fixture
def job_queue() -> str:
    """A Celery queue of this test's own: another run on the same Redis cannot take its tasks."""
    return f"test-{uuid.uuid4().hex}"


@pytest.fixture
def web(make_app: MakeApp, redis_url: str, job_queue: str) -> APIFlask:
    """The web side queueing jobs to Redis (for a real worker) instead of running them."""
    return make_app(jobs_eager=False, celery_broker_url=redis_url, job_queue=job_queue)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """An S3-compatible endpoint on loopback: moto's server, shared by the tests of a worker."""
    from moto.server import ThreadedMotoServer  # imported here: only S3 tests pay for it

    from tools.processes import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def aws_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point boto3 at `s3_endpoint` with dummy credentials, whatever the developer's AWS setup."""
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return s3_endpoint


@pytest.fixture
def security_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """caplog, recording the security log (app/auth/security_log.py) from WARNING up."""
    caplog.set_level(logging.WARNING, logger="app.security")
    return caplog


def security_lines(
    caplog: pytest.LogCaptureFixture, response: TestResponse
) -> list[tuple[str, str, str | None]]:
    """(event, reason, user_id) of each security log line written for `response`'s request."""
    request_id = response.headers["X-Request-ID"]
    return [
        (r.__dict__["event"], r.__dict__["reason"], r.__dict__["user_id"])
        for r in caplog.records
        if r.name == "app.security" and r.__dict__["request_id"] == request_id
    ]
