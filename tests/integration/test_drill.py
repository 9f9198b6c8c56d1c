"""The alert drill switch (app/observability/drill.py): inert unless DRILL_TOKEN is set, and then
a request fails with 500 only when it carries exactly that token."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from flask.testing import FlaskClient
from pydantic import SecretStr

from app.auth.models import User
from app.observability.drill import HEADER
from app.observability.metrics import HTTP_REQUESTS
from tests.conftest import MakeApp

DRILL_TOKEN = "drill-token-for-tests-0123456789"

MakeClient = Callable[..., FlaskClient]


@pytest.fixture
def make_client(make_app: MakeApp) -> MakeClient:
    return lambda **changes: make_app(**changes).test_client()


def requests_counted(route: str, status: str) -> float:
    value = HTTP_REQUESTS.labels("GET", route, status)._value.get()
    return float(value)


def test_the_drill_header_is_inert_without_a_drill_token(
    client: FlaskClient, make_user: Callable[..., User], as_user: Callable[[User], dict[str, str]]
) -> None:
    headers = as_user(make_user())
    response = client.get("/auth/me", headers={**headers, HEADER: DRILL_TOKEN})
    assert response.status_code == 200
    assert client.get("/healthz", headers={HEADER: ""}).status_code == 200


@pytest.mark.parametrize("configured", ["", "   "])
def test_a_blank_drill_token_leaves_the_switch_off(
    make_client: MakeClient, configured: str
) -> None:
    client = make_client(drill_token=SecretStr(configured))
    assert client.get("/healthz", headers={HEADER: configured}).status_code == 200


def test_with_a_drill_token_only_that_exact_token_fails_the_request(
    make_client: MakeClient,
) -> None:
    client = make_client(drill_token=SecretStr(DRILL_TOKEN))
    assert client.get("/healthz").status_code == 200
    assert client.get("/healthz", headers={HEADER: "wrong-token"}).status_code == 200
    assert client.get("/healthz", headers={HEADER: DRILL_TOKEN + "x"}).status_code == 200


def test_a_drill_request_answers_500_problem_json_and_is_counted_as_a_5xx(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(drill_token=SecretStr(DRILL_TOKEN))
    before = requests_counted("/healthz", "500")
    with caplog.at_level(logging.WARNING, logger="app.observability.drill"):
        response = client.get(
            "/healthz", headers={HEADER: DRILL_TOKEN, "X-Request-ID": "drill-0001"}
        )
    assert response.status_code == 500
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == 500
    assert body["type"].endswith("alert-drill")
    assert body["request_id"] == "drill-0001"
    assert requests_counted("/healthz", "500") == before + 1
    assert "alert drill: answering 500 on purpose" in caplog.text
    assert DRILL_TOKEN not in caplog.text


def test_a_hardened_environment_accepts_the_switch_but_logs_it(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="app.observability.drill"):
        client = make_client(
            app_env="production",
            jobs_eager=False,
            ratelimit_enabled=True,
            metrics_token=SecretStr("metrics-token-for-tests-0123456789abcdef"),
            drill_token=SecretStr(DRILL_TOKEN),
        )
    assert "alert drill switch is ON in production" in caplog.text
    assert DRILL_TOKEN not in caplog.text
    https = "https://localhost"
    assert client.get("/healthz", base_url=https).status_code == 200
    assert client.get("/healthz", base_url=https, headers={HEADER: DRILL_TOKEN}).status_code == 500
