"""Generation jobs through the API with eager execution (the worker tests run a real worker).

The AI provider is faked only at the HTTP layer (respx) in front of the real client.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import respx
from apiflask import APIFlask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.ai import Provider
from app.ai.runtime import EXTENSION, ai_providers
from app.audit.models import AuditRecord
from app.auth.models import Role, User
from app.content.models import Course, Item, ItemOrigin, ItemStatus
from app.db import utcnow
from app.jobs import generation
from app.jobs.models import Job, JobKind, JobStatus
from tests.ai_fakes import AI_BASE_URL, completion, drafts, http_provider
from tests.conftest import MakeApp

AsUser = Callable[[User], dict[str, str]]


@pytest.fixture
def use_provider(app: APIFlask) -> Iterator[Callable[[Provider], None]]:
    """Swap the provider the job runner uses, for one test."""
    before = ai_providers(app)

    def use(provider: Provider) -> None:
        app.extensions[EXTENSION] = dataclasses.replace(before, background=provider)

    yield use
    app.extensions[EXTENSION] = before


@pytest.fixture
def owner(make_user: Callable[..., User]) -> User:
    return make_user(Role.INSTRUCTOR)


@pytest.fixture
def course(make_course: Callable[..., Course], owner: User) -> Course:
    return make_course(owner)


def start_job(client: FlaskClient, course: Course, headers: dict[str, str], count: int = 4) -> Any:
    return client.post(
        f"/skills/{course.skills[0].id}/generation-jobs", json={"count": count}, headers=headers
    )


def job_items(db_session: Session, job_id: str) -> list[Item]:
    return list(db_session.scalars(select(Item).where(Item.source_job_id == uuid.UUID(job_id))))


def test_a_generation_job_drafts_items_for_review(
    client: FlaskClient, course: Course, owner: User, as_user: AsUser, db_session: Session
) -> None:
    response = start_job(client, course, as_user(owner), count=4)

    assert response.status_code == 202, response.get_json()
    job = response.get_json()
    assert response.headers["Location"] == f"/jobs/{job['id']}"
    assert job["status"] == "succeeded"  # eager: it already ran
    assert job["attempts"] == 1
    assert job["last_error"] is None
    assert job["result"]["provider"] == "offline"
    assert job["result"]["template"] == "offline.generate_items.v1"
    items = job_items(db_session, job["id"])
    assert sorted(str(i.id) for i in items) == sorted(job["result"]["item_ids"])
    assert len(items) == 4
    assert {(i.status, i.origin) for i in items} == {(ItemStatus.DRAFT, ItemOrigin.AI)}
    audit = db_session.scalar(select(AuditRecord).where(AuditRecord.action == "job.created"))
    assert audit is not None
    assert audit.target_id == job["id"]


def test_job_is_readable_by_its_creator_and_admins_only(
    client: FlaskClient,
    course: Course,
    owner: User,
    as_user: AsUser,
    make_user: Callable[..., User],
) -> None:
    job_id = start_job(client, course, as_user(owner)).get_json()["id"]

    assert client.get(f"/jobs/{job_id}", headers=as_user(owner)).status_code == 200
    assert client.get(f"/jobs/{job_id}", headers=as_user(make_user(Role.ADMIN))).status_code == 200
    for stranger in (make_user(Role.INSTRUCTOR), make_user(Role.LEARNER)):
        response = client.get(f"/jobs/{job_id}", headers=as_user(stranger))
        assert response.status_code == 404
        assert response.content_type == "application/problem+json"
    assert client.get(f"/jobs/{uuid.uuid4()}", headers=as_user(owner)).status_code == 404


@pytest.mark.parametrize("body", [{"count": 0}, {"count": 21}, {"count": "5"}, {"extra": 1}])
def test_bad_generation_requests_are_422_and_create_nothing(
    client: FlaskClient,
    course: Course,
    owner: User,
    as_user: AsUser,
    db_session: Session,
    body: dict[str, Any],
) -> None:
    response = client.post(
        f"/skills/{course.skills[0].id}/generation-jobs", json=body, headers=as_user(owner)
    )

    assert response.status_code == 422
    assert db_session.scalars(select(Job)).all() == []


def test_only_the_course_owner_or_an_admin_may_start_a_job(
    client: FlaskClient,
    make_course: Callable[..., Course],
    as_user: AsUser,
    make_user: Callable[..., User],
    db_session: Session,
) -> None:
    from app.content.models import CourseStatus

    published = make_course(status=CourseStatus.PUBLISHED)

    other = start_job(client, published, as_user(make_user(Role.INSTRUCTOR)))
    admin = start_job(client, published, as_user(make_user(Role.ADMIN)))

    assert other.status_code == 403
    assert admin.status_code == 202
    assert len(db_session.scalars(select(Job)).all()) == 1


def test_persistent_provider_failures_are_retried_then_dead(
    client: FlaskClient,
    course: Course,
    owner: User,
    as_user: AsUser,
    db_session: Session,
    use_provider: Callable[[Provider], None],
) -> None:
    use_provider(http_provider())
    with respx.mock(base_url=AI_BASE_URL, assert_all_called=True) as ai:
        route = ai.post("/chat/completions").mock(return_value=httpx.Response(503))
        job = start_job(client, course, as_user(owner)).get_json()

    assert job["status"] == "dead"
    assert job["attempts"] == job["max_attempts"] == 3
    assert route.call_count == 3  # one call per attempt (the client's own retries are off)
    assert job["last_error"].startswith("AI provider unavailable")
    assert job["finished_at"] is not None
    assert job["deadline_at"] is None
    assert job_items(db_session, job["id"]) == []


def test_a_refused_request_fails_at_once_without_retries(
    client: FlaskClient,
    course: Course,
    owner: User,
    as_user: AsUser,
    use_provider: Callable[[Provider], None],
) -> None:
    use_provider(http_provider())
    with respx.mock(base_url=AI_BASE_URL, assert_all_called=True) as ai:
        route = ai.post("/chat/completions").mock(
            return_value=httpx.Response(401, json={"error": "invalid api key"})
        )
        job = start_job(client, course, as_user(owner)).get_json()

    assert (job["status"], job["attempts"], route.call_count) == ("failed", 1, 1)
    assert job["last_error"] == "AI provider refused the request (HTTP 401)"
    assert "invalid api key" not in job["last_error"]  # the provider's answer stays in the log


def test_a_transient_failure_is_retried_and_the_job_succeeds_once(
    client: FlaskClient,
    course: Course,
    owner: User,
    as_user: AsUser,
    db_session: Session,
    use_provider: Callable[[Provider], None],
) -> None:
    use_provider(http_provider())
    with respx.mock(base_url=AI_BASE_URL, assert_all_called=True) as ai:
        ai.post("/chat/completions").mock(side_effect=[httpx.Response(500), completion(drafts(3))])
        job = start_job(client, course, as_user(owner), count=3).get_json()

    assert (job["status"], job["attempts"]) == ("succeeded", 2)
    assert job["last_error"].startswith("AI provider unavailable")  # the history stays
    assert job["result"]["provider"] == "openai"
    assert job["result"]["usage"]["total_tokens"] == 200
    kinds = sorted(item.kind.value for item in job_items(db_session, job["id"]))
    assert kinds == ["mcq", "mcq", "short_answer"]


def test_invalid_drafts_are_skipped_and_reported(
    client: FlaskClient,
    course: Course,
    owner: User,
    as_user: AsUser,
    db_session: Session,
    use_provider: Callable[[Provider], None],
) -> None:
    answer = drafts(2)
    answer["items"][0]["answer_index"] = 7  # no such choice: not a valid mcq
    use_provider(http_provider())
    with respx.mock(base_url=AI_BASE_URL, assert_all_called=True) as ai:
        ai.post("/chat/completions").mock(return_value=completion(answer))
        job = start_job(client, course, as_user(owner), count=2).get_json()

    assert job["status"] == "succeeded"
    assert job["result"]["rejected"] == [{"index": 0, "errors": 1}]
    assert len(job_items(db_session, job["id"])) == 1


def test_a_job_with_no_valid_draft_fails_its_attempt(
    client: FlaskClient,
    course: Course,
    owner: User,
    as_user: AsUser,
    use_provider: Callable[[Provider], None],
) -> None:
    answer = drafts(1)
    answer["items"][0]["choices"] = ["only one"]  # an mcq needs two choices
    use_provider(http_provider())
    with respx.mock(base_url=AI_BASE_URL, assert_all_called=True) as ai:
        ai.post("/chat/completions").mock(return_value=completion(answer))
        job = start_job(client, course, as_user(owner), count=1).get_json()

    assert job["status"] == "dead"
    assert "no valid item" in job["last_error"]


def test_a_broker_that_is_down_answers_503_and_records_the_job_as_failed(
    make_app: MakeApp,
    course: Course,
    owner: User,
    as_user: AsUser,
    db_session: Session,
) -> None:
    broken = make_app(jobs_eager=False, celery_broker_url="redis://127.0.0.1:9/0")

    response = start_job(broken.test_client(), course, as_user(owner))

    assert response.status_code == 503
    assert response.content_type == "application/problem+json"
    body = response.get_json()
    job = db_session.get(Job, uuid.UUID(body["job_id"]))
    assert job is not None
    assert job.status is JobStatus.FAILED
    assert "broker is unavailable" in (job.last_error or "")


# --- the run itself: claims, deadlines and redelivery ---------------------------------------------


@pytest.fixture
def queued_job(db_session: Session, course: Course, owner: User) -> Job:
    job = Job(
        kind=JobKind.GENERATE_ITEMS,
        skill_id=course.skills[0].id,
        created_by=owner.id,
        params={"count": 2},
        max_attempts=3,
    )
    db_session.add(job)
    db_session.commit()
    return job


TIMEOUT = timedelta(minutes=5)


def no_material(_session: Session, _skill_id: uuid.UUID) -> str:
    return ""


def test_a_redelivered_finished_job_creates_nothing_more(
    app: APIFlask, db_session: Session, queued_job: Job
) -> None:
    from app.ai.offline import OfflineProvider

    first = generation.run(db_session, queued_job.id, OfflineProvider(), TIMEOUT, no_material)
    again = generation.run(db_session, queued_job.id, OfflineProvider(), TIMEOUT, no_material)

    assert first.status is again.status is JobStatus.SUCCEEDED
    assert len(job_items(db_session, str(queued_job.id))) == 2
    db_session.refresh(queued_job)
    assert queued_job.attempts == 1


def test_a_delivery_while_another_run_holds_the_job_defers_to_its_deadline(
    app: APIFlask, db_session: Session, queued_job: Job
) -> None:
    held = generation.claim(db_session, queued_job.id, TIMEOUT)
    assert isinstance(held, generation.Claim)

    second = generation.claim(db_session, queued_job.id, TIMEOUT)

    assert isinstance(second, generation.Outcome)
    assert second.status is JobStatus.RUNNING
    db_session.refresh(queued_job)
    assert second.defer_to == queued_job.deadline_at
    assert queued_job.attempts == 1


def test_a_run_past_its_deadline_is_taken_over_and_the_late_result_discarded(
    app: APIFlask, db_session: Session, queued_job: Job
) -> None:
    from app.ai.offline import OfflineProvider

    late = generation.claim(db_session, queued_job.id, TIMEOUT)
    assert isinstance(late, generation.Claim)
    after_deadline = utcnow() + TIMEOUT + timedelta(seconds=1)
    takeover = generation.claim(db_session, queued_job.id, TIMEOUT, now=after_deadline)
    assert isinstance(takeover, generation.Claim)
    assert takeover.attempt == 2

    items = OfflineProvider().generate_items(takeover.skill, takeover.count)
    assert generation.succeed(db_session, takeover, items).status is JobStatus.SUCCEEDED
    assert generation.succeed(db_session, late, items).status is None  # discarded
    assert generation.fail(db_session, late, RuntimeError("late")).status is None

    assert len(job_items(db_session, str(queued_job.id))) == 2
    db_session.refresh(queued_job)
    assert (queued_job.status, queued_job.attempts) == (JobStatus.SUCCEEDED, 2)


def test_a_job_whose_skill_was_deleted_fails(
    app: APIFlask, db_session: Session, queued_job: Job, course: Course
) -> None:
    from app.ai.offline import OfflineProvider

    db_session.delete(course.skills[0])
    db_session.commit()

    outcome = generation.run(db_session, queued_job.id, OfflineProvider(), TIMEOUT, no_material)

    assert outcome.status is JobStatus.FAILED
    db_session.refresh(queued_job)
    assert "skill no longer exists" in (queued_job.last_error or "")


def test_an_unknown_job_id_is_ignored(app: APIFlask, db_session: Session) -> None:
    from app.ai.offline import OfflineProvider

    outcome = generation.run(db_session, uuid.uuid4(), OfflineProvider(), TIMEOUT, no_material)

    assert outcome.status is None


def test_an_unexpected_error_is_recorded_and_retried(
    app: APIFlask, db_session: Session, queued_job: Job
) -> None:
    class Broken:
        name = "broken"

        def generate_items(self, *_args: object) -> Any:
            raise KeyError("boom")

    outcome = generation.run(db_session, queued_job.id, Broken(), TIMEOUT, no_material)  # type: ignore[arg-type]

    assert outcome.status is JobStatus.QUEUED
    assert outcome.retry_in is not None
    db_session.refresh(queued_job)
    assert queued_job.last_error == "an internal error interrupted the run"  # not 'boom'


# --- uploaded material as generation context ------------------------------------------------------


def test_generation_sends_the_skills_material_to_the_model(
    client: FlaskClient,
    course: Course,
    owner: User,
    as_user: AsUser,
    use_provider: Callable[[Provider], None],
) -> None:
    from tests.integration.test_materials import upload

    notes = "Photosynthesis happens in the chloroplasts of leaf cells."
    headers = as_user(owner)
    assert upload(client, course.skills[0].id, headers, notes.encode()).status_code == 201
    use_provider(http_provider())
    with respx.mock(base_url=AI_BASE_URL, assert_all_called=True) as ai:
        route = ai.post("/chat/completions").mock(return_value=completion(drafts(1)))
        job = start_job(client, course, headers, count=1).get_json()

    assert job["status"] == "succeeded"
    prompt = json.loads(route.calls.last.request.content)["messages"][-1]["content"]
    assert "# notes.md" in prompt
    assert notes in prompt


def test_a_storage_failure_while_reading_material_is_retried(
    client: FlaskClient,
    course: Course,
    owner: User,
    as_user: AsUser,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app.storage import StorageError, get_storage
    from tests.integration.test_materials import upload

    headers = as_user(owner)
    assert upload(client, course.skills[0].id, headers).status_code == 201
    storage = get_storage(client.application)
    reads = iter([StorageError("store unreachable")])

    def flaky_get(key: str) -> bytes:
        error = next(reads, None)
        if error is not None:
            raise error
        return original_get(key)

    original_get = storage.get
    monkeypatch.setattr(storage, "get", flaky_get)
    job = start_job(client, course, headers, count=1).get_json()

    assert (job["status"], job["attempts"]) == ("succeeded", 2)
    assert job["last_error"] == "the skill's material could not be read from storage"
