"""Who may read the Celery worker's metrics: as `/metrics`, the bearer token when one is set,
and never an exposed bind without one (the server itself runs in tests/integration/
test_metrics_worker.py)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr

from app.config import Settings
from app.observability.worker_metrics import (
    ExposedWithoutTokenError,
    init_worker,
    is_loopback,
    metrics_token,
    protected,
)

TOKEN = "worker-metrics-token-0123456789abcdef"  # pragma: allowlist secret (a test token)


def metrics_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"mastery_jobs_total 1\n"]


def call(app: Any, authorization: str | None) -> tuple[str, dict[str, str], bytes]:
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], *_: Any) -> None:
        seen["status"], seen["headers"] = status, dict(headers)

    environ = {"HTTP_AUTHORIZATION": authorization} if authorization is not None else {}
    body = b"".join(app(environ, start_response))
    return seen["status"], seen["headers"], body


@pytest.mark.parametrize(
    ("addr", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.53", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),  # noqa: S104 - the address under test
        ("::", False),
        ("10.1.2.3", False),
        ("worker.internal", False),
    ],
)
def test_only_loopback_addresses_count_as_internal(addr: str, loopback: bool) -> None:
    assert is_loopback(addr) is loopback


@pytest.mark.parametrize(
    "authorization",
    [None, "", f"Basic {TOKEN}", "Bearer wrong", f"Bearer {TOKEN[:-1]}", TOKEN],
)
def test_without_the_token_the_endpoint_answers_401(authorization: str | None) -> None:
    status, headers, body = call(protected(metrics_app, TOKEN), authorization)

    assert status.startswith("401")
    assert headers["WWW-Authenticate"] == "Bearer"
    assert b"mastery_" not in body


@pytest.mark.parametrize("authorization", [f"Bearer {TOKEN}", f"bearer  {TOKEN} "])
def test_with_the_token_the_metrics_are_served(authorization: str) -> None:
    status, _headers, body = call(protected(metrics_app, TOKEN), authorization)

    assert status == "200 OK"
    assert body == b"mastery_jobs_total 1\n"


def test_no_token_leaves_a_loopback_endpoint_open() -> None:
    settings = Settings(_env_file=None, worker_metrics_port=9808)

    token = metrics_token(settings)

    assert token is None
    assert call(protected(metrics_app, token), None)[0] == "200 OK"


def test_the_token_of_metrics_is_required_on_any_bind_once_set() -> None:
    for addr in ("127.0.0.1", "0.0.0.0"):  # noqa: S104 - the address under test
        settings = Settings(
            _env_file=None,
            worker_metrics_port=9808,
            worker_metrics_addr=addr,
            metrics_token=SecretStr(TOKEN),
        )
        assert metrics_token(settings) == TOKEN


def test_an_exposed_bind_without_a_token_is_refused_with_the_settings_named() -> None:
    exposed = "0.0.0.0"  # noqa: S104 - the address under test
    settings = Settings(_env_file=None, worker_metrics_port=9808, worker_metrics_addr=exposed)

    with pytest.raises(ExposedWithoutTokenError) as refused:
        metrics_token(settings)

    assert "WORKER_METRICS_ADDR=0.0.0.0" in str(refused.value)
    assert "METRICS_TOKEN" in str(refused.value)


def test_the_worker_stops_at_start_up_on_an_exposed_bind_without_a_token() -> None:
    exposed = "0.0.0.0"  # noqa: S104 - the address under test
    settings = Settings(_env_file=None, worker_metrics_port=9808, worker_metrics_addr=exposed)

    with pytest.raises(ExposedWithoutTokenError):
        init_worker(settings)  # raised before any signal is connected or port opened


def test_without_a_port_the_worker_serves_nothing() -> None:
    init_worker(Settings(_env_file=None, worker_metrics_port=None))  # no error, no server
