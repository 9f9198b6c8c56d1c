"""JWT signing keys with `kid`s: one active key signs, retired keys keep verifying.

Key material is random, stored in the database encrypted with a key derived from SECRET_KEY
(so a database dump alone cannot mint tokens), and cached per process by `kid` once decrypted.
Decrypted material is held as a `SigningSecret`, whose repr and str are redacted, so a stack
frame, a log line or an error report that captures it shows nothing usable.
Rotation makes a new key active; tokens signed by a retired key verify until they expire, and
a key retired longer ago than the longest token lifetime verifies nothing at all.
"""

from __future__ import annotations

import base64
import secrets
import time
import uuid
from datetime import datetime, timedelta

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.models import SigningKey
from app.db import utcnow

ALGORITHM = "HS256"
CACHE_SECONDS = 300.0


class SigningSecret:
    """Decrypted signing-key material. `reveal()` is the only way to the value: `repr`, `str`
    and every serialiser that falls back to them (Sentry's frame variables, logging) print
    `[redacted]`, so the secret cannot leave the process by accident."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "SigningSecret([redacted])"

    __str__ = __repr__


def _fernet_for(secret_key: str) -> Fernet:
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"mastery signing keys v1"
    ).derive(secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


class Keyring:
    """Finds, creates and rotates signing keys for one application."""

    def __init__(self, secret_key: str, max_token_lifetime: timedelta) -> None:
        self._fernet = _fernet_for(secret_key)
        self._max_token_lifetime = max_token_lifetime
        self._cache: dict[str, tuple[SigningSecret, datetime | None, float]] = {}

    def clear_cache(self) -> None:
        self._cache.clear()

    def active(self, session: Session) -> tuple[str, SigningSecret]:
        """The `(kid, secret)` that signs new tokens; the first call ever creates it."""
        key = session.scalars(
            select(SigningKey)
            .where(SigningKey.retired_at.is_(None))
            .order_by(SigningKey.created_at.desc())
            .limit(1)
        ).first()
        if key is None:
            key = self._create(session)
        return key.kid, self._decrypt(key)

    def rotate(self, session: Session) -> SigningKey:
        """Retire every active key and create a new active one (the caller commits)."""
        now = utcnow()
        for key in session.scalars(select(SigningKey).where(SigningKey.retired_at.is_(None))):
            key.retired_at = now
        return self._create(session)

    def verification_secret(self, session: Session, kid: str) -> SigningSecret | None:
        """The secret for `kid`, or None when the token must be rejected: no such key, or a key
        retired longer ago than any token lives (nothing it signed can still be valid)."""
        cached = self._cache.get(kid)
        if cached is None or time.monotonic() - cached[2] >= CACHE_SECONDS:
            key = session.get(SigningKey, kid)
            if key is None:
                return None
            cached = (self._decrypt(key), key.retired_at, time.monotonic())
            self._cache[kid] = cached
        secret, retired_at, _ = cached
        if retired_at is not None and utcnow() - retired_at > self._max_token_lifetime:
            return None
        return secret

    def _create(self, session: Session) -> SigningKey:
        material = SigningSecret(secrets.token_hex(32))
        key = SigningKey(
            kid=uuid.uuid4().hex,
            algorithm=ALGORITHM,
            encrypted_secret=self._fernet.encrypt(material.reveal().encode()),
            created_at=utcnow(),
        )
        session.add(key)
        session.flush()
        return key

    def _decrypt(self, key: SigningKey) -> SigningSecret:
        try:
            return SigningSecret(self._fernet.decrypt(key.encrypted_secret).decode())
        except InvalidToken as error:
            raise RuntimeError(
                f"signing key {key.kid} cannot be decrypted: SECRET_KEY changed since it was made"
            ) from error
