"""Generic HTTP errors: each a problem+json with a request id, each leaving the database as it was."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from app.auth.models import User
from app.models import Base
from tests.conftest import bearer


def row_counts(db_session: Session) -> dict[str, int]:
    return {
        table.name: db_session.scalar(select(func.count()).select_from(table)) or 0
        for table in Base.metadata.sorted_tables
    }


VALID_REGISTRATION = {
    "email": "eve@example.com",
    "password": "a long enough passphrase",
    "display_name": "Eve",
}


@pytest.mark.parametrize(
    ("status", "send"),
    [
        (
            400,
            lambda c: c.post("/auth/register", data='{"email": ', content_type="application/json"),
        ),
        (
            415,
            lambda c: c.post(
                "/auth/register",
                data="email=eve@example.com",
                content_type="application/x-www-form-urlencoded",
            ),
        ),
        (
            415,
            lambda c: c.post(
                "/auth/register", data=str(VALID_REGISTRATION), content_type="text/plain"
            ),
        ),
        (
            413,
            lambda c: c.post(
                "/auth/register", data="[" + "0," * 600_000 + "0]", content_type="application/json"
            ),
        ),
        (404, lambda c: c.get("/no/such/route")),
        (405, lambda c: c.delete("/auth/register")),
        (422, lambda c: c.post("/auth/register", json=[VALID_REGISTRATION])),
        (422, lambda c: c.post("/auth/register", json={})),
    ],
    ids=[
        "malformed-json",
        "form-body",
        "text-body",
        "oversized",
        "unknown-route",
        "wrong-method",
        "array-body",
        "empty-object",
    ],
)
def test_generic_errors_are_problems_and_change_nothing(
    client: FlaskClient, db_session: Session, status: int, send: Callable[[FlaskClient], TestResponse]
) -> None:
    before = row_counts(db_session)

    response = send(client)

    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["status"] == status
    assert problem["title"]
    assert problem["detail"]
    assert problem["type"]
    assert problem["request_id"] == response.headers["X-Request-ID"]
    assert row_counts(db_session) == before


def test_wrong_method_names_the_allowed_ones(client: FlaskClient) -> None:
    response = client.delete("/auth/register")

    assert "POST" in response.headers["Allow"]


def test_malformed_json_detail_says_so(client: FlaskClient) -> None:
    response = client.post("/auth/login", data="{", content_type="application/json")

    assert response.get_json()["detail"] == "The request body is not valid JSON."


def test_a_crash_is_a_500_problem_without_a_stack_trace(
    client: FlaskClient,
    make_user: Callable[..., User],
    login: Callable[[User], dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    tokens = login(make_user())

    def explode(*_args: object) -> None:
        raise RuntimeError("secret internals: /srv/app/db.py line 42")

    monkeypatch.setattr("app.auth.routes.current", explode)
    response = client.get("/auth/me", headers=bearer(tokens["access_token"]))

    assert response.status_code == 500
    assert response.mimetype == "application/problem+json"
    text = response.get_data(as_text=True)
    assert "secret internals" not in text
    assert "Traceback" not in text
    logged = [r for r in caplog.records if r.getMessage() == "unhandled error"]
    assert len(logged) == 1
    assert getattr(logged[0], "request_id", None) == response.get_json()["request_id"]
    assert logged[0].exc_info is not None  # the trace goes to the log, never to the client


def test_a_well_formed_request_id_is_echoed(client: FlaskClient) -> None:
    response = client.get("/no/such/route", headers={"X-Request-ID": "trace-1234abcd"})

    assert response.headers["X-Request-ID"] == "trace-1234abcd"
    assert response.get_json()["request_id"] == "trace-1234abcd"


@pytest.mark.parametrize(
    "offered", ["short", "has spaces in it", "x" * 200, "<script>alert(1)</script>"]
)
def test_a_malformed_request_id_is_replaced(client: FlaskClient, offered: str) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": offered})

    assert response.headers["X-Request-ID"] != offered
    assert len(response.headers["X-Request-ID"]) == 32
