"""CORS: listed origins (exactly) may read responses, without credentials; `null` and every other
origin get no CORS header at all; preflights are cached and name what the API accepts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from apiflask import APIFlask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from app import create_app
from app.config import Settings
from app.db import get_database
from app.security.cors import ALLOW_HEADERS, MAX_AGE, allowed_origins
from tests.conftest import BindApp

ALLOWED = "https://app.example"
OTHER_ALLOWED = "http://localhost:5173"


@pytest.fixture(scope="module")
def cors_session_app(settings: Settings) -> Iterator[APIFlask]:
    # 'null' and '*' are configured on purpose: they must be ignored, not honoured.
    app = create_app(
        settings.model_copy(update={"cors_origins": [ALLOWED, "null", "*", OTHER_ALLOWED]})
    )
    yield app
    get_database(app).engine.dispose()


@pytest.fixture
def cors_client(cors_session_app: APIFlask, bind_app: BindApp) -> FlaskClient:
    return bind_app(cors_session_app).test_client()


def cors_headers(response: TestResponse) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.lower().startswith("access-control-")}


@pytest.mark.parametrize("origin", [ALLOWED, OTHER_ALLOWED, "HTTPS://APP.EXAMPLE"])
def test_a_listed_origin_gets_its_own_origin_back_and_no_credentials(
    cors_client: FlaskClient, origin: str
) -> None:
    response = cors_client.get("/healthz", headers={"Origin": origin})

    assert response.headers["Access-Control-Allow-Origin"] == origin  # never "*"
    assert "Access-Control-Allow-Credentials" not in response.headers
    exposed = {h.strip() for h in response.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"X-Request-ID", "Retry-After", "RateLimit-Remaining", "Location"} <= exposed
    assert "Origin" in response.headers["Vary"]


def test_error_responses_are_readable_by_a_listed_origin(cors_client: FlaskClient) -> None:
    response = cors_client.get("/auth/me", headers={"Origin": ALLOWED})

    assert response.status_code == 401
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED


@pytest.mark.parametrize(
    "origin",
    [
        "null",
        "https://evil.example",
        "https://app.example.evil.example",  # a prefix of a listed origin is not that origin
        "https://app.example:8443",
        "http://app.example",
    ],
)
def test_null_and_unlisted_origins_get_no_cors_headers(
    cors_client: FlaskClient, origin: str
) -> None:
    simple = cors_client.get("/healthz", headers={"Origin": origin})
    preflight = cors_client.options(
        "/courses",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )

    assert cors_headers(simple) == {}
    assert cors_headers(preflight) == {}


def test_a_preflight_is_cached_and_names_the_methods_and_headers(cors_client: FlaskClient) -> None:
    response = cors_client.options(
        "/courses",
        headers={
            "Origin": ALLOWED,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, idempotency-key, "
            "x-request-id, x-not-allowed",
        },
    )

    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert response.headers["Access-Control-Max-Age"] == str(MAX_AGE)
    methods = {m.strip() for m in response.headers["Access-Control-Allow-Methods"].split(",")}
    assert {"GET", "POST", "PATCH", "DELETE"} <= methods
    allowed = {
        h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")
    }
    assert allowed == {h.lower() for h in ALLOW_HEADERS}
    assert "Access-Control-Allow-Credentials" not in response.headers


def test_a_preflight_for_a_method_the_api_does_not_use_is_not_approved(
    cors_client: FlaskClient,
) -> None:
    response = cors_client.options(
        "/courses", headers={"Origin": ALLOWED, "Access-Control-Request-Method": "PUT"}
    )

    assert "Access-Control-Allow-Methods" not in response.headers


def test_without_an_allow_list_no_origin_gets_cors_headers(client: FlaskClient) -> None:
    response = client.get("/healthz", headers={"Origin": ALLOWED})

    assert cors_headers(response) == {}


def test_entries_that_are_not_exact_origins_are_dropped_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    configured = ["null", "*", "https://a.example/", "https://b.example/app", "https://*.c.example"]

    assert allowed_origins(configured) == ["https://a.example"]
    warned = " ".join(record.getMessage() for record in caplog.records)
    for entry in ("'null'", "'*'", "https://b.example/app", "https://*.c.example"):
        assert entry in warned
