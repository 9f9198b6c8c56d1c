"""Liveness, readiness against real (and deliberately missing) services, and the API docs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from apiflask import APIFlask
from flask.testing import FlaskClient
from openapi_spec_validator import validate

from app import health
from tests.conftest import MakeApp
from tools.processes import free_port


def test_healthz_is_200(client: FlaskClient) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_checks_database_redis_and_storage(client: FlaskClient) -> None:
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.get_json()["checks"] == {"database": "ok", "redis": "ok", "storage": "ok"}


def test_readyz_reuses_its_verdict_for_a_couple_of_seconds(
    make_app: MakeApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 17, finding 5: a public, unlimited probe must not cost a database query, a Redis
    connection and a storage write per request."""
    app = make_app()
    now = [1000.0]
    app.extensions[health.EXTENSION] = health.ReadinessCache(clock=lambda: now[0])
    checked: list[str] = []
    real_check = health._check_database

    def counted_check() -> str:
        checked.append("database")
        return real_check()

    monkeypatch.setattr(health, "_check_database", counted_check)
    client = app.test_client()

    answers = [client.get("/readyz") for _ in range(5)]
    now[0] += health.READINESS_CACHE_SECONDS - 0.1
    answers.append(client.get("/readyz"))

    assert {a.status_code for a in answers} == {200}
    assert checked == ["database"]
    now[0] += 0.1
    assert client.get("/readyz").status_code == 200
    assert checked == ["database", "database"]


@pytest.fixture
def client_with(make_app: MakeApp) -> Callable[..., FlaskClient]:
    """Clients of extra applications whose settings differ from the test profile."""
    return lambda **changes: make_app(**changes).test_client()


def test_readyz_is_503_when_the_database_is_down(client_with: Callable[..., FlaskClient]) -> None:
    dead = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/postgres?connect_timeout=2"

    response = client_with(database_url=dead).get("/readyz")

    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["checks"] == {
        "database": "unavailable",
        "redis": "ok",
        "storage": "ok",
    }


def test_readyz_is_503_when_redis_is_down(client_with: Callable[..., FlaskClient]) -> None:
    response = client_with(redis_url=f"redis://127.0.0.1:{free_port()}/0").get("/readyz")

    assert response.status_code == 503
    assert response.get_json()["checks"] == {
        "database": "ok",
        "redis": "unavailable",
        "storage": "ok",
    }


def test_readyz_is_503_when_storage_cannot_be_written(
    client_with: Callable[..., FlaskClient], tmp_path: Path
) -> None:
    not_a_directory = tmp_path / "storage"
    not_a_directory.write_text("a file where the storage root should be")

    response = client_with(storage_url=f"file://{not_a_directory}").get("/readyz")

    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["checks"] == {
        "database": "ok",
        "redis": "ok",
        "storage": "unavailable",
    }


def test_readyz_creates_a_missing_local_storage_root(
    client_with: Callable[..., FlaskClient], tmp_path: Path
) -> None:
    root = tmp_path / "fresh" / "storage"

    response = client_with(storage_url=f"file://{root}").get("/readyz")

    assert response.status_code == 200
    assert root.is_dir()
    assert list(root.iterdir()) == []  # the write probe cleans up after itself


def test_readyz_without_redis_configured_reports_it(
    client_with: Callable[..., FlaskClient],
) -> None:
    response = client_with(redis_url=None).get("/readyz")

    assert response.status_code == 200
    assert response.get_json()["checks"]["redis"] == "not configured"


def test_openapi_document_is_valid_openapi_3(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()

    validate(spec)
    assert spec["openapi"].startswith("3.")
    assert {"/auth/register", "/auth/login", "/auth/refresh", "/auth/logout", "/auth/me"} <= set(
        spec["paths"]
    )
    assert spec["components"]["securitySchemes"]["BearerAuth"]["scheme"] == "bearer"
    assert spec["paths"]["/auth/me"]["get"]["security"] == [{"BearerAuth": []}]


@pytest.mark.parametrize(
    "asset", ["swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js"]
)
def test_docs_page_loads_its_assets_locally(client: FlaskClient, asset: str) -> None:
    page = client.get("/docs")

    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert f"/docs/static/{asset}" in html
    assert "cdn.jsdelivr.net" not in html
    with client.get(f"/docs/static/{asset}") as response:
        assert response.status_code == 200


def test_app_fixture_is_the_test_profile(app: APIFlask) -> None:
    assert app.extensions["mastery.settings"].app_env == "test"


def test_the_served_swagger_ui_can_render_the_documents_openapi_version(
    client: FlaskClient,
) -> None:
    """Swagger UI 4 shows "Unable to render this definition" for OpenAPI 3.1; 5 has an OAS 3.1 plugin."""
    assert client.get("/openapi.json").get_json()["openapi"].startswith("3.1")
    with client.get("/docs/static/swagger-ui-bundle.js") as bundle:
        assert b"isOAS31" in bundle.data
