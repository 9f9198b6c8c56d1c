"""The committed OpenAPI document is the published reference: it must be what the code serves.

After an intended API change, regenerate it with `./noxw -s openapi` and commit the diff
with the change, so reviewers see the contract move.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from openapi_spec_validator import validate

from app import create_app
from app.config import Settings
from app.validation import InputModel

COMMITTED = Path(__file__).parent / "openapi.json"


def served_spec() -> dict[str, Any]:
    app = create_app(Settings(_env_file=None))
    spec: dict[str, Any] = json.loads(json.dumps(app.spec))
    return spec


def test_the_committed_document_is_what_the_code_serves() -> None:
    committed = json.loads(COMMITTED.read_text())

    assert served_spec() == committed, "the API changed: run `./noxw -s openapi` and commit"


def test_the_committed_document_is_valid_openapi_3_1() -> None:
    committed = json.loads(COMMITTED.read_text())

    validate(committed)
    assert committed["openapi"].startswith("3.1")


def test_every_operation_documents_its_errors_as_problem_json() -> None:
    spec = served_spec()
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            where = f"{method.upper()} {path}"
            assert any(code.startswith("2") for code in responses), where
            for code, response in responses.items():
                if int(code) >= 400:
                    assert list(response["content"]) == ["application/problem+json"], where
            if "requestBody" in operation:
                assert operation["requestBody"]["required"] is True, where
                assert {"400", "413", "415", "422"} <= set(responses), where
            if operation.get("security"):
                assert "401" in responses, where
            if any(p["in"] == "path" for p in operation.get("parameters", [])):
                assert "404" in responses, where


def _input_models() -> dict[str, type[InputModel]]:
    found: dict[str, type[InputModel]] = {}
    pending: list[type[InputModel]] = [InputModel]
    while pending:
        model = pending.pop()
        found[model.__name__] = model
        pending.extend(model.__subclasses__())
    return found


def test_every_json_request_body_has_examples_that_the_api_accepts() -> None:
    spec = served_spec()
    models = _input_models()
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" not in content:
                continue
            name = content["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
            examples = spec["components"]["schemas"][name].get("examples")
            assert examples, f"{method.upper()} {path}: {name} has no examples"
            for example in examples:
                models[name].model_validate(example)  # raises if an example is invalid
