"""The Celery settings that make delivery safe: JSON only, late acknowledgement, eager only
without a broker."""

from __future__ import annotations

from app.config import Settings
from app.jobs.celery_app import HARD_LIMIT_GRACE, celery_config


def test_workers_accept_json_only_and_acknowledge_late() -> None:
    config = celery_config(Settings(_env_file=None, redis_url="redis://queue:6379/0"))

    assert config["accept_content"] == ["json"]  # no pickle: a message cannot carry code
    assert config["task_serializer"] == "json"
    assert config["task_acks_late"] is True
    assert config["task_reject_on_worker_lost"] is True
    assert config["worker_prefetch_multiplier"] == 1
    assert config["broker_url"] == "redis://queue:6379/0"
    assert config["task_always_eager"] is False


def test_without_a_broker_jobs_run_in_process() -> None:
    config = celery_config(Settings(_env_file=None, redis_url=None, celery_broker_url=None))

    assert config["task_always_eager"] is True
    assert config["broker_url"].startswith("memory://")


def test_time_limits_and_redelivery_follow_the_job_settings() -> None:
    settings = Settings(
        _env_file=None,
        redis_url="redis://queue:6379/0",
        job_timeout_seconds=120,
        job_visibility_timeout_seconds=900,
        job_queue="generation",
    )

    config = celery_config(settings)

    assert config["task_soft_time_limit"] == 120
    assert config["task_time_limit"] == 120 + HARD_LIMIT_GRACE
    assert config["broker_transport_options"] == {"visibility_timeout": 900}
    assert config["task_default_queue"] == "generation"
