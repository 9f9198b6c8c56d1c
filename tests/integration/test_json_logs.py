"""The JSON log of a request: one access event per request, and the request's id on every line
it caused — the generation job it ran (eager), the AI usage, the provider's retry warnings.

Lines are read through the same formatter the process's stderr handler uses
(`app.observability.logging.json_formatter`); a subprocess test checks that the real stderr
output is one JSON object per line, stdlib and library loggers included.
"""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from apiflask import APIFlask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from app.auth.models import Role, User
from app.content.models import Course
from app.observability.logging import LEADING_FIELDS, json_formatter, route_template
from tests.ai_fakes import openai_providers
from tests.conftest import bearer, start_practice
from tests.integration.test_ai_grading import (
    AI_BASE_URL,
    ANSWER,
    grade,
    short_answer_course,
)

ROOT = Path(__file__).resolve().parents[2]


class JsonLog:
    """The JSON lines logged while the fixture is active."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines()]

    def named(self, prefix: str) -> list[dict[str, Any]]:
        return [e for e in self.events() if str(e["event"]).startswith(prefix)]

    def access(self, request_id: str) -> dict[str, Any]:
        (event,) = [e for e in self.named("http.request") if e["request_id"] == request_id]
        return event


@pytest.fixture
def json_log(caplog: pytest.LogCaptureFixture) -> Iterator[JsonLog]:
    log = JsonLog()
    handler = logging.StreamHandler(log.stream)
    handler.setFormatter(json_formatter())
    caplog.set_level(logging.INFO)  # restored after the test
    root = logging.getLogger()
    root.addHandler(handler)
    yield log
    root.removeHandler(handler)


@pytest.fixture
def openai_provider(app: APIFlask) -> Iterator[respx.MockRouter]:
    """The app's providers as `AI_PROVIDER=openai`, faked at the HTTP layer, for one test."""
    with (
        httpx.Client() as http,
        respx.mock(base_url=AI_BASE_URL, assert_all_called=True, assert_all_mocked=True) as router,
        openai_providers(app, "sk-json-logs-test-key", client=http),
    ):
        yield router


def assert_no_secrets(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text, f"the log contains {secret[:12]}…"


def test_a_generation_request_and_the_job_it_ran_log_the_same_request_id(
    client: FlaskClient,
    make_user: Callable[..., User],
    make_course: Callable[..., Course],
    login: Callable[[User], dict[str, str]],
    json_log: JsonLog,
) -> None:
    owner = make_user(Role.INSTRUCTOR)
    course = make_course(owner)
    tokens = login(owner)
    skill_id = course.skills[0].id

    response = client.post(
        f"/skills/{skill_id}/generation-jobs",
        json={"count": 2},
        headers=bearer(tokens["access_token"]),
    )

    assert response.status_code == 202, response.get_json()
    assert response.get_json()["status"] == "succeeded"  # eager: it ran inside the request
    job_id = response.get_json()["id"]
    request_id = response.headers["X-Request-ID"]
    access = json_log.access(request_id)
    assert access["method"] == "POST"
    assert access["route"] == "/skills/{skill_id}/generation-jobs"
    assert access["status"] == 202
    assert isinstance(access["duration_ms"], float)
    assert access["duration_ms"] >= 0
    assert (access["user_id"], access["role"]) == (str(owner.id), "instructor")
    assert access["logger"] == "app.access"
    assert access["level"] == "info"
    assert access["timestamp"].endswith("Z")

    caused = [e for e in json_log.events() if job_id in json.dumps(e)]
    names = {str(e["event"]).split(" ", 1)[0] for e in caused}
    assert {"job.running", "job.succeeded", "ai.usage"} <= names, names
    assert {e["request_id"] for e in caused} == {request_id}
    (usage,) = [e for e in caused if e["event"] == "ai.usage"]
    assert (usage["provider"], usage["job_id"]) == ("offline", job_id)

    assert_no_secrets(
        json_log.text, owner.email, tokens["access_token"], tokens["refresh_token"], "Bearer"
    )
    assert str(skill_id) not in json.dumps(access), "the raw path is logged, not the template"


def test_an_ai_graded_attempt_logs_usage_and_retries_with_the_request_id(
    client: FlaskClient,
    make_user: Callable[..., User],
    make_course: Callable[..., Course],
    login: Callable[[User], dict[str, str]],
    db_session: Session,
    openai_provider: respx.MockRouter,
    json_log: JsonLog,
) -> None:
    learner = make_user(Role.LEARNER)
    tokens = login(learner)
    headers = bearer(tokens["access_token"])
    course = short_answer_course(make_course, db_session)
    practice = start_practice(client, course, headers)
    item = client.get(f"/sessions/{practice['id']}/next", headers=headers).get_json()["item"]
    openai_provider.post("/chat/completions").mock(
        side_effect=[httpx.Response(503), grade(0.9, True)]
    )
    offered = "attempt-request-0001"

    response = client.post(
        f"/sessions/{practice['id']}/attempts",
        json={"item_id": item["id"], "response": ANSWER},
        headers={**headers, "X-Request-ID": offered},
    )

    assert response.status_code == 201, response.get_json()
    assert response.get_json()["graded_by"] == "openai"
    assert response.headers["X-Request-ID"] == offered
    access = json_log.access(offered)
    assert (access["method"], access["route"], access["status"]) == (
        "POST",
        "/sessions/{session_id}/attempts",
        201,
    )
    assert (access["user_id"], access["role"]) == (str(learner.id), "learner")
    (retry,) = json_log.named("ai.retry")
    assert retry["request_id"] == offered
    assert retry["level"] == "warning"
    (usage,) = json_log.named("ai.usage")
    assert usage["request_id"] == offered
    assert (usage["provider"], usage["item_id"], usage["session_id"]) == (
        "openai",
        item["id"],
        practice["id"],
    )
    assert usage["prompt_tokens"] == 210
    assert_no_secrets(
        json_log.text,
        learner.email,
        tokens["access_token"],
        "sk-json-logs-test-key",
        ANSWER,
    )


def test_unauthenticated_and_unmatched_requests_have_access_events_too(
    client: FlaskClient, json_log: JsonLog
) -> None:
    missing = client.get("/no/such/route?email=someone@example.com&token=abc")
    anonymous = client.get("/auth/me")

    unmatched = json_log.access(missing.headers["X-Request-ID"])
    assert (unmatched["route"], unmatched["status"]) == ("unmatched", 404)
    assert "user_id" not in unmatched
    rejected = json_log.access(anonymous.headers["X-Request-ID"])
    assert (rejected["route"], rejected["status"]) == ("/auth/me", 401)
    assert "someone@example.com" not in json_log.text
    assert "token=abc" not in json_log.text


def test_route_templates_name_arguments_without_converters() -> None:
    assert route_template("/sessions/<uuid:session_id>/next") == "/sessions/{session_id}/next"
    assert route_template("/jobs/<job_id>") == "/jobs/{job_id}"
    assert route_template(None) == "unmatched"


SCRIPT = textwrap.dedent("""
    import logging

    import structlog

    from app import create_app
    from app.config import Settings

    app = create_app(
        Settings(_env_file=None, app_env="test", database_url="sqlite://", log_level="DEBUG")
    )
    create_app(Settings(_env_file=None, app_env="test", database_url="sqlite://"))  # idempotent
    client = app.test_client()
    client.get("/healthz", headers={"X-Request-ID": "subprocess-request-1"})
    client.get("/nowhere")
    logging.getLogger("celery.worker").info("celery says %s", "hello")
    logging.getLogger("werkzeug").warning("multi\\nline message")
    logging.getLogger("app.security").warning(
        "auth.x reason=r", extra={"event": "auth.x", "reason": "r"}
    )
    structlog.get_logger("app.native").info("native.event", answer=42)
    logging.getLogger("app.debugging").debug("debug.visible")  # LOG_LEVEL=DEBUG of the first app
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("app.crash").exception("crash.logged")
    """)


def test_every_line_on_stderr_is_one_json_event(tmp_path: Path) -> None:
    result = subprocess.run(  # a fixed command line
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "", "PYTHONPATH": str(ROOT), "STORAGE_URL": f"file://{tmp_path}"},
        check=False,
    )

    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    events = [json.loads(line) for line in lines]  # every line parses
    assert all(list(e)[: len(LEADING_FIELDS)] == list(LEADING_FIELDS) for e in events)
    by_event = {e["event"]: e for e in events}
    assert by_event["celery says hello"]["logger"] == "celery.worker"
    assert by_event["multi\nline message"]["level"] == "warning"
    assert by_event["auth.x"]["reason"] == "r"
    assert by_event["native.event"]["answer"] == 42
    assert by_event["debug.visible"]["level"] == "debug"
    assert "ValueError: boom" in by_event["crash.logged"]["exception"]
    access = [e for e in events if e["event"] == "http.request"]
    assert next(e["request_id"] for e in access) == "subprocess-request-1"
    assert len(access) == 2, "one access event per request, one handler per process"
