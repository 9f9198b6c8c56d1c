"""`app.auth.service` through the API, to the letter: what registration, login and password
change write (audit records, the security log, the failure metric), what the problems say, and
what happens when another transaction changes the account between the Argon2 check and the
row lock (real commits, the competing change made from another connection).

tests/integration/test_auth_accounts.py and test_token_policies.py cover the flows; these pin
the details a client, an auditor or an operator reads.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from apiflask import APIFlask
from flask.testing import FlaskClient
from prometheus_client import REGISTRY
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app.audit.models import AuditRecord
from app.auth import passwords, service
from app.auth.models import RefreshFamily, Role, User
from tests.conftest import NEW_PASSWORD, PASSWORD, bearer, change_password
from tests.integration.test_auth_accounts import GOOD

OTHER_PASSWORD = "a passphrase set meanwhile"  # pragma: allowlist secret (a test password)
WRONG_PASSWORD = "not the password at all"  # pragma: allowlist secret (a test password)

Login = Callable[..., dict[str, str]]  # (user, password=PASSWORD): tests/conftest.py `login`


def audit(db_session: Session, action: str) -> list[AuditRecord]:
    return list(db_session.scalars(select(AuditRecord).where(AuditRecord.action == action)))


def fields(record: AuditRecord) -> dict[str, Any]:
    return {
        "actor_id": record.actor_id,
        "target_type": record.target_type,
        "target_id": record.target_id,
        "details": record.details,
    }


def failures(reason: str) -> float:
    return REGISTRY.get_sample_value("mastery_auth_login_failures_total", {"reason": reason}) or 0.0


def security_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [
        {"event": r.event, "reason": r.reason, "user_id": r.user_id}  # type: ignore[attr-defined]  # security_log's `extra` fields
        for r in caplog.records
        if r.name == "app.security"
    ]


def stored_hash(engine: Engine, user: User) -> str:
    with Session(engine) as fresh:
        stored = fresh.get(User, user.id)
        assert stored is not None
        return stored.password_hash


def set_hash(engine: Engine, user: User, password_hash: str) -> None:
    """Another transaction's password change, committed."""
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE users SET password_hash = :hash WHERE id = :id"),
            {"hash": password_hash, "id": user.id},
        )


# --- registration ------------------------------------------------------------------------------


def test_register_stores_the_account_and_audits_it_as_its_own_actor(
    client: FlaskClient, db_session: Session
) -> None:
    response = client.post("/auth/register", json={**GOOD, "display_name": "  Ada  "})

    assert response.status_code == 201
    user = db_session.scalar(select(User).where(User.email == GOOD["email"]))
    assert user is not None
    assert user.display_name == "Ada"
    assert passwords.verify_password(user.password_hash, GOOD["password"])
    (record,) = audit(db_session, "user.registered")
    assert fields(record) == {
        "actor_id": user.id,
        "target_type": "user",
        "target_id": str(user.id),
        "details": {},
    }


def test_register_gives_the_role_asked_for(db_session: Session) -> None:
    """The route only ever creates learners; the service takes the role as a parameter."""
    user = service.register(db_session, "Tutor@Example.com", GOOD["password"], "T", Role.INSTRUCTOR)

    db_session.expire_all()
    stored = db_session.get(User, user.id)
    assert stored is not None
    assert (stored.email, stored.role) == ("tutor@example.com", Role.INSTRUCTOR)


def test_another_account_does_not_make_an_address_taken(
    client: FlaskClient, make_user: Callable[..., User], db_session: Session
) -> None:
    other = make_user()

    response = client.post("/auth/register", json=GOOD)

    assert response.status_code == 201
    assert response.get_json()["email"] == GOOD["email"]
    assert {u.email for u in db_session.scalars(select(User))} == {other.email, GOOD["email"]}


def test_a_taken_address_is_refused_before_any_argon2_work(
    client: FlaskClient, make_user: Callable[..., User], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check comes first: a 409 costs a query, not a hash (the unique index is only the
    backstop for a concurrent registration)."""
    make_user(email=GOOD["email"])
    hashed: list[str] = []
    real_hash = passwords.hash_password

    def counting_hash(password: str) -> str:
        hashed.append(password)
        return real_hash(password)

    monkeypatch.setattr(passwords, "hash_password", counting_hash)

    response = client.post("/auth/register", json=GOOD)

    assert response.status_code == 409
    assert hashed == []


def test_a_taken_email_is_a_409_saying_so(client: FlaskClient) -> None:
    assert client.post("/auth/register", json=GOOD).status_code == 201

    response = client.post("/auth/register", json=GOOD)

    assert response.status_code == 409
    problem = response.get_json()
    assert problem["type"].endswith("/email-taken")
    assert problem["detail"] == "An account with this e-mail address already exists."


def test_a_weak_password_at_registration_is_explained_under_password(client: FlaskClient) -> None:
    weak = "password1234"
    why = passwords.policy_violation(weak, GOOD["email"])
    assert why is not None

    response = client.post("/auth/register", json={**GOOD, "password": weak})

    assert response.status_code == 422
    message = f"The password {why}."
    assert response.get_json()["errors"] == [
        {"location": "json", "field": "password", "messages": [message]}
    ]


@pytest.mark.commits
def test_a_registration_that_loses_the_race_for_its_email_is_a_409_and_keeps_the_winner(
    app: APIFlask, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both registrations find the address free; the other one commits while this one hashes
    its password, so the unique index refuses this one's insert."""
    real_hash = passwords.hash_password

    def hash_while_the_other_registration_commits(password: str) -> str:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO users (id, email, password_hash, display_name, role, is_active,"
                    " created_at, updated_at) VALUES (gen_random_uuid(), :email, 'x', 'Winner',"
                    " 'learner', true, now(), now())"
                ),
                {"email": GOOD["email"]},
            )
        return real_hash(password)

    monkeypatch.setattr(passwords, "hash_password", hash_while_the_other_registration_commits)

    response = app.test_client().post("/auth/register", json=GOOD)

    assert response.status_code == 409
    problem = response.get_json()
    assert problem["type"].endswith("/email-taken")
    assert problem["detail"] == "An account with this e-mail address already exists."
    with Session(engine) as fresh:
        assert list(fresh.scalars(select(User.display_name))) == ["Winner"]
        assert fresh.scalar(select(AuditRecord.id)) is None


# --- login failures ----------------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["unknown_email", "bad_password", "inactive"])
def test_each_failed_login_is_the_same_401_and_is_recorded_with_its_reason(
    client: FlaskClient,
    make_user: Callable[..., User],
    db_session: Session,
    caplog: pytest.LogCaptureFixture,
    reason: str,
) -> None:
    user = make_user(active=reason != "inactive")
    email = "nobody@example.com" if reason == "unknown_email" else user.email
    password = WRONG_PASSWORD if reason == "bad_password" else PASSWORD
    before = failures(reason)
    caplog.set_level(logging.WARNING, logger="app.security")

    response = client.post("/auth/login", json={"email": email, "password": password})

    assert response.status_code == 401
    problem = response.get_json()
    assert problem["type"].endswith("/login-failed")
    assert problem["detail"] == "The e-mail address or password is incorrect."
    assert failures(reason) == before + 1
    known = reason != "unknown_email"
    (record,) = audit(db_session, "auth.login_failed")
    assert fields(record) == {
        "actor_id": user.id if known else None,
        "target_type": "user" if known else None,
        "target_id": str(user.id) if known else None,
        "details": {"reason": reason},
    }
    assert security_lines(caplog) == [
        {"event": "auth.login_failed", "reason": reason, "user_id": str(user.id) if known else None}
    ]


def test_login_normalises_the_email_address(
    client: FlaskClient, make_user: Callable[..., User]
) -> None:
    user = make_user(email="grace@example.com")

    response = client.post(
        "/auth/login", json={"email": "  Grace@Example.COM ", "password": PASSWORD}
    )

    assert response.status_code == 200
    me = client.get("/auth/me", headers=bearer(response.get_json()["access_token"]))
    assert me.get_json()["id"] == str(user.id)


# --- password change ---------------------------------------------------------------------------


def test_a_weak_new_password_is_explained_under_new_password(
    client: FlaskClient, make_user: Callable[..., User], login: Login
) -> None:
    user = make_user()
    weak = "qwertyuiop123"
    why = passwords.policy_violation(weak, user.email)
    assert why is not None

    response = change_password(client, login(user)["access_token"], new=weak)

    assert response.status_code == 422
    problem = response.get_json()
    message = f"The password {why}."
    assert problem["errors"] == [
        {"location": "json", "field": "new_password", "messages": [message]}
    ]
    assert problem["detail"] == f"The request is invalid. new_password: {message}"


def test_a_new_password_derived_from_the_email_is_refused_at_change(
    client: FlaskClient, make_user: Callable[..., User], login: Login
) -> None:
    """The policy sees the account's own address, not only the common list."""
    user = make_user(email="zebedee.quark@example.com")
    derived = "zebedee.quark rules all"
    assert passwords.policy_violation(derived) is None

    response = change_password(client, login(user)["access_token"], new=derived)

    assert response.status_code == 422
    assert "e-mail" in response.get_json()["errors"][0]["messages"][0]


def test_the_same_password_again_is_a_422_saying_why(
    client: FlaskClient, make_user: Callable[..., User], login: Login
) -> None:
    user = make_user()

    response = change_password(client, login(user)["access_token"], new=PASSWORD)

    assert response.status_code == 422
    message = "The new password must differ from the current one."
    assert response.get_json()["errors"] == [
        {"location": "json", "field": "new_password", "messages": [message]}
    ]


def test_a_wrong_current_password_is_a_403_audited_against_the_account(
    client: FlaskClient, make_user: Callable[..., User], login: Login, db_session: Session
) -> None:
    user = make_user()

    response = change_password(client, login(user)["access_token"], current=WRONG_PASSWORD)

    assert response.status_code == 403
    problem = response.get_json()
    assert problem["type"].endswith("/wrong-password")
    assert problem["detail"] == "The current password is incorrect."
    (record,) = audit(db_session, "auth.password_change_failed")
    assert fields(record) == {
        "actor_id": user.id,
        "target_type": "user",
        "target_id": str(user.id),
        "details": {"reason": "wrong_current_password"},
    }
    assert audit(db_session, "auth.password_changed") == []


def test_a_password_change_is_audited_and_ends_only_this_accounts_logins(
    client: FlaskClient, make_user: Callable[..., User], login: Login, db_session: Session
) -> None:
    user, bystander = make_user(), make_user()
    access = login(user)["access_token"]
    login(bystander)

    assert change_password(client, access).status_code == 204

    (record,) = audit(db_session, "auth.password_changed")
    assert fields(record) == {
        "actor_id": user.id,
        "target_type": "user",
        "target_id": str(user.id),
        "details": {},
    }
    families = {
        family.user_id: family.revoked_reason
        for family in db_session.scalars(select(RefreshFamily))
    }
    assert families == {user.id: "password_changed", bystander.id: None}
    db_session.refresh(user)
    assert passwords.verify_password(user.password_hash, NEW_PASSWORD)


# --- the account changing between the Argon2 check and the lock (real commits) -----------------


def on_verify(monkeypatch: pytest.MonkeyPatch, action: Callable[[int], None]) -> list[str | None]:
    """Run `action(n)` after the n-th (1-based) password check, before its result is used;
    returns the list of the hashes checked, filled as the checks happen."""
    real_verify = passwords.verify_password
    seen: list[str | None] = []

    def verify(stored: str | None, password: str) -> bool:
        result = real_verify(stored, password)
        seen.append(stored)
        action(len(seen))
        return result

    monkeypatch.setattr(passwords, "verify_password", verify)
    return seen


@pytest.mark.commits
def test_a_login_whose_password_changed_meanwhile_is_checked_again_and_refused(
    app: APIFlask,
    engine: Engine,
    make_user: Callable[..., User],
    db_session: Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    user = make_user()
    old_hash, new_hash = user.password_hash, passwords.hash_password(OTHER_PASSWORD)
    verifying = on_verify(
        monkeypatch, lambda n: set_hash(engine, user, new_hash) if n == 1 else None
    )

    response = app.test_client().post(
        "/auth/login", json={"email": user.email, "password": PASSWORD}
    )

    assert response.status_code == 401
    assert verifying == [old_hash, new_hash]  # the second check read the committed hash
    assert stored_hash(engine, user) == new_hash
    details = db_session.scalars(
        select(AuditRecord.details).where(AuditRecord.action == "auth.login_failed")
    ).all()
    assert details == [{"reason": "bad_password"}]


@pytest.mark.commits
@pytest.mark.parametrize(("changes", "status"), [(1, 200), (2, 401)])
def test_a_login_chases_a_rehash_of_its_own_password_once_and_then_gives_up(
    app: APIFlask,
    engine: Engine,
    make_user: Callable[..., User],
    db_session: Session,
    monkeypatch: pytest.MonkeyPatch,
    changes: int,
    status: int,
) -> None:
    """Each change rehashes the same password: the offered one stays right, but the hash it
    was checked against is gone by the time the row is locked."""
    user = make_user()
    hashes = [passwords.hash_password(PASSWORD) for _ in range(changes)]

    def change(n: int) -> None:
        if n <= changes:
            set_hash(engine, user, hashes[n - 1])

    verifying = on_verify(monkeypatch, change)

    response = app.test_client().post(
        "/auth/login", json={"email": user.email, "password": PASSWORD}
    )

    assert response.status_code == status
    assert len(verifying) == 2
    assert stored_hash(engine, user) == hashes[-1]
    reasons = db_session.scalars(
        select(AuditRecord.details).where(AuditRecord.action == "auth.login_failed")
    ).all()
    assert reasons == ([] if status == 200 else [{"reason": "bad_password"}])
    if status == 200:
        access = response.get_json()["access_token"]
        assert app.test_client().get("/auth/me", headers=bearer(access)).status_code == 200


@pytest.mark.commits
def test_a_login_holds_the_account_row_locked_until_it_commits(
    app: APIFlask,
    engine: Engine,
    make_user: Callable[..., User],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While the login writes its tokens, a password change (which locks the row first) must
    wait; NOWAIT turns that wait into an error the test can see at once."""
    user = make_user()
    attempts: list[str] = []
    real_needs_rehash = passwords.needs_rehash

    def try_to_lock(stored_hash: str) -> bool:
        with engine.connect() as other:
            try:
                other.execute(
                    text("SELECT 1 FROM users WHERE id = :id FOR UPDATE NOWAIT"), {"id": user.id}
                )
                attempts.append("locked")
            except OperationalError as error:
                attempts.append(type(error.orig).__name__)
            other.rollback()
        return real_needs_rehash(stored_hash)

    monkeypatch.setattr(passwords, "needs_rehash", try_to_lock)

    response = app.test_client().post(
        "/auth/login", json={"email": user.email, "password": PASSWORD}
    )

    assert response.status_code == 200
    assert attempts == ["LockNotAvailable"]


@pytest.mark.commits
def test_a_password_change_whose_current_password_changed_meanwhile_is_a_403(
    app: APIFlask,
    engine: Engine,
    make_user: Callable[..., User],
    login: Login,
    db_session: Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    user = make_user()
    access = login(user)["access_token"]
    other_hash = passwords.hash_password(OTHER_PASSWORD)
    verifying = on_verify(monkeypatch, lambda n: set_hash(engine, user, other_hash))

    response = change_password(app.test_client(), access)

    assert response.status_code == 403
    problem = response.get_json()
    assert problem["type"].endswith("/wrong-password")
    assert problem["detail"] == "The current password is incorrect."
    assert len(verifying) == 1
    assert stored_hash(engine, user) == other_hash
    assert audit(db_session, "auth.password_changed") == []
