"""Inputs and races found by review that once answered 500 or changed the wrong thing."""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Callable
from datetime import timedelta

import jwt
import pytest
from apiflask import APIFlask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.auth.models import Role, SigningKey, User
from app.content.models import Course, CourseStatus, Item, ItemKind, ItemStatus
from app.db import utcnow
from app.learning.models import PracticeSession, SkillState
from tests.conftest import PASSWORD, bearer, start_practice

Headers = dict[str, str]


def naive_cursor() -> str:
    raw = json.dumps(["2030-01-01T00:00:00", str(uuid.uuid4())]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/courses?cursor={cursor}", "cursor"),
        ("/admin/users?cursor={cursor}", "cursor"),
        ("/admin/audit-log?since=2024-01-01T00:00:00", "since"),
        ("/admin/audit-log?until=2024-01-01T00:00:00", "until"),
        ("/admin/users?q=%00", "q"),
        ("/admin/audit-log?action=a%00b", "action"),
    ],
)
def test_naive_datetimes_and_nul_characters_in_queries_are_422(
    client: FlaskClient,
    make_user: Callable[..., User],
    as_user: Callable[[User], Headers],
    url: str,
    field: str,
) -> None:
    response = client.get(url.format(cursor=naive_cursor()), headers=as_user(make_user(Role.ADMIN)))

    assert response.status_code == 422
    assert field in [error["field"] for error in response.get_json()["errors"]]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/auth/login", {"email": "a\u0000b@example.com", "password": "x"}),
        (
            "/auth/register",
            {"email": "nul@example.com", "password": PASSWORD, "display_name": "a\u0000"},
        ),
    ],
)
def test_nul_characters_in_bodies_are_422_and_store_nothing(
    client: FlaskClient, db_session: Session, path: str, body: dict[str, str]
) -> None:
    before = db_session.scalar(select(func.count()).select_from(User))

    response = client.post(path, json=body)

    assert response.status_code == 422
    assert db_session.scalar(select(func.count()).select_from(User)) == before


@pytest.mark.parametrize("body", [{"status": None}, {"prompt": None}, {"a": None}])
def test_explicit_nulls_in_an_item_patch_are_422_and_never_retire(
    client: FlaskClient,
    make_user: Callable[..., User],
    make_course: Callable[..., Course],
    as_user: Callable[[User], Headers],
    db_session: Session,
    body: dict[str, None],
) -> None:
    owner = make_user(Role.INSTRUCTOR)
    course = make_course(owner=owner)
    item = Item(
        skill_id=course.skills[0].id,
        kind=ItemKind.SHORT_ANSWER,
        prompt="Q",
        reference_answer="A",
        rubric="R",
        status=ItemStatus.PUBLISHED,
    )
    db_session.add(item)
    db_session.commit()

    response = client.patch(f"/items/{item.id}", json=body, headers=as_user(owner))

    assert response.status_code == 422
    db_session.refresh(item)
    assert item.status is ItemStatus.PUBLISHED


@pytest.fixture
def one_item_course(make_course: Callable[..., Course], db_session: Session) -> tuple[Course, Item]:
    course = make_course(status=CourseStatus.PUBLISHED)
    item = Item(
        skill_id=course.skills[0].id,
        kind=ItemKind.SHORT_ANSWER,
        prompt="Capital of France?",
        reference_answer="Paris",
        rubric="Paris",
        status=ItemStatus.PUBLISHED,
    )
    db_session.add(item)
    db_session.commit()
    return course, item


def test_only_a_learners_first_answer_calibrates_an_item(
    client: FlaskClient,
    one_item_course: tuple[Course, Item],
    make_user: Callable[..., User],
    as_user: Callable[[User], Headers],
    db_session: Session,
) -> None:
    course, item = one_item_course
    headers = as_user(make_user())
    session_id = start_practice(client, course, headers)["id"]
    difficulties = []

    for _ in range(3):
        served = client.get(f"/sessions/{session_id}/next", headers=headers).get_json()["item"][
            "id"
        ]
        client.post(
            f"/sessions/{session_id}/attempts",
            json={"item_id": served, "response": "Paris"},
            headers=headers,
        )
        db_session.expire_all()
        difficulties.append(db_session.get_one(Item, item.id).b)

    assert difficulties[0] < 0.0  # answered right: the item looks easier
    assert difficulties[1] == difficulties[2] == difficulties[0]
    assert db_session.get_one(Item, item.id).calibration_attempts == 1


def test_practice_stops_when_the_course_is_unpublished(
    client: FlaskClient,
    one_item_course: tuple[Course, Item],
    make_user: Callable[..., User],
    as_user: Callable[[User], Headers],
    db_session: Session,
) -> None:
    course, item = one_item_course
    headers = as_user(make_user())
    session_id = start_practice(client, course, headers)["id"]
    client.get(f"/sessions/{session_id}/next", headers=headers)
    course.status = CourseStatus.DRAFT
    db_session.commit()

    served = client.get(f"/sessions/{session_id}/next", headers=headers)
    answered = client.post(
        f"/sessions/{session_id}/attempts",
        json={"item_id": str(item.id), "response": "Paris"},
        headers=headers,
    )

    assert served.status_code == answered.status_code == 409
    assert answered.get_json()["type"].endswith("/course-closed")


def test_a_served_item_retired_before_the_answer_is_409_and_not_scored(
    client: FlaskClient,
    one_item_course: tuple[Course, Item],
    make_user: Callable[..., User],
    as_user: Callable[[User], Headers],
    db_session: Session,
) -> None:
    course, item = one_item_course
    headers = as_user(make_user())
    session_id = start_practice(client, course, headers)["id"]
    client.get(f"/sessions/{session_id}/next", headers=headers)
    item.status = ItemStatus.RETIRED
    db_session.commit()

    response = client.post(
        f"/sessions/{session_id}/attempts",
        json={"item_id": str(item.id), "response": "Paris"},
        headers=headers,
    )

    assert response.status_code == 409
    assert response.get_json()["type"].endswith("/item-withdrawn")
    assert (
        client.get(f"/sessions/{session_id}", headers=headers).get_json()["estimate"]["attempts"]
        == 0
    )
    # The withdrawn item is no longer pending: /next picks again instead of serving it.
    pending = db_session.scalar(
        select(PracticeSession.pending_item_id).where(PracticeSession.id == uuid.UUID(session_id))
    )
    assert pending is None


def test_a_key_retired_longer_ago_than_any_token_lives_verifies_nothing(
    app: APIFlask,
    client: FlaskClient,
    make_user: Callable[..., User],
    login: Callable[[User], dict[str, str]],
    db_session: Session,
) -> None:
    tokens = login(make_user())
    kid = jwt.get_unverified_header(tokens["access_token"])["kid"]
    key = db_session.get(SigningKey, kid)
    assert key is not None
    key.retired_at = utcnow() - timedelta(days=31)
    db_session.commit()
    app.extensions["mastery.keyring"].clear_cache()

    assert client.get("/auth/me", headers=bearer(tokens["access_token"])).status_code == 401


@pytest.mark.commits
def test_simultaneous_first_sessions_for_a_skill_all_succeed(
    app: APIFlask,
    engine: Engine,
    one_item_course: tuple[Course, Item],
    make_user: Callable[..., User],
    as_user: Callable[[User], Headers],
) -> None:
    course, _ = one_item_course
    learner = make_user()
    headers = as_user(learner)
    app.test_client().post(f"/courses/{course.id}/enrollments", headers=headers)
    barrier, statuses = threading.Barrier(6), []

    def open_session() -> None:
        barrier.wait(timeout=10)
        response = app.test_client().post(
            "/sessions", json={"skill_id": str(course.skills[0].id)}, headers=headers
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=open_session) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert statuses == [201] * 6
    with Session(engine) as fresh:
        assert (
            fresh.scalar(
                select(func.count()).select_from(SkillState).where(SkillState.user_id == learner.id)
            )
            == 1
        )
