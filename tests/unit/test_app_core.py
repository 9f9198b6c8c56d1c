"""The application core without a database: errors, request ids, engines, timestamps, keys."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from apiflask import APIFlask, abort
from sqlalchemy import text
from sqlalchemy.exc import DataError

from app.auth.keys import Keyring
from app.auth.models import SigningKey
from app.db import UTCDateTime, build_engine
from app.errors import ProblemError


def test_unknown_route_is_a_404_problem(bare_app: APIFlask) -> None:
    response = bare_app.test_client().get("/nowhere")

    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    assert set(response.get_json()) >= {"type", "title", "status", "detail", "request_id"}


def test_an_unexpected_exception_is_logged_and_answered_without_details(
    bare_app: APIFlask, caplog: pytest.LogCaptureFixture
) -> None:
    @bare_app.get("/explode")
    def explode() -> None:
        raise KeyError("internal detail")

    with caplog.at_level(logging.ERROR):
        response = bare_app.test_client().get("/explode")

    assert response.status_code == 500
    assert "internal detail" not in response.get_data(as_text=True)
    assert response.get_json()["title"] == "Internal Server Error"
    assert "unhandled error" in caplog.text


def test_apiflask_abort_becomes_a_problem(bare_app: APIFlask) -> None:
    @bare_app.get("/teapot")
    def teapot() -> None:
        abort(409, "already brewing")

    response = bare_app.test_client().get("/teapot")

    assert response.status_code == 409
    assert response.get_json()["detail"] == "already brewing"
    assert response.get_json()["type"] == "about:blank"


def test_problem_errors_carry_their_slug_status_and_extras(bare_app: APIFlask) -> None:
    @bare_app.get("/busy")
    def busy() -> None:
        raise ProblemError("try later", status=503, slug="busy", extra={"retry": 3})

    problem = bare_app.test_client().get("/busy").get_json()

    assert problem["status"] == 503
    assert problem["type"].endswith("/busy")
    assert problem["retry"] == 3


def test_healthz_answers_without_touching_the_database(bare_app: APIFlask) -> None:
    response = bare_app.test_client().get("/healthz", headers={"X-Request-ID": "abcdef123456"})

    assert response.get_json() == {"status": "ok"}
    assert response.headers["X-Request-ID"] == "abcdef123456"


def test_sqlite_engine_enforces_foreign_keys() -> None:
    engine = build_engine("sqlite://")
    with engine.connect() as conn:
        assert conn.scalar(text("PRAGMA foreign_keys")) == 1
    engine.dispose()


def test_sqlite_file_engine_creates_its_directory(tmp_path: Path) -> None:
    target = tmp_path / "nested" / "dev.db"

    build_engine(f"sqlite:///{target}").dispose()

    assert target.parent.is_dir()


def test_utc_datetime_refuses_naive_values_and_returns_utc() -> None:
    column = UTCDateTime()

    with pytest.raises(ValueError, match="naive"):
        column.process_bind_param(datetime(2026, 1, 1), None)
    assert column.process_result_value(datetime(2026, 1, 1), None) == datetime(
        2026, 1, 1, tzinfo=UTC
    )
    assert column.process_bind_param(None, None) is None


def test_a_key_encrypted_under_another_secret_key_is_reported_clearly() -> None:
    old, new = Keyring("a" * 40, timedelta(days=30)), Keyring("b" * 40, timedelta(days=30))
    key = SigningKey(kid="k1", algorithm="HS256", encrypted_secret=old._fernet.encrypt(b"material"))

    with pytest.raises(RuntimeError, match="SECRET_KEY changed"):
        new._decrypt(key)
    secret = old._decrypt(key)
    assert secret.reveal() == "material"
    assert "material" not in repr(secret) + str(secret) + repr((secret,))  # issue 17, finding 1


def test_a_value_the_database_refuses_is_a_400_problem(bare_app: APIFlask) -> None:
    @bare_app.get("/refused")
    def refused() -> None:
        raise DataError("INSERT ...", {}, ValueError("NUL byte"))

    response = bare_app.test_client().get("/refused")

    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert "NUL" not in response.get_data(as_text=True)
