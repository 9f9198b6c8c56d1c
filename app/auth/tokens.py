"""Access and refresh tokens: issuing, rotating, revoking, and the JWT manager's wiring.

Refresh tokens are single-use JWTs recorded by `jti` and grouped in a family per login.
Presenting a used refresh token is treated as theft (RFC 9700 §4.14.2): the whole family is
revoked, an audit record is written and the caller gets 401. Families also expire after
`REFRESH_IDLE_DAYS` without use and `REFRESH_ABSOLUTE_DAYS` after the login.
"""

from __future__ import annotations

import contextvars
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, current_app
from flask_jwt_extended import (
    JWTManager,
    create_access_token,
    create_refresh_token,
    decode_token,
)
from flask_jwt_extended.exceptions import InvalidHeaderError
from sqlalchemy.orm import Session

from app.audit.service import record as audit_record
from app.auth.keys import ALGORITHM, Keyring
from app.auth.models import RefreshFamily, RefreshToken, User
from app.config import Settings
from app.db import get_session, utcnow
from app.errors import Unauthorized, problem_response

logger = logging.getLogger(__name__)

ISSUER = "mastery"
AUDIENCE = "mastery-api"

_signing_secret: contextvars.ContextVar[str] = contextvars.ContextVar("signing_secret")


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "Bearer"  # noqa: S105 - the OAuth 2 token type, not a secret


def keyring() -> Keyring:
    ring: Keyring = current_app.extensions["mastery.keyring"]
    return ring


def settings() -> Settings:
    value: Settings = current_app.extensions["mastery.settings"]
    return value


@contextmanager
def _signing_with(secret: str) -> Iterator[None]:
    token = _signing_secret.set(secret)
    try:
        yield
    finally:
        _signing_secret.reset(token)


def issue_pair(session: Session, user: User, family: RefreshFamily) -> TokenPair:
    """Mint an access token and the family's next refresh token (recorded, not committed)."""
    config = settings()
    kid, secret = keyring().active(session)
    now = utcnow()
    refresh_expires = min(
        now + config.refresh_idle_ttl, family.created_at + config.refresh_absolute_ttl
    )
    jti = uuid.uuid4().hex
    headers = {"kid": kid}
    with _signing_with(secret):
        access = create_access_token(
            identity=str(user.id),
            additional_claims={"role": user.role.value},
            additional_headers=headers,
            expires_delta=config.access_token_ttl,
        )
        refresh = create_refresh_token(
            identity=str(user.id),
            additional_claims={"fam": str(family.id), "jti": jti},
            additional_headers=headers,
            expires_delta=refresh_expires - now,
        )
    session.add(RefreshToken(jti=jti, family_id=family.id, issued_at=now))
    return TokenPair(access, refresh, int(config.access_token_ttl.total_seconds()))


def start_family(session: Session, user: User) -> TokenPair:
    now = utcnow()
    family = RefreshFamily(user_id=user.id, created_at=now, last_used_at=now)
    session.add(family)
    session.flush()
    return issue_pair(session, user, family)


def _decode_refresh(raw_token: str) -> dict[str, Any]:
    claims: dict[str, Any] = decode_token(raw_token)
    if claims.get("type") != "refresh":
        raise Unauthorized("A refresh token is required.")
    return claims


def _revoke(family: RefreshFamily, reason: str) -> None:
    if family.revoked_at is None:
        family.revoked_at = utcnow()
        family.revoked_reason = reason


def rotate(session: Session, raw_token: str) -> TokenPair:
    """Exchange a refresh token for a new pair, enforcing single use and the family's age."""
    claims = _decode_refresh(raw_token)
    token = session.get(RefreshToken, claims["jti"], with_for_update=True)
    if token is None:
        raise Unauthorized("The refresh token is not recognised.")
    family = session.get(RefreshFamily, token.family_id, with_for_update=True)
    if family is None:  # impossible while the foreign key holds; never trust it silently
        raise Unauthorized("The refresh token is not recognised.")
    if family.revoked_at is not None:
        raise Unauthorized("The refresh token has been revoked.", slug="refresh-token-revoked")

    if token.used_at is not None:
        _revoke(family, "reuse")
        audit_record(
            session,
            "auth.refresh_token_reused",
            actor_id=family.user_id,
            target_type="refresh_family",
            target_id=str(family.id),
            details={"jti": token.jti},
        )
        session.commit()
        logger.warning("refresh token reuse; family %s revoked", family.id)
        raise Unauthorized(
            "The refresh token was already used; every session of this login is revoked.",
            slug="refresh-token-reused",
        )

    config = settings()
    now = utcnow()
    if now - family.last_used_at > config.refresh_idle_ttl:
        return _expire(session, family, "idle")
    if now - family.created_at > config.refresh_absolute_ttl:
        return _expire(session, family, "absolute")

    user = session.get(User, family.user_id)
    if user is None or not user.is_active:
        return _expire(session, family, "inactive")

    token.used_at = now
    family.last_used_at = now
    pair = issue_pair(session, user, family)
    session.commit()
    return pair


def _expire(session: Session, family: RefreshFamily, reason: str) -> TokenPair:
    _revoke(family, reason)
    session.commit()
    raise Unauthorized("The login has expired; sign in again.", slug="refresh-token-expired")


def revoke_family_of(session: Session, raw_token: str, actor: uuid.UUID | None = None) -> None:
    """Log out: revoke the family of `raw_token` (idempotent for an already revoked family)."""
    claims = _decode_refresh(raw_token)
    token = session.get(RefreshToken, claims["jti"])
    if token is None:
        raise Unauthorized("The refresh token is not recognised.")
    family = token.family
    if family.revoked_at is None:
        _revoke(family, "logout")
        audit_record(
            session,
            "auth.logout",
            actor_id=actor or family.user_id,
            target_type="refresh_family",
            target_id=str(family.id),
        )
        session.commit()


# --- flask-jwt-extended wiring -------------------------------------------------------------------


def _unauthorized(detail: str) -> Response:
    return problem_response(
        401,
        detail,
        slug="invalid-token",
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


def init_app(app: Flask, config: Settings) -> None:
    app.config.update(
        JWT_TOKEN_LOCATION=["headers"],
        JWT_ALGORITHM=ALGORITHM,
        JWT_DECODE_ALGORITHMS=[ALGORITHM],
        JWT_ACCESS_TOKEN_EXPIRES=config.access_token_ttl,
        JWT_ENCODE_ISSUER=ISSUER,
        JWT_DECODE_ISSUER=ISSUER,
        JWT_ENCODE_AUDIENCE=AUDIENCE,
        JWT_DECODE_AUDIENCE=AUDIENCE,
        JWT_ERROR_MESSAGE_KEY="detail",
    )
    app.extensions["mastery.keyring"] = Keyring(
        config.secret_key.get_secret_value(), config.refresh_absolute_ttl
    )
    jwt = JWTManager(app)

    @jwt.encode_key_loader
    def _encode_key(_identity: Any) -> str:
        return _signing_secret.get()

    @jwt.decode_key_loader
    def _decode_key(header: dict[str, Any], _claims: dict[str, Any]) -> str:
        kid = header.get("kid")
        secret = keyring().verification_secret(get_session(), kid) if isinstance(kid, str) else None
        if secret is None:
            raise InvalidHeaderError("unknown signing key")
        return secret

    @jwt.user_lookup_loader
    def _load_user(_header: dict[str, Any], claims: dict[str, Any]) -> User | None:
        try:
            user_id = uuid.UUID(claims["sub"])
        except (KeyError, ValueError):
            return None
        user = get_session().get(User, user_id)
        return user if user is not None and user.is_active else None

    @jwt.unauthorized_loader
    def _missing(_reason: str) -> Response:
        return _unauthorized("An access token is required (Authorization: Bearer <token>).")

    @jwt.invalid_token_loader
    def _invalid(_reason: str) -> Response:
        return _unauthorized("The token is invalid.")

    @jwt.expired_token_loader
    def _expired(_header: dict[str, Any], _claims: dict[str, Any]) -> Response:
        return _unauthorized("The token has expired.")

    @jwt.user_lookup_error_loader
    def _unknown_user(_header: dict[str, Any], _claims: dict[str, Any]) -> Response:
        return _unauthorized("The account behind this token is unknown or deactivated.")

    @jwt.revoked_token_loader
    def _revoked(_header: dict[str, Any], _claims: dict[str, Any]) -> Response:
        return _unauthorized("The token has been revoked.")
