"""SQL statements per request on the hot endpoints: a fixed budget that does not grow with the
data (no N+1). Counted with SQLAlchemy's `before_cursor_execute` on the test's connection,
against real Postgres; the savepoint statements the test isolation adds are not counted.

Each endpoint is measured twice, on a skill bank of 5 items and of 50 items (with 5 and 50
items of history behind the learner), and must issue the same number of statements both times,
within its budget. The budgets are what the endpoint needs today (docs/load-testing.md "Query
budget"); raising one is a decision to write down, not a test to loosen.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import event, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from app.auth.models import Role, User
from app.content.models import Course, CourseStatus, Item, ItemKind, ItemStatus, Skill
from app.learning.models import Attempt
from tests.conftest import start_practice

# Statements per request. Each includes 1 of authentication (the user row with the token's
# deny-list and family checks in one query: app/auth/tokens.py revocation_reason). next: the
# session locked with its skill state and course status, the bank's (id, a, b) with the
# learner's recent history as a flag, the chosen item, the session update. attempts (an mcq):
# the session and skill state locked with the course status, the item locked with "answered
# before?" and the Idempotency-Key's earlier attempt, then one write: the attempt's INSERT
# carrying the skill state's and the session's UPDATEs as CTEs, and the item's calibration
# when this is the learner's first answer to it (app/learning/queries.py RECORD_ANSWER).
BUDGET = {
    "GET /sessions/{id}/next": 5,
    "POST /sessions/{id}/attempts": 4,
    "GET /me/progress": 2,
    "GET /skills/{id}/items": 3,
    "GET /courses": 2,
}
ISOLATION = ("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT")


@contextmanager
def counting(connection: Connection) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(*args: Any) -> None:
        statement: str = args[2]
        if not statement.lstrip().upper().startswith(ISOLATION):
            statements.append(statement)

    event.listen(connection, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(connection, "before_cursor_execute", record)


def _bank(db_session: Session, owner: User, size: int) -> Course:
    course = Course(owner_id=owner.id, title=f"Bank of {size}", status=CourseStatus.PUBLISHED)
    skill = Skill(name="Skill")
    course.skills.append(skill)
    for n in range(size):
        skill.items.append(
            Item(
                kind=ItemKind.MCQ,
                status=ItemStatus.PUBLISHED,
                prompt=f"Question {n}",
                choices=[{"text": "yes", "correct": True}, {"text": "no", "correct": False}],
                a=1.0 + n % 5 * 0.2,
                b=-2.0 + 4.0 * n / max(size - 1, 1),
            )
        )
    db_session.add(course)
    db_session.commit()
    return course


def _measure(
    client: FlaskClient,
    db_connection: Connection,
    db_session: Session,
    owner: User,
    learner_headers: dict[str, str],
    size: int,
) -> dict[str, int]:
    """Statements of each hot endpoint for a bank of `size` items, after `size` answers."""
    course = _bank(db_session, owner, size)
    practice = start_practice(client, course, learner_headers)
    base = f"/sessions/{practice['id']}"
    counts: dict[str, int] = {}

    def answer(count_it: bool) -> None:
        with counting(db_connection) as next_statements:
            item = client.get(f"{base}/next", headers=learner_headers).get_json()["item"]
        # Only this learner answers this bank's items: no attempt yet means a first answer.
        first_answer = not db_session.scalar(
            select(func.count())
            .select_from(Attempt)
            .where(Attempt.item_id == uuid.UUID(item["id"]))
        )
        with counting(db_connection) as attempt_statements:
            response = client.post(
                f"{base}/attempts",
                json={"item_id": item["id"], "response": 0},
                headers={**learner_headers, "Idempotency-Key": uuid.uuid4().hex},
            )
        assert response.status_code == 201, response.get_json()
        # The calibration rides on the answer's one write, never a statement of its own.
        calibrations = [s for s in attempt_statements if "UPDATE items" in s]
        assert len(calibrations) == int(first_answer), (first_answer, attempt_statements)
        if count_it:
            counts["GET /sessions/{id}/next"] = len(next_statements)
            counts["POST /sessions/{id}/attempts"] = len(attempt_statements)

    for _ in range(size):  # history that grows with the bank
        answer(count_it=False)
    answer(count_it=True)
    skill_id = course.skills[0].id
    for route, path in (
        ("GET /me/progress", "/me/progress"),
        ("GET /skills/{id}/items", f"/skills/{skill_id}/items?limit=100"),
        ("GET /courses", "/courses?limit=100"),
    ):
        with counting(db_connection) as statements:
            assert client.get(path, headers=learner_headers).status_code == 200
        counts[route] = len(statements)
    return counts


@pytest.fixture
def measure(
    client: FlaskClient,
    db_connection: Connection,
    db_session: Session,
    make_user: Callable[..., User],
    as_user: Callable[[User], dict[str, str]],
) -> Callable[[int], dict[str, int]]:
    owner = make_user(Role.INSTRUCTOR)
    headers = as_user(make_user())
    return lambda size: _measure(client, db_connection, db_session, owner, headers, size)


def test_hot_endpoints_stay_within_their_statement_budget_whatever_the_data_size(
    measure: Callable[[int], dict[str, int]],
) -> None:
    small, large = measure(5), measure(50)

    assert small == large, f"statement counts grow with the data: 5 items {small}, 50 {large}"
    over = {route: count for route, count in large.items() if count > BUDGET[route]}
    assert not over, f"over budget {BUDGET}: {over}"


def test_the_statement_counter_sees_every_statement_of_a_request(
    client: FlaskClient,
    db_connection: Connection,
    make_user: Callable[..., User],
    as_user: Callable[[User], dict[str, str]],
) -> None:
    headers = as_user(make_user())

    with counting(db_connection) as statements:
        assert client.get("/auth/me", headers=headers).status_code == 200

    # The token's revocation check and the user row at least: the counter is really listening.
    assert len(statements) >= 2, statements
