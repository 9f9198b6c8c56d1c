"""Courses and skills: ownership, visibility, validation, publishing, deletion."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.audit.models import AuditRecord
from app.auth.models import Role, User
from app.content.models import Course, CourseStatus, Skill

Login = Callable[[User], dict[str, str]]
Headers = Callable[[User], dict[str, str]]


def test_instructor_creates_a_draft_course_they_own(
    client: FlaskClient, make_user: Callable[..., User], as_user: Headers
) -> None:
    author = make_user(Role.INSTRUCTOR)

    response = client.post(
        "/courses", json={"title": "  Algebra  ", "description": "x"}, headers=as_user(author)
    )

    assert response.status_code == 201
    body = response.get_json()
    assert body["title"] == "Algebra"
    assert body["status"] == "draft"
    assert body["owner_id"] == str(author.id)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"title": "ok", "description": "x" * 5001}, "description"),
        ({"title": "ok", "owner_id": str(uuid.uuid4())}, "owner_id"),
        ({"title": "ok", "status": "published"}, "status"),
    ],
)
def test_invalid_course_bodies_are_422_naming_the_field_and_create_nothing(
    client: FlaskClient,
    make_user: Callable[..., User],
    as_user: Headers,
    db_session: Session,
    body: dict[str, str],
    field: str,
) -> None:
    response = client.post("/courses", json=body, headers=as_user(make_user(Role.INSTRUCTOR)))

    assert response.status_code == 422
    assert field in [error["field"] for error in response.get_json()["errors"]]
    assert db_session.scalar(select(func.count()).select_from(Course)) == 0


def test_drafts_are_hidden_from_learners_and_other_instructors(
    client: FlaskClient,
    make_user: Callable[..., User],
    make_course: Callable[..., Course],
    as_user: Headers,
) -> None:
    owner = make_user(Role.INSTRUCTOR)
    draft = make_course(owner=owner)

    assert client.get(f"/courses/{draft.id}", headers=as_user(owner)).status_code == 200
    assert (
        client.get(f"/courses/{draft.id}", headers=as_user(make_user(Role.ADMIN))).status_code
        == 200
    )
    for outsider in (make_user(), make_user(Role.INSTRUCTOR)):
        response = client.get(f"/courses/{draft.id}", headers=as_user(outsider))
        assert response.status_code == 404
        skill = draft.skills[0]
        assert client.get(f"/skills/{skill.id}", headers=as_user(outsider)).status_code == 404
        assert (
            client.get(f"/courses/{draft.id}/skills", headers=as_user(outsider)).status_code == 404
        )


def test_course_lists_show_what_each_role_may_see(
    client: FlaskClient,
    make_user: Callable[..., User],
    make_course: Callable[..., Course],
    as_user: Headers,
) -> None:
    author = make_user(Role.INSTRUCTOR)
    own_draft = make_course(owner=author)
    published = make_course(status=CourseStatus.PUBLISHED)
    foreign_draft = make_course()

    def ids(user: User, query: str = "") -> set[str]:
        page = client.get(f"/courses?{query}", headers=as_user(user)).get_json()
        return {item["id"] for item in page["items"]}

    assert ids(make_user()) == {str(published.id)}
    assert ids(author) == {str(own_draft.id), str(published.id)}
    assert ids(author, "mine=true") == {str(own_draft.id)}
    assert ids(make_user(Role.ADMIN), "status=draft") == {str(own_draft.id), str(foreign_draft.id)}


def test_owner_publishes_a_course_and_learners_then_see_it(
    client: FlaskClient,
    make_user: Callable[..., User],
    make_course: Callable[..., Course],
    as_user: Headers,
    db_session: Session,
) -> None:
    owner = make_user(Role.INSTRUCTOR)
    course = make_course(owner=owner)

    response = client.patch(
        f"/courses/{course.id}", json={"status": "published"}, headers=as_user(owner)
    )

    assert response.status_code == 200
    assert client.get(f"/courses/{course.id}", headers=as_user(make_user())).status_code == 200
    record = db_session.scalar(select(AuditRecord).where(AuditRecord.action == "course.published"))
    assert record is not None
    assert record.target_id == str(course.id)


def test_another_instructor_cannot_edit_a_visible_course(
    client: FlaskClient,
    make_user: Callable[..., User],
    make_course: Callable[..., Course],
    as_user: Headers,
) -> None:
    course = make_course(status=CourseStatus.PUBLISHED)
    rival = make_user(Role.INSTRUCTOR)

    assert (
        client.patch(
            f"/courses/{course.id}", json={"title": "Mine now"}, headers=as_user(rival)
        ).status_code
        == 403
    )
    assert (
        client.post(
            f"/courses/{course.id}/skills", json={"name": "x"}, headers=as_user(rival)
        ).status_code
        == 403
    )
    assert client.delete(f"/courses/{course.id}", headers=as_user(rival)).status_code == 403


def test_deleting_a_course_removes_its_skills_and_is_audited(
    client: FlaskClient,
    make_user: Callable[..., User],
    make_course: Callable[..., Course],
    as_user: Headers,
    db_session: Session,
) -> None:
    owner = make_user(Role.INSTRUCTOR)
    course = make_course(owner=owner)
    course_id, skill_id = course.id, course.skills[0].id

    response = client.delete(f"/courses/{course_id}", headers=as_user(owner))

    assert response.status_code == 204
    db_session.expire_all()
    assert db_session.get(Skill, skill_id) is None
    assert (
        db_session.scalar(select(AuditRecord).where(AuditRecord.action == "course.deleted"))
        is not None
    )
    assert client.get(f"/courses/{course_id}", headers=as_user(owner)).status_code == 404


def test_skills_are_created_edited_listed_and_deleted_by_the_owner(
    client: FlaskClient,
    make_user: Callable[..., User],
    make_course: Callable[..., Course],
    as_user: Headers,
) -> None:
    owner = make_user(Role.INSTRUCTOR)
    course = make_course(owner=owner)
    headers = as_user(owner)

    created = client.post(
        f"/courses/{course.id}/skills", json={"name": "Fractions"}, headers=headers
    )
    skill_id = created.get_json()["id"]
    renamed = client.patch(
        f"/skills/{skill_id}", json={"description": "Halves and quarters"}, headers=headers
    )
    listed = client.get(f"/courses/{course.id}/skills?limit=1", headers=headers).get_json()
    deleted = client.delete(f"/skills/{skill_id}", headers=headers)

    assert created.status_code == 201
    assert renamed.get_json()["description"] == "Halves and quarters"
    assert listed["items"][0]["id"] == skill_id
    assert listed["next_cursor"] is not None
    assert deleted.status_code == 204
    assert client.get(f"/skills/{skill_id}", headers=headers).status_code == 404


@pytest.mark.parametrize(
    ("url", "body"),
    [
        ("/courses/{course}", {}),
        ("/courses/{course}", {"title": None}),
        ("/skills/{skill}", {"name": None}),
        ("/skills/{skill}", {}),
        ("/skills/{skill}", {"name": ""}),
    ],
)
def test_empty_or_invalid_patches_are_422(
    client: FlaskClient,
    make_user: Callable[..., User],
    make_course: Callable[..., Course],
    as_user: Headers,
    url: str,
    body: dict[str, str],
) -> None:
    owner = make_user(Role.INSTRUCTOR)
    course = make_course(owner=owner)

    response = client.patch(
        url.format(course=course.id, skill=course.skills[0].id),
        json=body,
        headers=as_user(owner),
    )

    assert response.status_code == 422


def test_unknown_ids_are_404(
    client: FlaskClient, make_user: Callable[..., User], as_user: Headers
) -> None:
    headers = as_user(make_user(Role.ADMIN))

    assert client.get(f"/courses/{uuid.uuid4()}", headers=headers).status_code == 404
    assert client.get(f"/skills/{uuid.uuid4()}", headers=headers).status_code == 404
    assert client.get("/courses/not-a-uuid", headers=headers).status_code == 404
