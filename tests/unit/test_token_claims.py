"""The pure parts of app/auth/tokens.py: the `ius` claim, the cutoff, and the deny-list insert
on SQLite (the dialect the unit tier's applications use)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from app.auth import tokens
from app.auth.models import RevokedAccessToken, Role, User
from app.auth.tokens import deny, issued_before_cutoff, issued_micros, micros

CUTOFF = datetime(2026, 12, 7, 12, 0, 0, 500_000, tzinfo=UTC)


def _user(tokens_valid_after: datetime | None) -> User:
    return User(
        id=uuid.uuid4(),
        email="cutoff@example.com",
        display_name="Cutoff",
        role=Role.LEARNER,
        tokens_valid_after=tokens_valid_after,
    )


def test_micros_counts_whole_microseconds_since_the_epoch() -> None:
    assert micros(datetime(1970, 1, 1, tzinfo=UTC)) == 0
    assert micros(CUTOFF) == 1_796_644_800_500_000


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1_796_644_800_500_000, 1_796_644_800_500_000), (0, 0), ("17", None), (1.5, None)],
)
def test_issued_micros_takes_integers_only(value: object, expected: int | None) -> None:
    assert issued_micros({"ius": value}) == expected


@pytest.mark.parametrize("value", [True, False])
def test_issued_micros_refuses_booleans(value: bool) -> None:
    assert issued_micros({"ius": value}) is None


def test_issued_micros_of_a_token_without_the_claim_is_none() -> None:
    assert issued_micros({"iat": 5}) is None


def test_without_a_cutoff_no_token_predates_it() -> None:
    assert issued_before_cutoff(_user(None), {}) is False


@pytest.mark.parametrize(
    ("offset", "before"),
    [(-1, True), (0, False), (1, False)],
)
def test_the_cutoff_compares_to_the_microsecond(offset: int, before: bool) -> None:
    claims = {"ius": micros(CUTOFF) + offset}
    assert issued_before_cutoff(_user(CUTOFF), claims) is before


@pytest.mark.parametrize("claims", [{}, {"ius": "1"}, {"ius": True}])
def test_a_token_without_a_usable_ius_predates_any_cutoff(claims: dict[str, object]) -> None:
    assert issued_before_cutoff(_user(CUTOFF), claims) is True


def test_deny_on_sqlite_inserts_once_and_purges_expired_rows() -> None:
    engine = create_engine("sqlite://")
    RevokedAccessToken.metadata.tables["revoked_access_tokens"].create(engine)
    now = datetime.now(UTC)
    exp = int((now + timedelta(minutes=10)).timestamp())
    with Session(engine) as session:
        session.add(RevokedAccessToken(jti="old", expires_at=now - timedelta(hours=1)))
        session.commit()

        deny(session, {"jti": "abc", "exp": exp})
        deny(session, {"jti": "abc", "exp": exp})  # twice: a no-op, not a conflict
        session.commit()

        rows = session.execute(select(RevokedAccessToken.jti, RevokedAccessToken.expires_at))
        assert [tuple(row) for row in rows] == [("abc", datetime.fromtimestamp(exp, UTC))]
    engine.dispose()


def test_deny_purges_rows_that_expire_at_this_very_instant(monkeypatch: pytest.MonkeyPatch) -> None:
    """Expired means `expires_at <= now`: a row expiring now protects nothing any more."""
    now = CUTOFF
    monkeypatch.setattr(tokens, "utcnow", lambda: now)
    engine = create_engine("sqlite://")
    RevokedAccessToken.metadata.tables["revoked_access_tokens"].create(engine)
    with Session(engine) as session:
        session.add(RevokedAccessToken(jti="now", expires_at=now))
        session.add(RevokedAccessToken(jti="later", expires_at=now + timedelta(microseconds=1)))
        session.commit()

        deny(session, {"jti": "new", "exp": int((now + timedelta(minutes=5)).timestamp())})
        session.commit()

        assert sorted(session.scalars(select(RevokedAccessToken.jti))) == ["later", "new"]
    engine.dispose()
