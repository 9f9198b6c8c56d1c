"""Sentry for real: a local HTTP server is the DSN endpoint; a request that raises produces an
envelope there with the request id tag, the user as id and role, and none of the scrubbed
values (authorization header, token, cookie, password, e-mail address)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sentry_sdk
from apiflask import APIFlask
from flask import request
from sqlalchemy.engine import Connection

from app import __version__, create_app
from app.auth.decorators import authenticated
from app.auth.models import User
from app.config import Settings
from app.db import get_database
from app.observability import sentry
from tests.conftest import PASSWORD, bearer
from tests.sentry_fakes import Envelopes, serve_envelopes

EMAIL = "sentry.person@example.com"
COOKIE = "session=cookie-value-0123456789"
WAIT_SECONDS = 10


@pytest.fixture
def dsn_server() -> Iterator[Envelopes]:
    with serve_envelopes() as received:
        yield received


@pytest.fixture
def sentry_app(
    settings: Settings, dsn_server: Envelopes, db_connection: Connection
) -> Iterator[APIFlask]:
    """An app reporting to the fake endpoint, with a test-only route that raises."""
    app = create_app(settings.model_copy(update={"sentry_dsn": dsn_server.url}))
    database = get_database(app)
    if db_connection.in_transaction():
        database.bind_to_connection(db_connection)

    @app.post("/test-only/boom")
    @authenticated()
    def boom() -> None:
        body = request.get_json()
        password = body["password"]
        contact = body["email"]
        authorization = request.headers["Authorization"]  # noqa: F841 - captured as well
        logging.getLogger("app.test_only").warning("about to fail for %s", contact)
        raise RuntimeError(f"boom for {contact} with password={password}")

    try:
        yield app
    finally:
        sentry.shutdown()  # later tests (same worker) report nowhere
        database.bind_to_engine()
        database.engine.dispose()


def test_an_error_reaches_the_dsn_endpoint_scrubbed(
    sentry_app: APIFlask,
    dsn_server: Envelopes,
    make_user: Callable[..., User],
) -> None:
    user = make_user(email=EMAIL)
    client = sentry_app.test_client()
    tokens = client.post("/auth/login", json={"email": EMAIL, "password": PASSWORD}).get_json()
    secrets = {
        PASSWORD,
        EMAIL,
        tokens["access_token"],
        tokens["access_token"].rsplit(".", 1)[1],
        tokens["refresh_token"],
        COOKIE,
        "cookie-value-0123456789",
    }

    response = client.post(
        "/test-only/boom",
        json={"email": EMAIL, "password": PASSWORD, "refresh_token": tokens["refresh_token"]},
        headers={**bearer(tokens["access_token"]), "Cookie": COOKIE},
    )
    assert response.status_code == 500
    request_id = response.headers["X-Request-ID"]
    sentry_sdk.flush(timeout=WAIT_SECONDS)
    deadline = time.monotonic() + WAIT_SECONDS
    while not dsn_server.events() and time.monotonic() < deadline:
        time.sleep(0.05)

    (event,) = [e for e in dsn_server.events() if e.get("tags", {}).get("request_id")]
    assert {path for path, _body in dsn_server.bodies} == {"/api/1/envelope/"}
    assert event["tags"]["request_id"] == request_id
    options = sentry_sdk.get_client().options
    assert not options["send_default_pii"]
    assert not options["data_collection"]["user_info"]
    assert event["environment"] == "test"
    assert event["release"] == f"mastery@{__version__}"
    assert event["user"] == {"id": str(user.id), "role": "learner"}
    (exception,) = event["exception"]["values"]
    assert exception["type"] == "RuntimeError"
    assert "[email]" in exception["value"]
    headers = {name.lower() for name in event["request"]["headers"]}
    assert not headers & {"authorization", "cookie"}
    assert event["request"]["data"]["password"] == sentry.FILTERED
    assert event["request"]["data"]["refresh_token"] == sentry.FILTERED
    frames = event["exception"]["values"][0]["stacktrace"]["frames"]
    boom_vars = next(f["vars"] for f in frames if f.get("function") == "boom")
    assert boom_vars["password"] == sentry.FILTERED  # frame variables are scrubbed too
    assert "[Filtered]" in boom_vars["authorization"]
    crumbs = [c.get("message") or "" for c in event.get("breadcrumbs", {}).get("values", [])]
    assert any("about to fail for [email]" in c for c in crumbs), crumbs

    everything = dsn_server.text()
    leaked = [secret[:12] + "…" for secret in secrets if secret in everything]
    assert not leaked, f"the envelope carries {leaked}"


def test_the_suite_default_app_reports_nothing(app: APIFlask) -> None:
    assert app.extensions["mastery.settings"].sentry_dsn is None
    assert not sentry_sdk.get_client().is_active()


def test_no_dsn_leaves_sentry_off(settings: Settings) -> None:
    assert sentry.init_sentry(settings, __version__) is False
    assert not sentry_sdk.get_client().is_active()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            {"password": "p", "nested": [{"api_key": "k"}]},
            {"password": "[Filtered]", "nested": [{"api_key": "[Filtered]"}]},
        ),
        ("write to a.b@example.org now", "write to [email] now"),
        ("Authorization: Bearer abc.def.ghi", "Authorization: Bearer [Filtered]"),
        (
            "LoginIn(password='hunter22', remember=True)",
            "LoginIn(password='[Filtered]', remember=True)",
        ),
        (["Cookie", "x=1"], ["Cookie", "[Filtered]"]),
    ],
)
def test_the_scrubber(value: Any, expected: Any) -> None:
    assert sentry.scrub(value) == expected
