"""The AI capability's metrics: calls by outcome, their duration, tokens and the circuit state.

They live here, next to the errors they classify, and are registered with the observability
layer (app.observability.metrics) from `app.ai.runtime.init_app`; observability itself never
imports this package. Names and labels are part of the metric contract (docs/observability.md,
"Metrics"): `operation` and `provider` come from fixed sets, never free text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge, Histogram

from app.ai.errors import CircuitOpenError, InvalidOutputError

if TYPE_CHECKING:
    from app.ai.models import Usage

CIRCUIT_STATES = {"closed": 0, "half_open": 1, "open": 2}

AI_CALLS = Counter(
    "mastery_ai_calls_total",
    "AI operations by outcome: success, error, circuit_open or invalid_output once per call; "
    "fallback in addition when the caller answered with its rule-based fallback instead.",
    ["operation", "provider", "outcome"],
)
AI_DURATION = Histogram(
    "mastery_ai_call_duration_seconds",
    "Wall time of one AI operation, retries and repair included (successes and failures).",
    ["operation", "provider"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0),
)
AI_CIRCUIT = Gauge(
    "mastery_ai_circuit_state",
    "Circuit breaker state as of the last call: 0 closed, 1 half_open, 2 open (worst worker).",
    ["provider"],
    multiprocess_mode="livemax",
)
AI_TOKENS = Counter(
    "mastery_ai_tokens_total",
    "Tokens the provider reported for successful operations, by kind (prompt, completion).",
    ["operation", "provider", "kind"],
)


def ai_outcome(error: BaseException | None) -> str:
    """success | circuit_open | invalid_output | error (every other provider failure)."""
    if error is None:
        return "success"
    if isinstance(error, CircuitOpenError):
        return "circuit_open"
    if isinstance(error, InvalidOutputError):
        return "invalid_output"
    return "error"


def record_ai_call(
    operation: str,
    provider: str,
    seconds: float,
    error: BaseException | None = None,
    usage: Usage | None = None,
) -> None:
    """Count one AI operation (one provider method call, retries and repair included)."""
    AI_CALLS.labels(operation, provider, ai_outcome(error)).inc()
    AI_DURATION.labels(operation, provider).observe(seconds)
    if usage is not None:
        AI_TOKENS.labels(operation, provider, "prompt").inc(usage.prompt_tokens)
        AI_TOKENS.labels(operation, provider, "completion").inc(usage.completion_tokens)


def record_ai_fallback(operation: str, provider: str) -> None:
    """The caller answered with its rule-based fallback instead of `provider`'s answer."""
    AI_CALLS.labels(operation, provider, "fallback").inc()


def set_circuit_state(provider: str, state: str) -> None:
    AI_CIRCUIT.labels(provider).set(CIRCUIT_STATES.get(state, 0))
