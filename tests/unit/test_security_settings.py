"""Settings of the HTTPS, CORS and body-depth controls: defaults per environment, and hardened
environments refusing the unsafe values."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from app import create_app
from app.config import InsecureConfigError, Settings
from app.errors import json_depth_exceeds
from tests.unit.test_config import hardened


@pytest.mark.parametrize(
    ("env", "mode"),
    [("development", "off"), ("test", "off"), ("staging", "redirect"), ("production", "redirect")],
)
def test_https_mode_defaults_to_redirect_only_in_hardened_environments(env: str, mode: str) -> None:
    settings = hardened(env) if env in ("staging", "production") else Settings(_env_file=None)
    settings = settings.model_copy(update={"app_env": env})

    assert settings.effective_https_mode == mode


def test_an_empty_https_mode_means_the_environment_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_MODE", "")  # as copied from .env.example

    assert Settings(_env_file=None).https_mode is None


def test_an_unknown_https_mode_or_a_negative_hop_count_is_refused() -> None:
    with pytest.raises(ValidationError, match="https_mode"):
        Settings(_env_file=None, https_mode="maybe")
    with pytest.raises(ValidationError, match="proxy_hops"):
        Settings(_env_file=None, proxy_hops=-1)


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"https_mode": "off"}, "HTTPS_MODE is off"),
        ({"cors_origins": "https://app.example,null"}, "CORS_ORIGINS contains 'null'"),
    ],
)
def test_hardened_environments_refuse_plain_http_and_the_null_origin(
    override: dict[str, Any], named: str
) -> None:
    with pytest.raises(InsecureConfigError, match=named):
        create_app(hardened(**override))


def test_reject_mode_is_a_secure_choice() -> None:
    assert hardened(https_mode="reject").insecure_settings() == []


@pytest.mark.parametrize(
    ("value", "exceeds"),
    [
        (1, False),
        ([], False),
        ([[[]]], False),
        ([[[[]]]], True),
        ({"a": [{"b": 1}]}, False),
        ({"a": [{"b": []}]}, True),
        ([1, 2, [3, [4]]], False),
    ],
)
def test_json_depth_counts_nested_arrays_and_objects(value: object, exceeds: bool) -> None:
    assert json_depth_exceeds(value, 3) is exceeds


def test_json_depth_walks_very_deep_values_without_recursing() -> None:
    value: list[object] = []
    for _ in range(100_000):
        value = [value]

    assert json_depth_exceeds(value, 32)
