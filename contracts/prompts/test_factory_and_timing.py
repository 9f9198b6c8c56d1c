"""The providers the settings describe (through `build_ai_providers`, what the application
builds at start-up), and the retry timing rules on their own."""

from __future__ import annotations

import random
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from app.ai import AIConfigurationError
from app.ai.openai_compatible import OpenAICompatibleProvider
from app.ai.resilience import RetryPolicy, parse_retry_after
from app.ai.runtime import build_ai_providers
from app.config import Settings


def settings(**overrides: Any) -> Settings:
    return Settings(_env_file=None, app_env="test", **overrides)


def test_openai_providers_are_built_from_the_settings() -> None:
    providers = build_ai_providers(
        settings(
            ai_provider="openai",
            ai_base_url="https://llm.invalid/v1/",
            ai_model="some-model",
            ai_api_key=SecretStr("sk-x"),
        )
    )

    for provider in (providers.interactive, providers.background):
        assert isinstance(provider, OpenAICompatibleProvider)
        assert provider.url == "https://llm.invalid/v1/chat/completions"
        assert provider.model == "some-model"
        assert provider.timeout == httpx.Timeout(30.0, connect=5.0)
        assert provider._api_key == "sk-x"
    providers.close()


def test_openai_without_a_key_sends_no_authorization() -> None:
    providers = build_ai_providers(
        settings(ai_provider="openai", ai_base_url="http://127.0.0.1:11434/v1", ai_model="m")
    )

    for provider in (providers.interactive, providers.background):
        assert isinstance(provider, OpenAICompatibleProvider)
        assert provider._api_key is None
    providers.close()


@pytest.mark.parametrize(
    "overrides", [{"ai_model": "m"}, {"ai_base_url": "https://llm.invalid/v1"}]
)
def test_openai_without_base_url_or_model_is_a_configuration_error(
    overrides: dict[str, str],
) -> None:
    with pytest.raises(AIConfigurationError, match="AI_BASE_URL and AI_MODEL"):
        build_ai_providers(settings(ai_provider="openai", **overrides))


def test_backoff_doubles_up_to_the_cap_plus_bounded_jitter() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=4.0, jitter=0.25)
    rng = random.Random(3)

    delays = [policy.backoff(retry, rng) for retry in range(1, 6)]

    for delay, base in zip(delays, [1.0, 2.0, 4.0, 4.0, 4.0], strict=True):
        assert base <= delay <= base * 1.25


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("3", 3.0),
        (" 0 ", 0.0),
        ("later", None),
        ("Thu, 01 Jan 1970 00:00:10 GMT", 0.0),
    ],
)
def test_retry_after_parsing(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=100.0) == expected
