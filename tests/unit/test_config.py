"""Settings: defaults that run anywhere, and hardened environments that refuse to be unsafe."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app import create_app
from app.config import DEV_SECRET_KEY, MIN_SECRET_LENGTH, InsecureConfigError, Settings

STRONG = "s" * 48
POSTGRES = "postgresql+psycopg://mastery@db/mastery"
REDIS = "redis://redis:6379/0"
METRICS_TOKEN = "m" * 40


def hardened(env: str = "production", **overrides: Any) -> Settings:
    values: dict[str, Any] = {  # any field's value: pydantic validates them
        "app_env": env,
        "secret_key": STRONG,
        "database_url": POSTGRES,
        "redis_url": REDIS,
        "metrics_token": METRICS_TOKEN,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


def test_development_defaults_need_no_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APP_ENV", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)

    settings = Settings(_env_file=None)

    assert settings.app_env == "development"
    assert settings.database_url.startswith("sqlite")
    assert settings.ai_provider == "offline"
    settings.check_hardened()  # development never refuses


def test_a_secure_production_configuration_starts() -> None:
    hardened().check_hardened()


@pytest.mark.parametrize("env", ["staging", "production"])
@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"secret_key": DEV_SECRET_KEY}, "SECRET_KEY is the development default"),
        ({"secret_key": "too-short"}, "SECRET_KEY is shorter than 32"),
        ({"debug": True}, "DEBUG is on"),
        ({"cors_origins": "*"}, "CORS_ORIGINS contains the wildcard"),
        ({"database_url": "sqlite:///prod.db"}, "DATABASE_URL points at SQLite"),
        ({"jobs_eager": True}, "JOBS_EAGER is on"),
        ({"redis_url": None}, "no job broker"),
        ({"ratelimit_enabled": False}, "RATELIMIT_ENABLED is off"),
        (
            {"redis_url": None, "celery_broker_url": "redis://queue/1"},
            "rate limits count in process memory",
        ),
        ({"ratelimit_storage_url": "memory://"}, "rate limits count in process memory"),
        ({"ratelimit_login": ""}, "RATELIMIT_LOGIN is empty"),
        ({"ratelimit_register": " "}, "RATELIMIT_REGISTER is empty"),
        ({"ratelimit_refresh": ""}, "RATELIMIT_REFRESH is empty"),
        ({"ratelimit_login_account": ""}, "RATELIMIT_LOGIN_ACCOUNT is empty"),
        ({"ratelimit_login_account_client": ""}, "RATELIMIT_LOGIN_ACCOUNT_CLIENT is empty"),
        ({"ratelimit_password_change": ""}, "RATELIMIT_PASSWORD_CHANGE is empty"),
        ({"proxy_hops": 0}, "PROXY_HOPS is 0"),
        ({"no_reverse_proxy": True}, "NO_REVERSE_PROXY is true but PROXY_HOPS"),
        ({"secret_key": "x" * 8 + "-CHANGEME-" + "x" * 24}, "SECRET_KEY is a placeholder"),
        ({"metrics_token": None}, "METRICS_TOKEN is not set"),
        ({"metrics_token": ""}, "METRICS_TOKEN is not set"),
        ({"metrics_token": "short"}, "METRICS_TOKEN is shorter than 32"),
    ],
)
def test_hardened_environments_refuse_insecure_settings_and_name_them(
    env: str, override: dict[str, object], named: str
) -> None:
    with pytest.raises(InsecureConfigError, match=named) as refused:
        create_app(hardened(env, **override))

    assert f"APP_ENV={env}" in str(refused.value)


def test_the_example_files_secret_key_is_refused_as_a_placeholder() -> None:
    """Issue 17, finding 6: the .env.example value is long enough to pass the length check."""
    example = Path(__file__).resolve().parents[2] / ".env.example"
    (value,) = [
        line.split("=", 1)[1]
        for line in example.read_text(encoding="utf-8").splitlines()
        if line.startswith("SECRET_KEY=")
    ]
    assert len(value) >= MIN_SECRET_LENGTH

    with pytest.raises(InsecureConfigError, match="SECRET_KEY is a placeholder"):
        create_app(hardened(secret_key=value))


def test_no_proxy_hops_start_when_declared_without_a_proxy() -> None:
    assert hardened(proxy_hops=0, no_reverse_proxy=True).insecure_settings() == []


def test_every_insecure_setting_is_reported_at_once() -> None:
    settings = hardened(secret_key=DEV_SECRET_KEY, debug=True, database_url="sqlite://")

    assert len(settings.insecure_settings()) == 3


def test_cors_origins_are_read_as_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example, https://b.example,")

    assert Settings(_env_file=None).cors_origins == ["https://a.example", "https://b.example"]


def test_token_lifetimes_follow_the_settings() -> None:
    settings = hardened(access_token_minutes=5, refresh_idle_days=2, refresh_absolute_days=9)

    assert settings.access_token_ttl.total_seconds() == 300
    assert settings.refresh_idle_ttl.days == 2
    assert settings.refresh_absolute_ttl.days == 9


def test_seed_demo_refuses_to_run_in_production() -> None:
    app = create_app(hardened())

    result = app.test_cli_runner().invoke(args=["seed", "demo"])

    assert result.exit_code != 0
    assert "never seeded in staging or production" in result.output


def test_the_job_broker_is_celery_broker_url_then_redis_url_and_none_when_eager(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("REDIS_URL", "CELERY_BROKER_URL", "JOBS_EAGER"):
        monkeypatch.delenv(name, raising=False)
    assert hardened(celery_broker_url="redis://queue/1").broker_url == "redis://queue/1"
    assert hardened().broker_url == REDIS
    assert hardened(jobs_eager=True).broker_url is None
    assert Settings(_env_file=None).broker_url is None  # development: jobs run in-process


def test_rate_limits_count_in_ratelimit_storage_url_then_redis_url_then_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("REDIS_URL", "RATELIMIT_STORAGE_URL"):
        monkeypatch.delenv(name, raising=False)
    assert (
        hardened(ratelimit_storage_url="redis://limits/2").ratelimit_storage == "redis://limits/2"
    )
    assert hardened().ratelimit_storage == REDIS
    assert Settings(_env_file=None).ratelimit_storage == "memory://"  # development only


def test_a_malformed_rate_limit_is_refused_at_start_up_and_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RATELIMIT_LOGIN", "5 per fortnight")

    with pytest.raises(ValueError, match="ratelimit_login"):
        Settings(_env_file=None)


def test_rate_limits_accept_several_windows_and_an_empty_value_turns_one_off() -> None:
    settings = Settings(
        _env_file=None, ratelimit_login=" 5/minute;20/hour ", ratelimit_login_account=""
    )

    assert settings.ratelimit_login == "5/minute;20/hour"
    assert settings.ratelimit_login_account == ""


def test_empty_metrics_settings_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METRICS_TOKEN", "")  # as copied from .env.example
    monkeypatch.setenv("WORKER_METRICS_PORT", "")

    settings = Settings(_env_file=None)

    assert settings.metrics_token is None
    assert settings.worker_metrics_port is None
