"""Short answers graded by the AI provider, with the rule-based fallback, and hints.

The OpenAI-compatible provider is faked only at the HTTP layer, with respx in strict mode
(every route called, nothing unmocked): the app's own providers, retries, time budget and
circuit breaker run for real, on a fake clock so nothing waits.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import respx
from apiflask import APIFlask
from flask import g
from flask.testing import FlaskClient
from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.ai.runtime import AIProviders
from app.auth.models import User
from app.content.models import Course, CourseStatus, Item, ItemKind, ItemStatus
from app.learning.models import Attempt, SkillState
from tests.ai_fakes import FakeTime, openai_providers
from tests.conftest import start_practice

Headers = dict[str, str]
AI_BASE_URL = "https://ai.test/v1"
REFERENCE = "Chlorophyll absorbs red and blue light"
RUBRIC = "- mentions absorbing light\nnames red or blue light\n"
ANSWER = "It soaks up light, mostly the red and blue part."


def completion(content: dict[str, Any] | str) -> httpx.Response:
    message = content if isinstance(content, str) else json.dumps(content)
    return httpx.Response(
        200,
        json={
            "choices": [{"index": 0, "message": {"role": "assistant", "content": message}}],
            "usage": {"prompt_tokens": 210, "completion_tokens": 40, "total_tokens": 250},
        },
    )


def grade(
    score: float, correct: bool, feedback: str = "Good: you named the key idea."
) -> httpx.Response:
    return completion({"score": score, "correct": correct, "feedback": feedback})


@pytest.fixture
def llm() -> Iterator[respx.MockRouter]:
    """The only way out to the AI provider; a request no route expects fails the test."""
    with respx.mock(base_url=AI_BASE_URL, assert_all_called=True, assert_all_mocked=True) as router:
        yield router


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture(scope="module")
def http_client() -> Iterator[httpx.Client]:
    with httpx.Client() as client:  # building a TLS context per test is slow
        yield client


@pytest.fixture
def openai(app: APIFlask, http_client: httpx.Client, fake_time: FakeTime) -> Iterator[AIProviders]:
    """The app's providers as `AI_PROVIDER=openai` with a bad key builds them, for one test."""
    with openai_providers(app, "bad", client=http_client, clock=fake_time) as providers:
        yield providers


def short_answer_course(
    make_course: Callable[..., Course],
    db_session: Session,
    reference: str = REFERENCE,
    rubric: str = RUBRIC,
) -> Course:
    course = make_course(status=CourseStatus.PUBLISHED)
    db_session.add(
        Item(
            skill_id=course.skills[0].id,
            kind=ItemKind.SHORT_ANSWER,
            prompt="What does chlorophyll do in photosynthesis?",
            reference_answer=reference,
            rubric=rubric,
            status=ItemStatus.PUBLISHED,
        )
    )
    db_session.commit()
    return course


@pytest.fixture
def course(make_course: Callable[..., Course], db_session: Session) -> Course:
    return short_answer_course(make_course, db_session)


@pytest.fixture
def headers(make_user: Callable[..., User], as_user: Callable[[User], Headers]) -> Headers:
    return as_user(make_user())


def serve(client: FlaskClient, course: Course, headers: Headers) -> tuple[str, str]:
    """Start a session and ask for its item: (session id, item id)."""
    session_id = start_practice(client, course, headers)["id"]
    response = client.get(f"/sessions/{session_id}/next", headers=headers)
    assert response.status_code == 200, response.get_json()
    return session_id, response.get_json()["item"]["id"]


def answer(
    client: FlaskClient,
    session_id: str,
    item_id: str,
    headers: Headers,
    response: str | int = ANSWER,
    key: str | None = None,
) -> Any:
    extra = {"Idempotency-Key": key} if key else {}
    return client.post(
        f"/sessions/{session_id}/attempts",
        json={"item_id": item_id, "response": response},
        headers={**headers, **extra},
    )


def attempts_in(db_session: Session) -> int:
    return db_session.scalar(select(func.count()).select_from(Attempt)) or 0


def reveals_reference(text: str) -> bool:
    return "chlorophyll absorbs red and blue light" in " ".join(
        "".join(c if c.isalnum() else " " for c in text.lower()).split()
    )


# --- grading ---------------------------------------------------------------------------------


def test_offline_provider_grades_a_short_answer_without_any_http(
    client: FlaskClient, course: Course, headers: Headers, llm: respx.MockRouter
) -> None:
    session_id, item_id = serve(client, course, headers)
    good = "Chlorophyll absorbs light, mainly the red and blue part."

    response = answer(client, session_id, item_id, headers, response=good)

    assert response.status_code == 201
    body = response.get_json()
    assert (body["correct"], body["graded_by"]) == (True, "offline")
    assert 0.6 <= body["score"] < 1.0  # keyword coverage, not the exact reference
    assert not reveals_reference(body["feedback"])
    assert llm.calls.call_count == 0


def test_a_valid_model_grade_is_used_and_its_provider_named(
    client: FlaskClient,
    course: Course,
    headers: Headers,
    openai: AIProviders,
    llm: respx.MockRouter,
    db_session: Session,
    caplog: pytest.LogCaptureFixture,
) -> None:
    route = llm.post("/chat/completions").mock(return_value=grade(0.65, False, "Nearly."))
    session_id, item_id = serve(client, course, headers)

    with caplog.at_level(logging.INFO):
        response = answer(client, session_id, item_id, headers)

    assert response.status_code == 201
    body = response.get_json()
    assert (body["score"], body["correct"], body["feedback"], body["graded_by"]) == (
        0.65,
        False,
        "Nearly.",
        "openai",
    )
    assert body["estimate"]["attempts"] == 1
    sent = route.calls.last.request
    assert sent.headers["x-prompt-template"] == "grade_short_answer.v1"
    assert sent.extensions["timeout"]["read"] == 4.0  # AI_GRADE_BUDGET_SECONDS caps it
    user_message = json.loads(sent.content)["messages"][-1]["content"]
    assert "- mentions absorbing light\n- names red or blue light" in user_message
    assert ANSWER in user_message
    usage = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ai.usage")]
    assert usage == [
        "ai.usage provider=openai template=grade_short_answer.v1 prompt_tokens=210 "
        f"completion_tokens=40 item_id={item_id} session_id={session_id}"
    ]
    assert ANSWER not in caplog.text  # no learner text in the logs
    assert "bad" not in caplog.text.split()  # nor the key
    assert db_session.scalars(select(Attempt.graded_by)).all() == ["openai"]


def test_a_rejected_key_falls_back_to_the_rules_and_counts_the_attempt_once(
    client: FlaskClient,
    course: Course,
    headers: Headers,
    openai: AIProviders,
    llm: respx.MockRouter,
    db_session: Session,
    fake_time: FakeTime,
) -> None:
    route = llm.post("/chat/completions").mock(
        return_value=httpx.Response(401, json={"error": {"message": "Incorrect API key"}})
    )
    session_id, item_id = serve(client, course, headers)

    response = answer(client, session_id, item_id, headers)

    assert response.status_code == 201
    body = response.get_json()
    assert body["graded_by"] == "fallback"
    assert body["feedback"].startswith("Not quite")  # the rule-based scorer's words
    assert route.call_count == 1  # a 401 is not retried
    assert fake_time.sleeps == []
    assert attempts_in(db_session) == 1
    assert db_session.scalars(select(SkillState.attempts)).all() == [1]
    session = client.get(f"/sessions/{session_id}", headers=headers).get_json()
    assert session["estimate"]["attempts"] == 1
    assert session["pending_item_id"] is None


def test_server_errors_fall_back_after_the_interactive_retries(
    client: FlaskClient,
    course: Course,
    headers: Headers,
    openai: AIProviders,
    llm: respx.MockRouter,
    db_session: Session,
    fake_time: FakeTime,
) -> None:
    route = llm.post("/chat/completions").mock(return_value=httpx.Response(500))
    session_id, item_id = serve(client, course, headers)

    body = answer(client, session_id, item_id, headers).get_json()

    assert body["graded_by"] == "fallback"
    assert route.call_count == 2  # interactive: one retry at most
    assert len(fake_time.sleeps) == 1
    assert attempts_in(db_session) == 1


def test_a_timeout_that_uses_the_budget_falls_back_without_retrying(
    client: FlaskClient,
    course: Course,
    headers: Headers,
    openai: AIProviders,
    llm: respx.MockRouter,
    fake_time: FakeTime,
) -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        fake_time.now += 3.9  # the read timed out near the end of the 4 s budget
        raise httpx.ReadTimeout("slow upstream")

    route = llm.post("/chat/completions").mock(side_effect=slow)
    session_id, item_id = serve(client, course, headers)

    body = answer(client, session_id, item_id, headers).get_json()

    assert body["graded_by"] == "fallback"
    assert route.call_count == 1  # no retry fits in the 0.1 s left
    assert fake_time.sleeps == []


def test_an_open_circuit_falls_back_without_any_http_call(
    client: FlaskClient,
    course: Course,
    headers: Headers,
    openai: AIProviders,
    llm: respx.MockRouter,
    db_session: Session,
) -> None:
    assert openai.breaker is not None
    for _ in range(openai.breaker.failure_threshold):
        openai.breaker.record_failure()
    session_id, item_id = serve(client, course, headers)

    body = answer(client, session_id, item_id, headers).get_json()

    assert body["graded_by"] == "fallback"
    assert llm.calls.call_count == 0
    assert attempts_in(db_session) == 1


def test_a_replay_after_a_fallback_returns_the_same_attempt_without_asking_again(
    client: FlaskClient,
    course: Course,
    headers: Headers,
    openai: AIProviders,
    llm: respx.MockRouter,
    db_session: Session,
) -> None:
    route = llm.post("/chat/completions").mock(return_value=httpx.Response(401))
    session_id, item_id = serve(client, course, headers)

    first = answer(client, session_id, item_id, headers, key="attempt-1")
    replay = answer(client, session_id, item_id, headers, key="attempt-1")

    assert (first.status_code, replay.status_code) == (201, 200)
    assert replay.get_json() == first.get_json()
    assert first.get_json()["graded_by"] == "fallback"
    assert route.call_count == 1
    assert attempts_in(db_session) == 1


@pytest.mark.parametrize(
    "feedback",
    [
        f"Right: {REFERENCE}.",
        "Yes! CHLOROPHYLL absorbs red, and blue light - well done.",
    ],
    ids=["verbatim", "reformatted"],
)
def test_model_feedback_that_echoes_the_reference_answer_is_replaced(
    client: FlaskClient,
    course: Course,
    headers: Headers,
    openai: AIProviders,
    llm: respx.MockRouter,
    db_session: Session,
    feedback: str,
) -> None:
    llm.post("/chat/completions").mock(return_value=grade(0.9, True, feedback))
    session_id, item_id = serve(client, course, headers)

    body = answer(client, session_id, item_id, headers).get_json()

    assert (body["score"], body["correct"], body["graded_by"]) == (0.9, True, "openai")
    assert not reveals_reference(body["feedback"])
    assert body["feedback"].startswith("Correct")
    assert not reveals_reference(db_session.scalars(select(Attempt.feedback)).one())


def test_mcq_answers_stay_exact_and_never_reach_the_provider(
    client: FlaskClient,
    make_course: Callable[..., Course],
    db_session: Session,
    headers: Headers,
    openai: AIProviders,
    llm: respx.MockRouter,
) -> None:
    mcq = make_course(status=CourseStatus.PUBLISHED)
    db_session.add(
        Item(
            skill_id=mcq.skills[0].id,
            kind=ItemKind.MCQ,
            prompt="2 + 2?",
            choices=[{"text": "4", "correct": True}, {"text": "5", "correct": False}],
            status=ItemStatus.PUBLISHED,
        )
    )
    db_session.commit()
    session_id, item_id = serve(client, mcq, headers)

    body = answer(client, session_id, item_id, headers, response=0).get_json()

    assert (body["correct"], body["graded_by"]) == (True, "exact")
    assert llm.calls.call_count == 0


def test_no_transaction_is_open_while_the_provider_grades(
    client: FlaskClient,
    course: Course,
    headers: Headers,
    openai: AIProviders,
    llm: respx.MockRouter,
) -> None:
    seen: list[bool] = []

    def respond(request: httpx.Request) -> httpx.Response:
        seen.append(g.db_session.in_transaction())  # the request's own database session
        return grade(1.0, True)

    llm.post("/chat/completions").mock(side_effect=respond)
    session_id, item_id = serve(client, course, headers)

    assert answer(client, session_id, item_id, headers).status_code == 201
    assert seen == [False]


@pytest.mark.commits
@pytest.mark.parametrize("key", [None, "same-key"], ids=["no-key", "same-key"])
def test_two_submissions_racing_while_the_provider_works_record_one_attempt(
    app: APIFlask,
    engine: Engine,
    course: Course,
    headers: Headers,
    openai: AIProviders,
    llm: respx.MockRouter,
    key: str | None,
) -> None:
    """Both requests reach the provider at once; the session row is not locked meanwhile;
    afterwards exactly one attempt exists, and the other request gets 409 (or, with the same
    Idempotency-Key, that same attempt)."""
    both_grading, release = threading.Barrier(3), threading.Event()

    def respond(request: httpx.Request) -> httpx.Response:
        both_grading.wait(timeout=10)
        release.wait(timeout=10)
        return grade(1.0, True)

    llm.post("/chat/completions").mock(side_effect=respond)
    session_id, item_id = serve(app.test_client(), course, headers)
    results: list[Any] = []

    def submit() -> None:
        results.append(answer(app.test_client(), session_id, item_id, headers, key=key))

    threads = [threading.Thread(target=submit) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        both_grading.wait(timeout=10)
        with engine.connect() as probe:  # raises if a request held the session's row lock
            probe.execute(
                text("SELECT id FROM practice_sessions WHERE id = :id FOR UPDATE NOWAIT"),
                {"id": session_id},
            )
            probe.rollback()
    finally:
        release.set()
        for thread in threads:
            thread.join(timeout=30)

    statuses = sorted(result.status_code for result in results)
    assert statuses == ([200, 201] if key else [201, 409])
    if key:
        assert results[0].get_json() == results[1].get_json()
    with Session(engine) as fresh:
        assert fresh.scalar(select(func.count()).select_from(Attempt)) == 1
        assert fresh.scalars(select(SkillState.attempts)).all() == [1]


# --- hints -----------------------------------------------------------------------------------


def hint(client: FlaskClient, session_id: str, item_id: str, headers: Headers) -> Any:
    return client.get(f"/sessions/{session_id}/items/{item_id}/hint", headers=headers)


def test_an_offline_hint_nudges_without_the_answer_and_changes_nothing(
    client: FlaskClient,
    course: Course,
    headers: Headers,
    llm: respx.MockRouter,
    db_session: Session,
) -> None:
    session_id, item_id = serve(client, course, headers)

    response = hint(client, session_id, item_id, headers)

    assert response.status_code == 200
    body = response.get_json()
    assert body["item_id"] == item_id
    assert body["hinted_by"] == "offline"
    assert body["hint"].startswith("Think about")
    assert not reveals_reference(body["hint"])
    session = client.get(f"/sessions/{session_id}", headers=headers).get_json()
    assert (session["pending_item_id"], session["served"]) == (item_id, 1)
    assert attempts_in(db_session) == 0
    assert llm.calls.call_count == 0


def test_a_one_word_answer_is_never_spelled_out_by_a_hint(
    client: FlaskClient,
    make_course: Callable[..., Course],
    db_session: Session,
    headers: Headers,
) -> None:
    course = short_answer_course(make_course, db_session, reference="Paris", rubric="Paris")
    session_id, item_id = serve(client, course, headers)

    body = hint(client, session_id, item_id, headers).get_json()

    assert "paris" not in body["hint"].lower()


def test_a_model_hint_is_given_with_its_provider(
    client: FlaskClient,
    course: Course,
    headers: Headers,
    openai: AIProviders,
    llm: respx.MockRouter,
) -> None:
    route = llm.post("/chat/completions").mock(
        return_value=completion({"hint": "Which colours of light does the green pigment use?"})
    )
    session_id, item_id = serve(client, course, headers)

    body = hint(client, session_id, item_id, headers).get_json()

    assert body == {
        "item_id": item_id,
        "hint": "Which colours of light does the green pigment use?",
        "hinted_by": "openai",
    }
    assert route.calls.last.request.headers["x-prompt-template"] == "hint.v1"


def test_a_failing_provider_gives_the_offline_hint_as_fallback(
    client: FlaskClient,
    course: Course,
    headers: Headers,
    openai: AIProviders,
    llm: respx.MockRouter,
) -> None:
    route = llm.post("/chat/completions").mock(return_value=httpx.Response(503))
    session_id, item_id = serve(client, course, headers)

    fallback = hint(client, session_id, item_id, headers).get_json()

    assert route.call_count == 2
    assert fallback["hinted_by"] == "fallback"
    assert fallback["hint"].startswith("Think about")
    assert not reveals_reference(fallback["hint"])


def test_a_model_hint_that_gives_the_answer_away_is_not_shown(
    client: FlaskClient,
    course: Course,
    headers: Headers,
    openai: AIProviders,
    llm: respx.MockRouter,
) -> None:
    llm.post("/chat/completions").mock(
        return_value=completion({"hint": f"The answer is: {REFERENCE.upper()}!"})
    )
    session_id, item_id = serve(client, course, headers)

    body = hint(client, session_id, item_id, headers).get_json()

    assert body["hinted_by"] == "fallback"
    assert not reveals_reference(body["hint"])


def test_a_hint_for_an_item_that_is_not_pending_is_409(
    client: FlaskClient,
    course: Course,
    make_course: Callable[..., Course],
    db_session: Session,
    headers: Headers,
) -> None:
    session_id = start_practice(client, course, headers)["id"]
    item_id = str(course.skills[0].items[0].id)

    before_next = hint(client, session_id, item_id, headers)
    client.get(f"/sessions/{session_id}/next", headers=headers)
    answer(client, session_id, item_id, headers)
    after_answer = hint(client, session_id, item_id, headers)

    for response in (before_next, after_answer):
        assert response.status_code == 409
        assert response.get_json()["type"].endswith("/item-not-served")


def test_a_hint_in_someone_elses_session_is_404(
    client: FlaskClient,
    course: Course,
    headers: Headers,
    make_user: Callable[..., User],
    as_user: Callable[[User], Headers],
) -> None:
    session_id, item_id = serve(client, course, headers)

    response = hint(client, session_id, item_id, as_user(make_user()))

    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"


def test_mcq_items_get_no_hint(
    client: FlaskClient,
    make_course: Callable[..., Course],
    db_session: Session,
    headers: Headers,
) -> None:
    mcq = make_course(status=CourseStatus.PUBLISHED)
    db_session.add(
        Item(
            skill_id=mcq.skills[0].id,
            kind=ItemKind.MCQ,
            prompt="2 + 2?",
            choices=[{"text": "4", "correct": True}, {"text": "5", "correct": False}],
            status=ItemStatus.PUBLISHED,
        )
    )
    db_session.commit()
    session_id, item_id = serve(client, mcq, headers)

    response = hint(client, session_id, item_id, headers)

    assert response.status_code == 409
    assert response.get_json()["type"].endswith("/no-hint-for-mcq")


def test_no_transaction_is_open_while_the_provider_writes_a_hint(
    client: FlaskClient,
    course: Course,
    headers: Headers,
    openai: AIProviders,
    llm: respx.MockRouter,
) -> None:
    seen: list[bool] = []

    def respond(request: httpx.Request) -> httpx.Response:
        seen.append(g.db_session.in_transaction())
        return completion({"hint": "Think about colours."})

    llm.post("/chat/completions").mock(side_effect=respond)
    session_id, item_id = serve(client, course, headers)

    assert hint(client, session_id, item_id, headers).status_code == 200
    assert seen == [False]
