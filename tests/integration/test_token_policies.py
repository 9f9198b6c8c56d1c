"""Token policies: the access-token deny-list at logout, the per-user cutoff set by a password
change or a deactivation (to the microsecond), the password change itself, and the password
policy at registration and password change."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from apiflask import APIFlask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit.models import AuditRecord
from app.auth import tokens
from app.auth.models import RefreshFamily, RevokedAccessToken, Role, User
from app.db import utcnow
from tests.conftest import NEW_PASSWORD, PASSWORD, bearer, change_password, security_lines
from tests.integration.test_auth_tokens import forge

Login = Callable[..., dict[str, str]]  # (user, password=PASSWORD): tests/conftest.py `login`


def claims_of(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return decoded


def me(client: FlaskClient, access_token: str) -> int:
    response = client.get("/auth/me", headers=bearer(access_token))
    if response.status_code != 200:
        assert response.mimetype == "application/problem+json"
    return response.status_code


def refresh(client: FlaskClient, refresh_token: str) -> int:
    return client.post("/auth/refresh", json={"refresh_token": refresh_token}).status_code


def logout(client: FlaskClient, pair: dict[str, str], access_token: str | None = None) -> Any:
    headers = bearer(access_token) if access_token else {}
    return client.post(
        "/auth/logout", json={"refresh_token": pair["refresh_token"]}, headers=headers
    )


# --- logout and the deny-list ----------------------------------------------------------------


def test_logout_with_the_bearer_deny_lists_that_access_token_until_it_expires(
    client: FlaskClient, make_user: Callable[..., User], login: Login, db_session: Session
) -> None:
    pair = login(make_user())
    assert me(client, pair["access_token"]) == 200

    assert logout(client, pair, pair["access_token"]).status_code == 204

    assert me(client, pair["access_token"]) == 401
    claims = claims_of(pair["access_token"])
    row = db_session.get(RevokedAccessToken, claims["jti"])
    assert row is not None
    assert row.expires_at == datetime.fromtimestamp(claims["exp"], UTC)


def test_a_deny_listed_jti_is_refused_even_while_its_own_login_is_alive(
    app: APIFlask, client: FlaskClient, make_user: Callable[..., User], login: Login
) -> None:
    """A token of another login (`forge` gives it a family of its own) stops by its jti alone."""
    user = make_user()
    orphan = forge(app, user)
    assert me(client, orphan) == 200

    assert logout(client, login(user), orphan).status_code == 204

    assert me(client, orphan) == 401


def test_logout_ends_every_access_token_of_that_login_even_without_the_bearer(
    client: FlaskClient, make_user: Callable[..., User], login: Login
) -> None:
    first = login(make_user())
    second = client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    rotated = second.get_json()

    assert logout(client, rotated).status_code == 204

    assert me(client, first["access_token"]) == 401
    assert me(client, rotated["access_token"]) == 401
    assert refresh(client, rotated["refresh_token"]) == 401


def test_logout_leaves_the_users_other_logins_signed_in(
    client: FlaskClient, make_user: Callable[..., User], login: Login
) -> None:
    user = make_user()
    phone, laptop = login(user), login(user)

    assert logout(client, phone, phone["access_token"]).status_code == 204

    assert me(client, phone["access_token"]) == 401
    assert me(client, laptop["access_token"]) == 200
    assert refresh(client, laptop["refresh_token"]) == 200


@pytest.mark.parametrize("bad_bearer", ["not-a-jwt", "expired"])
def test_logout_ignores_an_unusable_bearer_and_still_ends_the_login(
    app: APIFlask,
    client: FlaskClient,
    make_user: Callable[..., User],
    login: Login,
    db_session: Session,
    bad_bearer: str,
) -> None:
    user = make_user()
    pair = login(user)
    past = int(time.time()) - 3600
    if bad_bearer == "expired":
        token = forge(app, user, iat=past, nbf=past, exp=past + 900)
    else:
        token = bad_bearer

    assert logout(client, pair, token).status_code == 204

    assert me(client, pair["access_token"]) == 401
    assert db_session.scalars(select(RevokedAccessToken)).all() == []


def test_logout_with_another_accounts_bearer_is_401_and_changes_nothing(
    client: FlaskClient, make_user: Callable[..., User], login: Login
) -> None:
    mine, theirs = login(make_user()), login(make_user())

    response = logout(client, mine, theirs["access_token"])

    assert response.status_code == 401
    assert response.get_json()["type"].endswith("/token-mismatch")
    assert me(client, mine["access_token"]) == 200
    assert me(client, theirs["access_token"]) == 200
    assert refresh(client, mine["refresh_token"]) == 200


def test_logging_out_twice_is_harmless(
    client: FlaskClient, make_user: Callable[..., User], login: Login
) -> None:
    pair = login(make_user())

    assert logout(client, pair, pair["access_token"]).status_code == 204
    assert logout(client, pair).status_code == 204


def test_logout_purges_expired_deny_list_rows_and_keeps_live_ones(
    client: FlaskClient, make_user: Callable[..., User], login: Login, db_session: Session
) -> None:
    now = utcnow()
    db_session.add_all(
        [
            RevokedAccessToken(jti="long-expired", expires_at=now - timedelta(hours=1)),
            RevokedAccessToken(jti="still-live", expires_at=now + timedelta(minutes=10)),
        ]
    )
    db_session.commit()
    pair = login(make_user())

    assert logout(client, pair, pair["access_token"]).status_code == 204

    db_session.expire_all()
    left = set(db_session.scalars(select(RevokedAccessToken.jti)))
    assert left == {"still-live", claims_of(pair["access_token"])["jti"]}


# --- password change and the cutoff ------------------------------------------------------------


def test_password_change_revokes_every_token_and_only_the_new_password_logs_in(
    client: FlaskClient, make_user: Callable[..., User], login: Login, db_session: Session
) -> None:
    user = make_user()
    here, elsewhere = login(user), login(user)

    assert change_password(client, here["access_token"]).status_code == 204

    for pair in (here, elsewhere):
        assert me(client, pair["access_token"]) == 401
        assert refresh(client, pair["refresh_token"]) == 401
    old = client.post("/auth/login", json={"email": user.email, "password": PASSWORD})
    assert old.status_code == 401
    fresh = login(user, NEW_PASSWORD)
    assert me(client, fresh["access_token"]) == 200
    assert refresh(client, fresh["refresh_token"]) == 200
    actions = db_session.scalars(
        select(AuditRecord.action).where(AuditRecord.target_id == str(user.id))
    ).all()
    assert "auth.password_changed" in actions
    reasons = set(db_session.scalars(select(RefreshFamily.revoked_reason)))
    assert "password_changed" in reasons


def test_a_wrong_current_password_is_403_and_changes_nothing(
    client: FlaskClient, make_user: Callable[..., User], login: Login, db_session: Session
) -> None:
    user = make_user()
    pair = login(user)

    response = change_password(client, pair["access_token"], current="not the password at all")

    assert response.status_code == 403
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["type"].endswith("/wrong-password")
    assert me(client, pair["access_token"]) == 200
    assert refresh(client, pair["refresh_token"]) == 200
    login(user)  # the old password still works
    assert db_session.scalar(
        select(AuditRecord.details).where(AuditRecord.action == "auth.password_change_failed")
    ) == {"reason": "wrong_current_password"}


def test_a_new_password_equal_to_the_current_one_is_422(
    client: FlaskClient, make_user: Callable[..., User], login: Login
) -> None:
    pair = login(make_user())

    response = change_password(client, pair["access_token"], new=PASSWORD)

    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == "new_password"
    assert me(client, pair["access_token"]) == 200


def test_deactivation_revokes_tokens_for_good_even_after_reactivation(
    client: FlaskClient, make_user: Callable[..., User], login: Login
) -> None:
    user = make_user()
    pair = login(user)
    admin = bearer(login(make_user(Role.ADMIN))["access_token"])

    off = client.patch(f"/admin/users/{user.id}", json={"is_active": False}, headers=admin)
    assert off.status_code == 200
    assert me(client, pair["access_token"]) == 401
    on = client.patch(f"/admin/users/{user.id}", json={"is_active": True}, headers=admin)
    assert on.status_code == 200

    assert me(client, pair["access_token"]) == 401
    assert refresh(client, pair["refresh_token"]) == 401
    assert me(client, login(user)["access_token"]) == 200


def test_a_role_change_keeps_the_users_tokens(
    client: FlaskClient, make_user: Callable[..., User], login: Login
) -> None:
    """The role is read from the database on every request, so nothing needs revoking."""
    user = make_user()
    pair = login(user)
    admin = bearer(login(make_user(Role.ADMIN))["access_token"])

    client.patch(f"/admin/users/{user.id}", json={"role": "instructor"}, headers=admin)

    response = client.get("/auth/me", headers=bearer(pair["access_token"]))
    assert response.get_json()["role"] == "instructor"


class FakeClock:
    """tokens.utcnow, frozen and moved by hand: the edges tested need sub-second control."""

    def __init__(self) -> None:
        # Whole seconds in the past, so `iat` (taken from this clock) is never in the future.
        self.now = datetime.fromtimestamp(int(time.time()) - 30, UTC)

    def __call__(self) -> datetime:
        return self.now


def test_a_cutoff_splits_tokens_issued_within_the_same_second(
    client: FlaskClient,
    make_user: Callable[..., User],
    login: Login,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeClock()
    second = clock.now
    monkeypatch.setattr(tokens, "utcnow", clock)
    user = make_user()

    clock.now = second + timedelta(milliseconds=200)
    before = login(user)
    clock.now = second + timedelta(milliseconds=400)
    assert change_password(client, before["access_token"]).status_code == 204
    clock.now = second + timedelta(milliseconds=600)
    after = login(user, NEW_PASSWORD)

    # The edge is real: both tokens carry the same whole-second `iat`.
    assert claims_of(before["access_token"])["iat"] == claims_of(after["access_token"])["iat"]
    assert me(client, before["access_token"]) == 401
    assert refresh(client, before["refresh_token"]) == 401
    assert me(client, after["access_token"]) == 200
    assert refresh(client, after["refresh_token"]) == 200


@pytest.mark.parametrize(
    ("issued_offset_us", "expected"),
    [(-1, 401), (0, 200), (1, 200), (None, 401)],
    ids=["a microsecond before", "at the cutoff", "a microsecond after", "no ius claim"],
)
def test_the_cutoff_compares_microseconds_and_refuses_tokens_without_them(
    app: APIFlask,
    client: FlaskClient,
    make_user: Callable[..., User],
    db_session: Session,
    issued_offset_us: int | None,
    expected: int,
) -> None:
    user = make_user()
    second = int(time.time()) - 30
    cutoff = datetime.fromtimestamp(second, UTC) + timedelta(microseconds=500_000)
    user.tokens_valid_after = cutoff
    db_session.commit()
    if issued_offset_us is None:
        token = forge(app, user, iat=second, nbf=second, without=("ius",))
    else:
        ius = tokens.micros(cutoff) + issued_offset_us
        token = forge(app, user, iat=second, nbf=second, ius=ius)

    # Every variant has the cutoff's own whole second as `iat`.
    assert me(client, token) == expected


# --- password policy -----------------------------------------------------------------------------

WEAK = [
    pytest.param("password1234", id="classic with digits"),
    pytest.param("qwertyuiop123", id="keyboard row"),
    pytest.param("123456789012", id="digit run"),
    pytest.param("P@ssw0rd2024!", id="substitutions and a year"),
    pytest.param("ILoveYouForever", id="listed phrase in another case"),
    pytest.param("aaaaaaaaaaaaaaaa", id="one character"),
    pytest.param("short pass", id="under 12"),
]


def weak_for(email: str) -> list[str]:
    local = email.split("@")[0]
    return [email, f"{local} is my secret", f"my-{local.upper()}-pass"]


@pytest.mark.parametrize("password", WEAK)
def test_register_rejects_a_weak_password_with_422_naming_the_field(
    client: FlaskClient, db_session: Session, password: str
) -> None:
    response = client.post(
        "/auth/register",
        json={"email": "grace@example.com", "password": password, "display_name": "Grace"},
    )

    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    errors = response.get_json()["errors"]
    assert [(e["location"], e["field"]) for e in errors] == [("json", "password")]
    assert db_session.scalar(select(User).where(User.email == "grace@example.com")) is None


def test_register_rejects_passwords_made_from_the_email_address(client: FlaskClient) -> None:
    email = "grace.hopper@example.com"
    for password in weak_for(email):
        response = client.post(
            "/auth/register", json={"email": email, "password": password, "display_name": "G"}
        )
        assert response.status_code == 422, password
        assert "e-mail" in response.get_json()["errors"][0]["messages"][0]


@pytest.mark.parametrize("password", WEAK)
def test_password_change_rejects_a_weak_password_and_keeps_the_old_one(
    client: FlaskClient, make_user: Callable[..., User], login: Login, password: str
) -> None:
    user = make_user()
    pair = login(user)

    response = change_password(client, pair["access_token"], new=password)

    assert response.status_code == 422
    assert [e["field"] for e in response.get_json()["errors"]] == ["new_password"]
    assert me(client, pair["access_token"]) == 200
    login(user)


def test_password_change_rejects_a_password_made_from_the_email_address(
    client: FlaskClient, make_user: Callable[..., User], login: Login
) -> None:
    user = make_user(email="ada.lovelace@example.com")
    access = login(user)["access_token"]

    for password in weak_for(user.email):
        response = change_password(client, access, new=password)
        assert response.status_code == 422, password
        assert response.get_json()["errors"][0]["field"] == "new_password"


# --- what a refused logout says and logs, what an accepted one audits --------------------------


def security_record(caplog: pytest.LogCaptureFixture, response: Any) -> tuple[Any, ...]:
    """(event, reason, user_id) of the one security log line of `response`'s request."""
    lines = security_lines(caplog, response)
    assert len(lines) == 1, lines
    return lines[0]


def test_a_logout_with_another_accounts_bearer_says_why_and_logs_the_refresh_tokens_owner(
    client: FlaskClient,
    make_user: Callable[..., User],
    login: Login,
    caplog: pytest.LogCaptureFixture,
) -> None:
    owner = make_user()
    mine, theirs = login(owner), login(make_user())
    caplog.set_level(logging.WARNING, logger="app.security")

    response = logout(client, mine, theirs["access_token"])

    assert response.status_code == 401
    assert response.get_json()["detail"] == (
        "The access token and the refresh token belong to different accounts."
    )
    assert security_record(caplog, response) == (
        "auth.logout_rejected",
        "token_mismatch",
        str(owner.id),
    )


def test_a_logout_with_an_unknown_refresh_token_says_so_and_logs_its_subject(
    client: FlaskClient,
    make_user: Callable[..., User],
    login: Login,
    db_session: Session,
    caplog: pytest.LogCaptureFixture,
) -> None:
    user = make_user()
    pair = login(user)
    family = db_session.scalars(select(RefreshFamily).where(RefreshFamily.user_id == user.id)).one()
    for token in list(family.tokens):
        db_session.delete(token)
    db_session.commit()
    caplog.set_level(logging.WARNING, logger="app.security")

    response = logout(client, pair)

    assert response.status_code == 401
    assert response.get_json()["detail"] == "The refresh token is not recognised."
    assert security_record(caplog, response) == (
        "auth.logout_rejected",
        "not_recognised",
        str(user.id),
    )


@pytest.mark.parametrize("with_bearer", [True, False])
def test_a_logout_is_audited_once_naming_the_login_and_whether_a_bearer_was_denied(
    client: FlaskClient,
    make_user: Callable[..., User],
    login: Login,
    db_session: Session,
    with_bearer: bool,
) -> None:
    user = make_user()
    pair = login(user)

    assert logout(client, pair, pair["access_token"] if with_bearer else None).status_code == 204
    assert logout(client, pair).status_code == 204  # a second logout audits nothing

    family = db_session.scalars(select(RefreshFamily).where(RefreshFamily.user_id == user.id)).one()
    records = db_session.scalars(
        select(AuditRecord).where(AuditRecord.action == "auth.logout")
    ).all()
    assert [(r.actor_id, r.target_type, r.target_id, r.details) for r in records] == [
        (user.id, "refresh_family", str(family.id), {"access_token_denied": with_bearer})
    ]


def test_a_refresh_token_as_the_bearer_of_a_logout_is_not_deny_listed(
    client: FlaskClient, make_user: Callable[..., User], login: Login, db_session: Session
) -> None:
    pair = login(make_user())

    assert logout(client, pair, pair["refresh_token"]).status_code == 204

    assert db_session.scalars(select(RevokedAccessToken)).all() == []
    assert db_session.scalars(
        select(AuditRecord.details).where(AuditRecord.action == "auth.logout")
    ).all() == [{"access_token_denied": False}]


def test_a_password_change_sets_the_cutoff_and_keeps_how_earlier_logins_ended(
    client: FlaskClient, make_user: Callable[..., User], login: Login, db_session: Session
) -> None:
    user = make_user()
    ended, current = login(user), login(user)
    assert logout(client, ended).status_code == 204
    before = utcnow()

    assert change_password(client, current["access_token"]).status_code == 204

    db_session.expire_all()
    refreshed = db_session.get(User, user.id)
    assert refreshed is not None
    assert refreshed.tokens_valid_after is not None
    assert refreshed.tokens_valid_after >= before
    reasons = db_session.scalars(
        select(RefreshFamily.revoked_reason)
        .where(RefreshFamily.user_id == user.id)
        .order_by(RefreshFamily.created_at)
    ).all()
    assert reasons == ["logout", "password_changed"]
