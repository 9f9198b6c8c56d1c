"""Password hashing with Argon2id at (at least) the OWASP minimum: m=19 MiB, t=2, p=1."""

from __future__ import annotations

import secrets
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from argon2.low_level import Type

MIN_LENGTH = 12
MAX_LENGTH = 128

hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1, type=Type.ID)


def hash_password(password: str) -> str:
    return hasher.hash(password)


@cache
def _decoy_hash() -> str:
    return hasher.hash(secrets.token_urlsafe(16))


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Check `password`; with no stored hash, burn the same work and fail.

    Verifying against a decoy hash keeps "no such user" as slow as "wrong password", so the
    response time does not reveal which e-mail addresses are registered.
    """
    try:
        return hasher.verify(stored_hash or _decoy_hash(), password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return hasher.check_needs_rehash(stored_hash)
