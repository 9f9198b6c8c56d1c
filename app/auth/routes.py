"""Auth routes: thin wrappers over `service` and `tokens`."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from flask import request

from app.auth import service, tokens
from app.auth.decorators import authenticated, current
from app.auth.schemas import (
    LoginIn,
    PasswordChangeIn,
    RefreshIn,
    RegisterIn,
    TokenPairOut,
    UserOut,
)
from app.db import get_session

bp = APIBlueprint("auth", __name__, url_prefix="/auth", tag="Auth")

BAD_BODY = {400: "Malformed JSON body", 415: "The body is not application/json"}


# Login, register and refresh fail closed when the rate-limit store is down (docs/security.md).
LIMITS_DOWN = "The rate-limit store is unavailable; this operation refuses to run unlimited"


def _pair_out(pair: tokens.TokenPair) -> TokenPairOut:
    return TokenPairOut(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        token_type=pair.token_type,
        expires_in=pair.expires_in,
    )


@bp.post("/register")
@bp.input(RegisterIn, arg_name="body")
@bp.output(UserOut, status_code=201, description="The new account (role learner)")
@bp.doc(
    responses={
        **BAD_BODY,
        409: "The e-mail address is already registered",
        422: "Invalid fields, or a password that breaks the password policy",
        503: LIMITS_DOWN,
    }
)
def register(body: RegisterIn) -> Any:
    """Create a learner account."""
    return service.register(get_session(), body.email, body.password, body.display_name)


@bp.post("/login")
@bp.input(LoginIn, arg_name="body")
@bp.output(TokenPairOut, description="An access token and a refresh token")
@bp.doc(responses={**BAD_BODY, 401: "Unknown e-mail address or wrong password", 503: LIMITS_DOWN})
def login(body: LoginIn) -> Any:
    """Exchange credentials for tokens."""
    return _pair_out(service.login(get_session(), body.email, body.password))


@bp.post("/refresh")
@bp.input(RefreshIn, arg_name="body")
@bp.output(TokenPairOut, description="A new pair; the presented refresh token is now used")
@bp.doc(
    responses={
        **BAD_BODY,
        401: "Invalid, expired, revoked or already used refresh token",
        503: LIMITS_DOWN,
    }
)
def refresh(body: RefreshIn) -> Any:
    """Rotate a refresh token. Presenting a used one revokes its whole family."""
    return _pair_out(tokens.rotate(get_session(), body.refresh_token))


def _bearer() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


@bp.post("/logout")
@bp.input(RefreshIn, arg_name="body")
@bp.output(
    {}, status_code=204, description="The login is ended; the presented access token is revoked"
)
@bp.doc(
    responses={
        **BAD_BODY,
        401: "Invalid or expired refresh token, or an access token of another account",
    }
)
def logout(body: RefreshIn) -> Any:
    """End this login: revoke its refresh family and every access token issued from it.

    Send the access token too (`Authorization: Bearer`, optional) and its `jti` is also put
    on the deny-list until it expires. An expired or invalid access token is ignored, so a
    client can always log out; other logins of the same account stay signed in.
    """
    tokens.logout(get_session(), body.refresh_token, _bearer())
    return ""


@bp.post("/password")
@authenticated()
@bp.input(PasswordChangeIn, arg_name="body")
@bp.output(
    {}, status_code=204, description="Changed; every existing token is revoked, log in again"
)
@bp.doc(
    responses={
        **BAD_BODY,
        403: "The current password is incorrect",
        422: "Invalid fields, or a new password that breaks the password policy",
        503: LIMITS_DOWN,
    }
)
def change_password(body: PasswordChangeIn) -> Any:
    """Change the caller's password and sign out every session, this one included."""
    service.change_password(get_session(), current(), body.current_password, body.new_password)
    return ""


@bp.get("/me")
@authenticated()
@bp.output(UserOut, description="The authenticated account")
def me() -> Any:
    """The caller's own account."""
    return current()
