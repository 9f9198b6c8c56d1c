"""What the route guard answers and logs, and the JWT settings `init_app` gives the library.

The settings tests build their application inside the test (`make_app`): mutation testing links
a test to the functions it runs, and an application built by a session fixture runs
`tokens.init_app` before any test, so no test of it would ever face a mutant of the settings
(docs/benchmarks.md "Mutation testing"). tests/integration/test_auth_tokens.py covers the same
checks on the shared application, one case each.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import flask_jwt_extended.utils
import jwt
import jwt.api_jwt
import pytest
from apiflask import APIFlask
from flask.testing import FlaskClient
from flask_jwt_extended import decode_token
from jwt.exceptions import ExpiredSignatureError
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from app.auth import tokens
from app.auth.models import SigningKey, User
from app.errors import PROBLEM_TYPE_BASE
from tests.conftest import PASSWORD, bearer, security_lines
from tests.integration.test_auth_tokens import b64, forge
from tests.integration.test_query_budget import counting

Login = Callable[[User], dict[str, str]]
MakeApp = Callable[..., APIFlask]
INVALID_TOKEN = PROBLEM_TYPE_BASE + "invalid-token"


def me(app: APIFlask, token: str | None = None, **kwargs: Any) -> TestResponse:
    headers = bearer(token) if token is not None else {}
    return app.test_client().get("/auth/me", headers=headers, **kwargs)


def rejection(
    caplog: pytest.LogCaptureFixture, response: TestResponse
) -> tuple[int, str, str, str, list[tuple[str, str]]]:
    """(status, type, detail, WWW-Authenticate, [(event, reason)] logged) of a refused call."""
    problem = response.get_json()
    logged = [(event, reason) for event, reason, _user in security_lines(caplog, response)]
    return (
        response.status_code,
        problem["type"],
        problem["detail"],
        response.headers.get("WWW-Authenticate", ""),
        logged,
    )


def refused(detail: str, reason: str) -> tuple[int, str, str, str, list[tuple[str, str]]]:
    return (
        401,
        INVALID_TOKEN,
        detail,
        'Bearer error="invalid_token"',
        [("auth.token_rejected", reason)],
    )


# --- the settings, each seen at work ------------------------------------------------------------


def test_a_token_is_taken_from_the_authorization_header_and_nowhere_else(
    make_app: MakeApp, make_user: Callable[..., User], security_log: pytest.LogCaptureFixture
) -> None:
    app = make_app()
    token = forge(app, make_user())

    assert me(app, token).status_code == 200
    assert rejection(security_log, me(app, query_string={"jwt": token})) == refused(
        "An access token is required (Authorization: Bearer <token>).", "missing"
    )


@pytest.mark.parametrize(
    ("claim", "reason"),
    [("iss", "invalid:Invalid issuer"), ("aud", "invalid:Audience doesn't match")],
)
def test_the_issuer_and_the_audience_are_checked(
    make_app: MakeApp,
    make_user: Callable[..., User],
    security_log: pytest.LogCaptureFixture,
    claim: str,
    reason: str,
) -> None:
    app = make_app()
    wrong: dict[str, Any] = {claim: "someone-else"}

    response = me(app, forge(app, make_user(), **wrong))

    assert rejection(security_log, response) == refused("The token is invalid.", reason)


def frozen_datetime(moment: datetime) -> type[datetime]:
    """`datetime` whose `now()` is `moment`, for PyJWT's api_jwt: the leeway is compared to the
    second, which a real clock could cross between minting and checking."""

    class Frozen(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Frozen:
            return cls.fromtimestamp(moment.timestamp(), tz)

    return Frozen


@pytest.mark.parametrize(
    ("claims_from_now", "status"),
    [
        ({"exp": -1}, 200),
        ({"exp": -2}, 401),
        ({"nbf": 2, "iat": 2}, 200),
        ({"nbf": 3}, 401),
        ({"iat": 3}, 401),
    ],
    ids=["expired 1 s ago", "expired 2 s ago", "valid in 2 s", "valid in 3 s", "issued in 3 s"],
)
def test_two_seconds_of_clock_skew_are_tolerated_and_no_more(
    make_app: MakeApp,
    make_user: Callable[..., User],
    monkeypatch: pytest.MonkeyPatch,
    claims_from_now: dict[str, int],
    status: int,
) -> None:
    app = make_app()
    now = int(time.time()) - 60  # the past: the token's row and family are written at real time
    times: dict[str, Any] = {"iat": now - 10, "nbf": now - 10, "exp": now + 600}
    times.update({claim: now + offset for claim, offset in claims_from_now.items()})
    token = forge(app, make_user(), **times)
    frozen = frozen_datetime(datetime.fromtimestamp(now, UTC))
    monkeypatch.setattr(jwt.api_jwt, "datetime", frozen)

    assert me(app, token).status_code == status


@pytest.mark.parametrize(
    ("retired_for", "status"),
    [(timedelta(days=29), 200), (timedelta(days=31), 401)],
    ids=["retired less than a login lives", "retired longer"],
)
def test_a_retired_key_verifies_for_as_long_as_a_login_lives(
    make_app: MakeApp,
    make_user: Callable[..., User],
    db_session: Session,
    retired_for: timedelta,
    status: int,
) -> None:
    """The keyring is given the refresh tokens' absolute lifetime (30 days in the test profile):
    a key retired longer ago than that signed nothing still valid."""
    app = make_app()
    token = forge(app, make_user())
    result = app.test_cli_runner().invoke(args=["keys", "rotate"])
    assert result.exit_code == 0, result.output
    kid = jwt.get_unverified_header(token)["kid"]
    old_key = db_session.get_one(SigningKey, kid)
    assert old_key.retired_at is not None
    old_key.retired_at -= retired_for
    db_session.commit()
    app.extensions["mastery.keyring"].clear_cache()

    assert me(app, token).status_code == status


def test_outside_a_request_tokens_are_decoded_by_the_library_itself(
    make_app: MakeApp, make_user: Callable[..., User]
) -> None:
    """Scripts and the CLI decode tokens in an application context without a request: there is
    no request to remember a decode in, so the library decodes (and re-checks) each time."""
    app = make_app()
    user = make_user()
    now = int(time.time())
    live = forge(app, user)
    expired = forge(app, user, iat=now - 900, nbf=now - 900, exp=now - 60)

    with app.app_context():
        assert decode_token(live)["sub"] == str(user.id)
        with pytest.raises(ExpiredSignatureError):
            decode_token(expired)
        assert decode_token(expired, allow_expired=True)["sub"] == str(user.id)


def test_in_a_request_an_expired_token_decodes_when_the_caller_allows_it(
    make_app: MakeApp, make_user: Callable[..., User]
) -> None:
    """A request remembers each decode by (token, allow_expired): refusing a token first does
    not stop a caller that accepts expired ones from reading it."""
    app = make_app()
    user = make_user()
    now = int(time.time())
    expired = forge(app, user, iat=now - 900, nbf=now - 900, exp=now - 60)

    with app.test_request_context("/auth/me"):
        with pytest.raises(ExpiredSignatureError):
            decode_token(expired)
        assert decode_token(expired, allow_expired=True)["sub"] == str(user.id)
        with pytest.raises(ExpiredSignatureError):
            decode_token(expired)


# --- what each refusal answers and logs ---------------------------------------------------------


def test_a_request_without_a_token_is_told_how_to_send_one(
    app: APIFlask, security_log: pytest.LogCaptureFixture
) -> None:
    assert rejection(security_log, me(app)) == refused(
        "An access token is required (Authorization: Bearer <token>).", "missing"
    )


def test_a_malformed_token_is_invalid(
    app: APIFlask, security_log: pytest.LogCaptureFixture
) -> None:
    assert rejection(security_log, me(app, "not-a-jwt")) == refused(
        "The token is invalid.", "invalid:Not enough segments"
    )


def test_an_expired_token_says_so(
    app: APIFlask, make_user: Callable[..., User], security_log: pytest.LogCaptureFixture
) -> None:
    past = int(time.time()) - 3600
    token = forge(app, make_user(), iat=past, nbf=past, exp=past + 900)

    assert rejection(security_log, me(app, token)) == refused("The token has expired.", "expired")


@pytest.mark.parametrize("subject", ["unknown", "deactivated"])
def test_a_token_of_an_unknown_or_deactivated_account_says_so(
    app: APIFlask,
    make_user: Callable[..., User],
    db_session: Session,
    security_log: pytest.LogCaptureFixture,
    subject: str,
) -> None:
    user = make_user()
    if subject == "unknown":
        token = forge(app, user, sub=str(uuid.uuid4()))
    else:
        token = forge(app, user)
        user.is_active = False
        db_session.commit()

    assert rejection(security_log, me(app, token)) == refused(
        "The account behind this token is unknown or deactivated.", "unknown_or_inactive_user"
    )


def logout_with_bearer(client: FlaskClient, pair: dict[str, str]) -> None:
    response = client.post(
        "/auth/logout",
        json={"refresh_token": pair["refresh_token"]},
        headers=bearer(pair["access_token"]),
    )
    assert response.status_code == 204


@pytest.mark.parametrize("why", ["deny_listed", "session_ended", "before_cutoff"])
def test_a_revoked_token_says_so_and_logs_why(
    app: APIFlask,
    client: FlaskClient,
    make_user: Callable[..., User],
    login: Login,
    db_session: Session,
    security_log: pytest.LogCaptureFixture,
    why: str,
) -> None:
    user = make_user()
    pair = login(user)
    if why == "deny_listed":
        # The deny-list alone: the same jti in a login that is still alive.
        logout_with_bearer(client, login(user) | {"access_token": pair["access_token"]})
    elif why == "session_ended":
        assert client.post("/auth/logout", json={"refresh_token": pair["refresh_token"]})
    else:
        user.tokens_valid_after = datetime.now(UTC) + timedelta(seconds=1)
        db_session.commit()

    assert rejection(security_log, me(app, pair["access_token"])) == refused(
        "The token has been revoked.", why
    )


def test_a_signed_token_whose_family_is_no_id_is_revoked_as_malformed(
    app: APIFlask, make_user: Callable[..., User], security_log: pytest.LogCaptureFixture
) -> None:
    token = forge(app, make_user(), fam="not-a-uuid")

    assert rejection(security_log, me(app, token)) == refused(
        "The token has been revoked.", "malformed_claims"
    )


@pytest.mark.parametrize(
    "change",
    [{"jti": 17}, {"jti": None}, {"fam": None}, {"sub": "not-a-uuid"}],
    ids=["jti a number", "no jti", "no fam", "sub no id"],
)
def test_revocation_refuses_claims_it_cannot_check(
    app: APIFlask, make_user: Callable[..., User], db_session: Session, change: dict[str, Any]
) -> None:
    """Claims PyJWT lets through never reach this (it checks `jti` is a string; the key loader
    requires every claim), but the check does not lean on that."""
    user = make_user()
    claims: dict[str, Any] = {"jti": "a" * 32, "fam": str(uuid.uuid4()), "sub": str(user.id)}
    claims.update(change)
    claims = {name: value for name, value in claims.items() if value is not None}

    with app.test_request_context("/auth/me"):
        assert tokens.revocation_reason(db_session, claims) == "malformed_claims"


def test_an_authenticated_request_reads_the_user_once(
    app: APIFlask,
    client: FlaskClient,
    make_user: Callable[..., User],
    login: Login,
    db_connection: Connection,
) -> None:
    """The revocation check loads the user with its three checks; the user loader reuses that
    row rather than read it again (app/auth/tokens.py `revocation_reason`)."""
    pair = login(make_user())

    with counting(db_connection) as statements:
        assert client.get("/auth/me", headers=bearer(pair["access_token"])).status_code == 200

    user_reads = [s for s in statements if "FROM users" in s]
    assert len(user_reads) == 1, statements


def test_the_route_guard_takes_the_tokens_header_from_the_decode_that_verified_it(
    app: APIFlask,
    make_user: Callable[..., User],
    login: Login,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The header read again with PyJWT was a twentieth of a practice request's instructions
    (docs/benchmarks.md "Serving cost"): the platform's own manager keeps the verified one."""
    reparsed: list[str] = []
    real_reparse = flask_jwt_extended.utils.get_unverified_jwt_headers

    def reparse(token: str) -> dict[str, Any]:
        reparsed.append(token)
        return real_reparse(token)

    monkeypatch.setattr(tokens, "get_unverified_jwt_headers", reparse)
    pair = login(make_user())

    assert me(app, pair["access_token"]).status_code == 200
    assert reparsed == []


def test_a_well_formed_token_is_parsed_once_before_its_verification(
    app: APIFlask,
    make_user: Callable[..., User],
    login: Login,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PyJWT's unverified parse is kept for tokens the quick read refuses, for its error
    messages; a well-formed token never pays for it (docs/benchmarks.md "Serving cost")."""
    slow_parses: list[str] = []
    real_parse = jwt.decode_complete

    def parse(token: str, **kwargs: Any) -> dict[str, Any]:
        slow_parses.append(token)
        return real_parse(token, **kwargs)

    monkeypatch.setattr(tokens, "jwt_decode_complete", parse)
    pair = login(make_user())

    assert me(app, pair["access_token"]).status_code == 200
    assert slow_parses == []
    assert me(app, "not-a-jwt").status_code == 401
    assert slow_parses == ["not-a-jwt"]


def test_a_token_whose_claims_are_no_object_is_invalid_and_says_why(
    app: APIFlask, security_log: pytest.LogCaptureFixture
) -> None:
    """Refused by PyJWT's own unverified parse, which names the fault; asked to verify a
    signature there instead, PyJWT would fail on the missing key (a 500)."""
    claims = base64.urlsafe_b64encode(b"[1, 2]").rstrip(b"=").decode()
    token = f"{b64({'alg': 'HS256', 'typ': 'JWT', 'kid': 'k1'})}.{claims}.c2ln"

    assert rejection(security_log, me(app, token)) == refused(
        "The token is invalid.", "invalid:Invalid payload string: must be a json object"
    )


def test_tokens_carry_no_cookie_csrf_value(
    make_app: MakeApp, make_user: Callable[..., User]
) -> None:
    """Tokens never travel in cookies here, so the library's CSRF double-submit claim (on by
    default) would be a random value nothing checks."""
    app = make_app()
    user = make_user()
    client = app.test_client()

    pair = client.post("/auth/login", json={"email": user.email, "password": PASSWORD}).get_json()

    for kind in ("access_token", "refresh_token"):
        assert "csrf" not in jwt.decode(pair[kind], options={"verify_signature": False})


def test_a_token_the_quick_read_refuses_is_refused_even_if_pyjwts_parse_accepted_it(
    app: APIFlask, security_log: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PyJWT's parse is the stricter of the two today (it checks every character), so this
    cannot happen with the pinned release; a lenient one must not let a malformed token on."""

    def lenient_parse(token: str, **kwargs: Any) -> dict[str, Any]:
        return {"header": {"alg": "HS256"}, "payload": {}, "signature": b""}

    monkeypatch.setattr(tokens, "jwt_decode_complete", lenient_parse)

    assert rejection(security_log, me(app, "not-a-jwt")) == refused(
        "The token is invalid.", "invalid:Malformed token"
    )
