"""The circuit breaker around the real client: opens after N consecutive failed calls, rejects
without any HTTP call while open, and lets one half-open probe decide after the cool-down."""

from __future__ import annotations

import httpx
import pytest
import respx

from app.ai.errors import CircuitOpenError, ProviderRequestError, ProviderUnavailableError
from app.ai.openai_compatible import OpenAICompatibleProvider
from app.ai.resilience import CircuitBreaker, RetryPolicy
from contracts.prompts.conftest import GOOD_GRADE, GRADING, LLM, FakeClock, MakeProvider, completion

pytestmark = pytest.mark.respx(base_url=LLM)


@pytest.fixture
def breaker(clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker(failure_threshold=3, reset_timeout=30.0, clock=clock)


@pytest.fixture
def fragile(make_provider: MakeProvider, breaker: CircuitBreaker) -> OpenAICompatibleProvider:
    """One attempt per call, so each failed call is one failure for the breaker."""
    return make_provider(retry=RetryPolicy(max_attempts=1), breaker=breaker)


def state_now(breaker: CircuitBreaker) -> str:
    return breaker.state


def fail_three_times(provider: OpenAICompatibleProvider) -> None:
    for _ in range(3):
        with pytest.raises(ProviderUnavailableError):
            provider.grade_short_answer(GRADING)


def test_circuit_opens_after_n_failures_and_rejects_without_calling(
    respx_mock: respx.MockRouter, fragile: OpenAICompatibleProvider, breaker: CircuitBreaker
) -> None:
    route = respx_mock.post("/chat/completions").mock(return_value=httpx.Response(500))

    fail_three_times(fragile)
    assert breaker.state == "open"
    with pytest.raises(CircuitOpenError, match="circuit open"):
        fragile.grade_short_answer(GRADING)

    assert route.call_count == 3


def test_half_open_probe_that_succeeds_closes_the_circuit(
    respx_mock: respx.MockRouter,
    fragile: OpenAICompatibleProvider,
    breaker: CircuitBreaker,
    clock: FakeClock,
) -> None:
    route = respx_mock.post("/chat/completions").mock(
        side_effect=[httpx.Response(500)] * 3 + [completion(GOOD_GRADE), completion(GOOD_GRADE)]
    )
    fail_three_times(fragile)

    clock.advance(29.9)
    with pytest.raises(CircuitOpenError):
        fragile.grade_short_answer(GRADING)
    clock.advance(0.1)
    assert breaker.state == "half_open"
    probe = fragile.grade_short_answer(GRADING)

    assert probe.correct is True
    # Read anew: mypy keeps `breaker.state` narrowed to "half_open" across the call above.
    assert state_now(breaker) == "closed"
    assert fragile.grade_short_answer(GRADING).correct is True
    assert route.call_count == 5


@pytest.mark.parametrize(
    ("failure", "error"),
    [(httpx.Response(503), ProviderUnavailableError), (httpx.Response(401), ProviderRequestError)],
)
def test_half_open_probe_that_fails_reopens_for_another_cool_down(
    respx_mock: respx.MockRouter,
    fragile: OpenAICompatibleProvider,
    breaker: CircuitBreaker,
    clock: FakeClock,
    failure: httpx.Response,
    error: type[Exception],
) -> None:
    route = respx_mock.post("/chat/completions").mock(
        side_effect=[httpx.Response(500)] * 3 + [failure]
    )
    fail_three_times(fragile)
    clock.advance(30)

    with pytest.raises(error):
        fragile.grade_short_answer(GRADING)  # the probe
    with pytest.raises(CircuitOpenError):
        fragile.grade_short_answer(GRADING)  # only one probe per cool-down

    assert breaker.state == "open"
    assert route.call_count == 4


def test_a_success_resets_the_consecutive_failure_count(
    respx_mock: respx.MockRouter, fragile: OpenAICompatibleProvider, breaker: CircuitBreaker
) -> None:
    five_hundred = httpx.Response(500)
    route = respx_mock.post("/chat/completions").mock(
        side_effect=[five_hundred, five_hundred, completion(GOOD_GRADE), five_hundred, five_hundred]
    )

    for expected in (ProviderUnavailableError, ProviderUnavailableError, None) + (
        ProviderUnavailableError,
    ) * 2:
        if expected is None:
            fragile.grade_short_answer(GRADING)
        else:
            with pytest.raises(expected):
                fragile.grade_short_answer(GRADING)

    assert breaker.state == "closed"
    assert breaker.failures == 2
    assert route.call_count == 5
