"""The time budget of interactive calls: every request's timeout is capped to what is left of
it, and no retry (nor the repair) starts when it cannot fit. respx in strict mode; the clock is
fake and moves only when a request "takes" time or the client "sleeps"."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import respx

from app.ai.errors import ProviderUnavailableError
from app.ai.openai_compatible import DEFAULT_TIMEOUT, OpenAICompatibleProvider
from app.ai.resilience import CircuitBreaker, RetryPolicy
from contracts.prompts.conftest import (
    API_KEY,
    GOOD_GRADE,
    GRADING,
    LLM,
    MODEL,
    NOW,
    FakeClock,
    completion,
)

pytestmark = pytest.mark.respx(base_url=LLM)
Budgeted = Callable[..., OpenAICompatibleProvider]
Step = tuple[float, "httpx.Response | Exception"]


@pytest.fixture
def budgeted(clock: FakeClock, sleeps: list[float], http_client: httpx.Client) -> Budgeted:
    """A provider with a time budget on the fake clock; its sleeps move that clock."""

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.advance(seconds)

    def make(
        budget: float | None = 4.0,
        retry: RetryPolicy | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    ) -> OpenAICompatibleProvider:
        return OpenAICompatibleProvider(
            LLM,
            MODEL,
            API_KEY,
            client=http_client,
            retry=retry or RetryPolicy(max_attempts=3, base_delay=0.5, jitter=0.5),
            breaker=CircuitBreaker(clock=clock),
            timeout=timeout,
            sleep=sleep,
            wall_clock=lambda: NOW,
            rng=random.Random(1234),
            budget=budget,
            clock=clock,
        )

    return make


def script(clock: FakeClock, *steps: Step) -> Callable[[httpx.Request], httpx.Response]:
    """A respx side effect: each request takes its step's seconds, then gets its outcome."""
    remaining = list(steps)

    def respond(request: httpx.Request) -> httpx.Response:
        seconds, outcome = remaining.pop(0)
        clock.advance(seconds)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return respond


def timeouts(route: respx.Route) -> list[dict[str, Any]]:
    """The timeout each recorded request was sent with, per phase."""
    return [call.request.extensions["timeout"] for call in route.calls]


def every_phase(seconds: float) -> dict[str, Any]:
    return {phase: pytest.approx(seconds) for phase in ("connect", "read", "write", "pool")}


def test_without_a_budget_the_configured_timeout_is_sent_unchanged(
    respx_mock: respx.MockRouter, budgeted: Budgeted
) -> None:
    route = respx_mock.post("/chat/completions").mock(return_value=completion(GOOD_GRADE))

    budgeted(budget=None).grade_short_answer(GRADING)

    assert timeouts(route) == [{"connect": 5.0, "read": 30.0, "write": 30.0, "pool": 30.0}]


@pytest.mark.parametrize(
    ("budget", "expected"),
    [
        (4.0, every_phase(4.0)),
        (10.0, {"connect": 5.0, "read": 10.0, "write": 10.0, "pool": 10.0}),
    ],
    ids=["budget-below-every-timeout", "connect-timeout-below-the-budget"],
)
def test_the_first_request_timeout_is_capped_to_the_whole_budget(
    respx_mock: respx.MockRouter,
    budgeted: Budgeted,
    budget: float,
    expected: dict[str, Any],
) -> None:
    route = respx_mock.post("/chat/completions").mock(return_value=completion(GOOD_GRADE))

    budgeted(budget=budget).grade_short_answer(GRADING)

    assert timeouts(route) == [expected]


def test_phases_without_a_timeout_are_bounded_by_the_budget(
    respx_mock: respx.MockRouter, budgeted: Budgeted
) -> None:
    route = respx_mock.post("/chat/completions").mock(return_value=completion(GOOD_GRADE))

    budgeted(budget=2.5, timeout=httpx.Timeout(None)).grade_short_answer(GRADING)

    assert timeouts(route) == [every_phase(2.5)]


def test_a_retry_gets_only_what_is_left_of_the_budget(
    respx_mock: respx.MockRouter, budgeted: Budgeted, clock: FakeClock, sleeps: list[float]
) -> None:
    route = respx_mock.post("/chat/completions").mock(
        side_effect=script(
            clock, (1.5, httpx.ReadTimeout("slow upstream")), (0.2, completion(GOOD_GRADE))
        )
    )

    result = budgeted(budget=4.0).grade_short_answer(GRADING)

    assert result.correct is True
    assert len(sleeps) == 1
    assert timeouts(route) == [every_phase(4.0), every_phase(4.0 - 1.5 - sleeps[0])]


def test_a_retry_whose_delay_would_overrun_the_budget_is_not_started(
    respx_mock: respx.MockRouter, budgeted: Budgeted, clock: FakeClock, sleeps: list[float]
) -> None:
    rate_limited = httpx.Response(429, headers={"Retry-After": "7"})
    route = respx_mock.post("/chat/completions").mock(
        side_effect=script(clock, (0.1, rate_limited), (0.1, completion(GOOD_GRADE)))
    )

    with pytest.raises(
        ProviderUnavailableError,
        match=r"gave up after 1 attempts: a 7\.00s retry delay would overrun the 4\.0s budget "
        r"\(last: HTTP 429\)",
    ):
        budgeted(budget=4.0).grade_short_answer(GRADING)

    assert route.call_count == 1
    assert sleeps == []
    assert clock.now == pytest.approx(1000.1)  # gave up at once instead of waiting 7 s


def test_slow_failures_stop_the_retries_before_the_attempts_run_out(
    respx_mock: respx.MockRouter, budgeted: Budgeted, clock: FakeClock, sleeps: list[float]
) -> None:
    """Each 503 takes 1.5 s: after the first retry (backoff 0.5-0.75 s) 3.5 s or more are
    gone, and the second backoff (1-1.5 s) no longer fits into 4 s: two of five attempts."""
    provider = budgeted(budget=4.0, retry=RetryPolicy(max_attempts=5, base_delay=0.5, jitter=0.5))
    route = respx_mock.post("/chat/completions").mock(
        side_effect=script(clock, *[(1.5, httpx.Response(503))] * 5)
    )

    with pytest.raises(ProviderUnavailableError, match="gave up after 2 attempts: a 1"):
        provider.grade_short_answer(GRADING)

    assert route.call_count == 2
    assert len(sleeps) == 1
    assert clock.now - 1000.0 < 4.0


def test_the_repair_request_gets_only_what_is_left_of_the_budget(
    respx_mock: respx.MockRouter, budgeted: Budgeted, clock: FakeClock
) -> None:
    route = respx_mock.post("/chat/completions").mock(
        side_effect=script(clock, (1.0, completion("not json")), (0.5, completion(GOOD_GRADE)))
    )

    result = budgeted(budget=4.0).grade_short_answer(GRADING)

    assert result.score == 0.75
    assert timeouts(route) == [every_phase(4.0), every_phase(3.0)]
    repair = json.loads(route.calls[1].request.content)["messages"]
    assert repair[-1]["content"].startswith("Your previous reply did not match")


def test_no_request_starts_once_the_budget_is_used_up(
    respx_mock: respx.MockRouter, budgeted: Budgeted, clock: FakeClock
) -> None:
    route = respx_mock.post("/chat/completions").mock(
        side_effect=script(clock, (4.5, completion("not json")), (0.1, completion(GOOD_GRADE)))
    )

    with pytest.raises(
        ProviderUnavailableError,
        match=r"the 4\.0s budget was used up before request 1 could start",
    ):
        budgeted(budget=4.0).grade_short_answer(GRADING)

    assert route.call_count == 1  # the repair was never sent
