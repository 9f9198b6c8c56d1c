"""The OpenAI-compatible chat-completions provider (OpenAI, Azure-style gateways, vLLM, Ollama).

Every request names its prompt template and version (body `metadata` and the
`X-Prompt-Template` header) and asks for structured output with a JSON schema. Timeouts and
other transport errors, 429 and 5xx are retried with exponential backoff and jitter
(`Retry-After` wins when sent); other 4xx are not. A circuit breaker stops calling a provider that keeps failing. Output that fails
validation gets exactly one repair attempt before `InvalidOutputError`. Each operation's
completion is capped (`max_tokens`), and the learner's text reaches the model with `<`, `>` and
`&` escaped, so it cannot close the answer markers of the grading prompt and speak as the
platform.

An optional time `budget` (seconds, on the injected monotonic `clock`) bounds one whole
operation, retries and repair included, for callers that have a learner waiting: each request's
timeout is capped to what remains of it, and a retry whose delay would overrun it is not started
(`ProviderUnavailableError`). httpx timeouts apply per phase (connect, each read, ...), so the
cap keeps one request close to the budget rather than exactly within it.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from app.ai import metrics
from app.ai.errors import (
    CircuitOpenError,
    InvalidOutputError,
    ProviderRequestError,
    ProviderUnavailableError,
)
from app.ai.models import (
    GeneratedItems,
    GradeOutput,
    GradeResult,
    GradingRequest,
    Hint,
    HintOutput,
    HintRequest,
    ItemsOutput,
    Provenance,
    SkillBrief,
    Usage,
)
from app.ai.prompts import PromptRegistry, RenderedPrompt, default_registry
from app.ai.resilience import CircuitBreaker, Clock, RetryPolicy, Sleep, parse_retry_after

PROVIDER_NAME = "openai"
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
TEMPLATE_HEADER = "X-Prompt-Template"
REPAIR_INSTRUCTION = (
    "Your previous reply did not match the required JSON schema:\n{errors}\n"
    "Reply again with only a JSON object that matches the schema."
)
MAX_DETAIL = 300
# Completion caps per template: a grade or a hint is a short JSON object; a batch of drafts is
# not. Output cut at the cap fails validation and is repaired once, then falls back.
MAX_TOKENS = {"grade_short_answer": 400, "hint": 300, "generate_items": 4000}
DEFAULT_MAX_TOKENS = 1000

logger = logging.getLogger(__name__)
Output = TypeVar("Output", bound=BaseModel)


class OpenAICompatibleProvider:
    """`Provider` over an OpenAI-compatible `/chat/completions` endpoint."""

    name = PROVIDER_NAME

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        client: httpx.Client | None = None,
        registry: PromptRegistry | None = None,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        sleep: Sleep = time.sleep,
        wall_clock: Clock = time.time,
        rng: random.Random | None = None,
        budget: float | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self._api_key = api_key
        self._owns_client = client is None
        self._client = client or httpx.Client()
        self.registry = registry or default_registry()
        self.retry = retry or RetryPolicy()
        self.breaker = breaker or CircuitBreaker()
        self.timeout = timeout
        self._sleep = sleep
        self._wall_clock = wall_clock
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self.budget = budget
        self._clock = clock

    def close(self) -> None:
        """Close the HTTP client if this provider created it (an injected one is the caller's)."""
        if self._owns_client:
            self._client.close()

    # --- operations ------------------------------------------------------------------------------

    def generate_items(self, skill: SkillBrief, count: int) -> GeneratedItems:
        output, provenance = self._run(
            "generate_items",
            ItemsOutput,
            skill_id=skill.skill_id,
            skill_name=skill.name,
            description=skill.description or "(none)",
            material=skill.material or "(none)",
            count=str(count),
        )
        return GeneratedItems(**output.model_dump(), **provenance.model_dump())

    def grade_short_answer(self, item: GradingRequest) -> GradeResult:
        output, provenance = self._run(
            "grade_short_answer",
            GradeOutput,
            item_id=item.item_id,
            stem=item.stem,
            reference_answer=item.reference_answer,
            rubric=bullets(item.rubric),
            response=escape_learner_text(item.response),
        )
        return GradeResult(**output.model_dump(), **provenance.model_dump())

    def hint(self, item: HintRequest) -> Hint:
        output, provenance = self._run(
            "hint",
            HintOutput,
            item_id=item.item_id,
            stem=item.stem,
            reference_answer=item.reference_answer,
            rubric=bullets(item.rubric),
        )
        return Hint(**output.model_dump(), **provenance.model_dump())

    # --- one operation: render, call, validate, repair once ---------------------------------------

    def request_body(
        self, prompt: RenderedPrompt, schema: type[BaseModel], messages: list[dict[str, str]]
    ) -> dict[str, Any]:
        """The exact JSON body sent for `prompt` (the contract tests snapshot it)."""
        return {
            "model": self.model,
            "messages": messages,
            "temperature": 0,
            "max_tokens": MAX_TOKENS.get(prompt.template, DEFAULT_MAX_TOKENS),
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": prompt.template,
                    "strict": True,
                    "schema": schema.model_json_schema(),
                },
            },
            "metadata": {"template": prompt.template, "template_version": str(prompt.version)},
        }

    def _run(self, name: str, schema: type[Output], **fields: str) -> tuple[Output, Provenance]:
        prompt = self.registry.get(name).render(fields)
        deadline = None if self.budget is None else self._clock() + self.budget
        messages = [message.model_dump() for message in prompt.messages]
        content, usage = self._complete(
            prompt, self.request_body(prompt, schema, messages), deadline
        )
        try:
            output = schema.model_validate_json(content)
        except ValidationError as error:
            logger.warning("ai.output_invalid template=%s.v%s; repairing", name, prompt.version)
            messages = [
                *messages,
                {"role": "assistant", "content": content},
                {"role": "user", "content": REPAIR_INSTRUCTION.format(errors=describe(error))},
            ]
            content, more = self._complete(
                prompt, self.request_body(prompt, schema, messages), deadline
            )
            usage = add_usage(usage, more)
            try:
                output = schema.model_validate_json(content)
            except ValidationError as second:
                raise InvalidOutputError(
                    f"{name}.v{prompt.version}: output still invalid after one repair: "
                    f"{describe(second)}"
                ) from second
        provenance = Provenance(
            provider=self.name, template=name, template_version=prompt.version, usage=usage
        )
        return output, provenance

    def _complete(
        self, prompt: RenderedPrompt, body: dict[str, Any], deadline: float | None
    ) -> tuple[str, Usage | None]:
        """One chat completion through the circuit breaker: (message content, usage)."""
        if not self.breaker.allow():
            metrics.set_circuit_state(self.name, self.breaker.state)
            raise CircuitOpenError(f"circuit open: not calling {self.url}")
        try:
            data = self._post_with_retries(prompt, body, deadline)
        except Exception:
            # Whatever went wrong, a half-open probe must not leave the breaker half-open.
            self.breaker.record_failure()
            metrics.set_circuit_state(self.name, self.breaker.state)
            raise
        self.breaker.record_success()
        metrics.set_circuit_state(self.name, self.breaker.state)
        return message_content(data), usage_of(data)

    def _post_with_retries(
        self, prompt: RenderedPrompt, body: dict[str, Any], deadline: float | None
    ) -> Any:
        headers = {TEMPLATE_HEADER: f"{prompt.template}.v{prompt.version}"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        attempts = self.retry.max_attempts
        attempt = 0
        while True:
            attempt += 1
            retry_after = None
            timeout = self._timeout_within(deadline)
            if timeout is None:
                raise ProviderUnavailableError(
                    f"{prompt.template}.v{prompt.version}: the {self.budget}s budget was used "
                    f"up before request {attempt} could start"
                )
            try:
                response = self._client.post(self.url, json=body, headers=headers, timeout=timeout)
            except httpx.TransportError as error:  # timeouts, refused, dropped, ...
                reason = type(error).__name__
            else:
                if response.is_success:
                    return response_json(response)
                if response.status_code != 429 and response.status_code < 500:
                    raise ProviderRequestError(response.status_code, response.text[:MAX_DETAIL])
                reason = f"HTTP {response.status_code}"
                retry_after = parse_retry_after(
                    response.headers.get("Retry-After"), self._wall_clock()
                )
            if attempt == attempts:
                raise ProviderUnavailableError(
                    f"{prompt.template}.v{prompt.version}: gave up after {attempts} attempts "
                    f"(last: {reason})"
                )
            delay = self.retry.delay(attempt, self._rng, retry_after)
            if deadline is not None and self._clock() + delay >= deadline:
                raise ProviderUnavailableError(
                    f"{prompt.template}.v{prompt.version}: gave up after {attempt} attempts: "
                    f"a {delay:.2f}s retry delay would overrun the {self.budget}s budget "
                    f"(last: {reason})"
                )
            logger.warning(
                "ai.retry template=%s.v%s attempt=%d reason=%s delay=%.2f",
                prompt.template,
                prompt.version,
                attempt,
                reason,
                delay,
            )
            self._sleep(delay)

    def _timeout_within(self, deadline: float | None) -> httpx.Timeout | None:
        """The request timeout, each phase capped to the budget left; None when none is left."""
        if deadline is None:
            return self.timeout
        left = deadline - self._clock()
        if left <= 0:
            return None
        return httpx.Timeout(
            connect=cap(self.timeout.connect, left),
            read=cap(self.timeout.read, left),
            write=cap(self.timeout.write, left),
            pool=cap(self.timeout.pool, left),
        )


def cap(seconds: float | None, limit: float) -> float:
    """A phase timeout no longer than `limit` (None, httpx's "no timeout", becomes `limit`)."""
    return limit if seconds is None else min(seconds, limit)


def escape_learner_text(text: str) -> str:
    """`text` with `&`, `<` and `>` as HTML entities: whatever the learner typed, the only
    `<<<ANSWER` / `ANSWER>>>` markers in the prompt are the template's own."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def bullets(lines: list[str]) -> str:
    return "\n".join(f"- {line}" for line in lines) or "(none)"


def describe(error: ValidationError) -> str:
    """Validation errors as `location: message` lines, without echoing the input."""
    lines = []
    for detail in error.errors(include_url=False, include_input=False):
        location = ".".join(str(part) for part in detail["loc"]) or "(root)"
        lines.append(f"- {location}: {detail['msg']}")
    return "\n".join(lines)


def response_json(response: httpx.Response) -> Any:
    """The decoded body, or None when it is not JSON (then validation and repair handle it)."""
    try:
        return response.json()
    except ValueError:
        return None


def message_content(data: Any) -> str:
    """The first choice's message content; anything else becomes '' (and fails validation)."""
    try:
        content = data["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return ""
    return content if isinstance(content, str) else ""


def usage_of(data: Any) -> Usage | None:
    usage = data.get("usage") if isinstance(data, dict) else None
    if not isinstance(usage, dict):
        return None
    try:
        return Usage(
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            total_tokens=int(usage.get("total_tokens", 0)),
        )
    except (TypeError, ValueError):
        return None


def add_usage(first: Usage | None, second: Usage | None) -> Usage | None:
    if first is None or second is None:
        return first or second
    return first + second
