"""Errors raised by AI providers. Callers catch `AIProviderError` and fall back."""

from __future__ import annotations


class AIProviderError(RuntimeError):
    """The provider could not produce a valid answer."""


class AIConfigurationError(AIProviderError):
    """The settings do not describe a usable provider (e.g. no base URL for `openai`)."""


class ProviderUnavailableError(AIProviderError):
    """Timeouts, 429 or 5xx persisted through every retry."""


class CircuitOpenError(ProviderUnavailableError):
    """The circuit breaker is open: the call was rejected without contacting the provider."""


class ProviderRequestError(AIProviderError):
    """The provider refused the request with a non-retryable status (4xx other than 429)."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(f"provider answered {status_code}: {detail}")
        self.status_code = status_code


class InvalidOutputError(AIProviderError):
    """The model's output failed validation, also after the one repair attempt."""
