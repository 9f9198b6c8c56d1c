"""Refresh-token rotation, reuse detection, logout and family expiry (RFC 9700 §4.14.2)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

import jwt
import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit.models import AuditRecord
from app.auth.models import RefreshFamily, RefreshToken, User
from tests.conftest import bearer, security_lines

Login = Callable[[User], dict[str, str]]


def family_of(db_session: Session, refresh_token: str) -> RefreshFamily:
    jti = jwt.decode(refresh_token, options={"verify_signature": False})["jti"]
    token = db_session.get(RefreshToken, jti)
    assert token is not None
    db_session.refresh(token.family)
    return token.family


def refresh(client: FlaskClient, token: str) -> tuple[int, dict[str, str]]:
    response = client.post("/auth/refresh", json={"refresh_token": token})
    return response.status_code, response.get_json()


def test_refresh_returns_a_new_pair_and_marks_the_old_token_used(
    client: FlaskClient, make_user: Callable[..., User], login: Login, db_session: Session
) -> None:
    first = login(make_user())

    status, second = refresh(client, first["refresh_token"])

    assert status == 200
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert client.get("/auth/me", headers=bearer(second["access_token"])).status_code == 200
    used = db_session.get(
        RefreshToken, jwt.decode(first["refresh_token"], options={"verify_signature": False})["jti"]
    )
    assert used is not None
    assert used.used_at is not None
    assert family_of(db_session, second["refresh_token"]).id == used.family_id


def test_refresh_token_reuse_revokes_the_family_and_is_audited(
    client: FlaskClient, make_user: Callable[..., User], login: Login, db_session: Session
) -> None:
    user = make_user()
    first = login(user)
    _, second = refresh(client, first["refresh_token"])

    status, problem = refresh(client, first["refresh_token"])

    assert status == 401
    assert problem["type"].endswith("/refresh-token-reused")
    family = family_of(db_session, second["refresh_token"])
    assert family.revoked_at is not None
    assert family.revoked_reason == "reuse"
    # The attacker's (or victim's) newer token dies with the family.
    assert refresh(client, second["refresh_token"])[0] == 401
    record = db_session.scalar(
        select(AuditRecord).where(AuditRecord.action == "auth.refresh_token_reused")
    )
    assert record is not None
    assert record.actor_id == user.id
    assert record.target_id == str(family.id)
    assert record.request_id


def test_reuse_revokes_only_that_login(
    client: FlaskClient, make_user: Callable[..., User], login: Login
) -> None:
    user = make_user()
    phone, laptop = login(user), login(user)
    refresh(client, phone["refresh_token"])

    refresh(client, phone["refresh_token"])  # replay

    assert refresh(client, laptop["refresh_token"])[0] == 200


def test_logout_revokes_the_family(
    client: FlaskClient, make_user: Callable[..., User], login: Login, db_session: Session
) -> None:
    tokens = login(make_user())

    response = client.post("/auth/logout", json={"refresh_token": tokens["refresh_token"]})

    assert response.status_code == 204
    assert response.data == b""
    assert family_of(db_session, tokens["refresh_token"]).revoked_reason == "logout"
    assert refresh(client, tokens["refresh_token"])[0] == 401
    again = client.post("/auth/logout", json={"refresh_token": tokens["refresh_token"]})
    assert again.status_code == 204


def test_logout_with_an_access_token_is_401(
    client: FlaskClient, make_user: Callable[..., User], login: Login
) -> None:
    tokens = login(make_user())

    response = client.post("/auth/logout", json={"refresh_token": tokens["access_token"]})

    assert response.status_code == 401


def test_family_idle_for_more_than_14_days_expires(
    client: FlaskClient, make_user: Callable[..., User], login: Login, db_session: Session
) -> None:
    tokens = login(make_user())
    family = family_of(db_session, tokens["refresh_token"])
    family.last_used_at -= timedelta(days=14, minutes=1)
    family.created_at -= timedelta(days=14, minutes=1)
    db_session.commit()

    status, problem = refresh(client, tokens["refresh_token"])

    assert status == 401
    assert problem["type"].endswith("/refresh-token-expired")
    assert family_of(db_session, tokens["refresh_token"]).revoked_reason == "idle"


def test_family_in_use_survives_13_days_of_idleness(
    client: FlaskClient, make_user: Callable[..., User], login: Login, db_session: Session
) -> None:
    tokens = login(make_user())
    family = family_of(db_session, tokens["refresh_token"])
    family.last_used_at -= timedelta(days=13)
    family.created_at -= timedelta(days=13)
    db_session.commit()

    assert refresh(client, tokens["refresh_token"])[0] == 200


def test_family_older_than_30_days_expires_even_when_used_daily(
    client: FlaskClient, make_user: Callable[..., User], login: Login, db_session: Session
) -> None:
    tokens = login(make_user())
    family = family_of(db_session, tokens["refresh_token"])
    family.created_at -= timedelta(days=30, minutes=1)
    family.last_used_at -= timedelta(days=1)
    db_session.commit()

    status, _ = refresh(client, tokens["refresh_token"])

    assert status == 401
    assert family_of(db_session, tokens["refresh_token"]).revoked_reason == "absolute"


def test_refresh_token_expiry_never_outlives_the_absolute_limit(
    client: FlaskClient, make_user: Callable[..., User], login: Login, db_session: Session
) -> None:
    tokens = login(make_user())
    family = family_of(db_session, tokens["refresh_token"])
    family.created_at -= timedelta(days=29)
    db_session.commit()

    _, rotated = refresh(client, tokens["refresh_token"])

    claims = jwt.decode(rotated["refresh_token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] <= timedelta(days=1).total_seconds() + 5


def test_refresh_for_a_deactivated_user_is_401(
    client: FlaskClient, make_user: Callable[..., User], login: Login, db_session: Session
) -> None:
    user = make_user()
    tokens = login(user)
    user.is_active = False
    db_session.commit()

    assert refresh(client, tokens["refresh_token"])[0] == 401


def test_unknown_refresh_token_is_401(
    client: FlaskClient, make_user: Callable[..., User], login: Login, db_session: Session
) -> None:
    tokens = login(make_user())
    family = family_of(db_session, tokens["refresh_token"])
    for token in list(family.tokens):
        db_session.delete(token)
    db_session.commit()

    assert refresh(client, tokens["refresh_token"])[0] == 401
    assert (
        client.post("/auth/logout", json={"refresh_token": tokens["refresh_token"]}).status_code
        == 401
    )


def test_an_expired_login_says_so_and_logs_the_reason_and_the_user(
    client: FlaskClient,
    make_user: Callable[..., User],
    login: Login,
    db_session: Session,
    caplog: pytest.LogCaptureFixture,
) -> None:
    user = make_user()
    tokens = login(user)
    family = family_of(db_session, tokens["refresh_token"])
    family.last_used_at -= timedelta(days=14, minutes=1)
    db_session.commit()
    caplog.set_level(logging.WARNING, logger="app.security")

    response = client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})

    assert response.status_code == 401
    assert response.get_json()["detail"] == "The login has expired; sign in again."
    assert security_lines(caplog, response) == [
        ("auth.refresh_rejected", "expired:idle", str(user.id))
    ]
