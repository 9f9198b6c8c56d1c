"""Fixtures for the prompt contracts. Self-contained: tests/conftest.py is not loaded here."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.json import JSONSnapshotExtension

from app.ai.models import GradingRequest, HintRequest, SkillBrief
from app.ai.openai_compatible import OpenAICompatibleProvider
from app.ai.resilience import CircuitBreaker, RetryPolicy

LLM = "https://llm.invalid/v1"
MODEL = "contract-model"
API_KEY = "sk-contract-test"
GOOD_GRADE = '{"score": 0.75, "correct": true, "feedback": "Mostly right."}'
NOW = 1_800_000_000.0  # the wall clock the client sees (for HTTP-date Retry-After)

SKILL = SkillBrief(
    skill_id="skill-0001",
    name="Photosynthesis",
    description=(
        "Photosynthesis converts light energy into chemical energy. Chlorophyll absorbs mostly "
        "red and blue light. The Calvin cycle fixes carbon dioxide into sugars."
    ),
    material="Plants release oxygen as a by-product of splitting water.",
)
GRADING = GradingRequest(
    item_id="item-0042",
    stem="What does chlorophyll do in photosynthesis?",
    reference_answer="Chlorophyll absorbs red and blue light to drive photosynthesis.",
    rubric=["mentions absorbing light", "names red or blue light"],
    response="It soaks up light, mostly the red and blue part.",
)
HINTING = HintRequest(
    item_id="item-0042",
    stem="What does chlorophyll do in photosynthesis?",
    reference_answer="Chlorophyll absorbs red and blue light to drive photosynthesis.",
    rubric=["mentions absorbing light", "names red or blue light"],
)

# Fixed fields for rendering each template directly, by template name.
TEMPLATE_FIELDS: dict[str, dict[str, str]] = {
    "generate_items": {
        "skill_id": SKILL.skill_id,
        "skill_name": SKILL.name,
        "description": SKILL.description,
        "material": SKILL.material,
        "count": "4",
    },
    "grade_short_answer": {
        "item_id": GRADING.item_id,
        "stem": GRADING.stem,
        "reference_answer": GRADING.reference_answer,
        "rubric": "- mentions absorbing light\n- names red or blue light",
        "response": GRADING.response,
    },
    "hint": {
        "item_id": HINTING.item_id,
        "stem": HINTING.stem,
        "reference_answer": HINTING.reference_answer,
        "rubric": "- mentions absorbing light\n- names red or blue light",
    },
}


class FakeClock:
    """A monotonic clock the tests move by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def completion(content: str, usage: dict[str, Any] | None = None) -> httpx.Response:
    """A chat-completions response whose first choice says `content`."""
    body: dict[str, Any] = {
        "id": "chatcmpl-contract",
        "object": "chat.completion",
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": content},
            }
        ],
    }
    if usage is not None:
        body["usage"] = usage
    return httpx.Response(200, json=body)


@pytest.fixture
def snapshot_json(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.with_defaults(extension_class=JSONSnapshotExtension)


@pytest.fixture
def sleeps() -> list[float]:
    """Every delay the client asked to sleep, in order (nothing really sleeps)."""
    return []


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


MakeProvider = Callable[..., OpenAICompatibleProvider]


@pytest.fixture(scope="session")
def http_client() -> Iterator[httpx.Client]:
    """One client for the run (building its TLS context is slow); respx patches below it."""
    with httpx.Client() as client:
        yield client


@pytest.fixture
def make_provider(sleeps: list[float], clock: FakeClock, http_client: httpx.Client) -> MakeProvider:
    def make(
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        api_key: str | None = API_KEY,
    ) -> OpenAICompatibleProvider:
        return OpenAICompatibleProvider(
            LLM,
            MODEL,
            api_key,
            client=http_client,
            retry=retry or RetryPolicy(max_attempts=3, base_delay=0.5, jitter=0.5),
            breaker=breaker or CircuitBreaker(failure_threshold=5, clock=clock),
            sleep=sleeps.append,
            wall_clock=lambda: NOW,
            rng=random.Random(1234),
        )

    return make


@pytest.fixture
def provider(make_provider: MakeProvider) -> OpenAICompatibleProvider:
    return make_provider()
