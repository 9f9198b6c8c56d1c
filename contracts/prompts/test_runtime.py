"""The application's providers: interactive (budgeted, one retry) and background (full
retries) share one HTTP client and one circuit breaker; bad settings stop a hardened start."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import httpx
import pytest
import respx
from flask import Flask
from pydantic import SecretStr

from app.ai.errors import AIConfigurationError, CircuitOpenError, ProviderRequestError
from app.ai.models import GradeResult, Usage
from app.ai.offline import OfflineProvider
from app.ai.openai_compatible import OpenAICompatibleProvider
from app.ai.resilience import CircuitBreaker, RetryPolicy
from app.ai.runtime import (
    EXTENSION,
    INTERACTIVE_RETRY,
    ai_providers,
    build_ai_providers,
    init_app,
    log_usage,
)
from app.config import Settings
from contracts.prompts.conftest import GRADING, LLM, SKILL, FakeClock


def settings(**overrides: Any) -> Settings:
    return Settings(**{"_env_file": None, "app_env": "test", **overrides})


def openai_settings(**overrides: Any) -> Settings:
    return settings(
        ai_provider="openai",
        ai_base_url=LLM,
        ai_model="m",
        ai_api_key=SecretStr("sk-x"),
        **overrides,
    )


def test_offline_settings_give_the_offline_provider_for_both_uses() -> None:
    providers = build_ai_providers(settings())

    assert isinstance(providers.interactive, OfflineProvider)
    assert providers.background is providers.interactive
    assert providers.client is None
    providers.close()  # nothing to close


def test_openai_settings_give_two_providers_sharing_one_client_and_one_breaker() -> None:
    providers = build_ai_providers(openai_settings(ai_grade_budget_seconds=2.5))
    interactive, background = providers.interactive, providers.background

    assert isinstance(interactive, OpenAICompatibleProvider)
    assert isinstance(background, OpenAICompatibleProvider)
    assert interactive._client is background._client is providers.client
    assert interactive.breaker is background.breaker is providers.breaker
    assert (interactive.budget, interactive.retry) == (2.5, INTERACTIVE_RETRY)
    assert interactive.retry.max_attempts < background.retry.max_attempts
    assert (background.budget, background.retry) == (None, RetryPolicy())
    assert providers.client is not None
    providers.close()
    assert providers.client.is_closed


@pytest.mark.respx(base_url=LLM)
def test_failures_of_grading_open_the_circuit_for_generation_jobs_too(
    respx_mock: respx.MockRouter, http_client: httpx.Client, clock: FakeClock
) -> None:
    breaker = CircuitBreaker(failure_threshold=1, clock=clock)
    providers = build_ai_providers(openai_settings(), client=http_client, breaker=breaker)
    route = respx_mock.post("/chat/completions").mock(return_value=httpx.Response(401))

    with pytest.raises(ProviderRequestError):
        providers.interactive.grade_short_answer(GRADING)
    with pytest.raises(CircuitOpenError):
        providers.background.generate_items(SKILL, 2)

    assert route.call_count == 1
    providers.close()
    assert not http_client.is_closed  # an injected client stays the caller's


@pytest.mark.parametrize("app_env", ["staging", "production"])
def test_a_bad_ai_configuration_stops_a_hardened_start(app_env: str) -> None:
    bad = Settings(_env_file=None, app_env=app_env, ai_provider="openai", ai_model="m")

    with pytest.raises(
        AIConfigurationError,
        match=f"Refusing to start with APP_ENV={app_env}: AI_PROVIDER=openai needs AI_BASE_URL",
    ):
        init_app(Flask(__name__), bad)


def test_a_bad_ai_configuration_in_development_runs_offline_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = Flask(__name__)

    with caplog.at_level(logging.ERROR, logger="app.ai.runtime"):
        init_app(app, settings(app_env="development", ai_provider="openai", ai_base_url=LLM))

    providers = ai_providers(app)
    assert isinstance(providers.interactive, OfflineProvider)
    assert providers.problem == "AI_PROVIDER=openai needs AI_BASE_URL and AI_MODEL"
    assert [record.getMessage() for record in caplog.records] == [
        "ai.misconfigured AI_PROVIDER=openai needs AI_BASE_URL and AI_MODEL; "
        "using the offline provider until it is fixed"
    ]


def test_the_accessor_finds_the_current_apps_providers() -> None:
    app = Flask(__name__)
    init_app(app, settings())

    with app.app_context():
        assert ai_providers() is app.extensions[EXTENSION]
    assert ai_providers(app).problem is None


def test_usage_is_logged_per_call_with_ids_only(caplog: pytest.LogCaptureFixture) -> None:
    item_id = uuid.UUID(int=7)
    result = GradeResult(
        score=0.5,
        correct=False,
        feedback="secret learner-facing text",
        provider="openai",
        template="grade_short_answer",
        template_version=1,
        usage=Usage(prompt_tokens=120, completion_tokens=30, total_tokens=150),
    )

    with caplog.at_level(logging.INFO, logger="app.ai.runtime"):
        log_usage(result, session_id="s-1", item_id=item_id)
        log_usage(result.model_copy(update={"usage": None}), item_id=item_id)

    assert [record.getMessage() for record in caplog.records] == [
        "ai.usage provider=openai template=grade_short_answer.v1 prompt_tokens=120 "
        f"completion_tokens=30 item_id={item_id} session_id=s-1",
        "ai.usage provider=openai template=grade_short_answer.v1 prompt_tokens=- "
        f"completion_tokens=- item_id={item_id}",
    ]
    assert all(record.levelno == logging.INFO for record in caplog.records)
