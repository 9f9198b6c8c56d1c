"""`rotate`, refused and accepted, in full: what each refused refresh answers, logs, writes and
counts, the family's age limits to the microsecond, what an accepted one records, and the row
locks it holds while it decides (tests/integration/test_auth_refresh.py covers the flows).

Written against the mutation survivors of app/auth/tokens.py (issue 15): each assertion pins a
detail a mutant changed without any other test noticing.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
import pytest
from apiflask import APIFlask
from flask.testing import FlaskClient
from prometheus_client import REGISTRY
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from app.audit.models import AuditRecord
from app.auth import tokens
from app.auth.models import RefreshFamily, RefreshToken, User
from app.config import Settings
from app.errors import PROBLEM_TYPE_BASE
from tests.conftest import PASSWORD, security_lines
from tests.integration.test_token_policies import FakeClock

Login = Callable[[User], dict[str, str]]


def jti_of(token: str) -> str:
    jti: str = jwt.decode(token, options={"verify_signature": False})["jti"]
    return jti


def refresh(client: FlaskClient, token: str) -> TestResponse:
    return client.post("/auth/refresh", json={"refresh_token": token})


def family_row(db_session: Session, user: User) -> RefreshFamily:
    db_session.expire_all()
    return db_session.scalars(select(RefreshFamily).where(RefreshFamily.user_id == user.id)).one()


def reuse_count() -> float:
    return REGISTRY.get_sample_value("mastery_auth_refresh_reuse_total") or 0.0


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(tokens, "utcnow", fake)
    return fake


# --- refused refreshes: the answer, the log line, what was written -------------------------------


@dataclass(frozen=True)
class Refusal:
    detail: str
    type: str
    reason: str


NOT_RECOGNISED = Refusal("The refresh token is not recognised.", "about:blank", "not_recognised")
REVOKED = Refusal(
    "The refresh token has been revoked.",
    PROBLEM_TYPE_BASE + "refresh-token-revoked",
    "revoked:logout",
)
REUSED = Refusal(
    "The refresh token was already used; every session of this login is revoked.",
    PROBLEM_TYPE_BASE + "refresh-token-reused",
    "reused",
)


def expired(reason: str) -> Refusal:
    return Refusal(
        "The login has expired; sign in again.",
        PROBLEM_TYPE_BASE + "refresh-token-expired",
        f"expired:{reason}",
    )


def assert_refused(
    response: TestResponse, refusal: Refusal, caplog: pytest.LogCaptureFixture, user: User
) -> None:
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    problem = response.get_json()
    assert (problem["detail"], problem["type"]) == (refusal.detail, refusal.type)
    assert security_lines(caplog, response) == [
        ("auth.refresh_rejected", refusal.reason, str(user.id))
    ]


def test_an_access_token_is_not_a_refresh_token_and_nothing_changes(
    client: FlaskClient,
    make_user: Callable[..., User],
    login: Login,
    db_session: Session,
    security_log: pytest.LogCaptureFixture,
) -> None:
    user = make_user()
    pair = login(user)

    response = refresh(client, pair["access_token"])

    assert_refused(
        response,
        Refusal("A refresh token is required.", "about:blank", "not_a_refresh_token"),
        security_log,
        user,
    )
    family = family_row(db_session, user)
    assert family.revoked_at is None
    assert [t.used_at for t in family.tokens] == [None]
    assert refresh(client, pair["refresh_token"]).status_code == 200


def test_a_token_whose_row_is_gone_is_not_recognised(
    client: FlaskClient,
    make_user: Callable[..., User],
    login: Login,
    db_session: Session,
    security_log: pytest.LogCaptureFixture,
) -> None:
    user = make_user()
    pair = login(user)
    db_session.delete(db_session.get_one(RefreshToken, jti_of(pair["refresh_token"])))
    db_session.commit()

    assert_refused(refresh(client, pair["refresh_token"]), NOT_RECOGNISED, security_log, user)
    assert family_row(db_session, user).revoked_at is None


def test_a_token_whose_family_is_gone_is_not_recognised(
    client: FlaskClient,
    make_user: Callable[..., User],
    login: Login,
    db_session: Session,
    security_log: pytest.LogCaptureFixture,
) -> None:
    """The foreign key makes this impossible; `rotate` still refuses rather than trust it. The
    constraint is dropped inside the test's own transaction, rolled back with it."""
    user = make_user()
    pair = login(user)
    (constraint,) = (
        fk.name
        for fk in RefreshToken.metadata.tables["refresh_tokens"].foreign_key_constraints
        if fk.name is not None
    )
    db_session.execute(text(f'ALTER TABLE refresh_tokens DROP CONSTRAINT "{constraint}"'))
    db_session.execute(text("DELETE FROM refresh_families WHERE user_id = :id"), {"id": user.id})
    db_session.commit()

    assert_refused(refresh(client, pair["refresh_token"]), NOT_RECOGNISED, security_log, user)
    assert db_session.get(RefreshToken, jti_of(pair["refresh_token"])) is not None


def test_a_token_of_a_logged_out_login_is_revoked_and_keeps_how_it_ended(
    client: FlaskClient,
    make_user: Callable[..., User],
    login: Login,
    db_session: Session,
    security_log: pytest.LogCaptureFixture,
) -> None:
    user = make_user()
    pair = login(user)
    assert client.post("/auth/logout", json={"refresh_token": pair["refresh_token"]}).status_code
    ended_at = family_row(db_session, user).revoked_at

    assert_refused(refresh(client, pair["refresh_token"]), REVOKED, security_log, user)
    family = family_row(db_session, user)
    assert (family.revoked_at, family.revoked_reason) == (ended_at, "logout")


def test_a_reused_token_revokes_its_login_audits_counts_and_warns(
    client: FlaskClient,
    make_user: Callable[..., User],
    login: Login,
    db_session: Session,
    security_log: pytest.LogCaptureFixture,
    clock: FakeClock,
) -> None:
    user = make_user()
    first = login(user)
    assert refresh(client, first["refresh_token"]).status_code == 200
    reused_before = reuse_count()
    security_log.set_level(logging.WARNING, logger="app.auth.tokens")
    clock.now += timedelta(seconds=5)

    response = refresh(client, first["refresh_token"])

    assert_refused(response, REUSED, security_log, user)
    family = family_row(db_session, user)
    assert (family.revoked_at, family.revoked_reason) == (clock.now, "reuse")
    records = db_session.scalars(
        select(AuditRecord).where(AuditRecord.action == "auth.refresh_token_reused")
    ).all()
    assert [(r.actor_id, r.target_type, r.target_id, r.details) for r in records] == [
        (user.id, "refresh_family", str(family.id), {"jti": jti_of(first["refresh_token"])})
    ]
    assert reuse_count() == reused_before + 1
    warnings = [
        (r.levelname, r.getMessage()) for r in security_log.records if r.name == "app.auth.tokens"
    ]
    assert warnings == [("WARNING", f"refresh token reuse; family {family.id} revoked")]


# --- the family's age: idle and absolute limits, to the microsecond ------------------------------


def age_family(
    db_session: Session, user: User, now: datetime, *, idle: timedelta, age: timedelta
) -> None:
    """Make the user's family `age` old and unused for `idle` at `now`."""
    family = family_row(db_session, user)
    family.last_used_at = now - idle
    family.created_at = now - age
    db_session.commit()


@pytest.mark.parametrize("limit", ["idle", "absolute"])
@pytest.mark.parametrize(
    ("beyond", "status"),
    [(timedelta(0), 200), (timedelta(microseconds=1), 401)],
    ids=["exactly at it", "a microsecond past it"],
)
def test_each_age_limit_is_inclusive_to_the_microsecond(
    client: FlaskClient,
    make_user: Callable[..., User],
    login: Login,
    db_session: Session,
    settings: Settings,
    security_log: pytest.LogCaptureFixture,
    clock: FakeClock,
    limit: str,
    beyond: timedelta,
    status: int,
) -> None:
    user = make_user()
    pair = login(user)
    if limit == "idle":
        idle = age = settings.refresh_idle_ttl + beyond
    else:
        idle, age = timedelta(hours=1), settings.refresh_absolute_ttl + beyond
    age_family(db_session, user, clock.now, idle=idle, age=age)

    response = refresh(client, pair["refresh_token"])

    if status == 401:
        assert_refused(response, expired(limit), security_log, user)
        family = family_row(db_session, user)
        assert (family.revoked_at, family.revoked_reason) == (clock.now, limit)
    else:
        assert response.status_code == 200


def test_a_deactivated_users_login_expires_as_inactive(
    client: FlaskClient,
    make_user: Callable[..., User],
    login: Login,
    db_session: Session,
    security_log: pytest.LogCaptureFixture,
) -> None:
    user = make_user()
    pair = login(user)
    user.is_active = False
    db_session.commit()

    assert_refused(refresh(client, pair["refresh_token"]), expired("inactive"), security_log, user)
    assert family_row(db_session, user).revoked_reason == "inactive"


def test_a_login_that_predates_the_users_cutoff_expires_as_cutoff(
    client: FlaskClient,
    make_user: Callable[..., User],
    login: Login,
    db_session: Session,
    security_log: pytest.LogCaptureFixture,
    clock: FakeClock,
) -> None:
    """The race a password change can lose: a login it did not see, its family still alive."""
    user = make_user()
    pair = login(user)
    user.tokens_valid_after = clock.now + timedelta(microseconds=1)
    db_session.commit()

    assert_refused(refresh(client, pair["refresh_token"]), expired("cutoff"), security_log, user)
    assert family_row(db_session, user).revoked_reason == "cutoff"


# --- an accepted refresh: what it records ---------------------------------------------------------


def test_a_refresh_marks_the_token_used_and_the_family_used_at_the_same_instant(
    client: FlaskClient,
    make_user: Callable[..., User],
    login: Login,
    db_session: Session,
    clock: FakeClock,
) -> None:
    user = make_user()
    first = login(user)
    clock.now += timedelta(seconds=7, microseconds=3)

    response = refresh(client, first["refresh_token"])

    assert response.status_code == 200
    body = response.get_json()
    family = family_row(db_session, user)
    assert (family.last_used_at, family.revoked_at) == (clock.now, None)
    rows = {t.jti: (t.issued_at, t.used_at) for t in family.tokens}
    assert rows == {
        jti_of(first["refresh_token"]): (
            clock.now - timedelta(seconds=7, microseconds=3),
            clock.now,
        ),
        jti_of(body["refresh_token"]): (clock.now, None),
    }
    claims = jwt.decode(body["refresh_token"], options={"verify_signature": False})
    assert (claims["fam"], claims["ius"], claims["sub"]) == (
        str(family.id),
        tokens.micros(clock.now),
        str(user.id),
    )


def test_a_new_pair_carries_exactly_its_claims_on_the_platforms_clock(
    client: FlaskClient,
    make_user: Callable[..., User],
    login: Login,
    db_session: Session,
    settings: Settings,
    clock: FakeClock,
) -> None:
    """`iat` and `ius` are one reading of the platform's clock (the library would take its
    own); the access token names the role, and neither token carries anything else."""
    user = make_user()
    first = login(user)
    clock.now += timedelta(seconds=3, microseconds=250_000)

    pair = refresh(client, first["refresh_token"]).get_json()

    family = family_row(db_session, user)
    common = {
        "sub": str(user.id),
        "fam": str(family.id),
        "iat": int(clock.now.timestamp()),
        "ius": tokens.micros(clock.now),
        "iss": tokens.ISSUER,
        "aud": tokens.AUDIENCE,
        "fresh": False,
    }
    access = jwt.decode(pair["access_token"], options={"verify_signature": False})
    refreshed = jwt.decode(pair["refresh_token"], options={"verify_signature": False})
    assert {k: v for k, v in access.items() if k not in ("jti", "nbf", "exp")} == common | {
        "type": "access",
        "role": user.role.value,
    }
    assert {k: v for k, v in refreshed.items() if k not in ("jti", "nbf", "exp")} == common | {
        "type": "refresh"
    }
    assert access["exp"] - access["iat"] == pytest.approx(
        settings.access_token_ttl.total_seconds(), abs=31
    )


def test_a_login_starts_its_family_at_the_reading_its_tokens_carry(
    client: FlaskClient,
    make_user: Callable[..., User],
    login: Login,
    db_session: Session,
    clock: FakeClock,
) -> None:
    """Created and last used at the clock reading in the tokens' `ius`, not at whatever the
    columns' defaults would read later: the age limits count from the same instant."""
    user = make_user()
    clock.now += timedelta(microseconds=123_457)

    pair = login(user)

    family = family_row(db_session, user)
    assert (family.created_at, family.last_used_at) == (clock.now, clock.now)
    claims = jwt.decode(pair["refresh_token"], options={"verify_signature": False})
    assert claims["ius"] == tokens.micros(clock.now)


# --- the locks: a concurrent refresh of the same token must wait ----------------------------------


@pytest.mark.commits
def test_a_refresh_holds_its_token_and_family_rows_locked_while_it_decides(
    app: APIFlask,
    engine: Engine,
    make_user: Callable[..., User],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without the locks two refreshes of one token could both see it unused and both succeed.
    NOWAIT, tried from another connection once `rotate` has read both rows, turns the wait a
    second refresh would face into an error the test sees at once."""
    client = app.test_client()
    user = make_user()
    login = client.post("/auth/login", json={"email": user.email, "password": PASSWORD})
    refresh_token = login.get_json()["refresh_token"]
    jti = jti_of(refresh_token)
    with engine.connect() as conn:
        family_id = conn.scalar(
            text("SELECT family_id FROM refresh_tokens WHERE jti = :jti"), {"jti": jti}
        )
    attempts: list[tuple[str, str]] = []
    real_check = tokens.issued_before_cutoff

    def try_to_lock(user_row: User, claims: dict[str, Any]) -> bool:
        probes = {
            "refresh_tokens": text(
                "SELECT 1 FROM refresh_tokens WHERE jti = :key FOR UPDATE NOWAIT"
            ),
            "refresh_families": text(
                "SELECT 1 FROM refresh_families WHERE id = :key FOR UPDATE NOWAIT"
            ),
        }
        keys: dict[str, object] = {"refresh_tokens": jti, "refresh_families": family_id}
        for table, probe in probes.items():
            with engine.connect() as other:
                try:
                    other.execute(probe, {"key": keys[table]})
                    attempts.append((table, "locked by the probe"))
                except OperationalError as error:
                    attempts.append((table, type(error.orig).__name__))
                other.rollback()
        return real_check(user_row, claims)

    monkeypatch.setattr(tokens, "issued_before_cutoff", try_to_lock)

    response = refresh(client, refresh_token)

    assert response.status_code == 200
    assert attempts == [
        ("refresh_tokens", "LockNotAvailable"),
        ("refresh_families", "LockNotAvailable"),
    ]
    assert isinstance(family_id, uuid.UUID)
