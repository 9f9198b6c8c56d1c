"""Practice over real HTTP and Postgres: enrol, session, next, attempts, progress."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

import pytest
from apiflask import APIFlask
from flask.testing import FlaskClient
from sqlalchemy import delete, func, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.auth.models import Role, User
from app.content.models import Course, CourseStatus, Item, ItemKind, ItemStatus
from app.learning.models import Attempt, SkillState
from tests.conftest import start_practice
from tools.processes import wait_until

Headers = dict[str, str]


@pytest.fixture
def bank_course(make_course: Callable[..., Course], db_session: Session) -> Course:
    """A published course whose skill has 41 MCQ items with difficulties from -4 to 4."""
    course = make_course(status=CourseStatus.PUBLISHED)
    skill = course.skills[0]
    for i in range(41):
        db_session.add(
            Item(
                skill_id=skill.id,
                kind=ItemKind.MCQ,
                prompt=f"Question {i}",
                choices=[{"text": "right", "correct": True}, {"text": "wrong", "correct": False}],
                a=1.5,
                b=-4 + i * 0.2,
                status=ItemStatus.PUBLISHED,
            )
        )
    db_session.commit()
    return course


@pytest.fixture
def learner(make_user: Callable[..., User]) -> User:
    return make_user()


def test_a_full_practice_loop_moves_theta_toward_the_learners_ability(
    client: FlaskClient,
    bank_course: Course,
    learner: User,
    as_user: Callable[[User], Headers],
    db_session: Session,
) -> None:
    """A learner of true ability 1.5 answers every item easier than that correctly."""
    headers = as_user(learner)
    session = start_practice(client, bank_course, headers)
    difficulty = {str(item.id): item.b for item in bank_course.skills[0].items}
    true_theta, served = 1.5, []

    for _ in range(30):
        item = client.get(f"/sessions/{session['id']}/next", headers=headers).get_json()["item"]
        assert set(item) == {"id", "skill_id", "kind", "prompt", "choices"}
        assert all(set(choice) == {"text"} for choice in item["choices"])
        served.append(item["id"])
        answer = 0 if difficulty[item["id"]] < true_theta else 1
        result = client.post(
            f"/sessions/{session['id']}/attempts",
            json={"item_id": item["id"], "response": answer},
            headers=headers,
        )
        assert result.status_code == 201

    estimate = result.get_json()["estimate"]
    assert abs(estimate["theta"] - true_theta) < 0.5
    assert estimate["se"] < 0.5
    assert estimate["attempts"] == 30
    assert len(set(served[-20:])) == 20  # nothing repeated within the exclusion window
    progress = client.get("/me/progress", headers=headers).get_json()["skills"]
    assert progress == [
        {
            "skill_id": str(bank_course.skills[0].id),
            "course_id": str(bank_course.id),
            "skill_name": "Skill",
            "theta": estimate["theta"],
            "se": estimate["se"],
            "attempts": 30,
            "correct": sum(1 for i in served if difficulty[i] < true_theta),
            "mastered": estimate["mastered"],
        }
    ]
    assert db_session.scalar(select(func.count()).select_from(Attempt)) == 30


def test_correct_and_wrong_answers_move_theta_and_calibration_the_right_way(
    client: FlaskClient,
    bank_course: Course,
    learner: User,
    as_user: Callable[[User], Headers],
    db_session: Session,
) -> None:
    headers = as_user(learner)
    session = start_practice(client, bank_course, headers)

    first = client.get(f"/sessions/{session['id']}/next", headers=headers).get_json()["item"]
    b_before = db_session.get_one(Item, first["id"]).b
    right = client.post(
        f"/sessions/{session['id']}/attempts",
        json={"item_id": first["id"], "response": 0},
        headers=headers,
    ).get_json()
    second = client.get(f"/sessions/{session['id']}/next", headers=headers).get_json()["item"]
    wrong = client.post(
        f"/sessions/{session['id']}/attempts",
        json={"item_id": second["id"], "response": 1},
        headers=headers,
    ).get_json()

    assert right["correct"] is True
    assert right["score"] == 1.0
    assert right["estimate"]["theta"] > 0
    assert wrong["correct"] is False
    assert wrong["estimate"]["theta"] < right["estimate"]["theta"]
    assert wrong["feedback"].startswith("Not quite")
    db_session.expire_all()
    assert db_session.get_one(Item, first["id"]).b < b_before  # answered right: easier


def test_next_repeats_the_served_item_until_it_is_answered(
    client: FlaskClient, bank_course: Course, learner: User, as_user: Callable[[User], Headers]
) -> None:
    headers = as_user(learner)
    session = start_practice(client, bank_course, headers)

    first = client.get(f"/sessions/{session['id']}/next", headers=headers).get_json()
    again = client.get(f"/sessions/{session['id']}/next", headers=headers).get_json()

    assert first["item"]["id"] == again["item"]["id"]
    state = client.get(f"/sessions/{session['id']}", headers=headers).get_json()
    assert state["pending_item_id"] == first["item"]["id"]
    assert state["served"] == 1


def test_next_skips_the_learners_recent_answers_to_the_skill_across_sessions_until_none_is_left(
    client: FlaskClient,
    make_course: Callable[..., Course],
    learner: User,
    as_user: Callable[[User], Headers],
    db_session: Session,
) -> None:
    """The exclusion is the bank query's `recent` flag (the learner's latest answers to the
    skill, whichever session they came from); with every item recent, /next serves one anyway."""
    course = make_course(status=CourseStatus.PUBLISHED)
    for i in range(3):
        db_session.add(
            Item(
                skill_id=course.skills[0].id,
                kind=ItemKind.MCQ,
                prompt=f"Question {i}",
                choices=[{"text": "right", "correct": True}, {"text": "wrong", "correct": False}],
                a=1.0,
                b=0.0,  # equally informative: only the exclusion tells them apart
                status=ItemStatus.PUBLISHED,
            )
        )
    db_session.commit()
    headers = as_user(learner)

    def serve_and_answer(session_id: str) -> str:
        served = client.get(f"/sessions/{session_id}/next", headers=headers)
        assert served.status_code == 200, served.get_json()
        item_id: str = served.get_json()["item"]["id"]
        answered = client.post(
            f"/sessions/{session_id}/attempts",
            json={"item_id": item_id, "response": 0},
            headers=headers,
        )
        assert answered.status_code == 201, answered.get_json()
        return item_id

    first_session = start_practice(client, course, headers)["id"]
    earlier = [serve_and_answer(first_session) for _ in range(2)]
    second_session = start_practice(client, course, headers)["id"]
    third = serve_and_answer(second_session)
    fallback = serve_and_answer(second_session)

    bank = {str(item.id) for item in course.skills[0].items}
    assert len({*earlier, third}) == 3  # never a recent answer while another item is left
    assert {*earlier, third} == bank
    assert fallback in bank  # every item recent: one is served all the same


def test_practice_goes_on_when_the_skill_state_row_is_gone(
    client: FlaskClient,
    bank_course: Course,
    learner: User,
    as_user: Callable[[User], Headers],
    db_session: Session,
) -> None:
    """Starting a session creates the learner's skill state; should a data repair delete it,
    /next and answers start again from the prior instead of answering 404 or 500."""
    headers = as_user(learner)
    session = start_practice(client, bank_course, headers)
    db_session.execute(delete(SkillState).where(SkillState.user_id == learner.id))
    db_session.commit()

    served = client.get(f"/sessions/{session['id']}/next", headers=headers)
    db_session.execute(delete(SkillState).where(SkillState.user_id == learner.id))
    db_session.commit()
    answered = client.post(
        f"/sessions/{session['id']}/attempts",
        json={"item_id": served.get_json()["item"]["id"], "response": 0},
        headers=headers,
    )

    assert served.status_code == 200
    assert served.get_json()["estimate"]["attempts"] == 0
    assert answered.status_code == 201, answered.get_json()
    assert answered.get_json()["estimate"]["attempts"] == 1
    states = db_session.scalars(select(SkillState).where(SkillState.user_id == learner.id)).all()
    assert [state.attempts for state in states] == [1]


@pytest.mark.commits
def test_next_waiting_behind_an_answer_serves_from_the_estimate_that_answer_wrote(
    app: APIFlask,
    engine: Engine,
    bank_course: Course,
    learner: User,
    as_user: Callable[[User], Headers],
) -> None:
    """/next locks the session and the skill state: when it waits for an answer holding
    them, it continues with what that answer wrote, not with the state from before."""
    headers = as_user(learner)
    session = start_practice(app.test_client(), bank_course, headers)
    url = f"/sessions/{session['id']}/next"
    assert app.test_client().get(url, headers=headers).status_code == 200
    served: list[Any] = []

    def waiting_for_a_lock() -> bool:
        with engine.connect() as probe:
            return bool(
                probe.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE wait_event_type = 'Lock' AND datname = current_database()"
                    )
                )
            )

    with engine.connect() as answering:  # an answer in progress, as submit_attempt holds it
        answering.execute(
            text("SELECT id FROM practice_sessions WHERE id = :id FOR UPDATE"),
            {"id": session["id"]},
        )
        asking = threading.Thread(
            target=lambda: served.append(app.test_client().get(url, headers=headers))
        )
        asking.start()
        wait_until("/next to wait for the session's lock", waiting_for_a_lock, 10, interval=0.05)
        answering.execute(
            text("UPDATE skill_states SET attempts = 7, theta = 1.25 WHERE user_id = :user"),
            {"user": learner.id},
        )
        answering.execute(
            text("UPDATE practice_sessions SET pending_item_id = NULL WHERE id = :id"),
            {"id": session["id"]},
        )
        answering.commit()
    asking.join(timeout=30)

    assert len(served) == 1
    assert served[0].status_code == 200, served[0].get_json()
    assert served[0].get_json()["estimate"]["attempts"] == 7
    assert served[0].get_json()["estimate"]["theta"] == pytest.approx(1.25)


def test_answering_an_item_that_was_not_served_is_409_and_counts_nothing(
    client: FlaskClient,
    bank_course: Course,
    learner: User,
    as_user: Callable[[User], Headers],
    db_session: Session,
) -> None:
    headers = as_user(learner)
    session = start_practice(client, bank_course, headers)
    other = next(item for item in bank_course.skills[0].items)

    before_next = client.post(
        f"/sessions/{session['id']}/attempts",
        json={"item_id": str(other.id), "response": 0},
        headers=headers,
    )
    served = client.get(f"/sessions/{session['id']}/next", headers=headers).get_json()["item"]["id"]
    wrong_item = next(str(i.id) for i in bank_course.skills[0].items if str(i.id) != served)
    mismatched = client.post(
        f"/sessions/{session['id']}/attempts",
        json={"item_id": wrong_item, "response": 0},
        headers=headers,
    )

    assert before_next.status_code == mismatched.status_code == 409
    assert mismatched.get_json()["type"].endswith("/item-not-served")
    assert db_session.scalar(select(func.count()).select_from(Attempt)) == 0


def test_a_retried_submission_with_the_same_idempotency_key_counts_once(
    client: FlaskClient,
    bank_course: Course,
    learner: User,
    as_user: Callable[[User], Headers],
    db_session: Session,
) -> None:
    headers = as_user(learner)
    session = start_practice(client, bank_course, headers)
    item = client.get(f"/sessions/{session['id']}/next", headers=headers).get_json()["item"]
    url, body = f"/sessions/{session['id']}/attempts", {"item_id": item["id"], "response": 0}
    keyed = {**headers, "Idempotency-Key": "attempt-1"}

    first = client.post(url, json=body, headers=keyed)
    retry = client.post(url, json=body, headers=keyed)
    other = client.post(url, json={**body, "item_id": session["skill_id"]}, headers=keyed)

    following = client.get(f"/sessions/{session['id']}/next", headers=headers).get_json()["item"]
    reused = client.post(url, json={**body, "item_id": following["id"]}, headers=keyed)

    assert (first.status_code, retry.status_code) == (201, 200)
    assert retry.get_json() == first.get_json()
    assert other.status_code == 409
    assert reused.status_code == 409  # the key's attempt answered another (existing) item
    assert reused.get_json()["type"].endswith("/idempotency-key-reused")
    assert db_session.scalar(select(func.count()).select_from(Attempt)) == 1
    assert (
        client.get(f"/sessions/{session['id']}", headers=headers).get_json()["estimate"]["attempts"]
        == 1
    )


@pytest.mark.parametrize(
    "response", [2, -1, "0", True], ids=["past-the-end", "negative", "text", "bool"]
)
def test_an_impossible_mcq_response_is_422_and_changes_nothing(
    client: FlaskClient,
    bank_course: Course,
    learner: User,
    as_user: Callable[[User], Headers],
    db_session: Session,
    response: object,
) -> None:
    headers = as_user(learner)
    session = start_practice(client, bank_course, headers)
    item = client.get(f"/sessions/{session['id']}/next", headers=headers).get_json()["item"]

    result = client.post(
        f"/sessions/{session['id']}/attempts",
        json={"item_id": item["id"], "response": response},
        headers=headers,
    )

    assert result.status_code == 422
    assert db_session.scalar(select(func.count()).select_from(Attempt)) == 0
    assert (
        client.get(f"/sessions/{session['id']}", headers=headers).get_json()["pending_item_id"]
        == item["id"]
    )


def test_short_answers_are_graded_by_the_configured_ai_provider(
    client: FlaskClient,
    make_course: Callable[..., Course],
    db_session: Session,
    learner: User,
    as_user: Callable[[User], Headers],
) -> None:
    course = make_course(status=CourseStatus.PUBLISHED)
    db_session.add(
        Item(
            skill_id=course.skills[0].id,
            kind=ItemKind.SHORT_ANSWER,
            prompt="Capital of France?",
            reference_answer="Paris",
            rubric="Paris",
            status=ItemStatus.PUBLISHED,
        )
    )
    db_session.commit()
    headers = as_user(learner)
    session = start_practice(client, course, headers)
    results = []

    for answer in ("  paris! ", "London"):
        item = client.get(f"/sessions/{session['id']}/next", headers=headers).get_json()["item"]
        results.append(
            client.post(
                f"/sessions/{session['id']}/attempts",
                json={"item_id": item["id"], "response": answer},
                headers=headers,
            ).get_json()
        )

    assert [(r["correct"], r["score"], r["graded_by"]) for r in results] == [
        (True, 1.0, "offline"),
        (False, 0.0, "offline"),
    ]
    assert "Paris" not in results[1]["feedback"]  # the reference answer stays secret


def test_enrolment_is_idempotent_and_needs_a_published_course(
    client: FlaskClient,
    make_course: Callable[..., Course],
    learner: User,
    as_user: Callable[[User], Headers],
    make_user: Callable[..., User],
) -> None:
    headers = as_user(learner)
    published = make_course(status=CourseStatus.PUBLISHED)
    owner = make_user(Role.INSTRUCTOR)
    draft = make_course(owner=owner)

    assert client.post(f"/courses/{published.id}/enrollments", headers=headers).status_code == 201
    assert client.post(f"/courses/{published.id}/enrollments", headers=headers).status_code == 200
    assert client.post(f"/courses/{draft.id}/enrollments", headers=headers).status_code == 404
    assert (
        client.post(f"/courses/{draft.id}/enrollments", headers=as_user(owner)).status_code == 409
    )


def test_practice_needs_enrolment_and_a_published_item_bank(
    client: FlaskClient,
    make_course: Callable[..., Course],
    learner: User,
    as_user: Callable[[User], Headers],
) -> None:
    headers = as_user(learner)
    course = make_course(status=CourseStatus.PUBLISHED)
    skill_id = str(course.skills[0].id)

    not_enrolled = client.post("/sessions", json={"skill_id": skill_id}, headers=headers)
    client.post(f"/courses/{course.id}/enrollments", headers=headers)
    session = client.post("/sessions", json={"skill_id": skill_id}, headers=headers).get_json()
    empty = client.get(f"/sessions/{session['id']}/next", headers=headers)

    assert not_enrolled.status_code == 403
    assert empty.status_code == 409
    assert empty.get_json()["type"].endswith("/no-items")


def test_another_learners_session_is_invisible(
    client: FlaskClient,
    bank_course: Course,
    learner: User,
    make_user: Callable[..., User],
    as_user: Callable[[User], Headers],
) -> None:
    session = start_practice(client, bank_course, as_user(learner))
    item = client.get(f"/sessions/{session['id']}/next", headers=as_user(learner)).get_json()[
        "item"
    ]
    intruder = as_user(make_user())

    assert client.get(f"/sessions/{session['id']}", headers=intruder).status_code == 404
    assert client.get(f"/sessions/{session['id']}/next", headers=intruder).status_code == 404
    attempt = client.post(
        f"/sessions/{session['id']}/attempts",
        json={"item_id": item["id"], "response": 0},
        headers=intruder,
    )
    assert attempt.status_code == 404
    assert client.get("/me/progress", headers=intruder).get_json() == {"skills": []}


def test_a_new_learner_starts_at_the_prior(
    client: FlaskClient, bank_course: Course, learner: User, as_user: Callable[[User], Headers]
) -> None:
    session = start_practice(client, bank_course, as_user(learner))

    assert math.isclose(session["estimate"]["theta"], 0.0, abs_tol=1e-6)
    assert math.isclose(session["estimate"]["se"], 1.0, abs_tol=0.01)
    assert session["estimate"]["mastered"] is False
