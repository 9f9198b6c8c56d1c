"""No secret in the logs: every record of a full flow — registration, login, refresh, a 403, a
failed login, token rejections, a password change, logout, refresh reuse and an AI call made
with an API key — is searched for passwords, tokens, the API key and SECRET_KEY; and the
security failures are logged at WARNING with their reason and the request id."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterator

import httpx
import pytest
import respx
from apiflask import APIFlask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from app.auth.models import User
from app.content.models import Course
from tests.ai_fakes import openai_providers
from tests.conftest import TEST_SECRET, bearer, start_practice
from tests.integration.test_ai_grading import (
    AI_BASE_URL,
    ANSWER,
    grade,
    short_answer_course,
)

PASSWORD = "lantern orchard quietly 4 gulls"
NEW_PASSWORD = "marble heron dusk ladder 71"
WRONG_PASSWORD = "definitely not the password"
API_KEY = "sk-test-hygiene-0123456789abcdefghijklmnop"
EMAIL = "hygiene.tester@example.com"


@pytest.fixture
def ai_with_key(app: APIFlask) -> Iterator[respx.MockRouter]:
    """The app's AI providers as `AI_PROVIDER=openai` with an API key, faked at the HTTP layer."""
    with (
        httpx.Client() as http,
        respx.mock(base_url=AI_BASE_URL, assert_all_called=True, assert_all_mocked=True) as router,
        openai_providers(app, API_KEY, client=http),
    ):
        yield router


def everything_in(record: logging.LogRecord) -> str:
    """Every text a handler or formatter could emit for `record`: message, raw msg and args,
    exception and stack text, and every extra attribute."""
    parts = [record.getMessage(), str(record.msg), repr(record.args)]
    if record.exc_info and record.exc_info[1] is not None:
        parts.append("".join(traceback.format_exception(*record.exc_info)))
    parts.extend(str(value) for value in (record.exc_text, record.stack_info) if value)
    parts.extend(repr(value) for value in vars(record).values())
    return "\n".join(parts)


def test_a_full_flow_logs_no_password_token_key_or_secret(
    client: FlaskClient,
    make_user: Callable[..., User],
    login: Callable[[User], dict[str, str]],
    make_course: Callable[..., Course],
    db_session: Session,
    ai_with_key: respx.MockRouter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # the root logger: every propagating record
    secrets: set[str] = {PASSWORD, NEW_PASSWORD, WRONG_PASSWORD, API_KEY, TEST_SECRET}

    def remember(pair: dict[str, str]) -> dict[str, str]:
        for token in (pair["access_token"], pair["refresh_token"]):
            secrets.update({token, token.rsplit(".", 1)[1]})  # the whole token and its signature
        return pair

    def log_in(password: str) -> TestResponse:
        return client.post("/auth/login", json={"email": EMAIL, "password": password})

    registered = client.post(
        "/auth/register", json={"email": EMAIL, "password": PASSWORD, "display_name": "Hy"}
    )
    assert registered.status_code == 201
    first = remember(log_in(PASSWORD).get_json())
    rotated = remember(
        client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]}).get_json()
    )
    headers = bearer(rotated["access_token"])
    assert client.get("/auth/me", headers=headers).status_code == 200
    assert client.get("/admin/users", headers=headers).status_code == 403
    assert log_in(WRONG_PASSWORD).status_code == 401

    course = short_answer_course(make_course, db_session)
    ai_with_key.post("/chat/completions").mock(return_value=grade(0.9, True))
    practice = start_practice(client, course, headers)
    item = client.get(f"/sessions/{practice['id']}/next", headers=headers).get_json()["item"]
    graded = client.post(
        f"/sessions/{practice['id']}/attempts",
        json={"item_id": item["id"], "response": ANSWER},
        headers=headers,
    )
    assert graded.get_json()["graded_by"] == "openai"
    assert ai_with_key.calls.last.request.headers["authorization"] == f"Bearer {API_KEY}"

    changed = client.post(
        "/auth/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=headers,
    )
    assert changed.status_code == 204
    assert client.get("/auth/me", headers=headers).status_code == 401  # before the cutoff
    second = remember(log_in(NEW_PASSWORD).get_json())
    assert (
        client.post(
            "/auth/logout",
            json={"refresh_token": second["refresh_token"]},
            headers=bearer(second["access_token"]),
        ).status_code
        == 204
    )
    assert client.get("/auth/me", headers=bearer(second["access_token"])).status_code == 401
    reused = client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reused.status_code == 401
    assert client.get("/auth/me", headers=bearer("garbage.not.jwt")).status_code == 401
    assert client.get("/auth/me").status_code == 401

    assert caplog.records, "nothing was captured: the test would prove nothing"
    for record in caplog.records:
        text = everything_in(record)
        leaked = [secret[:12] + "…" for secret in secrets if secret in text]
        assert not leaked, f"{record.name}: {record.getMessage()[:200]} leaks {leaked}"
        assert EMAIL not in text, f"{record.name} logs the e-mail address"


def test_security_failures_are_warnings_with_reason_and_request_id(
    client: FlaskClient,
    make_user: Callable[..., User],
    login: Callable[[User], dict[str, str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    learner = make_user()
    caplog.set_level(logging.DEBUG)

    forbidden = client.get("/admin/users", headers=bearer(login(learner)["access_token"]))
    bad_login = client.post("/auth/login", json={"email": learner.email, "password": "x" * 12})
    unknown = client.post("/auth/login", json={"email": "ghost@example.com", "password": "x" * 12})
    missing = client.get("/auth/me")

    security = [r for r in caplog.records if r.name == "app.security"]
    by_request = {getattr(r, "request_id", None): r for r in security}
    for response, event, reason, user_id in [
        (forbidden, "authz.forbidden", "forbidden", str(learner.id)),
        (bad_login, "auth.login_failed", "bad_password", str(learner.id)),
        (unknown, "auth.login_failed", "unknown_email", None),
        (missing, "auth.token_rejected", "missing", None),
    ]:
        record = by_request[response.headers["X-Request-ID"]]
        assert record.levelno == logging.WARNING
        assert (record.__dict__["event"], record.__dict__["reason"]) == (event, reason)
        assert record.__dict__["user_id"] == user_id
        assert response.headers["X-Request-ID"] in record.getMessage()
    assert not any("@" in r.getMessage() for r in security), "an e-mail address is logged"
