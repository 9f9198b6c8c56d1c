"""Resource limits: deeply nested bodies, oversized bodies, over-long strings and oversized
pages are each a clear 4xx problem+json that changes nothing."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.auth.models import Role, User
from app.content.models import Course, CourseStatus, Item, ItemKind, ItemStatus
from app.errors import MAX_JSON_DEPTH
from app.learning.models import Attempt
from app.learning.schemas import MAX_RESPONSE_CHARS
from app.pagination import MAX_LIMIT
from tests.conftest import start_practice
from tests.integration.test_errors import row_counts

Headers = dict[str, str]


def nested(depth: int) -> str:
    """A course body whose `description` nests objects so the body is `depth` levels deep."""
    inner = '{"x": ' * (depth - 1) + "1" + "}" * (depth - 1)
    return '{"title": "Deep", "description": ' + inner + "}"


@pytest.fixture
def instructor_headers(
    make_user: Callable[..., User], as_user: Callable[[User], Headers]
) -> Headers:
    return as_user(make_user(Role.INSTRUCTOR))


def test_a_body_nested_past_the_limit_is_400_before_validation_and_creates_nothing(
    client: FlaskClient, instructor_headers: Headers, db_session: Session
) -> None:
    before = row_counts(db_session)

    response = client.post(
        "/courses",
        data=nested(MAX_JSON_DEPTH + 1),
        content_type="application/json",
        headers=instructor_headers,
    )

    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["type"].endswith("/json-too-deep")
    assert str(MAX_JSON_DEPTH) in problem["detail"]
    assert row_counts(db_session) == before


def test_a_body_at_the_limit_reaches_validation(
    client: FlaskClient, instructor_headers: Headers
) -> None:
    response = client.post(
        "/courses",
        data=nested(MAX_JSON_DEPTH),
        content_type="application/json",
        headers=instructor_headers,
    )

    assert response.status_code == 422  # parsed; the schema refuses an object as description
    assert response.get_json()["errors"][0]["field"] == "description"


@pytest.mark.parametrize("opening", ["[", '{"a":'])
def test_nesting_deep_enough_to_overflow_the_parser_is_a_400_not_a_500(
    client: FlaskClient, instructor_headers: Headers, opening: str
) -> None:
    body = opening * 200_000  # fits in MAX_CONTENT_LENGTH; would exhaust the recursion limit

    response = client.post(
        "/courses", data=body, content_type="application/json", headers=instructor_headers
    )

    assert response.status_code == 400
    assert response.get_json()["type"].endswith("/json-too-deep")


def test_brackets_inside_strings_do_not_count_as_nesting(
    client: FlaskClient, instructor_headers: Headers
) -> None:
    response = client.post(
        "/courses",
        json={"title": "Brackets", "description": "[{" * 100},
        headers=instructor_headers,
    )

    assert response.status_code == 201


def test_an_oversized_body_is_413_and_creates_nothing(
    client: FlaskClient, instructor_headers: Headers, db_session: Session
) -> None:
    before = row_counts(db_session)

    response = client.post(
        "/courses",
        json={
            "title": "Big",
            "description": "x" * (client.application.config["MAX_CONTENT_LENGTH"]),
        },
        headers=instructor_headers,
    )

    assert response.status_code == 413
    assert response.mimetype == "application/problem+json"
    assert row_counts(db_session) == before


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/courses", {"title": "t" * 201}, "title"),
        ("/courses", {"title": "ok", "description": "d" * 5001}, "description"),
    ],
)
def test_over_long_strings_are_422_naming_the_field(
    client: FlaskClient,
    instructor_headers: Headers,
    db_session: Session,
    path: str,
    body: dict[str, str],
    field: str,
) -> None:
    before = row_counts(db_session)

    response = client.post(path, json=body, headers=instructor_headers)

    assert response.status_code == 422
    assert field in [error["field"] for error in response.get_json()["errors"]]
    assert row_counts(db_session) == before


def test_an_over_long_answer_is_422_and_records_no_attempt(
    client: FlaskClient,
    make_course: Callable[..., Course],
    make_user: Callable[..., User],
    as_user: Callable[[User], Headers],
    db_session: Session,
) -> None:
    course = make_course(status=CourseStatus.PUBLISHED)
    db_session.add(
        Item(
            skill_id=course.skills[0].id,
            kind=ItemKind.SHORT_ANSWER,
            prompt="Explain.",
            reference_answer="Because.",
            rubric="Because",
            status=ItemStatus.PUBLISHED,
        )
    )
    db_session.commit()
    headers = as_user(make_user())
    session = start_practice(client, course, headers)
    item = client.get(f"/sessions/{session['id']}/next", headers=headers).get_json()["item"]

    response = client.post(
        f"/sessions/{session['id']}/attempts",
        json={"item_id": item["id"], "response": "a" * (MAX_RESPONSE_CHARS + 1)},
        headers=headers,
    )

    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert "response" in [error["field"] for error in response.get_json()["errors"]]
    assert db_session.scalar(select(func.count()).select_from(Attempt)) == 0


@pytest.mark.parametrize("path", ["/courses", "/admin/users", "/admin/audit-log", "/admin/jobs"])
def test_a_page_larger_than_the_cap_is_422_naming_limit(
    client: FlaskClient,
    make_user: Callable[..., User],
    as_user: Callable[[User], Headers],
    path: str,
) -> None:
    headers = as_user(make_user(Role.ADMIN))

    too_big = client.get(f"{path}?limit={MAX_LIMIT + 1}", headers=headers)
    at_cap = client.get(f"{path}?limit={MAX_LIMIT}", headers=headers)

    assert too_big.status_code == 422
    assert too_big.mimetype == "application/problem+json"
    assert "limit" in [error["field"] for error in too_big.get_json()["errors"]]
    assert at_cap.status_code == 200
