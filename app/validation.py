"""Input rules shared by every request model."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator


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
