"""Operator commands run against the real database."""

from __future__ import annotations

from apiflask import APIFlask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit.models import AuditRecord
from app.auth.models import Role, User
from app.ops.cli import DEMO_USERS


def test_seed_demo_creates_three_users_and_prints_their_credentials(
    app: APIFlask, client: FlaskClient, db_session: Session
) -> None:
    result = app.test_cli_runner().invoke(args=["seed", "demo"])

    assert result.exit_code == 0, result.output
    for email, _name, role, password in DEMO_USERS:
        assert email in result.output
        assert password in result.output
        user = db_session.scalar(select(User).where(User.email == email))
        assert user is not None
        assert user.role is role
        login = client.post("/auth/login", json={"email": email, "password": password})
        assert login.status_code == 200


def test_seed_demo_is_idempotent_and_restores_the_demo_state(
    app: APIFlask, db_session: Session
) -> None:
    runner = app.test_cli_runner()
    runner.invoke(args=["seed", "demo"])
    learner = db_session.scalar(select(User).where(User.email == "learner@mastery.local"))
    assert learner is not None
    learner.role, learner.is_active = Role.ADMIN, False
    db_session.commit()

    result = runner.invoke(args=["seed", "demo"])

    assert result.exit_code == 0
    db_session.refresh(learner)
    assert (learner.role, learner.is_active) == (Role.LEARNER, True)
    assert len(db_session.scalars(select(User)).all()) == 3


def test_alerts_drill_runs_the_repositorys_drill_script(app: APIFlask) -> None:
    result = app.test_cli_runner().invoke(args=["alerts", "drill", "--help"])

    # The script's own argparse answers --help and exits 0: the command found and ran it.
    assert result.exit_code == 0, result.output


ADMIN_EMAIL = "ops-admin@mastery.test"
ADMIN_PASSWORD = "a-long-operator-passphrase-42"  # pragma: allowlist secret


def test_users_create_admin_makes_an_admin_who_can_log_in_and_audits_it(
    app: APIFlask, client: FlaskClient, db_session: Session
) -> None:
    result = app.test_cli_runner().invoke(
        args=["users", "create-admin", ADMIN_EMAIL.upper()], env={"ADMIN_PASSWORD": ADMIN_PASSWORD}
    )

    assert result.exit_code == 0, result.output
    assert ADMIN_PASSWORD not in result.output
    user = db_session.scalar(select(User).where(User.email == ADMIN_EMAIL))
    assert user is not None
    assert user.role is Role.ADMIN
    assert user.is_active
    login = client.post("/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert login.status_code == 200
    actions = db_session.scalars(select(AuditRecord.action)).all()
    assert "users.admin_created" in actions


def test_users_create_admin_refuses_a_weak_password_and_writes_nothing(
    app: APIFlask, db_session: Session
) -> None:
    result = app.test_cli_runner().invoke(
        args=["users", "create-admin", ADMIN_EMAIL],
        env={"ADMIN_PASSWORD": "password"},  # pragma: allowlist secret
    )

    assert result.exit_code == 2
    assert "ADMIN_PASSWORD" in result.output
    assert db_session.scalar(select(User).where(User.email == ADMIN_EMAIL)) is None


def test_users_create_admin_needs_reset_for_an_existing_account_and_then_ends_its_sessions(
    app: APIFlask, client: FlaskClient, db_session: Session
) -> None:
    runner = app.test_cli_runner()
    runner.invoke(args=["seed", "demo"])
    email, _name, _role, old_password = DEMO_USERS[2]
    tokens = client.post("/auth/login", json={"email": email, "password": old_password}).json

    refused = runner.invoke(
        args=["users", "create-admin", email], env={"ADMIN_PASSWORD": ADMIN_PASSWORD}
    )
    reset = runner.invoke(
        args=["users", "create-admin", email, "--reset"], env={"ADMIN_PASSWORD": ADMIN_PASSWORD}
    )

    assert refused.exit_code == 1
    assert "--reset" in refused.output
    assert reset.exit_code == 0, reset.output
    assert tokens is not None
    old_session = client.get(
        "/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert old_session.status_code == 401
    login = client.post("/auth/login", json={"email": email, "password": ADMIN_PASSWORD})
    assert login.status_code == 200
    assert login.json is not None
    me = client.get("/auth/me", headers={"Authorization": f"Bearer {login.json['access_token']}"})
    assert me.json is not None
    assert me.json["role"] == "admin"
