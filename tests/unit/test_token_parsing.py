"""The unverified read of a token's header and claims that picks the verification key."""

from __future__ import annotations

import base64
import json

import jwt
import pytest

from app.auth.tokens import unverified_parts

SECRET = "s" * 32
NOT_JSON = base64.urlsafe_b64encode(b"not json").decode()
NOT_UTF8 = base64.urlsafe_b64encode(bytes([0xFF, 0xFE])).decode()


def _segment(value: object) -> str:
    raw = json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize("padding", range(4))
def test_it_reads_what_pyjwt_reads_without_verifying(padding: int) -> None:
    # Claims of lengths that leave every remainder of the unpadded base64 length.
    claims = {"sub": "user-1", "note": "x" * padding, "n": 7}
    token = jwt.encode(claims, SECRET, algorithm="HS256", headers={"kid": "k1"})
    expected = jwt.decode_complete(token, options={"verify_signature": False})

    assert unverified_parts(token) == (expected["header"], expected["payload"])


def test_a_segment_with_its_base64_padding_is_read_too() -> None:
    header = base64.urlsafe_b64encode(json.dumps({"alg": "HS256"}).encode()).decode()
    assert header.endswith("=")

    assert unverified_parts(f"{header}.{_segment({'sub': 'a'})}.sig") == (
        {"alg": "HS256"},
        {"sub": "a"},
    )


@pytest.mark.parametrize(
    "token",
    [
        "not-a-jwt",
        "two.segments",
        f"{_segment({'alg': 'HS256'})}.{_segment({'a': 1})}.sig.extra",
        f"a.{_segment({'a': 1})}.sig",  # one base64 character cannot be a byte
        f"{_segment({'alg': 'HS256'})}.{NOT_JSON}.sig",
        f"{_segment(['a', 'list'])}.{_segment({'a': 1})}.sig",
        f"{_segment({'alg': 'HS256'})}.{_segment('a string')}.sig",
        f"{_segment({'alg': 'HS256'})}.{NOT_UTF8}.sig",
        "é.é.é",
    ],
    ids=[
        "one-segment",
        "two-segments",
        "four-segments",
        "bad-base64",
        "not-json",
        "header-not-an-object",
        "claims-not-an-object",
        "not-utf8",
        "not-ascii",
    ],
)
def test_a_malformed_token_reads_as_none(token: str) -> None:
    assert unverified_parts(token) is None
