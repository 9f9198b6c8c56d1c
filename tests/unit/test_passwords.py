"""Argon2id parameters and the constant-work verification."""

from __future__ import annotations

from argon2 import PasswordHasher

from app.auth import passwords


def test_hashes_use_argon2id_at_least_at_the_owasp_minimum() -> None:
    params = passwords.hasher._parameters  # the hasher's own record of its settings

    assert params.type.name == "ID"
    assert params.memory_cost >= 19 * 1024
    assert params.time_cost >= 2
    assert passwords.hash_password("x" * 12).startswith("$argon2id$")


def test_verify_accepts_the_right_password_only() -> None:
    stored = passwords.hash_password("correct horse battery")

    assert passwords.verify_password(stored, "correct horse battery") is True
    assert passwords.verify_password(stored, "wrong horse battery") is False


def test_verify_without_a_stored_hash_is_false() -> None:
    assert passwords.verify_password(None, "anything at all") is False


def test_verify_of_a_corrupt_hash_is_false() -> None:
    assert passwords.verify_password("not-a-hash", "anything at all") is False


def test_weaker_hashes_are_flagged_for_rehash() -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024).hash("secret secret")

    assert passwords.needs_rehash(weak) is True
    assert passwords.needs_rehash(passwords.hash_password("secret secret")) is False
