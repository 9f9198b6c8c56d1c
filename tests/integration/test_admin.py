"""Admin listing, search, audit-log filters, pagination and stats."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
from apiflask import APIFlask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.audit.models import AuditRecord
from app.auth.models import Role, User
from app.content.models import Course, Item, ItemKind, ItemStatus
from app.db import utcnow
from app.learning.models import Attempt, PracticeSession
from tests.conftest import PASSWORD, bearer

Login = Callable[[User], dict[str, str]]


@pytest.fixture
def admin_headers(make_user: Callable[..., User], login: Login) -> dict[str, str]:
    return bearer(login(make_user(Role.ADMIN))["access_token"])


def test_users_are_paged_newest_first_without_gaps_or_repeats(
    client: FlaskClient, make_user: Callable[..., User], admin_headers: dict[str, str]
) -> None:
    created = [make_user() for _ in range(7)]
    seen: list[str] = []
    cursor = None

    for _ in range(10):
        url = "/admin/users?limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(url, headers=admin_headers).get_json()
        assert len(page["items"]) <= 3
        seen.extend(item["id"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert len(seen) == len(set(seen)) == 8  # seven learners and the admin
    assert {str(u.id) for u in created} <= set(seen)
    assert seen[:7] == [str(u.id) for u in reversed(created)]  # the admin came first, so last


def test_users_can_be_searched_and_filtered(
    client: FlaskClient, make_user: Callable[..., User], admin_headers: dict[str, str]
) -> None:
    make_user(email="grace.hopper@example.com")
    make_user(Role.INSTRUCTOR, email="alan@example.com")
    make_user(email="inactive@example.com", active=False)

    def emails(query: str) -> set[str]:
        page = client.get(f"/admin/users?{query}", headers=admin_headers).get_json()
        return {item["email"] for item in page["items"]}

    assert emails("q=HOPPER") == {"grace.hopper@example.com"}
    assert emails("role=instructor") == {"alan@example.com"}
    assert emails("active=false") == {"inactive@example.com"}
    assert emails("q=%25") == set()  # a literal % matches nothing, it is not a wildcard


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("cursor=not-a-cursor", "cursor"),
        ("role=root", "role"),
        ("nope=1", "nope"),
    ],
)
def test_bad_list_parameters_are_422_naming_the_field(
    client: FlaskClient, admin_headers: dict[str, str], query: str, field: str
) -> None:
    response = client.get(f"/admin/users?{query}", headers=admin_headers)

    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert field in [error["field"] for error in response.get_json()["errors"]]


def test_failed_logins_are_audited_without_the_offered_credentials(
    client: FlaskClient, make_user: Callable[..., User], admin_headers: dict[str, str]
) -> None:
    victim = make_user()
    client.post("/auth/login", json={"email": victim.email, "password": "wrong-password-123"})
    client.post(
        "/auth/login", json={"email": "ghost@example.com", "password": "ghost-password-123"}
    )

    page = client.get("/admin/audit-log?action=auth.login_failed", headers=admin_headers).get_json()

    reasons = {(item["target_id"], item["details"]["reason"]) for item in page["items"]}
    assert reasons == {(str(victim.id), "bad_password"), (None, "unknown_email")}
    text = str(page)
    assert "ghost@example.com" not in text
    assert "password-123" not in text
    assert all(item["request_id"] for item in page["items"])


def test_audit_log_filters_by_actor_and_time_range(
    client: FlaskClient,
    make_user: Callable[..., User],
    db_session: Session,
    admin_headers: dict[str, str],
) -> None:
    actor = make_user()
    now = utcnow()
    for hours_ago in (1, 30, 50):
        db_session.add(
            AuditRecord(
                actor_id=actor.id,
                action="test.event",
                occurred_at=now - timedelta(hours=hours_ago),
                details={},
            )
        )
    db_session.commit()
    since = (now - timedelta(hours=40)).isoformat()
    until = (now - timedelta(hours=2)).isoformat()

    response = client.get(
        "/admin/audit-log",
        query_string={"actor_id": str(actor.id), "since": since, "until": until},
        headers=admin_headers,
    )

    items = response.get_json()["items"]
    assert len(items) == 1
    assert items[0]["action"] == "test.event"


def test_stats_count_users_by_role(
    client: FlaskClient, make_user: Callable[..., User], admin_headers: dict[str, str]
) -> None:
    make_user()
    make_user(active=False)
    make_user(Role.INSTRUCTOR)

    stats = client.get("/admin/stats", headers=admin_headers).get_json()

    assert stats["users_by_role"] == {"learner": 2, "instructor": 1, "admin": 1}
    assert stats["users_total"] == 4
    assert stats["users_active"] == 3
    assert stats["audit_records_last_24h"] >= 0
    assert stats["items_by_status"] == {"draft": 0, "published": 0, "retired": 0}
    assert list(stats["attempts_per_day"].values()) == [0] * 7


def test_stats_count_items_by_status_and_attempts_per_utc_day(
    client: FlaskClient,
    make_user: Callable[..., User],
    make_course: Callable[..., Course],
    db_session: Session,
    admin_headers: dict[str, str],
) -> None:
    learner = make_user()
    course = make_course()
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
        for status in (ItemStatus.PUBLISHED, ItemStatus.PUBLISHED, ItemStatus.RETIRED)
    ]
    practice = PracticeSession(user_id=learner.id, skill_id=skill.id)
    db_session.add_all([*items, practice])
    db_session.flush()
    now = utcnow()
    for days_ago in (0, 0, 2, 9):
        db_session.add(
            Attempt(
                session_id=practice.id,
                user_id=learner.id,
                item_id=items[0].id,
                response="A",
                correct=True,
                score=1.0,
                feedback="",
                graded_by="rules",
                theta_after=0.0,
                se_after=1.0,
                mastered_after=False,
                attempts_after=1,
                created_at=now - timedelta(days=days_ago),
            )
        )
    db_session.commit()

    stats = client.get("/admin/stats", headers=admin_headers).get_json()

    assert stats["items_by_status"] == {"draft": 0, "published": 2, "retired": 1}
    per_day = stats["attempts_per_day"]
    assert len(per_day) == 7
    assert per_day[now.date().isoformat()] == 2
    assert per_day[(now - timedelta(days=2)).date().isoformat()] == 1
    assert sum(per_day.values()) == 3  # the attempt nine days ago is outside the window


def test_deactivation_and_role_changes_are_separate_audit_actions(
    client: FlaskClient, make_user: Callable[..., User], admin_headers: dict[str, str]
) -> None:
    target = make_user()

    client.patch(
        f"/admin/users/{target.id}",
        json={"role": "instructor", "is_active": False},
        headers=admin_headers,
    )
    client.patch(f"/admin/users/{target.id}", json={"is_active": True}, headers=admin_headers)

    page = client.get("/admin/audit-log?limit=10", headers=admin_headers).get_json()
    actions = [item["action"] for item in page["items"] if item["target_id"] == str(target.id)]
    assert sorted(actions) == [
        "admin.role_changed",
        "admin.user_deactivated",
        "admin.user_reactivated",
    ]
    assert (
        client.post("/auth/login", json={"email": target.email, "password": PASSWORD}).status_code
        == 200
    )


@pytest.mark.commits
def test_two_admins_demoting_each_other_at_once_leave_one_admin(
    app: APIFlask, engine: Engine, make_user: Callable[..., User], login: Login
) -> None:
    first, second = make_user(Role.ADMIN), make_user(Role.ADMIN)
    plans = [
        (bearer(login(first)["access_token"]), second),
        (bearer(login(second)["access_token"]), first),
    ]
    barrier, statuses = threading.Barrier(2), []

    def demote(headers: dict[str, str], target: User) -> None:
        barrier.wait(timeout=10)
        response = app.test_client().patch(
            f"/admin/users/{target.id}", json={"role": "learner"}, headers=headers
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=demote, args=plan) for plan in plans]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(statuses)[0] == 200
    assert sorted(statuses)[1] in (
        401,
        403,
        409,
    )  # refused: by the last-admin rule or the lost role
    with Session(engine) as fresh:
        admins = fresh.scalar(
            select(func.count()).select_from(User).where(User.role == Role.ADMIN, User.is_active)
        )
    assert admins == 1
