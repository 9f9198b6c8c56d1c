"""The password policy: length, the shipped common-password list and its variants, sequences,
repetition, and the account's e-mail address."""

from __future__ import annotations

import pytest

from app.auth import passwords
from app.auth.passwords import policy_violation


def test_the_shipped_list_is_loaded_and_holds_the_long_classics() -> None:
    common = passwords.common_passwords()
    assert len(common) > 3000
    assert {"password1234", "qwertyuiop123", "123456789012", "iloveyou"} <= common


@pytest.mark.parametrize(
    "password",
    [
        "password1234",
        "PASSWORD1234",
        "Qwertyuiop123",
        "123456789012",
        "P@ssw0rd2024!",
        "dragon123456!",
        "!!!monkey2024",
        "qwerty qwerty",
        "zzzzzzzzzzzzzzzz",
        "abcabcabcabc",
        "abcdefghijklmn",
        "0987654321098",
        "aaaaaa123456",
    ],
)
def test_common_and_predictable_passwords_are_refused(password: str) -> None:
    assert policy_violation(password) in (passwords.TOO_COMMON, passwords.TOO_SIMPLE)


@pytest.mark.parametrize(
    "password",
    ["correct horse battery staple", "violet kettle ferry mosaic", "xk7#Lm9!pQ2z", "Tr0ub4dor&3x"],
)
def test_unpredictable_passwords_pass(password: str) -> None:
    assert policy_violation(password, "someone@example.com") is None


def test_length_bounds() -> None:
    assert policy_violation("x7#Lm9!pQ2z") == passwords.TOO_SHORT  # 11
    assert policy_violation("x7#Lm9!pQ2zk") is None  # 12
    assert policy_violation("violet kettle " * 10) == passwords.TOO_LONG


@pytest.mark.parametrize(
    "password",
    ["grace.hopper@example.com", "GRACE.HOPPER is great", "my grace.hopper pass", "grace.hopper+x"],
)
def test_passwords_containing_the_email_or_its_local_part_are_refused(password: str) -> None:
    assert policy_violation(password, "Grace.Hopper+news@Example.com") == passwords.LIKE_EMAIL


def test_a_very_short_local_part_does_not_ban_its_letters() -> None:
    assert policy_violation("violet kettle ferry mosaic", "vi@example.com") is None
