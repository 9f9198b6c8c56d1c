"""AI modules: the provider interface, its offline and OpenAI-compatible implementations, and the
versioned prompt templates they render.

This package owns what is sent to a language model and how its answers are validated. It
never sees learner PII: inputs carry ids and content only. The application builds its providers
once (`app.ai.runtime.build_ai_providers`, reached through `ai_providers(app)`); callers
decide their own fallbacks when an `AIProviderError` is raised.
"""

from __future__ import annotations

from app.ai.errors import (
    AIConfigurationError,
    AIProviderError,
    CircuitOpenError,
    InvalidOutputError,
    ProviderRequestError,
    ProviderUnavailableError,
)
from app.ai.models import (
    GeneratedItems,
    GradeResult,
    GradingRequest,
    Hint,
    HintRequest,
    ItemDraft,
    SkillBrief,
    Usage,
)
from app.ai.provider import Provider

__all__ = [
    "AIConfigurationError",
    "AIProviderError",
    "CircuitOpenError",
    "GeneratedItems",
    "GradeResult",
    "GradingRequest",
    "Hint",
    "HintRequest",
    "InvalidOutputError",
    "ItemDraft",
    "Provider",
    "ProviderRequestError",
    "ProviderUnavailableError",
    "SkillBrief",
    "Usage",
]
