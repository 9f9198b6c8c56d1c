"""Choosing the provider the settings ask for."""

from __future__ import annotations

from app.ai.errors import AIConfigurationError
from app.ai.offline import OfflineProvider
from app.ai.openai_compatible import OpenAICompatibleProvider
from app.ai.provider import Provider
from app.config import Settings


def build_provider(settings: Settings) -> Provider:
    """The offline provider, or the OpenAI-compatible one when `AI_PROVIDER=openai`."""
    if settings.ai_provider == "offline":
        return OfflineProvider()
    if not settings.ai_base_url or not settings.ai_model:
        raise AIConfigurationError("AI_PROVIDER=openai needs AI_BASE_URL and AI_MODEL")
    key = settings.ai_api_key.get_secret_value() if settings.ai_api_key else None
    return OpenAICompatibleProvider(
        base_url=settings.ai_base_url, model=settings.ai_model, api_key=key
    )
