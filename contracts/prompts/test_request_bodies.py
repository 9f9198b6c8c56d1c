"""The exact request the OpenAI-compatible client sends for each operation, with fixed inputs:
messages, model parameters, response schema and template metadata."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import respx
from syrupy.assertion import SnapshotAssertion

from app.ai.models import GradingRequest, HintRequest, SkillBrief
from app.ai.openai_compatible import OpenAICompatibleProvider
from contracts.prompts.conftest import API_KEY, GRADING, HINTING, LLM, SKILL, completion

VALID_OUTPUT = {
    "generate_items": {
        "items": [
            {
                "kind": "mcq",
                "stem": "What does chlorophyll absorb?",
                "choices": ["light", "oxygen", "sugar", "water"],
                "answer_index": 0,
                "reference_answer": None,
                "rubric": [],
            }
        ]
    },
    "grade_short_answer": {"score": 0.9, "correct": True, "feedback": "Well explained."},
    "hint": {"hint": "Think about which colours a leaf does not reflect."},
}
Call = Callable[[OpenAICompatibleProvider], Any]
OPERATIONS: dict[str, Call] = {
    "generate_items": lambda provider: provider.generate_items(SKILL, 4),
    "grade_short_answer": lambda provider: provider.grade_short_answer(GRADING),
    "hint": lambda provider: provider.hint(HINTING),
}


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
@pytest.mark.respx(base_url=LLM)
def test_request_body_matches_its_snapshot(
    operation: str,
    respx_mock: respx.MockRouter,
    provider: OpenAICompatibleProvider,
    snapshot_json: SnapshotAssertion,
) -> None:
    route = respx_mock.post("/chat/completions").mock(
        return_value=completion(json.dumps(VALID_OUTPUT[operation]))
    )

    result = OPERATIONS[operation](provider)

    assert route.call_count == 1
    request = route.calls.last.request
    assert request.headers["X-Prompt-Template"] == f"{operation}.v1"
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    body = json.loads(request.content)
    assert body["metadata"] == {"template": operation, "template_version": "1"}
    assert (result.provider, result.template, result.template_version) == ("openai", operation, 1)
    assert body == snapshot_json


@pytest.mark.parametrize("model", [SkillBrief, GradingRequest, HintRequest])
def test_inputs_carry_no_learner_identity(model: type[Any]) -> None:
    assert not {"email", "user_id", "learner_id", "display_name"} & set(model.model_fields)
    assert model.model_config.get("extra") == "forbid"
