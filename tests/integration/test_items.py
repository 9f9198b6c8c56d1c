"""Items: validation by kind, the life cycle, frozen scoring, and who sees the answer key."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.audit.models import AuditRecord
from app.auth.models import Role, User
from app.content.models import Course, CourseStatus, Item

MCQ = {
    "kind": "mcq",
    "prompt": "2 + 2 = ?",
    "choices": [{"text": "3"}, {"text": "4", "correct": True}, {"text": "5"}],
}
SHORT = {
    "kind": "short_answer",
    "prompt": "Name the capital of France.",
    "reference_answer": "Paris",
    "rubric": "Full marks for Paris; nothing else.",
    "a": 1.7,
    "b": -0.5,
}
SECRET_FIELDS = {"reference_answer", "rubric", "a", "b", "status"}


@pytest.fixture
def author(make_user: Callable[..., User]) -> User:
    return make_user(Role.INSTRUCTOR)


@pytest.fixture
def course(make_course: Callable[..., Course], author: User) -> Course:
    return make_course(owner=author, status=CourseStatus.PUBLISHED)


def create(
    client: FlaskClient, course: Course, headers: dict[str, str], body: dict[str, Any]
) -> dict[str, Any]:
    response = client.post(f"/skills/{course.skills[0].id}/items", json=body, headers=headers)
    assert response.status_code == 201, response.get_json()
    item: dict[str, Any] = response.get_json()
    return item


@pytest.mark.parametrize("body", [MCQ, SHORT], ids=["mcq", "short_answer"])
def test_author_creates_a_draft_with_defaults_and_sees_the_key(
    client: FlaskClient,
    course: Course,
    author: User,
    as_user: Callable[[User], dict[str, str]],
    body: dict[str, Any],
) -> None:
    item = create(client, course, as_user(author), body)

    assert item["status"] == "draft"
    assert item["origin"] == "human"
    assert item["version"] == 1
    assert (item["a"], item["b"]) == (body.get("a", 1.0), body.get("b", 0.0))
    if body["kind"] == "mcq":
        assert [c["correct"] for c in item["choices"]] == [False, True, False]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"choices": [{"text": "only one", "correct": True}]}, "choices"),
        ({"choices": [{"text": str(i), "correct": i == 0} for i in range(9)]}, "choices"),
        ({"choices": [{"text": "a"}, {"text": "b"}]}, "choices"),
        ({"choices": [{"text": "a", "correct": True}, {"text": "b", "correct": True}]}, "choices"),
        ({"a": 0.1}, "a"),
        ({"a": 3.5}, "a"),
        ({"b": -4.5}, "b"),
        ({"b": 4.01}, "b"),
        ({"kind": "essay"}, "kind"),
        ({"prompt": ""}, "prompt"),
        ({"status": "published"}, "status"),
        ({"reference_answer": "x"}, "_schema"),
    ],
)
def test_invalid_items_are_422_naming_the_problem_and_create_nothing(
    client: FlaskClient,
    course: Course,
    author: User,
    as_user: Callable[[User], dict[str, str]],
    db_session: Session,
    change: dict[str, Any],
    field: str,
) -> None:
    response = client.post(
        f"/skills/{course.skills[0].id}/items", json={**MCQ, **change}, headers=as_user(author)
    )

    assert response.status_code == 422
    problem = response.get_json()
    assert field in [error["field"] for error in problem["errors"]] or field in problem["detail"]
    assert db_session.scalar(select(func.count()).select_from(Item)) == 0


def test_short_answer_needs_reference_and_rubric(
    client: FlaskClient, course: Course, author: User, as_user: Callable[[User], dict[str, str]]
) -> None:
    body = {k: v for k, v in SHORT.items() if k != "rubric"}

    response = client.post(
        f"/skills/{course.skills[0].id}/items", json=body, headers=as_user(author)
    )

    assert response.status_code == 422
    assert "rubric" in response.get_json()["detail"]


def test_learners_see_only_published_items_and_never_the_key(
    client: FlaskClient,
    course: Course,
    author: User,
    make_user: Callable[..., User],
    as_user: Callable[[User], dict[str, str]],
) -> None:
    headers = as_user(author)
    draft = create(client, course, headers, MCQ)
    published = create(client, course, headers, SHORT)
    assert client.post(f"/items/{published['id']}/publish", headers=headers).status_code == 200
    learner = as_user(make_user())

    listing = client.get(f"/skills/{course.skills[0].id}/items", headers=learner).get_json()
    single = client.get(f"/items/{published['id']}", headers=learner).get_json()

    assert [item["id"] for item in listing["items"]] == [published["id"]]
    for seen in (listing["items"][0], single):
        assert SECRET_FIELDS.isdisjoint(seen)
    assert client.get(f"/items/{draft['id']}", headers=learner).status_code == 404


def test_learners_never_see_which_choice_is_correct(
    client: FlaskClient,
    course: Course,
    author: User,
    make_user: Callable[..., User],
    as_user: Callable[[User], dict[str, str]],
) -> None:
    item = create(client, course, as_user(author), MCQ)
    client.post(f"/items/{item['id']}/publish", headers=as_user(author))

    seen = client.get(f"/items/{item['id']}", headers=as_user(make_user())).get_json()

    assert seen["choices"] == [{"text": "3"}, {"text": "4"}, {"text": "5"}]
    assert "correct" not in client.get(
        f"/items/{item['id']}", headers=as_user(make_user())
    ).get_data(as_text=True)


def test_published_scoring_is_frozen_and_retiring_is_audited(
    client: FlaskClient,
    course: Course,
    author: User,
    as_user: Callable[[User], dict[str, str]],
    db_session: Session,
) -> None:
    headers = as_user(author)
    item = create(client, course, headers, MCQ)
    published = client.post(f"/items/{item['id']}/publish", headers=headers)
    assert published.get_json()["status"] == "published"

    for change in ({"b": 1.0}, {"prompt": "new"}, {"b": 1.0, "status": "retired"}):
        response = client.patch(f"/items/{item['id']}", json=change, headers=headers)
        assert response.status_code == 409
        assert response.get_json()["type"].endswith("/item-published")
    assert client.post(f"/items/{item['id']}/publish", headers=headers).status_code == 409
    assert client.delete(f"/items/{item['id']}", headers=headers).status_code == 409

    retired = client.patch(f"/items/{item['id']}", json={"status": "retired"}, headers=headers)

    assert retired.get_json()["status"] == "retired"
    assert (
        client.patch(f"/items/{item['id']}", json={"prompt": "x"}, headers=headers).status_code
        == 409
    )
    actions = set(
        db_session.scalars(select(AuditRecord.action).where(AuditRecord.target_id == item["id"]))
    )
    assert actions == {"item.published", "item.retired"}


def test_drafts_can_be_edited_and_deleted(
    client: FlaskClient, course: Course, author: User, as_user: Callable[[User], dict[str, str]]
) -> None:
    headers = as_user(author)
    item = create(client, course, headers, SHORT)

    edited = client.patch(
        f"/items/{item['id']}", json={"b": 2.5, "rubric": "Paris only"}, headers=headers
    )
    broken = client.patch(
        f"/items/{item['id']}",
        json={"choices": [{"text": "a", "correct": True}, {"text": "b"}]},
        headers=headers,
    )
    retire_draft = client.patch(f"/items/{item['id']}", json={"status": "retired"}, headers=headers)
    deleted = client.delete(f"/items/{item['id']}", headers=headers)

    assert edited.status_code == 200
    assert (edited.get_json()["b"], edited.get_json()["rubric"]) == (2.5, "Paris only")
    assert broken.status_code == 422
    assert retire_draft.status_code == 409
    assert deleted.status_code == 204
    assert client.get(f"/items/{item['id']}", headers=headers).status_code == 404


def test_item_lists_filter_by_status_and_origin_and_page(
    client: FlaskClient, course: Course, author: User, as_user: Callable[[User], dict[str, str]]
) -> None:
    headers = as_user(author)
    ids = [create(client, course, headers, MCQ)["id"] for _ in range(3)]
    client.post(f"/items/{ids[0]}/publish", headers=headers)
    url = f"/skills/{course.skills[0].id}/items"

    drafts = client.get(f"{url}?status=draft", headers=headers).get_json()["items"]
    ai_made = client.get(f"{url}?origin=ai", headers=headers).get_json()["items"]
    first = client.get(f"{url}?limit=2", headers=headers).get_json()
    second = client.get(f"{url}?limit=2&cursor={first['next_cursor']}", headers=headers).get_json()

    assert {item["id"] for item in drafts} == set(ids[1:])
    assert ai_made == []
    assert [i["id"] for i in first["items"] + second["items"]] == list(reversed(ids))
    assert second["next_cursor"] is None


def test_other_instructors_cannot_author_in_a_course_they_do_not_own(
    client: FlaskClient,
    course: Course,
    author: User,
    make_user: Callable[..., User],
    as_user: Callable[[User], dict[str, str]],
) -> None:
    item = create(client, course, as_user(author), MCQ)
    rival = as_user(make_user(Role.INSTRUCTOR))

    assert (
        client.post(f"/skills/{course.skills[0].id}/items", json=MCQ, headers=rival).status_code
        == 403
    )
    assert client.get(f"/items/{item['id']}", headers=rival).status_code == 404  # a draft
    assert client.get(f"/items/{uuid.uuid4()}", headers=rival).status_code == 404
