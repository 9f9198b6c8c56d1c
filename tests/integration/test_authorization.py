"""Who may call what: one declarative row per route, checked for every role.

`test_every_route_has_an_authorization_row` walks the application's URL map, so a new route
without a row fails the gate until someone decides (and tests) who may call it.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from apiflask import APIFlask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from app.auth.models import Role, User
from app.content.models import Course, CourseStatus, Item, ItemKind, ItemStatus, Skill
from app.jobs.models import Job, JobKind, JobStatus
from app.learning.models import Enrollment, PracticeSession
from tests.conftest import PASSWORD, bearer

ROLES = ("anonymous", "learner", "instructor", "admin")
IGNORED_METHODS = {"HEAD", "OPTIONS"}


@dataclass(frozen=True)
class World:
    """What a request may refer to: a user and their login, and another instructor's course."""

    target: User
    tokens: dict[str, str]
    course: Course
    skill: Skill
    published_item: Item
    draft_item: Item
    practice: PracticeSession
    job: Job


def not_owner(status: int) -> dict[str, int]:
    """Instructors may do this to their own content only; the world's course is someone else's."""
    return {"anonymous": 401, "learner": 403, "instructor": 403, "admin": status}


def draft_owner(status: int) -> dict[str, int]:
    """Another instructor's draft is invisible to a non-owning instructor: 404, not 403."""
    return {"anonymous": 401, "learner": 403, "instructor": 404, "admin": status}


def authors(status: int) -> dict[str, int]:
    return {"anonymous": 401, "learner": 403, "instructor": status, "admin": status}


@dataclass(frozen=True)
class Row:
    method: str
    rule: str
    expected: dict[str, int]
    path: Callable[[World], str] | None = None
    body: Callable[[World], Any] | None = None
    # A multipart/form-data body instead of JSON (file parts as (stream, name, type) tuples).
    form: Callable[[World], dict[str, Any]] | None = None
    query: dict[str, str] = field(default_factory=dict)
    # Runs as the caller before the request (e.g. enrol before starting a session).
    before: Callable[[FlaskClient, dict[str, str], World], object] | None = None


def everyone(status: int) -> dict[str, int]:
    return dict.fromkeys(ROLES, status)


def signed_in(status: int) -> dict[str, int]:
    return {"anonymous": 401, "learner": status, "instructor": status, "admin": status}


def admins_only(status: int) -> dict[str, int]:
    return {"anonymous": 401, "learner": 403, "instructor": 403, "admin": status}


TABLE = [
    Row("GET", "/healthz", everyone(200)),
    Row("GET", "/readyz", everyone(200)),
    # Open in development and test; METRICS_TOKEN guards it when hardened (test_metrics.py).
    Row("GET", "/metrics", everyone(200)),
    Row("GET", "/openapi.json", everyone(200)),
    Row("GET", "/docs", everyone(200)),
    Row("GET", "/docs/oauth2-redirect", everyone(200)),
    Row(
        "GET",
        "/docs/static/<path:filename>",
        everyone(200),
        path=lambda w: "/docs/static/index.css",
    ),
    Row(
        "POST",
        "/auth/register",
        everyone(201),
        body=lambda w: {
            "email": f"new-{w.target.id}@example.com",
            "password": PASSWORD,
            "display_name": "New",
        },
    ),
    Row(
        "POST",
        "/auth/login",
        everyone(200),
        body=lambda w: {"email": w.target.email, "password": PASSWORD},
    ),
    Row(
        "POST",
        "/auth/refresh",
        everyone(200),
        body=lambda w: {"refresh_token": w.tokens["refresh_token"]},
    ),
    # The refresh token is the credential; a bearer, when sent, must be of the same account
    # (it is deny-listed too), so a signed-in caller presenting another's login gets 401.
    Row(
        "POST",
        "/auth/logout",
        {"anonymous": 204, "learner": 401, "instructor": 401, "admin": 401},
        body=lambda w: {"refresh_token": w.tokens["refresh_token"]},
    ),
    Row("GET", "/auth/me", signed_in(200)),
    Row(
        "POST",
        "/auth/password",
        signed_in(204),
        body=lambda w: {"current_password": PASSWORD, "new_password": "violet kettle ferry mosaic"},
    ),
    Row("GET", "/courses", signed_in(200)),
    Row("POST", "/courses", authors(201), body=lambda w: {"title": "Algebra"}),
    Row(
        "GET", "/courses/<uuid:course_id>", signed_in(200), path=lambda w: f"/courses/{w.course.id}"
    ),
    Row(
        "PATCH",
        "/courses/<uuid:course_id>",
        not_owner(200),
        path=lambda w: f"/courses/{w.course.id}",
        body=lambda w: {"title": "Renamed"},
    ),
    Row(
        "DELETE",
        "/courses/<uuid:course_id>",
        not_owner(204),
        path=lambda w: f"/courses/{w.course.id}",
    ),
    Row(
        "GET",
        "/courses/<uuid:course_id>/skills",
        signed_in(200),
        path=lambda w: f"/courses/{w.course.id}/skills",
    ),
    Row(
        "POST",
        "/courses/<uuid:course_id>/skills",
        not_owner(201),
        path=lambda w: f"/courses/{w.course.id}/skills",
        body=lambda w: {"name": "Fractions"},
    ),
    Row("GET", "/skills/<uuid:skill_id>", signed_in(200), path=lambda w: f"/skills/{w.skill.id}"),
    Row(
        "PATCH",
        "/skills/<uuid:skill_id>",
        not_owner(200),
        path=lambda w: f"/skills/{w.skill.id}",
        body=lambda w: {"name": "Decimals"},
    ),
    Row(
        "DELETE", "/skills/<uuid:skill_id>", not_owner(204), path=lambda w: f"/skills/{w.skill.id}"
    ),
    Row(
        "GET",
        "/skills/<uuid:skill_id>/items",
        signed_in(200),
        path=lambda w: f"/skills/{w.skill.id}/items",
    ),
    Row(
        "POST",
        "/skills/<uuid:skill_id>/items",
        not_owner(201),
        path=lambda w: f"/skills/{w.skill.id}/items",
        body=lambda w: {
            "kind": "short_answer",
            "prompt": "Why?",
            "reference_answer": "So.",
            "rubric": "Any.",
        },
    ),
    Row(
        "GET",
        "/skills/<uuid:skill_id>/materials",
        not_owner(200),
        path=lambda w: f"/skills/{w.skill.id}/materials",
    ),
    Row(
        "POST",
        "/skills/<uuid:skill_id>/materials",
        not_owner(201),
        path=lambda w: f"/skills/{w.skill.id}/materials",
        form=lambda w: {"file": (io.BytesIO(b"# Notes\n"), "notes.md", "text/markdown")},
    ),
    Row(
        "GET",
        "/items/<uuid:item_id>",
        signed_in(200),
        path=lambda w: f"/items/{w.published_item.id}",
    ),
    Row(
        "PATCH",
        "/items/<uuid:item_id>",
        not_owner(200),
        path=lambda w: f"/items/{w.published_item.id}",
        body=lambda w: {"status": "retired"},
    ),
    Row(
        "DELETE",
        "/items/<uuid:item_id>",
        draft_owner(204),
        path=lambda w: f"/items/{w.draft_item.id}",
    ),
    Row(
        "POST",
        "/items/<uuid:item_id>/publish",
        draft_owner(200),
        path=lambda w: f"/items/{w.draft_item.id}/publish",
    ),
    Row(
        "POST",
        "/courses/<uuid:course_id>/enrollments",
        signed_in(201),
        path=lambda w: f"/courses/{w.course.id}/enrollments",
    ),
    Row(
        "POST",
        "/sessions",
        signed_in(201),
        body=lambda w: {"skill_id": str(w.skill.id)},
        before=lambda c, h, w: c.post(f"/courses/{w.course.id}/enrollments", headers=h),
    ),
    # Practice sessions are private: everyone but their learner gets 404, admins included.
    Row(
        "GET",
        "/sessions/<uuid:session_id>",
        signed_in(404),
        path=lambda w: f"/sessions/{w.practice.id}",
    ),
    Row(
        "GET",
        "/sessions/<uuid:session_id>/next",
        signed_in(404),
        path=lambda w: f"/sessions/{w.practice.id}/next",
    ),
    Row(
        "POST",
        "/sessions/<uuid:session_id>/attempts",
        signed_in(404),
        path=lambda w: f"/sessions/{w.practice.id}/attempts",
        body=lambda w: {"item_id": str(w.published_item.id), "response": "x"},
    ),
    Row(
        "GET",
        "/sessions/<uuid:session_id>/items/<uuid:item_id>/hint",
        signed_in(404),
        path=lambda w: f"/sessions/{w.practice.id}/items/{w.published_item.id}/hint",
    ),
    Row("GET", "/me/progress", signed_in(200)),
    Row("GET", "/admin/users", admins_only(200)),
    Row(
        "PATCH",
        "/admin/users/<uuid:user_id>",
        admins_only(200),
        path=lambda w: f"/admin/users/{w.target.id}",
        body=lambda w: {"role": "instructor"},
    ),
    Row("GET", "/admin/audit-log", admins_only(200)),
    Row("GET", "/admin/stats", admins_only(200)),
    Row(
        "POST",
        "/skills/<uuid:skill_id>/generation-jobs",
        not_owner(202),
        path=lambda w: f"/skills/{w.skill.id}/generation-jobs",
        body=lambda w: {"count": 1},
    ),
    # A job is its creator's (and the course owner's): others get 404, not 403.
    Row(
        "GET",
        "/jobs/<uuid:job_id>",
        {"anonymous": 401, "learner": 404, "instructor": 404, "admin": 200},
        path=lambda w: f"/jobs/{w.job.id}",
    ),
    Row("GET", "/admin/jobs", admins_only(200)),
    Row(
        "POST",
        "/admin/jobs/<uuid:job_id>/retry",
        admins_only(202),
        path=lambda w: f"/admin/jobs/{w.job.id}/retry",
    ),
]


def test_every_route_has_an_authorization_row(session_app: APIFlask) -> None:
    routes = {
        (method, rule.rule)
        for rule in session_app.url_map.iter_rules()
        for method in (rule.methods or set()) - IGNORED_METHODS
    }
    rows = {(row.method, row.rule) for row in TABLE}

    assert routes - rows == set(), "routes without an authorization row"
    assert rows - routes == set(), "rows for routes that no longer exist"


def test_every_row_names_every_role() -> None:
    for row in TABLE:
        assert set(row.expected) == set(ROLES), row.rule


@pytest.mark.parametrize(
    ("row", "role"),
    list(itertools.product(TABLE, ROLES)),
    ids=[f"{row.method} {row.rule} as {role}" for row, role in itertools.product(TABLE, ROLES)],
)
def test_route_answers_each_role_as_the_table_says(
    client: FlaskClient,
    make_user: Callable[..., User],
    login: Callable[[User], dict[str, str]],
    make_course: Callable[..., Course],
    db_session: Session,
    row: Row,
    role: str,
) -> None:
    target = make_user()
    course = make_course(status=CourseStatus.PUBLISHED)
    skill = course.skills[0]
    items = [
        Item(
            skill_id=skill.id,
            kind=ItemKind.SHORT_ANSWER,
            prompt="Q",
            reference_answer="A",
            rubric="R",
            status=status,
        )
        for status in (ItemStatus.PUBLISHED, ItemStatus.DRAFT)
    ]
    practice = PracticeSession(user_id=target.id, skill_id=skill.id)
    job = Job(
        kind=JobKind.GENERATE_ITEMS,
        status=JobStatus.DEAD,
        skill_id=skill.id,
        created_by=course.owner_id,
        params={"count": 1},
    )
    db_session.add_all([*items, practice, job, Enrollment(user_id=target.id, course_id=course.id)])
    db_session.commit()
    world = World(target, login(target), course, skill, items[0], items[1], practice, job)
    headers = {} if role == "anonymous" else bearer(login(make_user(Role(role)))["access_token"])
    if row.before is not None and headers:
        row.before(client, headers, world)

    response = client.open(
        row.path(world) if row.path else row.rule,
        method=row.method,
        headers=headers,
        json=row.body(world) if row.body else None,
        data=row.form(world) if row.form else None,
        query_string=row.query,
    )

    assert response.status_code == row.expected[role], response.get_data(as_text=True)[:300]
    if response.status_code >= 400:
        assert response.mimetype == "application/problem+json"
    response.close()
