"""The OpenAI-compatible provider the settings describe (app/ai/runtime.py builds the
application's providers from it, or the offline one)."""

from __future__ import annotations

from typing import Any

from app.ai.errors import AIConfigurationError
from app.ai.openai_compatible import OpenAICompatibleProvider
from app.config import Settings


def openai_provider(settings: Settings, **options: Any) -> OpenAICompatibleProvider:
    """The OpenAI-compatible provider of the settings; `options` go to its constructor (client,
    retry policy, breaker, budget, ...). Raises AIConfigurationError without a URL or model."""
    base_url, model = openai_endpoint(settings)
    key = settings.ai_api_key.get_secret_value() if settings.ai_api_key else None
    return OpenAICompatibleProvider(base_url=base_url, model=model, api_key=key, **options)


def openai_endpoint(settings: Settings) -> tuple[str, str]:
    """(base URL, model) of the settings, or AIConfigurationError when either is missing."""
    if not settings.ai_base_url or not settings.ai_model:
        raise AIConfigurationError("AI_PROVIDER=openai needs AI_BASE_URL and AI_MODEL")
    return settings.ai_base_url, settings.ai_model
