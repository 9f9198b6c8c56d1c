"""The application's AI providers: built once when the app is created, shared by every request.

Two providers answer to the same settings:

* `interactive`, for grading and hints while a learner waits: one retry at most, with a short
  backoff, and the whole operation (retries and repair included) within
  `AI_GRADE_BUDGET_SECONDS`. Callers fall back to rules when it raises `AIProviderError`.
* `background`, for generation jobs: the full retry policy and no time budget.

With `AI_PROVIDER=openai` both share one HTTP client (one connection pool) and one circuit
breaker, so a provider that keeps failing for jobs is not hammered by grading either, and the
other way round.

A bad configuration (`openai` without `AI_BASE_URL` or `AI_MODEL`) stops a staging or production
start with an error naming the settings. In development and test the platform starts with the
offline provider instead, logs the problem at ERROR and keeps it in `AIProviders.problem`, so a
half-edited `.env` does not block local work but cannot go unnoticed.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass

import httpx
from flask import Flask, current_app

from app.ai import metrics
from app.ai.errors import AIConfigurationError
from app.ai.factory import openai_endpoint, openai_provider
from app.ai.models import Provenance
from app.ai.offline import OfflineProvider
from app.ai.provider import Provider
from app.ai.resilience import CircuitBreaker, Clock, RetryPolicy, Sleep
from app.config import Settings
from app.observability.metrics import register_scrape_hook

EXTENSION = "mastery.ai"
# A learner is waiting: one quick retry, and only if it fits in the budget.
INTERACTIVE_RETRY = RetryPolicy(max_attempts=2, base_delay=0.25, max_delay=1.0)
BACKGROUND_RETRY = RetryPolicy()

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AIProviders:
    """The providers of one application, and what they share."""

    interactive: Provider
    background: Provider
    client: httpx.Client | None = None
    breaker: CircuitBreaker | None = None
    problem: str | None = None  # the configuration error the offline provider stands in for
    owns_client: bool = False

    def close(self) -> None:
        """Close the shared HTTP client if it was created here (an injected one is the caller's)."""
        if self.client is not None and self.owns_client:
            self.client.close()


def build_ai_providers(
    settings: Settings,
    *,
    client: httpx.Client | None = None,
    breaker: CircuitBreaker | None = None,
    sleep: Sleep = time.sleep,
    clock: Clock = time.monotonic,
) -> AIProviders:
    """The interactive and background providers of the settings (AIConfigurationError if the
    settings cannot describe them). Both share `client`, `breaker`, `sleep` and `clock`."""
    if settings.ai_provider == "offline":
        offline = OfflineProvider()
        return AIProviders(interactive=offline, background=offline)
    openai_endpoint(settings)  # a configuration error before any client is opened
    owns_client = client is None
    breaker = breaker or CircuitBreaker(clock=clock)
    client = client or httpx.Client()
    shared = {"client": client, "breaker": breaker, "sleep": sleep, "clock": clock}
    interactive = openai_provider(
        settings, retry=INTERACTIVE_RETRY, budget=settings.ai_grade_budget_seconds, **shared
    )
    background = openai_provider(settings, retry=BACKGROUND_RETRY, **shared)
    return AIProviders(
        interactive, background, client=client, breaker=breaker, owns_client=owns_client
    )


def init_app(app: Flask, settings: Settings) -> None:
    """Build the providers into `app.extensions`; see the module docstring for bad settings."""
    try:
        providers = build_ai_providers(settings)
    except AIConfigurationError as error:
        if settings.is_hardened:
            raise AIConfigurationError(
                f"Refusing to start with APP_ENV={settings.app_env}: {error}"
            ) from error
        logger.error("ai.misconfigured %s; using the offline provider until it is fixed", error)
        offline = OfflineProvider()
        providers = AIProviders(offline, offline, problem=str(error))
    app.extensions[EXTENSION] = providers
    register_scrape_hook(app, lambda: sample_circuit(app))


def sample_circuit(app: Flask) -> None:
    """Refresh `mastery_ai_circuit_state` before a scrape: an open circuit cools down to
    half-open with time, not only on a call."""
    providers = ai_providers(app)
    if providers.breaker is not None:
        metrics.set_circuit_state(providers.interactive.name, providers.breaker.state)


def ai_providers(app: Flask | None = None) -> AIProviders:
    """The providers of `app` (default: the current application)."""
    providers: AIProviders = (app or current_app).extensions[EXTENSION]
    return providers


def log_usage(result: Provenance, **ids: uuid.UUID | str) -> None:
    """One INFO line per provider call: who answered, with which template, at what token cost.

    Only ids go with it (item, session, job, ...): never learner text, prompts or answers."""
    usage = result.usage
    logger.info(
        "ai.usage provider=%s template=%s.v%d prompt_tokens=%s completion_tokens=%s %s",
        result.provider,
        result.template,
        result.template_version,
        "-" if usage is None else usage.prompt_tokens,
        "-" if usage is None else usage.completion_tokens,
        " ".join(f"{name}={value}" for name, value in sorted(ids.items())),
        extra={
            # The same facts as fields of the JSON line (app.observability.logging).
            "event": "ai.usage",
            "provider": result.provider,
            "template": f"{result.template}.v{result.template_version}",
            "prompt_tokens": None if usage is None else usage.prompt_tokens,
            "completion_tokens": None if usage is None else usage.completion_tokens,
            **{name: str(value) for name, value in ids.items()},
        },
    )
