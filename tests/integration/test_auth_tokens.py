"""Access-token verification: key rotation, kid, algorithms, expiry, tampering, roles."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from apiflask import APIFlask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit.models import AuditRecord
from app.auth.models import RefreshFamily, Role, SigningKey, User
from app.auth.tokens import AUDIENCE, ISSUER, REQUIRED_CLAIMS
from app.db import utcnow
from tests.conftest import PASSWORD, bearer

Login = Callable[[User], dict[str, str]]


def active_key(app: APIFlask) -> tuple[str, str]:
    from app.db import get_session

    with app.app_context():
        kid, secret = app.extensions["mastery.keyring"].active(get_session())
        get_session().commit()
        return kid, secret.reveal()


def new_family(app: APIFlask, user: User) -> str:
    """A live login (refresh family) of `user`, for forged tokens to belong to."""
    from app.db import get_session

    with app.app_context():
        session = get_session()
        family = RefreshFamily(user_id=user.id, created_at=utcnow(), last_used_at=utcnow())
        session.add(family)
        session.commit()
        return str(family.id)


def forge(
    app: APIFlask,
    user: User,
    *,
    headers: dict[str, Any] | None = None,
    without: tuple[str, ...] = (),
    **claims: Any,
) -> str:
    """A token signed with the real active key, with chosen claims and headers, in a live login
    of its own; `without` names claims to leave out."""
    kid, secret = active_key(app)
    now = int(time.time())
    payload = {
        "sub": str(user.id),
        "type": "access",
        "jti": uuid.uuid4().hex,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "role": user.role.value,
        "fresh": False,
        "fam": new_family(app, user),
        "ius": now * 1_000_000,
        **claims,
    }
    for claim in without:
        del payload[claim]
    return jwt.encode(payload, secret, algorithm="HS256", headers={"kid": kid, **(headers or {})})


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def assert_401_problem(client: FlaskClient, token: str) -> None:
    response = client.get("/auth/me", headers=bearer(token))
    assert response.status_code == 401, response.get_json()
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["request_id"]


def test_a_forged_token_with_the_real_key_is_accepted(
    app: APIFlask, client: FlaskClient, make_user: Callable[..., User]
) -> None:
    """Guards the helpers below: a rejection there must come from the one thing changed."""
    user = make_user()

    assert client.get("/auth/me", headers=bearer(forge(app, user))).status_code == 200


def test_expired_access_token_is_401(
    app: APIFlask, client: FlaskClient, make_user: Callable[..., User]
) -> None:
    past = int(time.time()) - 3600
    assert_401_problem(client, forge(app, make_user(), iat=past, nbf=past, exp=past + 900))


def test_not_yet_valid_token_is_401(
    app: APIFlask, client: FlaskClient, make_user: Callable[..., User]
) -> None:
    future = int(time.time()) + 3600
    assert_401_problem(client, forge(app, make_user(), nbf=future, exp=future + 900))


@pytest.mark.parametrize("claim", REQUIRED_CLAIMS)
def test_a_validly_signed_token_missing_a_required_claim_is_401(
    app: APIFlask, client: FlaskClient, make_user: Callable[..., User], claim: str
) -> None:
    """Issue 17, finding 1: with the signing key, a token without `exp` would never expire and
    one without `fam`, `ius` or `jti` would escape logout, password change and the deny-list."""
    user = make_user()
    assert client.get("/auth/me", headers=bearer(forge(app, user))).status_code == 200

    assert_401_problem(client, forge(app, user, without=(claim,)))


@pytest.mark.parametrize(("ahead_by", "status"), [(1, 200), (5, 401)])
def test_a_second_of_clock_skew_is_tolerated_and_more_is_not(
    app: APIFlask,
    client: FlaskClient,
    make_user: Callable[..., User],
    ahead_by: int,
    status: int,
) -> None:
    """A token minted by a machine whose clock runs ahead: `nbf` and `iat` a second in the
    future are accepted within the leeway, five seconds are not (issue 17, finding 6)."""
    ahead = int(time.time()) + ahead_by
    token = forge(app, make_user(), iat=ahead, nbf=ahead)
    assert client.get("/auth/me", headers=bearer(token)).status_code == status


def test_alg_none_token_is_401(
    app: APIFlask, client: FlaskClient, make_user: Callable[..., User]
) -> None:
    kid, _ = active_key(app)
    claims = jwt.decode(forge(app, make_user()), options={"verify_signature": False})
    unsigned = f"{b64({'alg': 'none', 'typ': 'JWT', 'kid': kid})}.{b64(claims)}."

    assert_401_problem(client, unsigned)


def test_token_with_a_disallowed_algorithm_is_401(
    app: APIFlask, client: FlaskClient, make_user: Callable[..., User]
) -> None:
    kid, secret = active_key(app)
    claims = jwt.decode(forge(app, make_user()), options={"verify_signature": False})

    assert_401_problem(client, jwt.encode(claims, secret, algorithm="HS512", headers={"kid": kid}))


def test_tampered_payload_is_401(
    app: APIFlask, client: FlaskClient, make_user: Callable[..., User]
) -> None:
    learner = make_user()
    header, _, signature = forge(app, learner).split(".")
    claims = jwt.decode(forge(app, learner), options={"verify_signature": False})
    claims["role"] = "admin"

    assert_401_problem(client, f"{header}.{b64(claims)}.{signature}")


@pytest.mark.parametrize("segment", [0, 1, 2], ids=["header", "claims", "signature"])
def test_junk_inside_a_segment_of_a_validly_signed_token_is_401(
    app: APIFlask, client: FlaskClient, make_user: Callable[..., User], segment: int
) -> None:
    """Lenient base64 skips characters outside its alphabet, so the key-picking read of the
    header and claims (app.auth.tokens.unverified_parts) still reads this token; the verified
    decode must refuse it (GHSA-hxm8-2xgr-2p9m)."""
    parts = forge(app, make_user()).split(".")
    parts[segment] = parts[segment][:8] + "!!!!" + parts[segment][8:]

    assert_401_problem(client, ".".join(parts))


def test_token_signed_with_another_secret_is_401(
    app: APIFlask, client: FlaskClient, make_user: Callable[..., User]
) -> None:
    kid, _ = active_key(app)
    claims = jwt.decode(forge(app, make_user()), options={"verify_signature": False})

    assert_401_problem(
        client, jwt.encode(claims, "x" * 64, algorithm="HS256", headers={"kid": kid})
    )


def test_unknown_kid_is_401(
    app: APIFlask, client: FlaskClient, make_user: Callable[..., User]
) -> None:
    assert_401_problem(client, forge(app, make_user(), headers={"kid": uuid.uuid4().hex}))


def test_missing_kid_is_401(
    app: APIFlask, client: FlaskClient, make_user: Callable[..., User]
) -> None:
    _, secret = active_key(app)
    claims = jwt.decode(forge(app, make_user()), options={"verify_signature": False})

    assert_401_problem(client, jwt.encode(claims, secret, algorithm="HS256"))


@pytest.mark.parametrize("claim", ["iss", "aud"])
def test_wrong_issuer_or_audience_is_401(
    app: APIFlask, client: FlaskClient, make_user: Callable[..., User], claim: str
) -> None:
    wrong: dict[str, Any] = {claim: "someone-else"}  # a claim, never forge's own keywords
    assert_401_problem(client, forge(app, make_user(), **wrong))


def test_refresh_token_used_as_access_token_is_401(
    client: FlaskClient, make_user: Callable[..., User], login: Login
) -> None:
    assert_401_problem(client, login(make_user())["refresh_token"])


def test_garbage_bearer_value_is_401(client: FlaskClient) -> None:
    assert_401_problem(client, "not-a-jwt")


def test_token_for_a_user_that_does_not_exist_is_401(
    app: APIFlask, client: FlaskClient, make_user: Callable[..., User]
) -> None:
    assert_401_problem(client, forge(app, make_user(), sub=str(uuid.uuid4())))
    assert_401_problem(client, forge(app, make_user(), sub="not-a-uuid"))


def test_key_rotation_keeps_old_tokens_valid_and_signs_new_ones_with_the_new_key(
    app: APIFlask,
    client: FlaskClient,
    make_user: Callable[..., User],
    login: Login,
    db_session: Session,
) -> None:
    user = make_user()
    before = login(user)
    old_kid = jwt.get_unverified_header(before["access_token"])["kid"]

    result = app.test_cli_runner().invoke(args=["keys", "rotate"])

    assert result.exit_code == 0, result.output
    after = login(user)
    new_kid = jwt.get_unverified_header(after["access_token"])["kid"]
    assert new_kid != old_kid
    assert new_kid in result.output
    old_key = db_session.get(SigningKey, old_kid)
    assert old_key is not None
    assert old_key.retired_at is not None
    assert client.get("/auth/me", headers=bearer(before["access_token"])).status_code == 200
    assert (
        client.post("/auth/refresh", json={"refresh_token": before["refresh_token"]}).status_code
        == 200
    )
    assert client.get("/auth/me", headers=bearer(after["access_token"])).status_code == 200
    assert db_session.scalar(select(AuditRecord).where(AuditRecord.action == "keys.rotated"))


def test_signing_key_material_is_encrypted_at_rest(
    app: APIFlask, make_user: Callable[..., User], db_session: Session
) -> None:
    kid, secret = active_key(app)
    stored = db_session.get(SigningKey, kid)

    assert stored is not None
    assert secret.encode() not in stored.encrypted_secret


# --- roles and deactivation ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "expected"), [(Role.LEARNER, 403), (Role.INSTRUCTOR, 403), (Role.ADMIN, 200)]
)
def test_only_admins_may_change_users(
    client: FlaskClient, make_user: Callable[..., User], login: Login, role: Role, expected: int
) -> None:
    target = make_user()
    caller = login(make_user(role))

    response = client.patch(
        f"/admin/users/{target.id}",
        json={"role": "instructor"},
        headers=bearer(caller["access_token"]),
    )

    assert response.status_code == expected
    if expected == 403:
        assert response.mimetype == "application/problem+json"


def test_role_change_takes_effect_on_the_next_request(
    client: FlaskClient, make_user: Callable[..., User], login: Login, db_session: Session
) -> None:
    admin, target = login(make_user(Role.ADMIN)), make_user()
    target_tokens = login(target)

    response = client.patch(
        f"/admin/users/{target.id}", json={"role": "admin"}, headers=bearer(admin["access_token"])
    )

    assert response.status_code == 200
    assert response.get_json()["role"] == "admin"
    other = make_user()
    promoted = client.patch(
        f"/admin/users/{other.id}",
        json={"is_active": True},
        headers=bearer(target_tokens["access_token"]),
    )
    assert promoted.status_code == 200
    record = db_session.scalar(
        select(AuditRecord).where(AuditRecord.action == "admin.role_changed")
    )
    assert record is not None
    assert record.details == {"from": "learner", "to": "admin"}


def test_deactivated_users_tokens_stop_working_at_once(
    client: FlaskClient, make_user: Callable[..., User], login: Login
) -> None:
    admin, target = login(make_user(Role.ADMIN)), make_user()
    target_tokens = login(target)
    assert client.get("/auth/me", headers=bearer(target_tokens["access_token"])).status_code == 200

    response = client.patch(
        f"/admin/users/{target.id}",
        json={"is_active": False},
        headers=bearer(admin["access_token"]),
    )

    assert response.status_code == 200
    assert_401_problem(client, target_tokens["access_token"])
    refreshed = client.post("/auth/refresh", json={"refresh_token": target_tokens["refresh_token"]})
    assert refreshed.status_code == 401


def test_admin_cannot_change_their_own_account(
    client: FlaskClient, make_user: Callable[..., User], login: Login
) -> None:
    admin_user = make_user(Role.ADMIN)
    admin = login(admin_user)

    response = client.patch(
        f"/admin/users/{admin_user.id}",
        json={"is_active": False},
        headers=bearer(admin["access_token"]),
    )

    assert response.status_code == 409


def test_patching_an_unknown_user_is_404(
    client: FlaskClient, make_user: Callable[..., User], login: Login
) -> None:
    admin = login(make_user(Role.ADMIN))

    response = client.patch(
        f"/admin/users/{uuid.uuid4()}",
        json={"is_active": False},
        headers=bearer(admin["access_token"]),
    )

    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"


def test_an_empty_patch_is_422(
    client: FlaskClient, make_user: Callable[..., User], login: Login
) -> None:
    admin, target = login(make_user(Role.ADMIN)), make_user()

    response = client.patch(
        f"/admin/users/{target.id}", json={}, headers=bearer(admin["access_token"])
    )

    assert response.status_code == 422


def test_a_patch_that_changes_nothing_writes_no_audit_record(
    client: FlaskClient, make_user: Callable[..., User], login: Login, db_session: Session
) -> None:
    admin, target = login(make_user(Role.ADMIN)), make_user()

    response = client.patch(
        f"/admin/users/{target.id}", json={"role": "learner"}, headers=bearer(admin["access_token"])
    )

    assert response.status_code == 200
    assert db_session.scalar(select(AuditRecord).where(AuditRecord.action.like("admin.%"))) is None


def test_unauthenticated_admin_request_is_401_before_body_validation(client: FlaskClient) -> None:
    response = client.patch(f"/admin/users/{uuid.uuid4()}", json={"bogus": 1})

    assert response.status_code == 401


def test_a_guarded_view_sees_the_verified_token_as_flask_jwt_extended_shows_it(
    make_app: Callable[..., APIFlask], make_user: Callable[..., User]
) -> None:
    """verify_access_token stands in for the library's verify_jwt_in_request: the view gets
    the same `current_user`, claims, header and location the library's helpers read."""
    from flask_jwt_extended import get_jwt, get_jwt_header, get_jwt_request_location

    from app.auth.decorators import authenticated, current

    app = make_app()

    @app.get("/test-only/token-view")
    @authenticated()
    def token_view() -> dict[str, Any]:
        return {
            "user": str(current().id),
            "sub": get_jwt()["sub"],
            "type": get_jwt()["type"],
            "header": get_jwt_header(),
            "location": get_jwt_request_location(),
        }

    user = make_user()
    client = app.test_client()
    login = client.post("/auth/login", json={"email": user.email, "password": PASSWORD})
    token = login.get_json()["access_token"]

    response = client.get("/test-only/token-view", headers=bearer(token))

    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["user"] == body["sub"] == str(user.id)
    assert body["type"] == "access"
    assert body["header"] == jwt.get_unverified_header(token)
    assert body["header"]["kid"]
    assert body["location"] == "headers"
