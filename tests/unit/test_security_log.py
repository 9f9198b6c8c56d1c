"""Security log lines in the unit tier: one WARNING on `app.security` per failure, with the
event, a bounded reason, the account (given, or the verified token's subject), the route and
the request id, in the message and as structured fields alike.

tests/integration/test_log_hygiene.py checks what the real routes log; these drive
`security_log` directly from a bare Flask app built in each test.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
from flask import Flask, g
from flask_jwt_extended import JWTManager, create_access_token, verify_jwt_in_request

from app.auth.security_log import MAX_REASON, current_user_id, failure

FIELDS = ("event", "reason", "user_id", "route", "request_id")


def make_app(**config: Any) -> Flask:
    app = Flask(__name__)
    secret = "unit-test-signing-secret-of-32-bytes!"  # pragma: allowlist secret
    app.config.update(JWT_SECRET_KEY=secret, **config)
    JWTManager(app)

    @app.post("/courses/<name>")
    def reject(name: str) -> str:
        verify_jwt_in_request(optional=True)
        g.request_id = "req-123"
        failure("authz.forbidden", f"not_owner_of_{name}")
        return ""

    return app


def only_record(caplog: pytest.LogCaptureFixture) -> logging.LogRecord:
    records = [r for r in caplog.records if r.name == "app.security"]
    assert len(records) == 1
    return records[0]


def structured(record: logging.LogRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in FIELDS}


def test_a_failure_inside_a_request_names_the_route_and_request_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="app.security"):
        make_app().test_client().post("/courses/algebra")

    record = only_record(caplog)
    assert record.levelno == logging.WARNING
    assert record.getMessage() == (
        "authz.forbidden reason=not_owner_of_algebra user_id=- "
        "route=POST /courses/algebra request_id=req-123"
    )
    assert structured(record) == {
        "event": "authz.forbidden",
        "reason": "not_owner_of_algebra",
        "user_id": None,
        "route": "POST /courses/algebra",
        "request_id": "req-123",
    }


def test_the_verified_tokens_subject_is_the_account(caplog: pytest.LogCaptureFixture) -> None:
    app = make_app()
    subject = str(uuid.uuid4())
    with app.app_context():
        token = create_access_token(identity=subject)

    with caplog.at_level(logging.WARNING, logger="app.security"):
        app.test_client().post("/courses/x", headers={"Authorization": f"Bearer {token}"})

    record = only_record(caplog)
    assert structured(record)["user_id"] == subject
    assert f"user_id={subject} " in record.getMessage()


def test_the_subject_claim_is_the_account_whatever_claim_the_identity_uses() -> None:
    # The identity lives in another claim here, so `sub` is whatever the token carried.
    app = make_app(JWT_IDENTITY_CLAIM="uid")
    with app.app_context():
        named = create_access_token(identity="u1", additional_claims={"sub": "u-7"})
        missing = create_access_token(identity="u1")

    seen: dict[str, str | None] = {}
    for label, token in (("named", named), ("missing", missing)):
        with app.test_request_context(headers={"Authorization": f"Bearer {token}"}):
            verify_jwt_in_request()
            seen[label] = current_user_id()

    assert seen == {"named": "u-7", "missing": None}


def test_no_account_without_a_verified_token_or_outside_a_request() -> None:
    app = make_app()

    assert current_user_id() is None
    with app.test_request_context("/courses/x", method="POST"):
        assert current_user_id() is None


def test_an_explicit_account_wins_and_is_logged_as_text(caplog: pytest.LogCaptureFixture) -> None:
    account = uuid.uuid4()
    app = make_app()

    with (
        caplog.at_level(logging.WARNING, logger="app.security"),
        app.test_request_context("/login", method="POST"),
    ):
        failure("auth.login_failed", "bad_password", user_id=account)

    record = only_record(caplog)
    assert structured(record)["user_id"] == str(account)
    assert f"user_id={account} route=POST /login request_id=-" in record.getMessage()
    assert structured(record)["request_id"] is None


def test_outside_a_request_the_route_and_ids_are_dashes(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="app.security"):
        failure("auth.token_rejected", "expired")

    record = only_record(caplog)
    assert (
        record.getMessage() == "auth.token_rejected reason=expired user_id=- route=- request_id=-"
    )
    assert structured(record) == {
        "event": "auth.token_rejected",
        "reason": "expired",
        "user_id": None,
        "route": "-",
        "request_id": None,
    }


def test_a_long_reason_is_cut_to_its_bound(caplog: pytest.LogCaptureFixture) -> None:
    reason = "invalid:" + "x" * 200

    with caplog.at_level(logging.WARNING, logger="app.security"):
        failure("auth.token_rejected", reason)

    record = only_record(caplog)
    assert structured(record)["reason"] == reason[:MAX_REASON]
    assert len(structured(record)["reason"]) == MAX_REASON
    assert f"reason={reason[:MAX_REASON]} user_id=" in record.getMessage()
