"""OpenAI-compatible responses for tests that fake the AI provider at the HTTP layer, and a fixed
random source for the generation job's retry jitter."""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from flask import Flask
from pydantic import SecretStr

from app.ai.openai_compatible import OpenAICompatibleProvider
from app.ai.resilience import CircuitBreaker, RetryPolicy
from app.ai.runtime import EXTENSION, AIProviders, build_ai_providers
from app.config import Settings

AI_BASE_URL = "https://ai.test/v1"
AI_MODEL = "test-model"


def completion_body(content: dict[str, Any] | str) -> dict[str, Any]:
    text = content if isinstance(content, str) else json.dumps(content)
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": 120, "completion_tokens": 80, "total_tokens": 200},
    }


def completion(content: dict[str, Any] | str) -> httpx.Response:
    return httpx.Response(200, json=completion_body(content))


def drafts(count: int, prefix: str = "Generated question") -> dict[str, Any]:
    """A valid `generate_items` answer: alternating mcq and short-answer drafts."""
    items: list[dict[str, Any]] = []
    for n in range(count):
        if n % 2 == 0:
            items.append(
                {
                    "kind": "mcq",
                    "stem": f"{prefix} {n}?",
                    "choices": ["right", "wrong", "also wrong"],
                    "answer_index": 0,
                    "reference_answer": None,
                    "rubric": [],
                }
            )
        else:
            items.append(
                {
                    "kind": "short_answer",
                    "stem": f"{prefix} {n}?",
                    "choices": [],
                    "answer_index": None,
                    "reference_answer": "the answer",
                    "rubric": ["names the answer"],
                }
            )
    return {"items": items}


def http_provider(max_attempts: int = 1, base_url: str = AI_BASE_URL) -> OpenAICompatibleProvider:
    """The real OpenAI-compatible client that never sleeps between retries."""
    return OpenAICompatibleProvider(
        base_url=base_url,
        model=AI_MODEL,
        api_key="sk-test-key",
        retry=RetryPolicy(max_attempts=max_attempts),
        breaker=CircuitBreaker(failure_threshold=100),
        sleep=lambda _seconds: None,
    )


class FakeTime:
    """The providers' monotonic clock and sleep: sleeping only moves the clock."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@contextmanager
def openai_providers(
    app: Flask,
    api_key: str,
    *,
    client: httpx.Client | None = None,
    clock: FakeTime | None = None,
    only_interactive: bool = False,
) -> Iterator[AIProviders]:
    """The app's providers as `AI_PROVIDER=openai` builds them, for the block; jobs keep the
    app's own background provider when `only_interactive`."""
    clock = clock or FakeTime()
    settings = Settings(
        _env_file=None,
        app_env="test",
        ai_provider="openai",
        ai_base_url=AI_BASE_URL,
        ai_model="m",
        ai_api_key=SecretStr(api_key),
    )
    built = build_ai_providers(settings, client=client, sleep=clock.sleep, clock=clock)
    previous: AIProviders = app.extensions[EXTENSION]
    app.extensions[EXTENSION] = (
        dataclasses.replace(previous, interactive=built.interactive, breaker=built.breaker)
        if only_interactive
        else built
    )
    try:
        yield built
    finally:
        app.extensions[EXTENSION] = previous
        built.close()


class FixedRandom(random.Random):
    """A generator whose `random()` is always `value`: a generation job's retry jitter at a
    chosen point (app.jobs.generation.backoff)."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value
