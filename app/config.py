"""Settings: every knob the platform reads, from the environment or a `.env` file.

`APP_ENV` picks the profile. `development` and `test` come with embedded defaults so the
platform starts with no configuration at all; `staging` and `production` refuse to start
while any setting is insecure, and the error names the setting.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from limits import parse_many
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

AppEnv = Literal["development", "test", "staging", "production"]
HttpsMode = Literal["redirect", "reject", "off"]

DEV_SECRET_KEY = "dev-insecure-secret-key-do-not-use-in-production"  # noqa: S105 - the well-known dev default production rejects
MIN_SECRET_LENGTH = 32
# Words of the placeholders in .env.example and the deployment templates: a key that contains
# one was copied, not generated, and is as public as the example file.
PLACEHOLDER_SECRET_WORDS = ("change-me", "changeme", "replace-me", "placeholder")


class InsecureConfigError(RuntimeError):
    """Raised at start-up when a hardened environment is configured insecurely."""


# --- Secrets from files (docs/deployment.md, "Secrets") -----------------------------------------
# Every setting named here is a secret (or a URL that may carry a password) and can also be read
# from a file named by `<NAME>_FILE`, as Docker, Compose and orchestrators mount secrets. The
# file's content is the value (one trailing newline dropped); the hardened checks below then
# apply to it exactly as to a value from the environment.
SECRET_SETTINGS = (
    "secret_key",
    "database_url",
    "redis_url",
    "celery_broker_url",
    "ratelimit_storage_url",
    "ai_api_key",
    "metrics_token",
    "sentry_dsn",
    "drill_token",
    "anonymize_key",
    "backup_encryption_key",
)


class SecretFileError(RuntimeError):
    """A `<NAME>_FILE` setting that cannot be used: unreadable, empty, or NAME set as well.

    Not a ValueError on purpose: pydantic would wrap that in a ValidationError that prints the
    whole input, secrets included; this one propagates with only its own message."""


def read_secret_file(name: str, path: str) -> str:
    """The secret in `path` for setting `name` (upper case), without its trailing newline."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise SecretFileError(f"{name}_FILE={path}: cannot read the file ({reason})") from None
    except UnicodeDecodeError:
        raise SecretFileError(f"{name}_FILE={path}: the file is not UTF-8 text") from None
    value = text.removesuffix("\n").removesuffix("\r")
    if not value.strip():
        raise SecretFileError(f"{name}_FILE={path}: the file is empty")
    return value


def resolve_secret_files(values: dict[str, Any]) -> dict[str, Any]:
    """Replace every `<name>_file` in `values` by the secret it names; refuse NAME and NAME_FILE
    together (an empty value counts as unset, as copied from .env.example)."""
    resolved = dict(values)
    for name in SECRET_SETTINGS:
        path = resolved.pop(f"{name}_file", None)
        if path is None or str(path).strip() == "":
            continue
        if resolved.get(name) not in (None, ""):
            raise SecretFileError(
                f"both {name.upper()} and {name.upper()}_FILE are set: set only one of them"
            )
        resolved[name] = read_secret_file(name.upper(), str(path))
    return resolved


class Settings(BaseSettings):
    """The platform's configuration. Field names map to upper-case environment variables."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    app_env: AppEnv = "development"
    secret_key: SecretStr = SecretStr(DEV_SECRET_KEY)
    debug: bool = False
    database_url: str = "sqlite:///instance/mastery.db"
    redis_url: str | None = None
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    storage_url: str = "file://instance/storage"
    # Where `flask backup` keeps backups: a directory, file://… or s3://bucket/prefix
    # (docs/data-management.md); BACKUP_KEEP is the default of `backup create --keep`.
    backup_url: str = "file://instance/backups"
    backup_keep: int | None = Field(None, ge=1)
    # The HMAC key of `flask anonymize` pseudonyms: a secret (whoever holds it can test a guessed
    # e-mail against a pseudonym); the same key gives the same pseudonyms. Required by anonymize.
    anonymize_key: SecretStr | None = None
    # Client-side encryption of backup artifacts (AES-256-GCM, app/backup/crypto.py): 32 random
    # bytes in base64; unset = artifacts are stored as they are. A secret: keep it apart from
    # the backups, without it they cannot be restored.
    backup_encryption_key: SecretStr | None = None
    # Server-side encryption S3 applies to every backup object: AES256 (SSE-S3), aws:kms
    # (SSE-KMS, with BACKUP_S3_KMS_KEY_ID or the account's aws/s3 key) or none.
    backup_s3_sse: Literal["AES256", "aws:kms", "none"] = "AES256"
    backup_s3_kms_key_id: str | None = None

    @field_validator(
        "backup_encryption_key", "backup_s3_kms_key_id", "backup_s3_sse", mode="before"
    )
    @classmethod
    def _empty_backup_encryption_setting_is_default(cls, value: object, info: Any) -> object:
        if value != "":
            return value
        return "AES256" if info.field_name == "backup_s3_sse" else None  # as in .env.example

    @field_validator("backup_keep", "anonymize_key", mode="before")
    @classmethod
    def _empty_data_setting_is_none(cls, value: object) -> object:
        return None if value == "" else value  # `BACKUP_KEEP=` as copied from .env.example

    ai_provider: Literal["offline", "openai"] = "offline"
    ai_base_url: str | None = None
    ai_model: str | None = None
    ai_api_key: SecretStr | None = None
    ai_grade_budget_seconds: float = 4.0
    celery_broker_url: str | None = None
    jobs_eager: bool = False
    job_queue: str = "mastery"
    job_timeout_seconds: int = 300
    job_max_attempts: int = 3
    job_visibility_timeout_seconds: int = 3600
    # Every worker re-queues running jobs past their deadline this often (app/jobs/sweeper.py).
    # Empty = derived from JOB_TIMEOUT_SECONDS (a fifth of it, between 1 and 60 s); 0 = off.
    job_sweep_interval_seconds: float | None = Field(None, ge=0)

    @field_validator("job_sweep_interval_seconds", mode="before")
    @classmethod
    def _empty_sweep_interval_is_derived(cls, value: object) -> object:
        return None if value == "" else value  # `JOB_SWEEP_INTERVAL_SECONDS=` as in .env.example

    material_max_bytes: int = 1024 * 1024
    sentry_dsn: str | None = None
    # Bearer token Prometheus sends to /metrics; required in staging and production.
    metrics_token: SecretStr | None = None
    # The Celery worker's metrics endpoint (app/observability/worker_metrics.py); None = off.
    worker_metrics_port: int | None = Field(None, ge=1, le=65535)
    worker_metrics_addr: str = "127.0.0.1"
    # Share of requests and tasks traced to Sentry (performance); 0 = errors only.
    sentry_traces_sample_rate: float = Field(0.0, ge=0, le=1)
    # Alert drill switch (app/observability/drill.py): off unless set.
    drill_token: SecretStr | None = None
    log_level: str = "INFO"
    # `<NAME>_FILE`: read that secret from a file instead (SECRET_SETTINGS, resolve_secret_files).
    secret_key_file: str | None = None
    database_url_file: str | None = None
    redis_url_file: str | None = None
    celery_broker_url_file: str | None = None
    ratelimit_storage_url_file: str | None = None
    ai_api_key_file: str | None = None
    metrics_token_file: str | None = None
    sentry_dsn_file: str | None = None
    drill_token_file: str | None = None
    anonymize_key_file: str | None = None
    backup_encryption_key_file: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _read_secret_files(cls, data: Any) -> Any:
        return resolve_secret_files(data) if isinstance(data, dict) else data

    max_content_length: int = 1024 * 1024
    access_token_minutes: int = 15
    refresh_idle_days: int = 14
    refresh_absolute_days: int = 30
    database_pool_size: int = 5
    # Reverse proxies in front of the app whose X-Forwarded-For/-Proto are trusted (hardened only).
    proxy_hops: int = Field(1, ge=0, le=10)
    # Hardened only: PROXY_HOPS=0 must be confirmed by this (clients connect to the app itself,
    # which terminates TLS). Behind a proxy, 0 would give every client the proxy's address: one
    # rate-limit bucket for everybody.
    no_reverse_proxy: bool = False
    # None (or empty): `redirect` in staging and production, `off` in development and test.
    https_mode: HttpsMode | None = None

    @field_validator("metrics_token", "worker_metrics_port", mode="before")
    @classmethod
    def _empty_metrics_setting_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("https_mode", mode="before")
    @classmethod
    def _empty_https_mode_is_default(cls, value: object) -> object:
        return None if value == "" else value

    # Rate limits (app/security/rate_limits.py, docs/security.md ("Rate limits")). Limits
    # use the `limits` syntax, "N/period" joined by ";"; an empty string turns that one off.
    ratelimit_enabled: bool = True
    ratelimit_storage_url: str | None = None
    ratelimit_storage_retry_seconds: float = Field(5.0, ge=0)
    ratelimit_default: str = "300/minute"
    # The three login limits count failed logins (401) only: a success needs the password.
    ratelimit_login: str = "5/minute;20/hour"  # per client address
    ratelimit_login_account_client: str = "10/hour"  # per account and client address
    ratelimit_login_account: str = "50/hour"  # per account, every address together
    ratelimit_register: str = "5/hour"
    ratelimit_refresh: str = "30/minute"
    ratelimit_password_change: str = "10/hour"  # noqa: S105 - a rate, not a password
    ratelimit_hint: str = "30/minute"
    ratelimit_attempt: str = "120/minute"
    ratelimit_generation: str = "10/hour"

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator(
        "ratelimit_default",
        "ratelimit_login",
        "ratelimit_login_account_client",
        "ratelimit_login_account",
        "ratelimit_register",
        "ratelimit_refresh",
        "ratelimit_password_change",
        "ratelimit_hint",
        "ratelimit_attempt",
        "ratelimit_generation",
    )
    @classmethod
    def _parse_rate_limit(cls, value: str) -> str:
        value = value.strip()
        if value:
            parse_many(value)  # a ValueError names the malformed part; pydantic names the field
        return value

    @property
    def ratelimit_storage(self) -> str:
        """Where rate-limit counters live: RATELIMIT_STORAGE_URL, else REDIS_URL, else
        `memory://` (one count per process: development and tests only)."""
        return self.ratelimit_storage_url or self.redis_url or "memory://"

    @property
    def is_hardened(self) -> bool:
        """Staging and production run with production-grade checks."""
        return self.app_env in ("staging", "production")

    @property
    def effective_https_mode(self) -> HttpsMode:
        """What a plain-HTTP request gets: HTTPS_MODE, else the environment's default."""
        if self.https_mode is not None:
            return self.https_mode
        return "redirect" if self.is_hardened else "off"

    @property
    def broker_url(self) -> str | None:
        """Where jobs are queued: CELERY_BROKER_URL, else REDIS_URL; None runs them eagerly."""
        if self.jobs_eager:
            return None
        return self.celery_broker_url or self.redis_url

    @property
    def job_sweep_interval(self) -> float | None:
        """Seconds between two sweeps of a worker for running jobs past their deadline; None
        when JOB_SWEEP_INTERVAL_SECONDS=0 turns the sweeper off."""
        if self.job_sweep_interval_seconds is None:
            return min(max(self.job_timeout_seconds / 5, 1.0), 60.0)
        return self.job_sweep_interval_seconds or None

    @property
    def access_token_ttl(self) -> timedelta:
        return timedelta(minutes=self.access_token_minutes)

    @property
    def refresh_idle_ttl(self) -> timedelta:
        return timedelta(days=self.refresh_idle_days)

    @property
    def refresh_absolute_ttl(self) -> timedelta:
        return timedelta(days=self.refresh_absolute_days)

    def insecure_settings(self) -> list[str]:
        """Describe every setting that would be unsafe in a hardened environment."""
        problems: list[str] = []
        secret = self.secret_key.get_secret_value()
        if secret == DEV_SECRET_KEY:
            problems.append("SECRET_KEY is the development default")
        elif len(secret) < MIN_SECRET_LENGTH:
            problems.append(f"SECRET_KEY is shorter than {MIN_SECRET_LENGTH} characters")
        elif any(word in secret.lower() for word in PLACEHOLDER_SECRET_WORDS):
            problems.append("SECRET_KEY is a placeholder copied from an example file")
        if self.proxy_hops == 0 and not self.no_reverse_proxy:
            problems.append(
                "PROXY_HOPS is 0: behind a proxy every client would share its address (set "
                "NO_REVERSE_PROXY=true only when clients connect to the app directly)"
            )
        elif self.proxy_hops > 0 and self.no_reverse_proxy:
            problems.append("NO_REVERSE_PROXY is true but PROXY_HOPS trusts forwarded headers")
        if self.debug:
            problems.append("DEBUG is on")
        if "*" in self.cors_origins:
            problems.append("CORS_ORIGINS contains the wildcard '*'")
        if any(origin.strip().lower() == "null" for origin in self.cors_origins):
            problems.append("CORS_ORIGINS contains 'null' (any sandboxed page sends it)")
        if self.effective_https_mode == "off":
            problems.append("HTTPS_MODE is off (plain HTTP would be served)")
        if self.database_url.startswith("sqlite"):
            problems.append("DATABASE_URL points at SQLite")
        if self.jobs_eager:
            problems.append("JOBS_EAGER is on (jobs would run inside web requests)")
        elif self.broker_url is None:
            problems.append("no job broker: set CELERY_BROKER_URL or REDIS_URL")
        if self.metrics_token is None or not self.metrics_token.get_secret_value().strip():
            problems.append("METRICS_TOKEN is not set (/metrics would be refused to everyone)")
        elif len(self.metrics_token.get_secret_value()) < MIN_SECRET_LENGTH:
            problems.append(f"METRICS_TOKEN is shorter than {MIN_SECRET_LENGTH} characters")
        if self.drill_token is not None and 0 < len(self.drill_token.get_secret_value()) < (
            MIN_SECRET_LENGTH
        ):
            problems.append(f"DRILL_TOKEN is shorter than {MIN_SECRET_LENGTH} characters")
        if self.ai_provider == "openai" and (self.ai_base_url or "").startswith("http://"):
            problems.append("AI_BASE_URL is plain http (AI_API_KEY would travel unencrypted)")
        if not self.ratelimit_enabled:
            problems.append("RATELIMIT_ENABLED is off")
        elif self.ratelimit_storage.startswith("memory://"):
            problems.append(
                "rate limits count in process memory: set RATELIMIT_STORAGE_URL or REDIS_URL"
            )
        brute_force_guards = {
            "RATELIMIT_LOGIN": self.ratelimit_login,
            "RATELIMIT_LOGIN_ACCOUNT_CLIENT": self.ratelimit_login_account_client,
            "RATELIMIT_LOGIN_ACCOUNT": self.ratelimit_login_account,
            "RATELIMIT_REGISTER": self.ratelimit_register,
            "RATELIMIT_REFRESH": self.ratelimit_refresh,
            "RATELIMIT_PASSWORD_CHANGE": self.ratelimit_password_change,
        }
        problems.extend(
            f"{name} is empty" for name, value in brute_force_guards.items() if not value
        )
        return problems

    def check_hardened(self) -> None:
        """Refuse a hardened environment that is configured insecurely."""
        if not self.is_hardened:
            return
        problems = self.insecure_settings()
        if problems:
            raise InsecureConfigError(
                f"Refusing to start with APP_ENV={self.app_env}: " + "; ".join(problems)
            )
