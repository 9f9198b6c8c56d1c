"""The auth routes' own code: the token pair they answer with, and how logout reads the access
token it is offered in `Authorization` (the Bearer scheme in any case, the token after the
first space, any other scheme ignored)."""

from __future__ import annotations

from collections.abc import Callable

import jwt
import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.models import RevokedAccessToken, User
from tests.conftest import PASSWORD, bearer

Login = Callable[..., dict[str, str]]  # (user, password=PASSWORD): tests/conftest.py `login`


def jti(token: str) -> str:
    value: str = jwt.decode(token, options={"verify_signature": False})["jti"]
    return value


def revoked(db_session: Session) -> list[str]:
    return list(db_session.scalars(select(RevokedAccessToken.jti)))


def logout(client: FlaskClient, refresh_token: str, authorization: str) -> int:
    response = client.post(
        "/auth/logout",
        json={"refresh_token": refresh_token},
        headers={"Authorization": authorization},
    )
    return response.status_code


def test_login_and_refresh_answer_with_the_whole_pair(
    client: FlaskClient, make_user: Callable[..., User]
) -> None:
    user = make_user()

    first = client.post("/auth/login", json={"email": user.email, "password": PASSWORD})
    second = client.post("/auth/refresh", json={"refresh_token": first.get_json()["refresh_token"]})

    for response in (first, second):
        assert response.status_code == 200
        pair = response.get_json()
        assert set(pair) == {"access_token", "refresh_token", "token_type", "expires_in"}
        assert (pair["token_type"], pair["expires_in"]) == ("Bearer", 900)
        claims = [
            jwt.decode(pair[k], options={"verify_signature": False})
            for k in ("access_token", "refresh_token")
        ]
        assert [c["type"] for c in claims] == ["access", "refresh"]
        assert client.get("/auth/me", headers=bearer(pair["access_token"])).status_code == 200
    assert first.get_json()["refresh_token"] != second.get_json()["refresh_token"]


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
@pytest.mark.parametrize("gap", [" ", "  "])
def test_logout_deny_lists_the_bearer_token_whatever_the_schemes_case_and_the_spacing(
    client: FlaskClient,
    make_user: Callable[..., User],
    login: Login,
    db_session: Session,
    scheme: str,
    gap: str,
) -> None:
    pair = login(make_user())

    assert logout(client, pair["refresh_token"], f"{scheme}{gap}{pair['access_token']}") == 204

    assert revoked(db_session) == [jti(pair["access_token"])]


@pytest.mark.parametrize("authorization", ["Token {}", "{}", "Bearer", "Bearer "])
def test_logout_ignores_an_authorization_that_is_no_bearer_token(
    client: FlaskClient,
    make_user: Callable[..., User],
    login: Login,
    db_session: Session,
    authorization: str,
) -> None:
    """Another account's access token would be refused as a Bearer token (401); in any other
    form it is not read at all, so the logout goes through and that token keeps working."""
    mine, theirs = login(make_user()), login(make_user())

    status = logout(client, mine["refresh_token"], authorization.format(theirs["access_token"]))

    assert status == 204
    assert revoked(db_session) == []
    assert client.get("/auth/me", headers=bearer(theirs["access_token"])).status_code == 200
    assert client.get("/auth/me", headers=bearer(mine["access_token"])).status_code == 401
