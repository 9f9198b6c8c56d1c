"""`flask --app app seed load`: the load-test data set, built in bulk on real Postgres."""

from __future__ import annotations

from apiflask import APIFlask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.adaptive.estimation import AbilityPosterior
from app.auth.models import Role, User
from app.content.models import Course, CourseStatus, Item, ItemStatus, Skill
from app.learning.models import Attempt, Enrollment, PracticeSession, SkillState
from app.ops.load_data import LOAD_DOMAIN, load_email

SMALL = ["--courses", "3", "--skills-per-course", "2", "--items-per-skill", "5"]
SMALL += ["--learners", "12", "--attempts-per-learner", "4", "--admins", "1"]


def count(db_session: Session, model: type) -> int:
    return db_session.scalar(select(func.count()).select_from(model)) or 0


def test_seed_load_builds_the_requested_data_set_with_consistent_history(
    app: APIFlask, db_session: Session
) -> None:
    result = app.test_cli_runner().invoke(args=["seed", "load", *SMALL])

    assert result.exit_code == 0, result.output
    assert "16 users, 3 courses, 6 skills, 30 items" in result.output
    roles = dict(
        db_session.execute(
            select(User.role, func.count())
            .where(User.email.like(f"%@{LOAD_DOMAIN}"))
            .group_by(User.role)
        ).all()
    )
    assert roles == {Role.ADMIN: 1, Role.INSTRUCTOR: 3, Role.LEARNER: 12}
    published = (
        select(func.count()).select_from(Course).where(Course.status == CourseStatus.PUBLISHED)
    )
    assert db_session.scalar(published) == 3
    assert count(db_session, Skill) == 6
    assert (
        db_session.scalar(
            select(func.count()).select_from(Item).where(Item.status == ItemStatus.PUBLISHED)
        )
        == 30
    )
    assert count(db_session, Enrollment) == 24  # two courses per learner
    assert count(db_session, PracticeSession) == 24
    assert count(db_session, Attempt) == 12 * 4
    for state in db_session.scalars(select(SkillState)):
        posterior = AbilityPosterior.from_state(state.posterior)
        assert (state.theta, state.se) == (posterior.theta, posterior.se)
        assert state.attempts == posterior.responses == 2


def test_every_seeded_account_logs_in_with_the_shared_password(
    app: APIFlask, client: FlaskClient
) -> None:
    app.test_cli_runner().invoke(args=["seed", "load", *SMALL, "--password", "load-test-pass-42"])

    for role, number in ((Role.LEARNER, 11), (Role.INSTRUCTOR, 2), (Role.ADMIN, 0)):
        response = client.post(
            "/auth/login",
            json={"email": load_email(role, number), "password": "load-test-pass-42"},
        )
        assert response.status_code == 200, (role, response.get_json())


def test_seed_load_refuses_a_database_that_already_has_load_accounts(
    app: APIFlask, db_session: Session
) -> None:
    runner = app.test_cli_runner()
    runner.invoke(args=["seed", "load", *SMALL])
    users = count(db_session, User)

    result = runner.invoke(args=["seed", "load", *SMALL])

    assert result.exit_code != 0
    assert "already has load accounts" in result.output
    assert count(db_session, User) == users
