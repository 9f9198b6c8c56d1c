"""Password hashing with Argon2id at (at least) the OWASP minimum: m=19 MiB, t=2, p=1, and
the password policy (NIST SP 800-63B §3.1.1.2, ASVS 5.0 §6.2): 12 to 128 characters, not a
common or breached password, not derived from the account's e-mail address, no composition
rules."""

from __future__ import annotations

import re
import secrets
from functools import cache
from importlib import resources

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from argon2.low_level import Type

MIN_LENGTH = 12
MAX_LENGTH = 128
# A password with fewer distinct characters than this ("aaaaaaaaaaaa", "abababababab") is
# rejected whatever its length.
MIN_DISTINCT = 5
# The e-mail's local part must be at least this long before "contains it" applies; "al" inside
# "totally-random-words" says nothing about the password.
MIN_LOCAL_PART = 3

COMMON_PASSWORDS_FILE = "common-passwords.txt"
# Straight rows of the keyboard and the alphabet, and digit runs, forwards and backwards.
_SEQUENCES = (
    "abcdefghijklmnopqrstuvwxyz",
    "qwertyuiopasdfghjklzxcvbnm",
    "qwertyuiop",
    "asdfghjkl",
    "zxcvbnm",
    "qazwsxedcrfvtgbyhnujmikolp",
    "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p",
    "1q2w3e4r5t6y7u8i9o0p",
    "0123456789" * 3,
)
_SEQUENCES_BOTH_WAYS = _SEQUENCES + tuple(sequence[::-1] for sequence in _SEQUENCES)
_LEET = str.maketrans(
    {
        "@": "a",
        "4": "a",
        "0": "o",
        "3": "e",
        "1": "i",
        "!": "i",
        "$": "s",
        "5": "s",
        "7": "t",
        "+": "t",
        "8": "b",
        "9": "g",
    }
)
_DECORATION = re.compile(r"^[\W\d_]*(.*?)[\W\d_]*$", re.DOTALL)

TOO_SHORT = f"must be at least {MIN_LENGTH} characters long"
TOO_LONG = f"must be at most {MAX_LENGTH} characters long"
TOO_COMMON = "is too common or too easy to guess; choose a longer passphrase of unrelated words"
TOO_SIMPLE = "is a repetition or a keyboard or alphabet sequence; choose something less predictable"
LIKE_EMAIL = "must not contain the account's e-mail address or its name part"

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


@cache
def common_passwords() -> frozenset[str]:
    """The shipped list of common passwords, lower-case (loaded once per process)."""
    text = resources.files("app").joinpath("data", COMMON_PASSWORDS_FILE).read_text("utf-8")
    return frozenset(
        line.strip().lower()
        for line in text.splitlines()
        if line.strip() and not line.startswith("#")
    )


def _is_periodic(text: str) -> bool:
    """True for a string that is one shorter string repeated ("abcabcabcabc")."""
    return len(text) > 1 and text in (text + text)[1:-1]


def _is_sequence(text: str) -> bool:
    return len(text) >= 4 and any(text in sequence for sequence in _SEQUENCES_BOTH_WAYS)


def _guessable(candidate: str) -> str | None:
    """Why `candidate` (lower-case, spaces removed) is guessable, or None."""
    if candidate in common_passwords():
        return TOO_COMMON
    if len(set(candidate)) < MIN_DISTINCT or _is_periodic(candidate) or _is_sequence(candidate):
        return TOO_SIMPLE
    return None


def policy_violation(password: str, email: str | None = None) -> str | None:
    """Why `password` is not acceptable (a message completing "The password ..."), or None.

    Comparisons ignore case and whitespace. Besides the list itself, a password is rejected
    when its core — with leading and trailing digits and symbols removed, and with common
    letter substitutions undone (p@ssw0rd -> password) — is on the list, so "Password2024!"
    and "qwertyuiop123" fall with "password" and "qwertyuiop".
    """
    if len(password) < MIN_LENGTH:
        return TOO_SHORT
    if len(password) > MAX_LENGTH:
        return TOO_LONG
    folded = "".join(password.casefold().split())
    if email:
        address = email.strip().casefold()
        local = address.split("@", 1)[0]
        names = {address, local, local.split("+", 1)[0]}
        if any(len(name) >= MIN_LOCAL_PART and name in folded for name in names):
            return LIKE_EMAIL
    problem = _guessable(folded)
    if problem is not None:
        return problem
    match = _DECORATION.match(folded)
    core = match.group(1) if match else folded
    if {folded.translate(_LEET), core, core.translate(_LEET)} & common_passwords():
        return TOO_COMMON
    if len(core) >= 6 and (_is_periodic(core) or _is_sequence(core)):
        return TOO_SIMPLE
    return None
