"""Auth routes: thin wrappers over `service` and `tokens`."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint

from app.auth import service, tokens
from app.auth.decorators import authenticated, current
from app.auth.schemas import LoginIn, RefreshIn, RegisterIn, TokenPairOut, UserOut
from app.db import get_session

bp = APIBlueprint("auth", __name__, url_prefix="/auth", tag="Auth")

BAD_BODY = {400: "Malformed JSON body", 415: "The body is not application/json"}


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
@bp.doc(responses={**BAD_BODY, 409: "The e-mail address is already registered"})
def register(body: RegisterIn) -> Any:
    """Create a learner account."""
    return service.register(get_session(), body.email, body.password, body.display_name)


@bp.post("/login")
@bp.input(LoginIn, arg_name="body")
@bp.output(TokenPairOut, description="An access token and a refresh token")
@bp.doc(responses={**BAD_BODY, 401: "Unknown e-mail address or wrong password"})
def login(body: LoginIn) -> Any:
    """Exchange credentials for tokens."""
    return _pair_out(service.login(get_session(), body.email, body.password))


@bp.post("/refresh")
@bp.input(RefreshIn, arg_name="body")
@bp.output(TokenPairOut, description="A new pair; the presented refresh token is now used")
@bp.doc(responses={**BAD_BODY, 401: "Invalid, expired, revoked or already used refresh token"})
def refresh(body: RefreshIn) -> Any:
    """Rotate a refresh token. Presenting a used one revokes its whole family."""
    return _pair_out(tokens.rotate(get_session(), body.refresh_token))


@bp.post("/logout")
@bp.input(RefreshIn, arg_name="body")
@bp.output({}, status_code=204, description="The login's refresh family is revoked")
@bp.doc(responses={**BAD_BODY, 401: "Invalid or expired refresh token"})
def logout(body: RefreshIn) -> Any:
    """Revoke every refresh token of this login."""
    tokens.revoke_family_of(get_session(), body.refresh_token)
    return ""


@bp.get("/me")
@authenticated()
@bp.output(UserOut, description="The authenticated account")
def me() -> Any:
    """The caller's own account."""
    return current()
