"""Access and refresh tokens: issuing, rotating, revoking, and the JWT manager's wiring.

Refresh tokens are single-use JWTs recorded by `jti` and grouped in a family per login.
Presenting a used refresh token is treated as theft (RFC 9700 §4.14.2): the whole family is
revoked, an audit record is written and the caller gets 401. Families also expire after
`REFRESH_IDLE_DAYS` without use and `REFRESH_ABSOLUTE_DAYS` after the login.

Access tokens are checked on every request against three revocations (one query besides the
user's own row): their `jti` on the deny-list (logout with a bearer), their login's family
being revoked (logout, refresh reuse, password change, deactivation), and the user's
`tokens_valid_after` cutoff, compared with the microsecond `ius` claim because `iat` has
whole seconds only. See docs/security.md ("Tokens and passwords").
"""

from __future__ import annotations

import contextvars
import json
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask, Response, current_app, g, has_request_context, request
from flask_jwt_extended import (
    JWTManager,
    create_access_token,
    create_refresh_token,
    decode_token,
)
from flask_jwt_extended.config import config as jwt_config
from flask_jwt_extended.exceptions import InvalidHeaderError, JWTExtendedException
from flask_jwt_extended.internal_utils import (
    custom_verification_for_token,
    verify_token_not_blocklisted,
    verify_token_type,
)
from flask_jwt_extended.tokens import _decode_jwt
from flask_jwt_extended.utils import get_unverified_jwt_headers
from flask_jwt_extended.view_decorators import _decode_jwt_from_headers, _load_user
from jwt import decode_complete as jwt_decode_complete
from jwt.exceptions import (
    DecodeError,
    ExpiredSignatureError,
    MissingRequiredClaimError,
    PyJWTError,
)
from jwt.utils import base64url_decode
from sqlalchemy import bindparam, delete, exists, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from app.audit.service import record as audit_record
from app.auth import security_log
from app.auth.keys import ALGORITHM, Keyring, SigningSecret
from app.auth.models import RefreshFamily, RefreshToken, RevokedAccessToken, User
from app.config import Settings
from app.db import get_session, utcnow
from app.errors import Unauthorized, problem_response
from app.observability import metrics

logger = logging.getLogger(__name__)

ISSUER = "mastery"
AUDIENCE = "mastery-api"
# Issued-at in microseconds since the epoch: `iat` has whole seconds, too coarse for a cutoff
# set in the same second as a login.
ISSUED_CLAIM = "ius"
# Every claim the checks below rely on; a token without one is refused (401) before any key is
# looked up. Revocation needs `jti` (deny-list), `fam` (the login) and `ius` (the cutoff), and a
# token without `exp` would never expire. flask-jwt-extended passes PyJWT a fixed `options`, so
# the check runs in the key loader, on the claims read without the signature (the signature is
# verified right after, by PyJWT).
REQUIRED_CLAIMS = ("exp", "iat", "nbf", "iss", "aud", "sub", "jti", "type", "fam", ISSUED_CLAIM)
# Clocks of the machines that sign and verify may disagree by a little (NTP keeps them well
# under a second): `exp`, `nbf` and `iat` get this much slack.
LEEWAY_SECONDS = 2
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

_signing_secret: contextvars.ContextVar[SigningSecret] = contextvars.ContextVar("signing_secret")


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
def _signing_with(secret: SigningSecret) -> Iterator[None]:
    token = _signing_secret.set(secret)
    try:
        yield
    finally:
        _signing_secret.reset(token)


def micros(moment: datetime) -> int:
    """`moment` as whole microseconds since the epoch (exact integer arithmetic)."""
    return (moment - _EPOCH) // _MICROSECOND


def issued_micros(claims: dict[str, Any]) -> int | None:
    """When a token was issued, in microseconds; None (reject) for a malformed `ius`."""
    issued = claims.get(ISSUED_CLAIM)
    if isinstance(issued, int) and not isinstance(issued, bool):
        return issued
    return None


def issued_before_cutoff(user: User, claims: dict[str, Any]) -> bool:
    if user.tokens_valid_after is None:
        return False
    issued = issued_micros(claims)
    return issued is None or issued < micros(user.tokens_valid_after)


def issue_pair(session: Session, user: User, family: RefreshFamily) -> TokenPair:
    """Mint an access token and the family's next refresh token (recorded, not committed)."""
    config = settings()
    kid, secret = keyring().active(session)
    now = utcnow()
    # Both tokens carry their login (`fam`), so ending the login ends its access tokens too,
    # and the same clock reading as `iat` (seconds) and `ius` (microseconds).
    issued = {"fam": str(family.id), "iat": now, ISSUED_CLAIM: micros(now)}
    refresh_expires = min(
        now + config.refresh_idle_ttl, family.created_at + config.refresh_absolute_ttl
    )
    jti = uuid.uuid4().hex
    headers = {"kid": kid}
    with _signing_with(secret):
        access = create_access_token(
            identity=str(user.id),
            additional_claims={"role": user.role.value, **issued},
            additional_headers=headers,
            expires_delta=config.access_token_ttl,
        )
        refresh = create_refresh_token(
            identity=str(user.id),
            additional_claims={**issued, "jti": jti},
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
        _refresh_rejected("not_a_refresh_token", claims.get("sub"))
        raise Unauthorized("A refresh token is required.")
    return claims


def _refresh_rejected(reason: str, user_id: object | None) -> None:
    security_log.failure("auth.refresh_rejected", reason, user_id=user_id)


def _revoke(family: RefreshFamily, reason: str) -> None:
    if family.revoked_at is None:
        family.revoked_at = utcnow()
        family.revoked_reason = reason


def rotate(session: Session, raw_token: str) -> TokenPair:
    """Exchange a refresh token for a new pair, enforcing single use and the family's age."""
    claims = _decode_refresh(raw_token)
    token = session.get(RefreshToken, claims["jti"], with_for_update=True)
    if token is None:
        _refresh_rejected("not_recognised", claims.get("sub"))
        raise Unauthorized("The refresh token is not recognised.")
    family = session.get(RefreshFamily, token.family_id, with_for_update=True)
    if family is None:  # impossible while the foreign key holds; never trust it silently
        _refresh_rejected("not_recognised", claims.get("sub"))
        raise Unauthorized("The refresh token is not recognised.")
    if family.revoked_at is not None:
        _refresh_rejected(f"revoked:{family.revoked_reason}", family.user_id)
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
        _refresh_rejected("reused", family.user_id)
        metrics.record_refresh_reuse()
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
    # A login racing a password change can start a family the change did not see: its tokens
    # still predate the cutoff.
    if issued_before_cutoff(user, claims):
        return _expire(session, family, "cutoff")

    token.used_at = now
    family.last_used_at = now
    pair = issue_pair(session, user, family)
    session.commit()
    return pair


def _expire(session: Session, family: RefreshFamily, reason: str) -> TokenPair:
    _revoke(family, reason)
    session.commit()
    _refresh_rejected(f"expired:{reason}", family.user_id)
    raise Unauthorized("The login has expired; sign in again.", slug="refresh-token-expired")


def end_all_sessions(session: Session, user: User, reason: str) -> None:
    """Invalidate every token `user` holds: set the cutoff and revoke every refresh family.

    The cutoff rejects access tokens (and refresh tokens of a family started concurrently)
    issued before now; tokens minted afterwards carry a later `ius` and work. The caller
    commits, together with whatever made this necessary.
    """
    now = utcnow()
    user.tokens_valid_after = now
    session.execute(
        update(RefreshFamily)
        .where(RefreshFamily.user_id == user.id, RefreshFamily.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
    )


def _usable_access_claims(raw_token: str) -> dict[str, Any] | None:
    """The claims of a valid, unexpired access token, or None for anything else."""
    try:
        claims: dict[str, Any] = decode_token(raw_token)
    except (JWTExtendedException, PyJWTError):
        return None
    return claims if claims.get("type") == "access" else None


def deny(session: Session, claims: dict[str, Any]) -> None:
    """Put an access token on the deny-list until it expires, purging rows that expired.

    The purge keeps the table at about one access-token lifetime of logouts; it runs on the
    index on `expires_at`. Denying a token twice is a no-op (the caller commits).
    """
    now = utcnow()
    session.execute(delete(RevokedAccessToken).where(RevokedAccessToken.expires_at <= now))
    values = {
        "jti": str(claims["jti"]),
        "expires_at": datetime.fromtimestamp(int(claims["exp"]), UTC),
    }
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    session.execute(insert(RevokedAccessToken).values(**values).on_conflict_do_nothing())


def logout(session: Session, raw_refresh: str, raw_access: str | None = None) -> None:
    """End one login: revoke the family of `raw_refresh` (idempotent) and, when the caller
    also sent its access token, deny-list that token's `jti`.

    Revoking the family already stops every access token of this login (they carry `fam`);
    the deny-list entry covers the presented token whatever its origin. An access token that
    is expired or invalid protects nothing and is ignored; one that belongs to another account
    than the refresh token is a 401 and nothing changes. Other logins of the same user stay
    signed in (a password change ends them all).
    """
    claims = _decode_refresh(raw_refresh)
    access = _usable_access_claims(raw_access) if raw_access else None
    if access is not None and access.get("sub") != claims.get("sub"):
        security_log.failure("auth.logout_rejected", "token_mismatch", user_id=claims.get("sub"))
        raise Unauthorized(
            "The access token and the refresh token belong to different accounts.",
            slug="token-mismatch",
        )
    token = session.get(RefreshToken, claims["jti"])
    if token is None:
        security_log.failure("auth.logout_rejected", "not_recognised", user_id=claims.get("sub"))
        raise Unauthorized("The refresh token is not recognised.")
    family = token.family
    if family.revoked_at is None:
        _revoke(family, "logout")
        audit_record(
            session,
            "auth.logout",
            actor_id=family.user_id,
            target_type="refresh_family",
            target_id=str(family.id),
            details={"access_token_denied": access is not None},
        )
    if access is not None:
        deny(session, access)
    session.commit()


# Built once: this runs on every authenticated request, and constructing the expression and
# its cache key anew each time cost more than Postgres spends answering it. Values are bound
# per call. Deny-listed? Is the refresh family alive? And the user row, in one statement.
_DENIED = exists().where(RevokedAccessToken.jti == bindparam("jti"))
_FAMILY_ALIVE = exists().where(
    RefreshFamily.id == bindparam("family_id"), RefreshFamily.revoked_at.is_(None)
)
_USER_WITH_FAMILY = select(User, _DENIED, _FAMILY_ALIVE).where(User.id == bindparam("user_id"))


def revocation_reason(session: Session, claims: dict[str, Any]) -> str | None:
    """Why a verified access token must be refused despite its valid signature, or None.

    One statement answers all three questions (deny-listed? family alive? issued before the
    user's cutoff?) and loads the user for the user loader: this runs on every authenticated
    request. The user is kept on `g` because the session's identity map holds objects weakly;
    without a reference the loader would read the same row again.
    """
    jti = claims.get("jti")
    try:
        family_id = uuid.UUID(str(claims["fam"]))
        user_id = uuid.UUID(str(claims["sub"]))
    except (KeyError, ValueError):
        return "malformed_claims"
    if not isinstance(jti, str):  # every token this service signs has one
        return "malformed_claims"
    values = {"jti": jti, "user_id": user_id, "family_id": family_id}
    row = session.execute(_USER_WITH_FAMILY, values).first()
    if row is None:
        return None  # no such user: the user loader refuses the token ("unknown user")
    user, is_denied, is_alive = row
    g.mastery_token_user = user
    if is_denied:
        return "deny_listed"
    if not is_alive:
        return "session_ended"
    if issued_before_cutoff(user, claims):
        return "before_cutoff"
    return None


# --- flask-jwt-extended wiring -------------------------------------------------------------------


def unverified_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The header and claims of a compact JWS, decoded but not verified; None if malformed.

    What the key loader reads before PyJWT verifies the token (the key's `kid`, the required
    claims). PyJWT's own unverified parse checks every character of every segment in Python:
    a sixth of a practice request's instructions for a read whose result is trusted for
    nothing. This one leaves the checks to the verified decode that follows, which runs them
    all (docs/benchmarks.md "Serving cost").
    """
    segments = token.split(".")
    if len(segments) != 3:
        return None
    try:
        header, claims = (json.loads(base64url_decode(segment)) for segment in segments[:2])
    except ValueError:  # binascii.Error, UnicodeError and JSONDecodeError are ValueErrors
        return None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return None
    return header, claims


def _unauthorized(detail: str) -> Response:
    return problem_response(
        401,
        detail,
        slug="invalid-token",
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


class _OncePerRequestJWTManager(JWTManager):
    """Decodes each token once per request: the per-user rate limits read the token in
    `before_request` (app/security/rate_limits.py), and the view's authentication then asked
    PyJWT to check the same signature and claims again. A failure is not remembered: it
    raises again for the next caller."""

    def _decode_jwt_from_config(
        self, encoded_token: str, csrf_value: str | None = None, allow_expired: bool = False
    ) -> dict[str, Any]:
        if not has_request_context() or csrf_value is not None:
            return super()._decode_jwt_from_config(encoded_token, csrf_value, allow_expired)
        # The WSGI environ, not `g`: an app context pushed around several requests (tests,
        # scripts) shares one `g`, and a token must not outlive its request here.
        decoded: dict[tuple[str, bool], dict[str, Any]] = request.environ.setdefault(
            "mastery.decoded_tokens", {}
        )
        key = (encoded_token, allow_expired)
        if key not in decoded:
            decoded[key] = self._decode_parsing_once(encoded_token, allow_expired)
        return decoded[key]

    def _decode_parsing_once(self, encoded_token: str, allow_expired: bool) -> dict[str, Any]:
        """JWTManager._decode_jwt_from_config (flask-jwt-extended 4.7), reading the unverified
        header and claims the key loader needs once, with `unverified_parts`, where the library
        parses the token twice with PyJWT (`jwt.decode` without verification, then
        `get_unverified_header`). Every PyJWT parse checks each character of each base64
        segment in Python, which made token parsing a fifth of a practice request's
        instructions (docs/benchmarks.md "Serving cost"). The verification itself is the
        library's, unchanged: same key loader, same `_decode_jwt` with the same options, same
        errors."""
        parts = unverified_parts(encoded_token)
        if parts is None:
            # Malformed. PyJWT's own parse is stricter than unverified_parts (it checks every
            # character), so it raises here, with the error that names the fault; should a
            # release ever accept such a token, it is refused all the same.
            jwt_decode_complete(
                encoded_token,
                algorithms=jwt_config.decode_algorithms,
                options={"verify_signature": False},
            )
            raise DecodeError("Malformed token")
        header, claims = parts
        secret = self._decode_key_callback(header, claims)
        kwargs: dict[str, Any] = {
            "algorithms": jwt_config.decode_algorithms,
            "audience": jwt_config.decode_audience,
            "csrf_value": None,
            "encoded_token": encoded_token,
            "identity_claim_key": jwt_config.identity_claim_key,
            "issuer": jwt_config.decode_issuer,
            "leeway": jwt_config.leeway,
            "secret": secret,
            "verify_aud": jwt_config.decode_audience is not None,
            "verify_sub": jwt_config.verify_sub,
        }
        try:
            verified: dict[str, Any] = _decode_jwt(**kwargs, allow_expired=allow_expired)
        except ExpiredSignatureError as error:
            # As the library does: the expired-token callback gets the header and the claims.
            error.jwt_header = header  # type: ignore[attr-defined]  # the library's own extra attributes
            error.jwt_data = _decode_jwt(**kwargs, allow_expired=True)  # type: ignore[attr-defined]  # as above
            raise
        # The header of a token that passed verification, for verify_access_token.
        request.environ.setdefault(_VERIFIED_HEADERS, {})[encoded_token] = header
        return verified


_VERIFIED_HEADERS = "mastery.verified_token_headers"


def verify_access_token() -> None:
    """flask-jwt-extended's `verify_jwt_in_request()` (4.7) for the one way this platform takes
    a token: an access token in the Authorization header, freshness not required.

    The same steps, in the same order, with the library's own functions and callbacks
    (header parsing and its errors, the decode above, the type check, the deny-list, the
    custom check, the user loader), and the same `g` attributes at the end, so
    `current_user` and `get_jwt()` work as before. One difference: the token's header comes
    from the decode that verified the token, where the library parses the token once more
    with PyJWT (a twentieth of a practice request's instructions; docs/benchmarks.md
    "Serving cost").
    """
    if request.method in jwt_config.exempt_methods:
        return
    encoded_token, _no_csrf = _decode_jwt_from_headers()
    claims = decode_token(encoded_token)
    header = request.environ.get(_VERIFIED_HEADERS, {}).get(encoded_token)
    if header is None:  # decoded by a plain JWTManager (tests/unit/test_route_guard.py's app)
        header = get_unverified_jwt_headers(encoded_token)
    verify_token_type(claims, refresh=False)
    verify_token_not_blocklisted(header, claims)
    custom_verification_for_token(header, claims)
    # Saved last, as the library does: only a token that passed every check reaches `g`.
    g._jwt_extended_jwt_user = _load_user(header, claims)
    g._jwt_extended_jwt_header = header
    g._jwt_extended_jwt = claims
    g._jwt_extended_jwt_location = "headers"


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
        JWT_DECODE_LEEWAY=LEEWAY_SECONDS,
        JWT_ERROR_MESSAGE_KEY="detail",
        # Tokens travel in the Authorization header only, never in cookies: the library's CSRF
        # double-submit value, added to every token by default, would be a random claim that
        # nothing checks.
        JWT_COOKIE_CSRF_PROTECT=False,
    )
    app.extensions["mastery.keyring"] = Keyring(
        config.secret_key.get_secret_value(), config.refresh_absolute_ttl
    )
    jwt = _OncePerRequestJWTManager(app)

    @jwt.encode_key_loader
    def _encode_key(_identity: Any) -> str:
        return _signing_secret.get().reveal()

    @jwt.decode_key_loader
    def _decode_key(header: dict[str, Any], claims: dict[str, Any]) -> str:
        for claim in REQUIRED_CLAIMS:
            if claim not in claims:
                raise MissingRequiredClaimError(claim)
        kid = header.get("kid")
        secret = keyring().verification_secret(get_session(), kid) if isinstance(kid, str) else None
        if secret is None:
            raise InvalidHeaderError("unknown signing key")
        return secret.reveal()

    @jwt.user_lookup_loader
    def _load_user(_header: dict[str, Any], claims: dict[str, Any]) -> User | None:
        try:
            user_id = uuid.UUID(claims["sub"])
        except (KeyError, ValueError):
            return None
        loaded = g.pop("mastery_token_user", None)  # read by revocation_reason just before
        user = loaded if isinstance(loaded, User) and loaded.id == user_id else None
        if user is None:
            user = get_session().get(User, user_id)
        return user if user is not None and user.is_active else None

    @jwt.token_in_blocklist_loader
    def _is_revoked(_header: dict[str, Any], claims: dict[str, Any]) -> bool:
        reason = revocation_reason(get_session(), claims)
        if reason is not None:
            security_log.failure("auth.token_rejected", reason, user_id=claims.get("sub"))
        return reason is not None

    # The reasons flask-jwt-extended passes are PyJWT's fixed messages ("Signature verification
    # failed", "Not enough segments"): they describe the token, never quote it.
    @jwt.unauthorized_loader
    def _missing(_reason: str) -> Response:
        security_log.failure("auth.token_rejected", "missing")
        return _unauthorized("An access token is required (Authorization: Bearer <token>).")

    @jwt.invalid_token_loader
    def _invalid(reason: str) -> Response:
        security_log.failure("auth.token_rejected", f"invalid:{reason}")
        return _unauthorized("The token is invalid.")

    @jwt.expired_token_loader
    def _expired(_header: dict[str, Any], claims: dict[str, Any]) -> Response:
        security_log.failure("auth.token_rejected", "expired", user_id=claims.get("sub"))
        return _unauthorized("The token has expired.")

    @jwt.user_lookup_error_loader
    def _unknown_user(_header: dict[str, Any], claims: dict[str, Any]) -> Response:
        reason = "unknown_or_inactive_user"
        security_log.failure("auth.token_rejected", reason, user_id=claims.get("sub"))
        return _unauthorized("The account behind this token is unknown or deactivated.")

    @jwt.revoked_token_loader
    def _revoked(_header: dict[str, Any], _claims: dict[str, Any]) -> Response:
        return _unauthorized("The token has been revoked.")  # logged by _is_revoked
