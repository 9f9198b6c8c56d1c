"""Operator commands run against the real database."""

from __future__ import annotations

from apiflask import APIFlask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

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
