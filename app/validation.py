"""Input rules shared by every request model."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Self

from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    WithJsonSchema,
    field_validator,
    model_validator,
)

MAX_EMAIL_LENGTH = 254


def _email_address(value: str) -> str:
    """A syntactically valid address, normalised. The RFC 2606 testing domain `.test` is
    accepted (smoke and load test accounts use it; the platform sends no mail); other
    special-use names (`.invalid`, `localhost`...) are not."""
    if "\r" in value or "\n" in value:
        raise ValueError("value is not a valid email address: line breaks are not allowed")
    try:
        parts = validate_email(value.strip(), check_deliverability=False, test_environment=True)
    except EmailNotValidError as error:
        raise ValueError(f"value is not a valid email address: {error}") from error
    return parts.normalized


def _json_integer(value: Any) -> Any:
    """JSON Schema's `integer`: 3 and 3.0 are the same integer; "3" and true are not."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be an integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("must be an integer")
        return int(value)
    return value


# An integer in a JSON body, as JSON Schema defines it (StrictInt would refuse 3.0).
JSONInt = Annotated[int, BeforeValidator(_json_integer)]


EmailAddress = Annotated[
    str,
    AfterValidator(_email_address),
    WithJsonSchema({"type": "string", "format": "email", "maxLength": MAX_EMAIL_LENGTH}),
]


def _reject_nul(value: Any) -> Any:
    if isinstance(value, str) and "\x00" in value:
        # Postgres cannot store NUL in text; refusing it here keeps it a 422, not a 500.
        raise ValueError("must not contain NUL characters")
    if isinstance(value, list):
        for element in value:
            _reject_nul(element)
    return value


# JSON Schema patterns (ECMA-262) documenting the NUL rule; `\\S` is the "not blank" rule.
NO_NUL = "^[^\\u0000]*$"
NOT_BLANK_NO_NUL = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"


def _document_no_nul(schema: dict[str, Any]) -> None:
    """Say in the JSON schema what `_reject_nul` enforces, so clients (and the fuzzer) know."""
    for prop in schema.get("properties", {}).values():
        for option in [prop, *prop.get("anyOf", []), prop.get("items") or {}]:
            if option.get("type") != "string" or option.get("format"):
                continue
            pattern = option.get("pattern")
            if pattern is None:
                option["pattern"] = NO_NUL
            elif pattern == r"\S":
                option["pattern"] = NOT_BLANK_NO_NUL


def _input_schema(schema: dict[str, Any], model: type[BaseModel]) -> None:
    _document_no_nul(schema)
    examples = getattr(model, "EXAMPLES", ())
    if examples:
        schema["examples"] = list(examples)


class InputModel(BaseModel):
    """Base of request bodies and query strings: unknown fields and NUL characters refused.

    A subclass may set `EXAMPLES` (whole, valid bodies): they become the schema's `examples`,
    shown in /docs and sent by the fuzzer's explicit phase.
    """

    EXAMPLES: ClassVar[tuple[dict[str, Any], ...]] = ()
    model_config = ConfigDict(extra="forbid", json_schema_extra=_input_schema)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        return _reject_nul(value)


def _patch_schema(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """Document what `PatchInput` enforces: one field at least, and `null` for none of them."""
    _input_schema(schema, model)
    schema["minProperties"] = 1
    for prop in schema.get("properties", {}).values():
        options = prop.get("anyOf")
        if options is None:
            continue
        kept = [option for option in options if option.get("type") != "null"]
        prop.pop("anyOf")
        if len(kept) == 1:
            prop.update(kept[0])
        else:
            prop["anyOf"] = kept
        if prop.get("default", ...) is None:
            prop.pop("default")


class PatchInput(InputModel):
    """Base of PATCH bodies: at least one field, and no explicit nulls.

    Leaving a field out keeps its value; `null` would be ambiguous (clear it? keep it?), so it
    is refused rather than guessed. The JSON schema says the same (no `null`, `minProperties`).
    """

    model_config = ConfigDict(json_schema_extra=_patch_schema)

    @model_validator(mode="after")
    def _one_field_and_no_nulls(self) -> Self:
        if not self.model_fields_set:
            raise ValueError("give at least one field to change")
        nulls = sorted(name for name in self.model_fields_set if getattr(self, name) is None)
        if nulls:
            raise ValueError(f"{', '.join(nulls)}: may not be null (leave a field out to keep it)")
        return self
