"""Input rules shared by every request model."""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, field_validator, model_validator


def _reject_nul(value: Any) -> Any:
    if isinstance(value, str) and "\x00" in value:
        # Postgres cannot store NUL in text; refusing it here keeps it a 422, not a 500.
        raise ValueError("must not contain NUL characters")
    if isinstance(value, list):
        for element in value:
            _reject_nul(element)
    return value


class InputModel(BaseModel):
    """Base of request bodies and query strings: unknown fields and NUL characters refused."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        return _reject_nul(value)


class PatchInput(InputModel):
    """Base of PATCH bodies: at least one field, and no explicit nulls.

    Leaving a field out keeps its value; `null` would be ambiguous (clear it? keep it?), so it
    is refused rather than guessed.
    """

    @model_validator(mode="after")
    def _one_field_and_no_nulls(self) -> Self:
        if not self.model_fields_set:
            raise ValueError("give at least one field to change")
        nulls = sorted(name for name in self.model_fields_set if getattr(self, name) is None)
        if nulls:
            raise ValueError(f"{', '.join(nulls)}: may not be null (leave a field out to keep it)")
        return self
