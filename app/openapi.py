"""The published OpenAPI document: what the framework generates, finished in one place.

APIFlask documents each operation's success and the errors its decorators declare; this
processor adds what holds for whole classes of operations, so no route can forget it:

* every error answers `application/problem+json` (RFC 9457) with the `Problem` schema
  (`ValidationProblem` for 422, which lists each invalid field);
* a request body is required wherever there is one, and such operations document 400
  (malformed JSON), 413 (too large) and 415 (wrong media type);
* operations with path parameters document 404, operations with input document 422, and every
  rate-limited operation documents 429 with `Retry-After`;
* links between operations (create a course, then its skill, item, session...) so clients and
  the stateful fuzzer can follow the resources they create.

The committed copy is `contracts/openapi/openapi.json`; `contracts/openapi/test_drift.py`
fails when it differs from this output (regenerate: see README, "OpenAPI document").
"""

from __future__ import annotations

from typing import Any

PROBLEM = "application/problem+json"
# Operations without a rate limit: probes and the documents themselves.
NOT_RATE_LIMITED = {"/healthz", "/readyz", "/openapi.json"}
GENERIC_ERRORS = {
    400: "Malformed request (e.g. the body is not valid JSON)",
    404: "A resource named in the path does not exist or is not visible to the caller",
    413: "The request body is too large",
    415: "The body's media type is not accepted",
    422: "The request is invalid; `errors` names each field",
    429: "Too many requests; retry after `Retry-After` seconds",
}

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "An RFC 9457 problem detail.",
    "required": ["type", "title", "status", "detail", "request_id"],
    "properties": {
        "type": {
            "type": "string",
            "description": "A URI naming the problem; `about:blank` for plain HTTP errors",
        },
        "title": {"type": "string", "description": "The HTTP status phrase"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string", "description": "What went wrong, for a human"},
        "request_id": {"type": "string", "description": "Quote it to support"},
    },
    "additionalProperties": True,
    "example": {
        "type": "https://mastery.example/problems/not-owner",
        "title": "Forbidden",
        "status": 403,
        "detail": "Only the course's owner or an admin may change it.",
        "request_id": "0f6c2a8e4d7b4e0c9a1b2c3d4e5f6a7b",
    },
}
VALIDATION_PROBLEM_SCHEMA: dict[str, Any] = {
    "allOf": [
        {"$ref": "#/components/schemas/Problem"},
        {
            "type": "object",
            "required": ["errors"],
            "properties": {
                "errors": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["location", "field", "messages"],
                        "properties": {
                            "location": {
                                "type": "string",
                                "description": "json, query, path, headers or files",
                            },
                            "field": {"type": "string"},
                            "messages": {"type": "array", "items": {"type": "string"}},
                        },
                    },
                }
            },
        },
    ],
    "example": {
        "type": "https://mastery.example/problems/validation-error",
        "title": "Unprocessable Content",
        "status": 422,
        "detail": "The request is invalid. title: String should have at least 1 character",
        "request_id": "0f6c2a8e4d7b4e0c9a1b2c3d4e5f6a7b",
        "errors": [
            {
                "location": "json",
                "field": "title",
                "messages": ["String should have at least 1 character"],
            }
        ],
    },
}

# Media types each multipart part accepts (OpenAPI `encoding`), by (method, path).
PART_TYPES: dict[tuple[str, str], dict[str, str]] = {
    ("post", "/skills/{skill_id}/materials"): {"file": "text/plain, text/markdown"},
}

# (method, path, status) → links to the operations that use what the response created.
# Parameters are runtime expressions (OpenAPI 3.1 §4.8.20.4); `body.<field>` fills the body.
LINKS: dict[tuple[str, str, str], dict[str, tuple[str, str, dict[str, str]]]] = {
    ("post", "/courses", "201"): {
        "GetCourse": ("get", "/courses/{course_id}", {"course_id": "$response.body#/id"}),
        "UpdateCourse": ("patch", "/courses/{course_id}", {"course_id": "$response.body#/id"}),
        "CreateSkill": (
            "post",
            "/courses/{course_id}/skills",
            {"course_id": "$response.body#/id"},
        ),
        "Enrol": (
            "post",
            "/courses/{course_id}/enrollments",
            {"course_id": "$response.body#/id"},
        ),
    },
    ("post", "/courses/{course_id}/skills", "201"): {
        "GetSkill": ("get", "/skills/{skill_id}", {"skill_id": "$response.body#/id"}),
        "CreateItem": ("post", "/skills/{skill_id}/items", {"skill_id": "$response.body#/id"}),
        "StartSession": ("post", "/sessions", {"body.skill_id": "$response.body#/id"}),
        "GenerateItems": (
            "post",
            "/skills/{skill_id}/generation-jobs",
            {"skill_id": "$response.body#/id"},
        ),
    },
    ("post", "/skills/{skill_id}/items", "201"): {
        "GetItem": ("get", "/items/{item_id}", {"item_id": "$response.body#/id"}),
        "PublishItem": ("post", "/items/{item_id}/publish", {"item_id": "$response.body#/id"}),
    },
    ("post", "/sessions", "201"): {
        "GetSession": (
            "get",
            "/sessions/{session_id}",
            {"session_id": "$response.body#/id"},
        ),
        "NextItem": (
            "get",
            "/sessions/{session_id}/next",
            {"session_id": "$response.body#/id"},
        ),
    },
    ("post", "/skills/{skill_id}/generation-jobs", "202"): {
        "GetJob": ("get", "/jobs/{job_id}", {"job_id": "$response.body#/id"}),
    },
}


def finish_spec(spec: dict[str, Any] | str) -> dict[str, Any] | str:
    """Apply the rules of the module docstring to APIFlask's generated document (a dict: the
    processor runs before serialisation)."""
    if isinstance(spec, str):  # pragma: no cover - APIFlask passes the dict
        return spec
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPError", None)
    schemas.pop("ValidationError", None)
    schemas["Problem"] = PROBLEM_SCHEMA
    schemas["ValidationProblem"] = VALIDATION_PROBLEM_SCHEMA
    operation_ids = {
        (method, path): operation.get("operationId")
        for path, item in spec.get("paths", {}).items()
        for method, operation in item.items()
        if isinstance(operation, dict)
    }
    for path, item in spec.get("paths", {}).items():
        for method, operation in item.items():
            if isinstance(operation, dict) and "responses" in operation:
                _finish_operation(path, method, operation)
                _add_links(path, method, operation, operation_ids)
    return spec


def _finish_operation(path: str, method: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation["responses"]
    parameters = operation.get("parameters") or []
    body = operation.get("requestBody")
    wanted: set[int] = set()
    if body is not None:
        body["required"] = True
        wanted |= {400, 413, 415, 422}
        parts = PART_TYPES.get((method, path), {})
        for media in body.get("content", {}).values():
            if parts:
                media["encoding"] = {name: {"contentType": kinds} for name, kinds in parts.items()}
    if any(p.get("in") == "path" for p in parameters):
        wanted |= {404, 422}
    if any(p.get("in") == "query" for p in parameters):
        wanted.add(422)
    if path not in NOT_RATE_LIMITED:
        wanted.add(429)
    for code in sorted(wanted):
        responses.setdefault(str(code), {"description": GENERIC_ERRORS[code]})
    for status, response in responses.items():
        if int(status) >= 400:
            schema = "ValidationProblem" if status == "422" else "Problem"
            response["content"] = {PROBLEM: {"schema": {"$ref": f"#/components/schemas/{schema}"}}}
    if "429" in responses:
        responses["429"]["headers"] = {
            "Retry-After": {
                "description": "Seconds to wait before retrying",
                "schema": {"type": "integer", "minimum": 0},
            }
        }


def _add_links(
    path: str,
    method: str,
    operation: dict[str, Any],
    operation_ids: dict[tuple[str, str], Any],
) -> None:
    for status, response in operation["responses"].items():
        targets = LINKS.get((method, path, status))
        if not targets:
            continue
        response["links"] = {
            name: _link(operation_ids[(target_method, target_path)], parameters)
            for name, (target_method, target_path, parameters) in targets.items()
        }


def _link(operation_id: str, parameters: dict[str, str]) -> dict[str, Any]:
    """A link object; `body.<field>` entries become the target's request body."""
    link: dict[str, Any] = {"operationId": operation_id}
    path_parameters = {k: v for k, v in parameters.items() if not k.startswith("body.")}
    body = {k.removeprefix("body."): v for k, v in parameters.items() if k.startswith("body.")}
    if path_parameters:
        link["parameters"] = path_parameters
    if body:
        link["requestBody"] = body
    return link
