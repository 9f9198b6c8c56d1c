"""What a job row tells an instructor: a safe summary per error class, never the error's text.

The text of a provider error can quote the provider's answer (and so a prompt or a key hint), a
database error its SQL and host; those belong in the log. The job settings that bound recovery
(the sweeper's interval) are checked here too.
"""

from __future__ import annotations

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy.exc import OperationalError

from app.ai.errors import (
    AIConfigurationError,
    AIProviderError,
    CircuitOpenError,
    InvalidOutputError,
    ProviderRequestError,
    ProviderUnavailableError,
)
from app.config import Settings
from app.jobs.errors import (
    MAX_ERROR,
    WORKER_LOST_NO_ATTEMPT_LEFT,
    WORKER_LOST_REQUEUED,
    WORKER_LOST_TAKEN_OVER,
    NoValidItemsError,
    PermanentJobError,
    requeued_by,
    summary,
)
from app.storage import StorageError

SECRET_BITS = (
    "sk-live-123",
    "db.internal",
    "SELECT",
    "https://",
    "Traceback",
    "api.example.com",
    "10.0.0.7",
)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (CircuitOpenError("circuit open: not calling https://api.example.com/v1"), "circuit open"),
        (ProviderUnavailableError("timeout talking to https://api.example.com"), "unavailable"),
        (ProviderRequestError(401, '{"error": "bad key sk-live-123"}'), "(HTTP 401)"),
        (InvalidOutputError("model said: SELECT secrets"), "not in the expected form"),
        (NoValidItemsError("the model returned no valid item"), "no valid item"),
        (
            AIConfigurationError("AI_BASE_URL https://api.example.com is missing a model"),
            "configured",
        ),
        (AIProviderError("10.0.0.7 refused"), "AI provider error"),
        (StorageError("s3://bucket at db.internal unreachable"), "material could not be read"),
        (SoftTimeLimitExceeded(), "time limit"),
        (
            OperationalError("SELECT * FROM jobs", {}, Exception("db.internal:5432 refused")),
            "database",
        ),
        (KeyError("Traceback sk-live-123"), "internal error"),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else None,
)
def test_each_error_class_has_a_safe_summary(error: BaseException, expected: str) -> None:
    text = summary(error)

    assert expected in text
    assert not [bit for bit in SECRET_BITS if bit in text], text


def test_a_permanent_job_error_is_written_by_the_platform_and_shown_as_is() -> None:
    assert summary(PermanentJobError("the skill no longer exists")) == "the skill no longer exists"


def test_the_worker_lost_messages_say_what_happened_in_plain_words() -> None:
    assert WORKER_LOST_REQUEUED.startswith("worker lost")
    assert "re-queued by the sweeper" in WORKER_LOST_REQUEUED
    assert "took the job over" in WORKER_LOST_TAKEN_OVER
    assert "no attempt is left" in WORKER_LOST_NO_ATTEMPT_LEFT


def test_a_requeue_names_who_did_it_and_fits_the_column() -> None:
    assert requeued_by("Ada (admin)", "dead") == "re-queued by Ada (admin) (it was dead)"
    assert len(requeued_by("x" * 5000, "failed")) == MAX_ERROR


@pytest.mark.parametrize(
    ("timeout", "configured", "interval"),
    [
        (300, None, 60.0),  # the default: a fifth of the timeout, at most a minute
        (10, None, 2.0),
        (3, None, 1.0),  # at least a second
        (3600, None, 60.0),
        (300, 15.0, 15.0),  # set explicitly
        (300, 0.0, None),  # 0 turns the sweeper off
    ],
)
def test_the_sweep_interval_follows_the_job_timeout_unless_set(
    timeout: int, configured: float | None, interval: float | None
) -> None:
    settings = Settings(
        _env_file=None, job_timeout_seconds=timeout, job_sweep_interval_seconds=configured
    )

    assert settings.job_sweep_interval == interval


def test_an_empty_sweep_interval_is_derived(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOB_SWEEP_INTERVAL_SECONDS", "")

    assert Settings(_env_file=None, job_timeout_seconds=50).job_sweep_interval == 10.0
