"""How the OpenAI-compatible client reacts to what comes back: respx in strict mode (every
route called, nothing unmocked), asserting the result, the number of calls and the sleeps."""

from __future__ import annotations

import json
import logging
from email.utils import formatdate

import httpx
import pytest
import respx

from app.ai.errors import InvalidOutputError, ProviderRequestError, ProviderUnavailableError
from app.ai.models import Usage
from app.ai.openai_compatible import OpenAICompatibleProvider
from app.ai.resilience import RetryPolicy
from contracts.prompts.conftest import GRADING, LLM, NOW, MakeProvider, completion

GOOD = json.dumps({"score": 0.75, "correct": True, "feedback": "Mostly right."})
USAGE = {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150}
pytestmark = pytest.mark.respx(base_url=LLM)


def test_valid_output_becomes_a_grade_with_usage(
    respx_mock: respx.MockRouter, provider: OpenAICompatibleProvider, sleeps: list[float]
) -> None:
    route = respx_mock.post("/chat/completions").mock(return_value=completion(GOOD, USAGE))

    result = provider.grade_short_answer(GRADING)

    assert (result.score, result.correct, result.feedback) == (0.75, True, "Mostly right.")
    assert result.usage == Usage(prompt_tokens=120, completion_tokens=30, total_tokens=150)
    assert route.call_count == 1
    assert sleeps == []


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("slow upstream"),
        httpx.ConnectTimeout("no route"),
        httpx.ConnectError("refused"),
        httpx.RemoteProtocolError("server disconnected without sending a response"),
        httpx.Response(500),
        httpx.Response(503),
        httpx.Response(429),
    ],
    ids=["read-timeout", "connect-timeout", "connect-error", "dropped", "500", "503", "429"],
)
def test_one_transient_failure_is_retried_after_a_jittered_backoff(
    respx_mock: respx.MockRouter,
    provider: OpenAICompatibleProvider,
    sleeps: list[float],
    failure: Exception | httpx.Response,
) -> None:
    route = respx_mock.post("/chat/completions").mock(side_effect=[failure, completion(GOOD)])

    result = provider.grade_short_answer(GRADING)

    assert result.score == 0.75
    assert route.call_count == 2
    assert len(sleeps) == 1
    assert 0.5 <= sleeps[0] <= 0.75  # base 0.5 s, up to 50 % jitter


def test_timeout_429_with_retry_after_and_500_are_retried_until_success(
    respx_mock: respx.MockRouter, make_provider: MakeProvider, sleeps: list[float]
) -> None:
    provider = make_provider(retry=RetryPolicy(max_attempts=4, base_delay=0.5, jitter=0.5))
    route = respx_mock.post("/chat/completions").mock(
        side_effect=[
            httpx.ReadTimeout("slow upstream"),
            httpx.Response(429, headers={"Retry-After": "7"}, json={"error": "rate limited"}),
            httpx.Response(500, json={"error": "boom"}),
            completion(GOOD, USAGE),
        ]
    )

    result = provider.grade_short_answer(GRADING)

    assert result.correct is True
    assert route.call_count == 4
    assert len(sleeps) == 3
    assert 0.5 <= sleeps[0] <= 0.75  # first retry: backoff
    assert sleeps[1] == 7.0  # Retry-After is honoured instead of the backoff
    assert 2.0 <= sleeps[2] <= 3.0  # third retry: 0.5 * 2**2, plus jitter


def test_retry_after_as_an_http_date_is_honoured(
    respx_mock: respx.MockRouter, provider: OpenAICompatibleProvider, sleeps: list[float]
) -> None:
    when = formatdate(NOW + 12, usegmt=True)
    route = respx_mock.post("/chat/completions").mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": when}), completion(GOOD)]
    )

    provider.grade_short_answer(GRADING)

    assert route.call_count == 2
    assert sleeps == [12.0]


@pytest.mark.parametrize(("header", "expected"), [("600", 30.0), ("soon", None)])
def test_huge_or_unreadable_retry_after_is_capped_or_ignored(
    respx_mock: respx.MockRouter,
    provider: OpenAICompatibleProvider,
    sleeps: list[float],
    header: str,
    expected: float | None,
) -> None:
    respx_mock.post("/chat/completions").mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": header}), completion(GOOD)]
    )

    provider.grade_short_answer(GRADING)

    if expected is None:
        assert 0.5 <= sleeps[0] <= 0.75  # fell back to the backoff
    else:
        assert sleeps == [expected]


def test_persistent_server_errors_give_up_after_the_bounded_attempts(
    respx_mock: respx.MockRouter,
    provider: OpenAICompatibleProvider,
    sleeps: list[float],
    caplog: pytest.LogCaptureFixture,
) -> None:
    route = respx_mock.post("/chat/completions").mock(return_value=httpx.Response(502))

    with (
        caplog.at_level(logging.WARNING, logger="app.ai.openai_compatible"),
        pytest.raises(
            ProviderUnavailableError, match=r"gave up after 3 attempts \(last: HTTP 502\)"
        ),
    ):
        provider.grade_short_answer(GRADING)

    assert route.call_count == 3
    assert len(sleeps) == 2
    assert [r.message.split(" reason=")[0] for r in caplog.records] == [
        "ai.retry template=grade_short_answer.v1 attempt=1",
        "ai.retry template=grade_short_answer.v1 attempt=2",
    ]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_are_not_retried(
    respx_mock: respx.MockRouter,
    provider: OpenAICompatibleProvider,
    sleeps: list[float],
    status: int,
) -> None:
    route = respx_mock.post("/chat/completions").mock(
        return_value=httpx.Response(status, json={"error": {"message": "bad request"}})
    )

    with pytest.raises(ProviderRequestError, match=f"provider answered {status}") as raised:
        provider.grade_short_answer(GRADING)

    assert raised.value.status_code == status
    assert route.call_count == 1
    assert sleeps == []


@pytest.mark.parametrize(
    "bad",
    [
        completion("Sure! The score is 0.75."),  # not JSON
        completion(json.dumps({"score": 1.7, "correct": True, "feedback": "x"})),  # out of range
        completion(json.dumps({"score": 0.5, "correct": True})),  # missing field
        completion(json.dumps({**json.loads(GOOD), "learner": "extra"})),  # unexpected field
        httpx.Response(200, json={"choices": []}),  # no choice at all
        httpx.Response(200, json={"choices": [{"message": {"content": None}}]}),  # refusal
        httpx.Response(200, text="<html>gateway</html>"),  # a body that is not JSON
    ],
    ids=["not-json", "out-of-range", "missing", "extra", "no-choices", "null-content", "html"],
)
def test_invalid_output_gets_one_repair_attempt_that_succeeds(
    respx_mock: respx.MockRouter, provider: OpenAICompatibleProvider, bad: httpx.Response
) -> None:
    route = respx_mock.post("/chat/completions").mock(side_effect=[bad, completion(GOOD, USAGE)])

    result = provider.grade_short_answer(GRADING)

    assert result.score == 0.75
    assert route.call_count == 2
    first = json.loads(route.calls[0].request.content)["messages"]
    repair = json.loads(route.calls[1].request.content)["messages"]
    assert repair[: len(first)] == first
    assert repair[-2]["role"] == "assistant"
    assert repair[-1]["role"] == "user"
    assert repair[-1]["content"].startswith("Your previous reply did not match")
    assert result.usage == Usage(**USAGE)


def test_repair_request_names_the_validation_error_and_sums_the_usage(
    respx_mock: respx.MockRouter, provider: OpenAICompatibleProvider
) -> None:
    bad = json.dumps({"score": 1.7, "correct": True, "feedback": "x"})
    route = respx_mock.post("/chat/completions").mock(
        side_effect=[completion(bad, USAGE), completion(GOOD, USAGE)]
    )

    result = provider.grade_short_answer(GRADING)

    repair = json.loads(route.calls[1].request.content)["messages"]
    assert repair[-2] == {"role": "assistant", "content": bad}
    assert "- score: Input should be less than or equal to 1" in repair[-1]["content"]
    assert result.usage == Usage(prompt_tokens=240, completion_tokens=60, total_tokens=300)


def test_output_invalid_twice_fails_clearly_after_exactly_two_calls(
    respx_mock: respx.MockRouter, provider: OpenAICompatibleProvider
) -> None:
    route = respx_mock.post("/chat/completions").mock(
        return_value=completion(json.dumps({"score": "high"}))
    )

    with pytest.raises(InvalidOutputError, match="still invalid after one repair") as raised:
        provider.grade_short_answer(GRADING)

    assert route.call_count == 2
    assert "- score: Input should be a valid number" in str(raised.value)


@pytest.mark.parametrize(
    "usage", [None, {"prompt_tokens": "many"}, "lots"], ids=["absent", "garbled", "not-object"]
)
def test_missing_or_garbled_usage_is_recorded_as_unknown(
    respx_mock: respx.MockRouter, provider: OpenAICompatibleProvider, usage: object
) -> None:
    response = completion(GOOD)
    if usage is not None:
        body = json.loads(response.content)
        response = httpx.Response(200, json={**body, "usage": usage})
    respx_mock.post("/chat/completions").mock(return_value=response)

    assert provider.grade_short_answer(GRADING).usage is None


def test_usage_from_only_one_of_the_two_calls_is_kept(
    respx_mock: respx.MockRouter, provider: OpenAICompatibleProvider
) -> None:
    respx_mock.post("/chat/completions").mock(
        side_effect=[completion("nope"), completion(GOOD, USAGE)]
    )

    assert provider.grade_short_answer(GRADING).usage == Usage(**USAGE)


def test_without_a_key_no_authorization_header_is_sent(
    respx_mock: respx.MockRouter, make_provider: MakeProvider
) -> None:
    route = respx_mock.post("/chat/completions").mock(return_value=completion(GOOD))

    make_provider(api_key=None).grade_short_answer(GRADING)

    assert "authorization" not in route.calls.last.request.headers
    assert route.calls.last.request.headers["x-prompt-template"] == "grade_short_answer.v1"


def test_closing_leaves_an_injected_client_open(
    make_provider: MakeProvider, http_client: httpx.Client
) -> None:
    make_provider().close()

    assert not http_client.is_closed
