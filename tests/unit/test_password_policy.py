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


# Each rule on its own, with the message it gives (the cases above accept either message).


def test_the_longest_allowed_password_passes() -> None:
    longest = "violet kettle ferry mosaic " + "q" * (passwords.MAX_LENGTH - 27)

    assert len(longest) == passwords.MAX_LENGTH
    assert policy_violation(longest) is None
    assert policy_violation(longest + "q") == passwords.TOO_LONG


def test_too_few_distinct_characters_is_too_simple_even_without_a_pattern() -> None:
    # Four letters in runs: not a repetition of a shorter string, not a sequence, not listed.
    assert policy_violation("aaaabbbbccccdddd") == passwords.TOO_SIMPLE
    # Five distinct letters are enough when nothing else is wrong.
    assert policy_violation("stone notes tones") is None


def test_a_repetition_of_a_varied_block_is_too_simple() -> None:
    assert policy_violation("abcdeabcdeabcde") == passwords.TOO_SIMPLE


@pytest.mark.parametrize(
    ("password", "expected"),
    [
        ("1990!xyzxyz!7", passwords.TOO_SIMPLE),  # the core repeats "xyz"
        ("1999#lkjhgf#2", passwords.TOO_SIMPLE),  # the core runs along the home row, backwards
        ("1990!xyzxy!77", None),  # a 5-character core is too short to judge as a pattern
        ("1999#lkjhg#22", None),
    ],
)
def test_the_core_inside_digits_and_symbols_is_judged_from_six_characters(
    password: str, expected: str | None
) -> None:
    assert policy_violation(password) == expected


def test_a_three_character_name_part_counts_as_the_email() -> None:
    assert policy_violation("violet gra kettle", " GRA@Example.com ") == passwords.LIKE_EMAIL


def test_the_name_before_the_first_plus_counts_even_with_several_tags() -> None:
    email = "grace+news+2024@example.com"

    assert policy_violation("violet grace kettle", email) == passwords.LIKE_EMAIL
