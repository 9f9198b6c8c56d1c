"""CORS as the application answers it, in the unit tier: an app of the unit profile (its
database is never queried) with an allow-list. Exactly the listed origins, in any case, get
their own origin back and no credentials; preflights are cached and approve only the API's
methods and request headers; every response varies on `Origin`, once.

tests/integration/test_cors.py checks the policy on the Postgres-backed app; these build their
app inside each test, so they are fast and mutation testing maps `init_app` to them (an app
built once per module is traced to its first test only).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from apiflask import APIFlask
from werkzeug.test import TestResponse

from app import create_app
from app.config import Settings
from app.db import get_database
from app.security.cors import ALLOW_HEADERS, EXPOSE_HEADERS, MAX_AGE, METHODS, allowed_origins

LISTED = "https://app.example"
OTHER_LISTED = "http://localhost:5173"
UNLISTED = [
    "null",
    "https://evil.example",
    "https://app.example.evil.example",  # a listed origin as a prefix is not that origin
    "https://app.example:8443",
    "http://app.example",
]


@pytest.fixture
def cors_app(unit_settings: Settings) -> Iterator[APIFlask]:
    # 'null' and '*' are configured on purpose: they must be dropped, not honoured.
    settings = unit_settings.model_copy(
        update={"cors_origins": [LISTED, "null", "*", OTHER_LISTED]}
    )
    app = create_app(settings)
    yield app
    get_database(app).engine.dispose()


def cors_headers(response: TestResponse) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.lower().startswith("access-control-")}


def listed(value: str | None) -> list[str]:
    """A comma-separated header value as a list, in order, case kept."""
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def vary(response: TestResponse) -> list[str]:
    """Every field name the response varies on, over all its Vary lines."""
    return [name for line in response.headers.getlist("Vary") for name in listed(line)]


def preflight(app: APIFlask, origin: str, method: str = "POST", headers: str = "") -> TestResponse:
    request_headers = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers:
        request_headers["Access-Control-Request-Headers"] = headers
    return app.test_client().options("/courses", headers=request_headers)


@pytest.mark.parametrize(
    "origin", [LISTED, OTHER_LISTED, "HTTPS://APP.EXAMPLE", "http://LocalHost:5173"]
)
def test_a_listed_origin_in_any_case_gets_its_own_origin_back_and_no_credentials(
    cors_app: APIFlask, origin: str
) -> None:
    response = cors_app.test_client().get("/healthz", headers={"Origin": origin})

    assert response.headers["Access-Control-Allow-Origin"] == origin  # never "*"
    assert "Access-Control-Allow-Credentials" not in response.headers
    exposed = listed(response.headers["Access-Control-Expose-Headers"])
    assert sorted(exposed) == sorted(EXPOSE_HEADERS)


@pytest.mark.parametrize("origin", UNLISTED)
def test_null_and_unlisted_origins_get_no_cors_headers(cors_app: APIFlask, origin: str) -> None:
    simple = cors_app.test_client().get("/healthz", headers={"Origin": origin})
    asked = preflight(cors_app, origin, headers="authorization")

    assert cors_headers(simple) == {}
    assert cors_headers(asked) == {}


@pytest.mark.parametrize("origin", [LISTED, *UNLISTED, None])
def test_every_response_varies_on_origin_exactly_once(
    cors_app: APIFlask, origin: str | None
) -> None:
    # A shared cache must not hand the answer for one origin (or for none) to another; one
    # place adds the field, so it is named once whatever flask-cors decides.
    headers = {} if origin is None else {"Origin": origin}

    simple = cors_app.test_client().get("/healthz", headers=headers)
    asked = preflight(cors_app, origin or LISTED)

    assert vary(simple).count("Origin") == 1
    assert vary(asked).count("Origin") == 1


def test_a_preflight_is_cached_and_approves_the_apis_methods_and_headers_only(
    cors_app: APIFlask,
) -> None:
    response = preflight(
        cors_app,
        LISTED,
        headers="authorization, content-type, idempotency-key, x-request-id, x-not-allowed",
    )

    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == LISTED
    assert response.headers["Access-Control-Max-Age"] == str(MAX_AGE)
    assert sorted(listed(response.headers["Access-Control-Allow-Methods"])) == sorted(METHODS)
    allowed = {h.lower() for h in listed(response.headers["Access-Control-Allow-Headers"])}
    assert allowed == {h.lower() for h in ALLOW_HEADERS}  # x-not-allowed is not approved
    assert "Access-Control-Allow-Credentials" not in response.headers


@pytest.mark.parametrize("method", ["PUT", "CONNECT", "TRACE"])
def test_a_preflight_for_a_method_the_api_does_not_use_is_not_approved(
    cors_app: APIFlask, method: str
) -> None:
    response = preflight(cors_app, LISTED, method=method)

    assert "Access-Control-Allow-Methods" not in response.headers
    assert "Access-Control-Max-Age" not in response.headers


def test_without_an_allow_list_no_origin_gets_cors_headers(bare_app: APIFlask) -> None:
    response = bare_app.test_client().get("/healthz", headers={"Origin": LISTED})

    assert cors_headers(response) == {}


@pytest.mark.parametrize(
    ("entry", "origin"),
    [
        (" https://App.Example/ ", "https://app.example"),
        ("HTTPS://SHOP.EXAMPLE.MX/", "https://shop.example.mx"),
        ("http://LOCALHOST:5173", "http://localhost:5173"),
        ("http://[::1]:8080", "http://[::1]:8080"),
    ],
)
def test_listed_origins_are_trimmed_and_lower_cased(entry: str, origin: str) -> None:
    assert allowed_origins([entry]) == [origin]


def test_a_dropped_entry_is_named_in_a_warning_that_says_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert allowed_origins(["https://ok.example", "null", "https://b.example/app"]) == [
        "https://ok.example"
    ]

    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 2
    for entry, warning in zip(("'null'", "'https://b.example/app'"), warnings, strict=True):
        assert f"CORS_ORIGINS entry {entry} ignored" in warning
        assert "only exact origins like https://app.example are allowed" in warning
        assert "(never 'null' or '*')" in warning
