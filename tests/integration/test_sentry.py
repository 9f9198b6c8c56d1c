"""Sentry for real: a local HTTP server is the DSN endpoint; a request that raises produces an
envelope there with the request id tag, the user as id and role, and none of the scrubbed
values (authorization header, token, cookie, password, e-mail address)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
import sentry_sdk
from apiflask import APIFlask
from flask import request
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app import __version__
from app.auth import keys
from app.auth.decorators import authenticated
from app.auth.models import SigningKey, User
from app.config import Settings
from app.observability import sentry
from tests.conftest import PASSWORD, MakeApp, bearer
from tests.integration.test_auth_tokens import active_key
from tests.sentry_fakes import Envelopes, serve_envelopes
from tools.processes import wait_until

EMAIL = "sentry.person@example.com"
COOKIE = "session=cookie-value-0123456789"
WAIT_SECONDS = 10


@pytest.fixture
def dsn_server() -> Iterator[Envelopes]:
    with serve_envelopes() as received:
        yield received


@pytest.fixture
def sentry_app(make_app: MakeApp, dsn_server: Envelopes) -> Iterator[APIFlask]:
    """An app reporting to the fake endpoint, with a test-only route that raises."""
    app = make_app(sentry_dsn=dsn_server.url)

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
    wait_until("the event at the DSN endpoint", dsn_server.events, WAIT_SECONDS, interval=0.05)

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
    assert any(f.get("function") == "boom" for f in frames)
    assert not [f["function"] for f in frames if "vars" in f]  # no local variables at all
    crumbs = [c.get("message") or "" for c in event.get("breadcrumbs", {}).get("values", [])]
    assert any("about to fail for [email]" in c for c in crumbs), crumbs

    everything = dsn_server.text()
    leaked = [secret[:12] + "…" for secret in secrets if secret in everything]
    assert not leaked, f"the envelope carries {leaked}"


def test_a_database_error_while_a_signing_key_is_in_hand_sends_no_key_material(
    sentry_app: APIFlask,
    dsn_server: Envelopes,
    make_user: Callable[..., User],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 17, finding 1: `verification_secret` holds the decrypted key of a cached `kid`
    while it reads the key row again; a database error there is logged with its traceback and
    becomes a Sentry event. Neither the frames nor anything else in it may carry the key."""
    client = sentry_app.test_client()
    tokens = client.post(
        "/auth/login", json={"email": make_user().email, "password": PASSWORD}
    ).get_json()
    assert client.get("/auth/me", headers=bearer(tokens["access_token"])).status_code == 200
    _kid, secret = active_key(sentry_app)
    assert secret not in repr(sentry_app.extensions["mastery.keyring"].__dict__)

    original_get = Session.get

    def failing_get(self: Session, entity: Any, *args: Any, **kwargs: Any) -> Any:
        if entity is SigningKey:
            lost = psycopg.OperationalError("the connection to the server was lost")
            raise OperationalError("SELECT signing_keys", {}, lost, connection_invalidated=True)
        return original_get(self, entity, *args, **kwargs)

    monkeypatch.setattr(keys, "CACHE_SECONDS", 0.0)  # the cached key is re-read: in hand
    monkeypatch.setattr(Session, "get", failing_get)
    response = client.get("/auth/me", headers=bearer(tokens["access_token"]))

    assert response.status_code == 503
    sentry_sdk.flush(timeout=WAIT_SECONDS)
    wait_until("the event at the DSN endpoint", dsn_server.events, WAIT_SECONDS, interval=0.05)
    (event,) = dsn_server.events()
    assert event["exception"]["values"][-1]["type"] == "OperationalError"
    frames = event["exception"]["values"][-1]["stacktrace"]["frames"]
    assert "verification_secret" in [f.get("function") for f in frames]
    assert secret not in dsn_server.text()


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
