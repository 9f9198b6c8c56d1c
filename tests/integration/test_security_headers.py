"""HTTPS and security headers in the production configuration: every response carries HSTS,
nosniff, a deny-all CSP (relaxed only for /docs), no-referrer and frame denial, errors included;
plain HTTP is redirected with 308 (or refused), and only one proxy hop is believed."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from apiflask import APIFlask
from flask import request, session
from flask.testing import FlaskClient
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app import create_app
from app.auth import tokens
from app.auth.models import Role, User
from app.config import Settings
from app.content.models import Course
from app.db import get_database, get_session
from app.security.headers import API_CSP, HSTS
from tests.conftest import BindApp, MakeApp

HTTPS = {"X-Forwarded-Proto": "https"}  # what the one trusted proxy sets after TLS
CRASH_ROUTE = "/test-only/crash"
WHOAMI_ROUTE = "/test-only/whoami"

EXPECTED = {
    "Strict-Transport-Security": HSTS,
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": API_CSP,
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-store",
}


# The test profile made production-like: what `hardened` and `make_app(**HARDENED)` run.
HARDENED: dict[str, Any] = {
    "app_env": "production",
    "jobs_eager": False,
    "ratelimit_enabled": True,
    "metrics_token": SecretStr("m" * 40),
}


def build_hardened(settings: Settings) -> APIFlask:
    return create_app(settings.model_copy(update=HARDENED))


def _crash() -> Any:
    raise RuntimeError("internal detail that must not leak")


def _whoami() -> Any:
    return {"remote_addr": request.remote_addr}


@pytest.fixture(scope="module")
def hardened_session_app(settings: Settings) -> Iterator[APIFlask]:
    app = build_hardened(settings)
    # A test-only route on this private instance (never on the product's route table).
    app.add_url_rule(CRASH_ROUTE, "test_only_crash", _crash)
    app.add_url_rule(WHOAMI_ROUTE, "test_only_whoami", _whoami)
    yield app
    get_database(app).engine.dispose()


@pytest.fixture
def hardened(hardened_session_app: APIFlask, bind_app: BindApp) -> APIFlask:
    return bind_app(hardened_session_app)


@pytest.fixture
def https_client(hardened: APIFlask) -> FlaskClient:
    client = hardened.test_client()
    client.environ_base["HTTP_X_FORWARDED_PROTO"] = "https"
    return client


@pytest.fixture
def instructor_headers(hardened: APIFlask, make_user: Callable[..., User]) -> dict[str, str]:
    """A bearer token minted directly (no login request, so no login rate limit is spent)."""
    user = make_user(Role.INSTRUCTOR)
    with hardened.app_context():
        session = get_session()
        pair = tokens.start_family(session, user)
        session.commit()
    return {"Authorization": f"Bearer {pair.access_token}"}


def assert_security_headers(response: Any) -> None:
    for name, value in EXPECTED.items():
        assert response.headers.get(name) == value, name


def course_count(db_session: Session) -> int:
    return db_session.scalar(select(func.count()).select_from(Course)) or 0


# Each case: (status, send(client, instructor headers)).
CASES: list[tuple[int, Callable[[FlaskClient, dict[str, str]], Any]]] = [
    (200, lambda c, h: c.get("/auth/me", headers=h)),
    (201, lambda c, h: c.post("/courses", json={"title": "Secure"}, headers=h)),
    (401, lambda c, h: c.get("/auth/me")),
    (404, lambda c, h: c.get("/no/such/route")),
    (405, lambda c, h: c.put("/courses", json={}, headers=h)),
    (
        413,
        lambda c, h: c.post(
            "/courses", data="[" + "0," * 600_000 + "0]", content_type="application/json", headers=h
        ),
    ),
    (415, lambda c, h: c.post("/courses", data="title=x", content_type="text/plain", headers=h)),
    (422, lambda c, h: c.post("/courses", json={}, headers=h)),
    (500, lambda c, h: c.get(CRASH_ROUTE)),
]


@pytest.mark.parametrize(("status", "send"), CASES, ids=[str(status) for status, _ in CASES])
def test_every_response_carries_the_security_headers_errors_included(
    https_client: FlaskClient,
    instructor_headers: dict[str, str],
    status: int,
    send: Callable[[FlaskClient, dict[str, str]], Any],
) -> None:
    response = send(https_client, instructor_headers)

    assert response.status_code == status
    assert_security_headers(response)
    if status >= 400:
        assert response.mimetype == "application/problem+json"
        assert "internal detail" not in response.get_data(as_text=True)


def test_no_cookie_session_is_read_or_written(
    https_client: FlaskClient, instructor_headers: dict[str, str]
) -> None:
    """Bearer tokens only: a session cookie sent along is ignored and none is ever set."""
    https_client.set_cookie("session", "eyJ1c2VyIjoiYWRtaW4ifQ.forged.signature")

    with https_client:
        response = https_client.get("/auth/me", headers=instructor_headers)
        assert session.__class__.__name__ == "NullSession"
        assert not session

    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers


def test_plain_http_is_redirected_with_308_to_the_same_url_over_https(
    hardened: APIFlask, db_session: Session
) -> None:
    before = course_count(db_session)
    client = hardened.test_client()

    got = client.get("/courses?limit=5&status=published")
    posted = client.post("/courses", json={"title": "over http"})

    assert got.status_code == 308
    assert got.headers["Location"] == "https://localhost/courses?limit=5&status=published"
    assert posted.status_code == 308  # 308, unlike 301/302, keeps the method and body
    assert posted.headers["Location"] == "https://localhost/courses"
    assert course_count(db_session) == before  # nothing ran over plain HTTP
    assert_security_headers(got)


def test_an_explicit_port_80_is_dropped_from_the_redirect(hardened: APIFlask) -> None:
    response = hardened.test_client().get("/openapi.json", base_url="http://api.example:80")

    assert response.headers["Location"] == "https://api.example/openapi.json"


def test_https_reported_by_the_one_trusted_proxy_is_not_redirected(hardened: APIFlask) -> None:
    response = hardened.test_client().get("/auth/me", headers=HTTPS)

    assert response.status_code == 401  # reached the view: no redirect


def test_https_claimed_by_the_client_behind_the_proxy_is_not_believed(hardened: APIFlask) -> None:
    # The client sent "https"; the trusted proxy appended what it really saw.
    response = hardened.test_client().get("/auth/me", headers={"X-Forwarded-Proto": "https, http"})

    assert response.status_code == 308


def test_the_client_address_comes_from_the_trusted_hop_only(https_client: FlaskClient) -> None:
    # The client forged 6.6.6.6; the trusted proxy appended the address it saw.
    response = https_client.get(WHOAMI_ROUTE, headers={"X-Forwarded-For": "6.6.6.6, 203.0.113.7"})

    assert response.get_json()["remote_addr"] == "203.0.113.7"


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_health_probes_are_answered_over_plain_http(hardened: APIFlask, path: str) -> None:
    response = hardened.test_client().get(path)

    assert response.status_code == 200
    assert_security_headers(response)


def test_reject_mode_refuses_plain_http_with_a_403_problem(make_app: MakeApp) -> None:
    client = make_app(**HARDENED, https_mode="reject").test_client()

    refused = client.get("/auth/me")
    served = client.get("/auth/me", headers=HTTPS)
    probe = client.get("/healthz")

    assert refused.status_code == 403
    assert refused.mimetype == "application/problem+json"
    assert refused.get_json()["type"].endswith("/https-required")
    assert "Location" not in refused.headers
    assert_security_headers(refused)
    assert served.status_code == 401
    assert probe.status_code == 200


def _inline_hash(tag: str, html: str) -> str:
    (block,) = re.findall(rf"<{tag}>(.*?)</{tag}>", html, re.DOTALL)
    return "'sha256-" + base64.b64encode(hashlib.sha256(block.encode()).digest()).decode() + "'"


def test_docs_get_a_policy_relaxed_only_as_far_as_swagger_ui_needs(
    https_client: FlaskClient,
) -> None:
    page = https_client.get("/docs")
    html = page.get_data(as_text=True)
    policy = page.headers["Content-Security-Policy"]
    directives = {name: value for name, _, value in (p.partition(" ") for p in policy.split("; "))}

    assert page.status_code == 200
    assert directives == {
        "default-src": "'none'",
        "script-src": f"'self' {_inline_hash('script', html)}",
        "style-src": f"'self' {_inline_hash('style', html)}",
        "img-src": "'self' data:",
        "connect-src": "'self'",
        "base-uri": "'none'",
        "form-action": "'none'",
        "frame-ancestors": "'none'",
    }
    assert "unsafe" not in page.headers["Content-Security-Policy"]
    assert page.headers["Strict-Transport-Security"] == HSTS
    assert page.headers["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize("path", ["/openapi.json", "/docs/static/swagger-ui.css", "/healthz"])
def test_everything_but_the_docs_page_gets_the_deny_all_policy(
    https_client: FlaskClient, path: str
) -> None:
    with https_client.get(path) as response:
        assert response.status_code == 200
        assert response.headers["Content-Security-Policy"] == API_CSP


def test_development_sends_the_headers_but_not_hsts(client: FlaskClient) -> None:
    response = client.get("/no/such/route")

    assert "Strict-Transport-Security" not in response.headers
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Security-Policy"] == API_CSP
    assert response.headers["X-Frame-Options"] == "DENY"


def test_development_serves_plain_http(client: FlaskClient) -> None:
    assert client.get("/auth/me").status_code == 401
