"""Request and response bodies of the auth routes."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.auth.models import Role
from app.auth.passwords import MAX_LENGTH, MIN_LENGTH
from app.validation import MAX_EMAIL_LENGTH, EmailAddress, InputModel


class StrictInput(InputModel):
    """Inputs reject unknown fields, so a stray `role` can never be mass-assigned."""


class RegisterIn(StrictInput):
    EXAMPLES = (
        {
            "email": "ada@example.com",
            "password": "correct horse battery staple",
            "display_name": "Ada",
        },
    )

    email: EmailAddress = Field(max_length=MAX_EMAIL_LENGTH)
    password: str = Field(
        min_length=MIN_LENGTH,
        max_length=MAX_LENGTH,
        description=f"{MIN_LENGTH} to {MAX_LENGTH} characters; not a common password and not "
        "derived from the e-mail address.",
    )
    display_name: str = Field(min_length=1, max_length=100, pattern=r"\S")


class LoginIn(StrictInput):
    EXAMPLES = ({"email": "ada@example.com", "password": "correct horse battery staple"},)

    email: str = Field(min_length=1, max_length=254)
    password: str = Field(min_length=1, max_length=MAX_LENGTH)


class PasswordChangeIn(StrictInput):
    EXAMPLES = (
        {
            "current_password": "correct horse battery staple",
            "new_password": "gentle otter lamps by the river",
        },
    )

    current_password: str = Field(min_length=1, max_length=MAX_LENGTH)
    new_password: str = Field(
        min_length=MIN_LENGTH,
        max_length=MAX_LENGTH,
        description=f"{MIN_LENGTH} to {MAX_LENGTH} characters; not a common password and not "
        "derived from the account's e-mail address.",
    )


class RefreshIn(StrictInput):
    EXAMPLES = ({"refresh_token": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"},)

    refresh_token: str = Field(min_length=1, max_length=4096)


class TokenPairOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "Bearer"  # noqa: S105 - the OAuth 2 token type, not a secret
    expires_in: int = Field(description="Seconds until the access token expires.")


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    display_name: str
    role: Role
    is_active: bool
    created_at: datetime
