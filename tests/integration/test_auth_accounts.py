"""Registration, login and the current-user endpoint over real HTTP handling and Postgres."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import pytest
from argon2 import PasswordHasher
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.audit.models import AuditRecord
from app.auth import passwords
from app.auth.models import Role, User
from tests.conftest import PASSWORD, bearer

GOOD = {"email": "ada@example.com", "password": "a long enough passphrase", "display_name": "Ada"}


def count_users(db_session: Session) -> int:
    return db_session.scalar(select(func.count()).select_from(User)) or 0


def test_register_creates_a_learner_with_an_argon2id_hash(
    client: FlaskClient, db_session: Session
) -> None:
    response = client.post("/auth/register", json=GOOD)

    assert response.status_code == 201
    body = response.get_json()
    assert body["email"] == GOOD["email"]
    assert body["role"] == "learner"
    assert "password" not in body
    assert "password_hash" not in body
    user = db_session.scalar(select(User).where(User.email == GOOD["email"]))
    assert user is not None
    assert user.password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert (
        db_session.scalar(select(AuditRecord).where(AuditRecord.action == "user.registered"))
        is not None
    )


def test_register_normalises_the_email_address(client: FlaskClient) -> None:
    response = client.post("/auth/register", json={**GOOD, "email": "Ada@Example.COM"})

    assert response.status_code == 201
    assert response.get_json()["email"] == "ada@example.com"


def test_register_with_a_taken_email_is_409_and_adds_nothing(
    client: FlaskClient, db_session: Session
) -> None:
    assert client.post("/auth/register", json=GOOD).status_code == 201
    before = count_users(db_session)

    response = client.post("/auth/register", json={**GOOD, "email": "ADA@example.com"})

    assert response.status_code == 409
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["type"].endswith("/email-taken")
    assert count_users(db_session) == before


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"password": "short"}, "password"),
        ({"password": "x" * 129}, "password"),
        ({"email": "not-an-address"}, "email"),
        ({"display_name": ""}, "display_name"),
        ({"display_name": "   "}, "display_name"),
        ({"role": "admin"}, "role"),
    ],
)
def test_register_rejects_bad_fields_with_422_naming_the_field(
    client: FlaskClient, db_session: Session, change: dict[str, Any], field: str
) -> None:
    response = client.post("/auth/register", json={**GOOD, **change})

    assert response.status_code == 422
    problem = response.get_json()
    assert response.mimetype == "application/problem+json"
    assert field in [error["field"] for error in problem["errors"]]
    assert problem["request_id"] == response.headers["X-Request-ID"]
    assert count_users(db_session) == 0


def test_login_returns_a_bearer_pair(client: FlaskClient, make_user: Callable[..., User]) -> None:
    user = make_user()

    response = client.post("/auth/login", json={"email": user.email, "password": PASSWORD})

    assert response.status_code == 200
    body = response.get_json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 15 * 60
    me = client.get("/auth/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.get_json()["id"] == str(user.id)


def test_unknown_email_and_wrong_password_get_the_same_answer(
    client: FlaskClient, make_user: Callable[..., User]
) -> None:
    user = make_user()

    wrong_password = client.post("/auth/login", json={"email": user.email, "password": "nope" * 4})
    unknown_email = client.post(
        "/auth/login", json={"email": "nobody@example.com", "password": "nope" * 4}
    )

    assert wrong_password.status_code == unknown_email.status_code == 401

    def strip(body: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in body.items() if k != "request_id"}

    assert strip(wrong_password.get_json()) == strip(unknown_email.get_json())


def test_unknown_email_still_pays_for_one_argon2_verification(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Equal work, hence comparable time: the decoy hash is verified when no user matches."""
    calls: list[str] = []

    class CountingHasher(PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
            calls.append(str(hash))
            return super().verify(hash, password)

    monkeypatch.setattr(
        passwords, "hasher", CountingHasher.from_parameters(passwords.hasher._parameters)
    )

    client.post("/auth/login", json={"email": "nobody@example.com", "password": "x" * 12})

    assert len(calls) == 1
    assert calls[0].startswith("$argon2id$v=19$m=19456,t=2,p=1$")


def test_deactivated_user_cannot_log_in(
    client: FlaskClient, make_user: Callable[..., User]
) -> None:
    user = make_user(active=False)

    response = client.post("/auth/login", json={"email": user.email, "password": PASSWORD})

    assert response.status_code == 401


def test_login_rehashes_a_hash_made_with_weaker_parameters(
    client: FlaskClient, make_user: Callable[..., User], db_session: Session
) -> None:
    user = make_user()
    user.password_hash = PasswordHasher(time_cost=1, memory_cost=8 * 1024).hash(PASSWORD)
    db_session.commit()

    assert (
        client.post("/auth/login", json={"email": user.email, "password": PASSWORD}).status_code
        == 200
    )

    db_session.refresh(user)
    assert "m=19456,t=2,p=1" in user.password_hash


def test_me_requires_a_token(client: FlaskClient) -> None:
    response = client.get("/auth/me")

    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("role", list(Role))
def test_me_reports_each_role(
    client: FlaskClient,
    make_user: Callable[..., User],
    login: Callable[..., dict[str, str]],
    role: Role,
) -> None:
    tokens = login(make_user(role))

    assert (
        client.get("/auth/me", headers=bearer(tokens["access_token"])).get_json()["role"]
        == role.value
    )
