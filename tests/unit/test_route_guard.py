"""`authenticated`, the route guard, in the unit tier: who gets through (a valid access token;
one of the listed roles, or admin), what the others get (401 / 403 problems), and what the
OpenAPI document says about it (the bearer scheme, 401 always, 403 only with roles, the view's
own documented responses kept).

The app is a bare APIFlask with flask-jwt-extended's plain HMAC setup and a user loader over
in-memory users, not `create_app`: the real token checks (keys, revocation, the database user)
are tests/integration/test_authorization.py's subject. These build their app inside each test,
so mutation testing maps the decorator to them.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from apiflask import APIFlask
from flask_jwt_extended import JWTManager, create_access_token
from werkzeug.test import TestResponse

from app import errors
from app.auth.decorators import SECURITY_SCHEME, authenticated, current
from app.auth.models import Role, User

# The committed contract (contracts/openapi/test_drift.py keeps it equal to what the app serves).
PUBLISHED = Path(__file__).parents[2] / "contracts" / "openapi" / "openapi.json"

USERS = {
    role: User(
        id=uuid.uuid4(), email=f"{role.value}@example.com", display_name=role.value, role=role
    )
    for role in Role
}


def make_app() -> APIFlask:
    app = APIFlask(__name__)
    app.config["JWT_SECRET_KEY"] = (
        "unit-test-signing-secret-of-32-bytes!"  # pragma: allowlist secret
    )
    errors.init_app(app)
    jwt = JWTManager(app)

    @jwt.user_lookup_loader
    def _load(_header: dict[str, Any], claims: dict[str, Any]) -> User:
        return USERS[Role(claims["sub"])]

    @app.get("/anyone")
    @authenticated()
    def anyone() -> dict[str, str]:
        return {"email": current().email}

    @app.get("/staff/<int:number>")
    @authenticated(Role.INSTRUCTOR)
    def staff(number: int) -> dict[str, Any]:
        return {"email": current().email, "number": number}

    @app.get("/documented")
    @authenticated(Role.LEARNER)
    @app.doc(responses={404: "No such thing", 409: "Already there"})
    def documented() -> dict[str, str]:
        return {}

    @app.get("/bare-codes")
    @authenticated()
    @app.doc(responses=[404, 409])
    def bare_codes() -> dict[str, str]:
        return {}

    return app


def call(app: APIFlask, path: str, role: Role | None) -> TestResponse:
    headers = {}
    if role is not None:
        with app.app_context():
            headers["Authorization"] = f"Bearer {create_access_token(identity=role.value)}"
    return app.test_client().get(path, headers=headers)


@pytest.mark.parametrize("role", list(Role))
def test_any_authenticated_user_reaches_a_view_without_roles_as_themselves(role: Role) -> None:
    response = call(make_app(), "/anyone", role)

    assert response.status_code == 200
    assert response.json == {"email": f"{role.value}@example.com"}


def test_a_request_without_a_token_never_reaches_the_view() -> None:
    app = make_app()

    for path in ("/anyone", "/staff/7"):
        response = call(app, path, None)
        assert response.status_code == 401, path
        assert "email" not in (response.json or {})


@pytest.mark.parametrize(("role", "status"), [(Role.INSTRUCTOR, 200), (Role.ADMIN, 200)])
def test_the_listed_role_and_admin_pass_a_role_check_with_the_view_arguments(
    role: Role, status: int
) -> None:
    response = call(make_app(), "/staff/7", role)

    assert response.status_code == status
    assert response.json == {"email": f"{role.value}@example.com", "number": 7}


def test_another_role_gets_a_403_problem_and_not_the_view() -> None:
    response = call(make_app(), "/staff/7", Role.LEARNER)

    assert response.status_code == 403
    assert response.mimetype == "application/problem+json"
    body = response.json or {}
    assert body["type"].endswith("/forbidden")
    assert "role" in body["detail"]
    assert "not allow" in body["detail"]
    assert "number" not in body


def responses_of(app: APIFlask, path: str) -> dict[str, Any]:
    spec = app.spec
    assert isinstance(spec, dict)  # the JSON form, as APIFlask's default spec format
    operation: dict[str, Any] = spec["paths"][path]["get"]
    assert operation["security"] == [{SECURITY_SCHEME: []}], path
    responses: dict[str, Any] = operation["responses"]
    return responses


def published_guard_responses() -> dict[str, str]:
    """The 401 and 403 descriptions of a role-checked route in the published OpenAPI document."""
    spec = json.loads(PUBLISHED.read_text())
    responses = spec["paths"]["/admin/audit-log"]["get"]["responses"]
    return {code: responses[code]["description"] for code in ("401", "403")}


def test_the_spec_documents_401_always_and_403_only_for_a_role_check() -> None:
    app = make_app()
    published = published_guard_responses()

    anyone = responses_of(app, "/anyone")
    staff = responses_of(app, "/staff/{number}")

    assert anyone["401"]["description"] == published["401"]
    assert "403" not in anyone
    assert staff["401"]["description"] == published["401"]
    assert staff["403"]["description"] == published["403"]


def test_the_spec_keeps_the_responses_the_view_documents_itself() -> None:
    app = make_app()

    described = responses_of(app, "/documented")
    bare = responses_of(app, "/bare-codes")

    assert described["404"]["description"] == "No such thing"
    assert described["409"]["description"] == "Already there"
    assert {"401", "403"} <= described.keys()
    assert {"401", "404", "409"} <= bare.keys()
    # The view named the codes only: the guard invents no description for them.
    assert bare["404"]["description"] == bare["409"]["description"] == ""


def test_behind_a_plain_jwt_manager_the_view_sees_the_tokens_header() -> None:
    """A plain JWTManager remembers no verified header: the guard reads it from the token, so
    the view's `get_jwt_header()` is the token's own (app/auth/tokens.py verify_access_token)."""
    from flask_jwt_extended import get_jwt_header

    app = make_app()

    @app.get("/header")
    @authenticated()
    def header() -> dict[str, Any]:
        return dict(get_jwt_header())

    with app.app_context():
        token = create_access_token(identity=Role.LEARNER.value, additional_headers={"kid": "k7"})
    response = app.test_client().get("/header", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 200
    assert response.get_json() == {"alg": "HS256", "kid": "k7", "typ": "JWT"}
