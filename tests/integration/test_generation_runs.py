"""One generation run step by step on real Postgres (app/jobs/generation.py): what `claim`,
`succeed`, `fail` and `run` write on the job row, which items they store, what they count in the
metrics and what they log for an operator.

tests/integration/test_jobs.py drives the same job through the API; here each step is called
with a chosen clock and a chosen error, so every branch is reached on purpose. The AI provider
is the real HTTP client faked at the HTTP layer (respx), or the offline provider.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
import respx
from prometheus_client import REGISTRY
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app.ai import GeneratedItems, ItemDraft, SkillBrief, Usage
from app.ai.errors import AIConfigurationError, ProviderRequestError, ProviderUnavailableError
from app.ai.offline import OfflineProvider
from app.content.models import Course, Item, ItemKind, ItemOrigin, ItemStatus, Skill
from app.db import utcnow
from app.jobs import generation
from app.jobs.errors import (
    MAX_ERROR,
    WORKER_LOST_NO_ATTEMPT_LEFT,
    WORKER_LOST_TAKEN_OVER,
    PermanentJobError,
)
from app.jobs.models import Job, JobKind, JobStatus
from tests.ai_fakes import AI_BASE_URL, FixedRandom, completion, drafts, http_provider

TIMEOUT = timedelta(minutes=5)
KIND = JobKind.GENERATE_ITEMS.value
LOGGER = "app.jobs.generation"
MakeJob = Callable[..., Job]


@pytest.fixture
def skill(db_session: Session, make_course: Callable[..., Course]) -> Skill:
    course = make_course()
    skill = course.skills[0]
    skill.description = "How plants turn light into sugar."
    db_session.commit()
    return skill


@pytest.fixture
def make_job(db_session: Session, skill: Skill) -> MakeJob:
    """A generation job for `skill`; a running one gets `deadline_at`."""

    def make(
        status: JobStatus = JobStatus.QUEUED,
        attempts: int = 0,
        max_attempts: int = 3,
        params: dict[str, Any] | None = None,
        deadline_at: datetime | None = None,
        finished_at: datetime | None = None,
        last_error: str | None = None,
    ) -> Job:
        job = Job(
            kind=JobKind.GENERATE_ITEMS,
            status=status,
            skill_id=skill.id,
            created_by=skill.course.owner_id,
            params={"count": 2} if params is None else params,
            attempts=attempts,
            max_attempts=max_attempts,
            deadline_at=deadline_at,
            finished_at=finished_at,
            last_error=last_error,
        )
        db_session.add(job)
        db_session.commit()
        return job

    return make


def transitions(status: JobStatus) -> float:
    labels = {"kind": KIND, "status": status.value}
    return REGISTRY.get_sample_value("mastery_jobs_total", labels) or 0.0


class Transitions:
    """How many transitions into each status the job metrics counted since it was made."""

    def __init__(self) -> None:
        self.before = {status: transitions(status) for status in JobStatus}

    def counted(self) -> dict[JobStatus, float]:
        deltas = {status: transitions(status) - self.before[status] for status in JobStatus}
        return {status: delta for status, delta in deltas.items() if delta}


def messages(caplog: pytest.LogCaptureFixture, prefix: str = "job.") -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(prefix)]


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.INFO, LOGGER):
        yield caplog


def held(db_session: Session, job: Job, now: datetime | None = None) -> generation.Claim:
    claimed = generation.claim(db_session, job.id, TIMEOUT, now=now)
    assert isinstance(claimed, generation.Claim)
    return claimed


def generated(*items: ItemDraft, usage: Usage | None = None) -> GeneratedItems:
    return GeneratedItems(
        items=list(items), provider="tests", template="tests.items", template_version=3, usage=usage
    )


def mcq(stem: str, answer_index: int = 1) -> ItemDraft:
    return ItemDraft(
        kind="mcq",
        stem=stem,
        choices=["one", "two", "three"],
        answer_index=answer_index,
        reference_answer=None,
        rubric=[],
    )


def short_answer(stem: str) -> ItemDraft:
    return ItemDraft(
        kind="short_answer",
        stem=stem,
        choices=[],
        answer_index=None,
        reference_answer="Light drives it.",
        rubric=["names light", "names sugar"],
    )


def items_of(db_session: Session, job: Job) -> list[Item]:
    query = select(Item).where(Item.source_job_id == job.id).order_by(Item.created_at, Item.id)
    return list(db_session.scalars(query))


# --- claim ----------------------------------------------------------------------------------------


def test_a_claim_starts_the_run_with_a_deadline_and_the_skills_brief(
    db_session: Session, make_job: MakeJob, skill: Skill, log: pytest.LogCaptureFixture
) -> None:
    job = make_job(params={"count": 3}, finished_at=utcnow() - timedelta(hours=1))
    counted = Transitions()
    now = utcnow()

    claimed = held(db_session, job, now=now)

    brief = SkillBrief(skill_id=str(skill.id), name="Skill", description=skill.description)
    assert claimed == generation.Claim(
        job_id=job.id, attempt=1, skill=brief, skill_id=skill.id, count=3
    )
    db_session.refresh(job)
    assert (job.status, job.attempts, job.last_error) == (JobStatus.RUNNING, 1, None)
    assert (job.started_at, job.deadline_at, job.finished_at) == (now, now + TIMEOUT, None)
    assert counted.counted() == {JobStatus.RUNNING: 1}
    assert messages(log) == [f"job.running job_id={job.id} attempt=1"]


def test_a_job_that_names_no_count_asks_for_five_items(
    db_session: Session, make_job: MakeJob
) -> None:
    assert held(db_session, make_job(params={})).count == 5


def test_a_claim_of_an_unknown_job_does_nothing(
    db_session: Session, log: pytest.LogCaptureFixture
) -> None:
    job_id = uuid.uuid4()

    assert generation.claim(db_session, job_id, TIMEOUT) == generation.Outcome(status=None)
    assert messages(log) == [f"job.missing job_id={job_id}"]


@pytest.mark.parametrize("status", [JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.DEAD])
def test_a_claim_of_a_finished_job_leaves_it_alone(
    db_session: Session, make_job: MakeJob, status: JobStatus, log: pytest.LogCaptureFixture
) -> None:
    job = make_job(status=status, attempts=2)
    counted = Transitions()

    assert generation.claim(db_session, job.id, TIMEOUT) == generation.Outcome(status=status)

    db_session.refresh(job)
    assert (job.status, job.attempts) == (status, 2)
    assert counted.counted() == {}
    assert messages(log) == [f"job.already_finished job_id={job.id} status={status}"]


def test_a_claim_while_another_run_is_within_its_deadline_defers_to_it(
    db_session: Session, make_job: MakeJob, log: pytest.LogCaptureFixture
) -> None:
    deadline = utcnow() + timedelta(minutes=2)
    job = make_job(status=JobStatus.RUNNING, attempts=1, deadline_at=deadline)

    outcome = generation.claim(db_session, job.id, TIMEOUT, now=deadline - timedelta(seconds=1))

    assert outcome == generation.Outcome(status=JobStatus.RUNNING, defer_to=deadline)
    db_session.refresh(job)
    assert (job.status, job.attempts, job.deadline_at) == (JobStatus.RUNNING, 1, deadline)
    assert messages(log) == [
        f"job.running_elsewhere job_id={job.id} deadline={deadline.isoformat()}"
    ]


@pytest.mark.parametrize("lost_for", [timedelta(0), timedelta(minutes=1)])
def test_a_run_at_or_past_its_deadline_is_taken_over(
    db_session: Session, make_job: MakeJob, lost_for: timedelta, log: pytest.LogCaptureFixture
) -> None:
    deadline = utcnow() - timedelta(minutes=1)
    job = make_job(status=JobStatus.RUNNING, attempts=2, deadline_at=deadline)
    counted = Transitions()
    now = deadline + lost_for

    claimed = held(db_session, job, now=now)

    assert claimed.attempt == 3
    db_session.refresh(job)
    assert (job.status, job.attempts) == (JobStatus.RUNNING, 3)
    assert (job.started_at, job.deadline_at) == (now, now + TIMEOUT)
    assert job.last_error == WORKER_LOST_TAKEN_OVER
    assert counted.counted() == {JobStatus.RUNNING: 1}
    assert messages(log) == [
        f"job.worker_lost job_id={job.id} attempt=2/3 (running past its deadline)",
        f"job.running job_id={job.id} attempt=3",
    ]


def test_a_running_job_without_a_deadline_is_taken_over(
    db_session: Session, make_job: MakeJob
) -> None:
    job = make_job(status=JobStatus.RUNNING, attempts=1)

    assert held(db_session, job).attempt == 2


def test_a_lost_run_that_was_the_last_attempt_ends_the_job_dead(
    db_session: Session, make_job: MakeJob, log: pytest.LogCaptureFixture
) -> None:
    deadline = utcnow() - timedelta(minutes=1)
    job = make_job(status=JobStatus.RUNNING, attempts=3, deadline_at=deadline)
    counted = Transitions()
    now = utcnow()

    outcome = generation.claim(db_session, job.id, TIMEOUT, now=now)

    assert outcome == generation.Outcome(status=JobStatus.DEAD)
    db_session.refresh(job)
    assert (job.status, job.attempts) == (JobStatus.DEAD, 3)
    assert (job.deadline_at, job.finished_at) == (None, now)
    assert job.last_error == WORKER_LOST_NO_ATTEMPT_LEFT
    assert counted.counted() == {JobStatus.DEAD: 1}
    assert messages(log) == [
        f"job.worker_lost job_id={job.id} attempt=3/3 (running past its deadline)",
        f"job.dead job_id={job.id}: no attempt left after a lost worker",
    ]
    assert [r.levelno for r in log.records if r.name == LOGGER] == [
        logging.WARNING,
        logging.ERROR,
    ]


def test_a_claim_for_a_deleted_skill_fails_the_job_for_good(
    db_session: Session, make_job: MakeJob, skill: Skill
) -> None:
    job = make_job()
    db_session.delete(skill)
    db_session.commit()
    counted = Transitions()
    now = utcnow()

    outcome = generation.claim(db_session, job.id, TIMEOUT, now=now)

    assert outcome == generation.Outcome(status=JobStatus.FAILED)
    db_session.refresh(job)
    assert (job.status, job.attempts, job.last_error) == (
        JobStatus.FAILED,
        1,
        "the skill no longer exists",
    )
    assert (job.started_at, job.finished_at, job.deadline_at) == (now, now, None)
    assert counted.counted() == {JobStatus.FAILED: 1}


# --- succeed --------------------------------------------------------------------------------------


def test_success_stores_the_drafts_as_ai_drafts_for_review(
    db_session: Session, make_job: MakeJob, skill: Skill, log: pytest.LogCaptureFixture
) -> None:
    job = make_job(params={"count": 2})
    claimed = held(db_session, job)
    counted = Transitions()
    usage = Usage(prompt_tokens=7, completion_tokens=5, total_tokens=12)
    answer = generated(mcq("  Which one?  "), short_answer("Why does it grow?"), usage=usage)
    before = utcnow()

    outcome = generation.succeed(db_session, claimed, answer)

    assert outcome == generation.Outcome(status=JobStatus.SUCCEEDED)
    stored = items_of(db_session, job)
    by_kind = {item.kind: item for item in stored}
    choice, short = by_kind[ItemKind.MCQ], by_kind[ItemKind.SHORT_ANSWER]
    assert {(i.skill_id, i.status, i.origin) for i in stored} == {
        (skill.id, ItemStatus.DRAFT, ItemOrigin.AI)
    }
    assert (choice.prompt, choice.reference_answer, choice.rubric) == ("Which one?", None, None)
    assert choice.choices == [
        {"text": "one", "correct": False},
        {"text": "two", "correct": True},
        {"text": "three", "correct": False},
    ]
    assert (short.prompt, short.choices) == ("Why does it grow?", None)
    assert (short.reference_answer, short.rubric) == (
        "Light drives it.",
        "names light\nnames sugar",
    )
    db_session.refresh(job)
    assert job.result == {
        "item_ids": [str(choice.id), str(short.id)],
        "rejected": [],
        "provider": "tests",
        "template": "tests.items.v3",
        "usage": {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12},
    }
    assert (job.status, job.deadline_at, job.last_error) == (JobStatus.SUCCEEDED, None, None)
    assert job.finished_at is not None
    assert before <= job.finished_at <= utcnow()
    assert counted.counted() == {JobStatus.SUCCEEDED: 1}
    assert messages(log, "job.succeeded") == [f"job.succeeded job_id={job.id} items=2 rejected=0"]


def test_success_keeps_at_most_the_asked_count_and_reports_the_rejected_drafts(
    db_session: Session, make_job: MakeJob, log: pytest.LogCaptureFixture
) -> None:
    job = make_job(params={"count": 3}, last_error="an earlier attempt's error")
    claimed = held(db_session, job)
    answer = generated(mcq("First?"), mcq("Second?", answer_index=9), mcq("Third?"), mcq("Extra?"))

    generation.succeed(db_session, claimed, answer)

    assert sorted(item.prompt for item in items_of(db_session, job)) == ["First?", "Third?"]
    db_session.refresh(job)
    assert job.result is not None
    assert job.result["rejected"] == [{"index": 1, "errors": 1}]
    assert job.result["usage"] is None
    assert job.last_error == "an earlier attempt's error"  # the history stays
    assert messages(log, "job.succeeded") == [f"job.succeeded job_id={job.id} items=2 rejected=1"]


def test_a_job_that_already_has_its_items_succeeds_without_storing_more(
    db_session: Session, make_job: MakeJob, skill: Skill
) -> None:
    job = make_job()
    claimed = held(db_session, job)
    # Its items were stored by a run that could not record its success: they are the result.
    earlier = Item(
        skill_id=skill.id,
        kind=ItemKind.SHORT_ANSWER,
        origin=ItemOrigin.AI,
        prompt="Stored before?",
        reference_answer="yes",
        rubric="says yes",
        source_job_id=job.id,
    )
    other_job = make_job()
    other = Item(
        skill_id=skill.id,
        kind=ItemKind.SHORT_ANSWER,
        origin=ItemOrigin.AI,
        prompt="Another job's?",
        reference_answer="no",
        rubric="says no",
        source_job_id=other_job.id,
    )
    db_session.add_all([earlier, other])
    db_session.commit()
    counted = Transitions()

    outcome = generation.succeed(db_session, claimed, generated(mcq("New?")))

    assert outcome == generation.Outcome(status=JobStatus.SUCCEEDED)
    assert [item.prompt for item in items_of(db_session, job)] == ["Stored before?"]
    db_session.refresh(job)
    assert (job.status, job.deadline_at, job.result) == (JobStatus.SUCCEEDED, None, None)
    assert job.finished_at is not None
    assert counted.counted() == {JobStatus.SUCCEEDED: 1}


def test_another_jobs_items_do_not_count_as_this_jobs(
    db_session: Session, make_job: MakeJob, skill: Skill
) -> None:
    job = make_job()
    claimed = held(db_session, job)
    other_job = make_job()
    db_session.add(
        Item(
            skill_id=skill.id,
            kind=ItemKind.SHORT_ANSWER,
            origin=ItemOrigin.AI,
            prompt="Another job's?",
            reference_answer="no",
            rubric="says no",
            source_job_id=other_job.id,
        )
    )
    db_session.commit()

    generation.succeed(db_session, claimed, generated(mcq("Mine?")))

    assert [item.prompt for item in items_of(db_session, job)] == ["Mine?"]


def test_an_answer_without_a_valid_draft_fails_the_attempt_and_stores_nothing(
    db_session: Session, make_job: MakeJob, log: pytest.LogCaptureFixture
) -> None:
    job = make_job()
    claimed = held(db_session, job)

    outcome = generation.succeed(db_session, claimed, generated(mcq("Which?", answer_index=5)))

    assert outcome.status is JobStatus.QUEUED
    assert items_of(db_session, job) == []
    db_session.refresh(job)
    assert (job.status, job.result) == (JobStatus.QUEUED, None)
    assert job.last_error == "AI model returned no valid item"
    (retrying,) = messages(log, "job.retrying")
    assert retrying.endswith("error=NoValidItemsError: the model returned no valid item")


# --- fail -----------------------------------------------------------------------------------------


def test_a_temporary_error_requeues_the_job_after_a_backoff(
    db_session: Session, make_job: MakeJob, log: pytest.LogCaptureFixture
) -> None:
    job = make_job(attempts=1)  # this run is attempt 2
    claimed = held(db_session, job)
    counted = Transitions()

    outcome = generation.fail(
        db_session, claimed, ProviderUnavailableError("busy"), rng=FixedRandom(0.5)
    )

    assert outcome == generation.Outcome(status=JobStatus.QUEUED, retry_in=25.0)
    db_session.refresh(job)
    assert (job.status, job.attempts, job.deadline_at, job.finished_at) == (
        JobStatus.QUEUED,
        2,
        None,
        None,
    )
    assert (
        job.last_error == "AI provider unavailable: no answer in time, or busy, after every retry"
    )
    assert counted.counted() == {JobStatus.QUEUED: 1}
    assert messages(log, "job.retrying") == [
        f"job.retrying job_id={job.id} attempt=2 in=25s error=ProviderUnavailableError: busy"
    ]


def test_a_retry_without_a_given_generator_is_jittered(
    db_session: Session, make_job: MakeJob
) -> None:
    claimed = held(db_session, make_job())

    outcome = generation.fail(db_session, claimed, ProviderUnavailableError("busy"))

    assert outcome.retry_in is not None
    assert 10.0 <= outcome.retry_in < 15.0


def test_a_temporary_error_on_the_last_attempt_ends_the_job_dead(
    db_session: Session, make_job: MakeJob, log: pytest.LogCaptureFixture
) -> None:
    job = make_job(attempts=2, last_error="the previous attempt's error")
    claimed = held(db_session, job)
    counted = Transitions()
    before = utcnow()

    outcome = generation.fail(db_session, claimed, ProviderUnavailableError("still busy"))

    assert outcome == generation.Outcome(status=JobStatus.DEAD)
    db_session.refresh(job)
    assert (job.status, job.attempts, job.deadline_at) == (JobStatus.DEAD, 3, None)
    assert job.finished_at is not None
    assert before <= job.finished_at <= utcnow()
    assert (
        job.last_error == "AI provider unavailable: no answer in time, or busy, after every retry"
    )
    assert counted.counted() == {JobStatus.DEAD: 1}
    assert messages(log, "job.dead") == [
        f"job.dead job_id={job.id} attempt=3 error=ProviderUnavailableError: still busy"
    ]


@pytest.mark.parametrize(
    ("error", "summary"),
    [
        (ProviderRequestError(400, "bad request"), "AI provider refused the request (HTTP 400)"),
        (AIConfigurationError("no key"), "AI provider is not configured on the platform"),
        (PermanentJobError("the skill has no name"), "the skill has no name"),
    ],
)
def test_a_permanent_error_fails_the_job_at_the_first_attempt(
    db_session: Session,
    make_job: MakeJob,
    error: Exception,
    summary: str,
    log: pytest.LogCaptureFixture,
) -> None:
    job = make_job()
    claimed = held(db_session, job)
    counted = Transitions()
    before = utcnow()

    outcome = generation.fail(db_session, claimed, error)

    assert outcome == generation.Outcome(status=JobStatus.FAILED)
    db_session.refresh(job)
    assert (job.status, job.attempts, job.deadline_at, job.last_error) == (
        JobStatus.FAILED,
        1,
        None,
        summary,
    )
    assert job.finished_at is not None
    assert before <= job.finished_at <= utcnow()
    assert counted.counted() == {JobStatus.FAILED: 1}
    assert messages(log, "job.failed") == [
        f"job.failed job_id={job.id} attempt=1 error={type(error).__name__}: {error}"
    ]


def test_a_long_error_is_cut_to_the_columns_limit(db_session: Session, make_job: MakeJob) -> None:
    job = make_job()
    claimed = held(db_session, job)

    generation.fail(db_session, claimed, PermanentJobError("x" * (MAX_ERROR + 50)))

    db_session.refresh(job)
    assert job.last_error == "x" * MAX_ERROR


# --- a result that comes too late -----------------------------------------------------------------


def test_a_result_after_the_job_was_requeued_is_discarded(
    db_session: Session, make_job: MakeJob, log: pytest.LogCaptureFixture
) -> None:
    job = make_job()
    claimed = held(db_session, job)
    job.status = JobStatus.QUEUED  # as the sweeper or an admin does, with the same attempt count
    db_session.commit()
    counted = Transitions()

    assert generation.succeed(db_session, claimed, generated(mcq("Late?"))).status is None
    assert generation.fail(db_session, claimed, RuntimeError("late")).status is None

    assert items_of(db_session, job) == []
    db_session.refresh(job)
    assert (job.status, job.attempts) == (JobStatus.QUEUED, 1)
    assert counted.counted() == {}
    lost = (
        f"job.lost_claim job_id={job.id} attempt=1: another run took over; discarding this result"
    )
    assert messages(log, "job.lost_claim") == [lost, lost]


def test_a_result_for_a_job_deleted_meanwhile_is_discarded(
    db_session: Session, make_job: MakeJob
) -> None:
    job = make_job()
    claimed = held(db_session, job)
    db_session.delete(job)
    db_session.commit()

    assert generation.succeed(db_session, claimed, generated(mcq("Orphan?"))).status is None
    assert generation.fail(db_session, claimed, RuntimeError("orphan")).status is None
    assert db_session.scalars(select(Item).where(Item.prompt == "Orphan?")).all() == []


# --- row locks ------------------------------------------------------------------------------------
# A run decides from the job row only once no other session holds it: it reads the row under a
# lock. Each test takes a path on which the run writes nothing, so only that read can wait.


def held_elsewhere(session: Session, job_id: uuid.UUID) -> None:
    """Lock the job row in `session` as a concurrent claim or sweep does."""
    session.execute(select(Job).where(Job.id == job_id).with_for_update()).scalar_one()


def impatient(session: Session) -> None:
    """Give up on a row lock after a moment: a wait shows up as an OperationalError."""
    session.connection().exec_driver_sql("SET LOCAL lock_timeout = '100ms'")


@pytest.mark.commits
def test_a_claim_reads_the_job_only_once_another_session_lets_go_of_it(
    engine: Engine, db_session: Session, make_job: MakeJob
) -> None:
    deadline = utcnow() + TIMEOUT
    job_id = make_job(status=JobStatus.RUNNING, attempts=1, deadline_at=deadline).id
    db_session.close()
    with Session(engine) as other, Session(engine) as worker:
        held_elsewhere(other, job_id)
        impatient(worker)

        with pytest.raises(OperationalError, match="lock timeout"):
            generation.claim(worker, job_id, TIMEOUT)  # it would defer, writing nothing
        worker.rollback()
        other.rollback()

        outcome = generation.claim(worker, job_id, TIMEOUT)
        assert outcome == generation.Outcome(status=JobStatus.RUNNING, defer_to=deadline)


@pytest.mark.commits
@pytest.mark.parametrize("step", ["succeed", "fail"])
def test_a_result_is_checked_against_the_job_only_once_another_session_lets_go_of_it(
    engine: Engine, db_session: Session, make_job: MakeJob, step: str
) -> None:
    job_id = make_job(params={"count": 1}).id
    db_session.close()
    with Session(engine) as other, Session(engine) as worker:
        claimed = generation.claim(worker, job_id, TIMEOUT)
        assert isinstance(claimed, generation.Claim)
        # Another delivery took the job over (a later attempt), and holds its row again.
        taken = other.get(Job, job_id)
        assert taken is not None
        taken.attempts += 1
        other.commit()
        held_elsewhere(other, job_id)
        impatient(worker)

        def record() -> generation.Outcome:
            if step == "succeed":
                return generation.succeed(worker, claimed, generated(mcq("Locked?")))
            return generation.fail(worker, claimed, RuntimeError("locked"))

        with pytest.raises(OperationalError, match="lock timeout"):
            record()  # it would discard the result, writing nothing
        worker.rollback()
        other.rollback()

        assert record() == generation.Outcome(status=None)
        job = worker.get(Job, job_id)
        assert job is not None
        assert (job.status, job.attempts, job.result) == (JobStatus.RUNNING, 2, None)


# --- run: the provider call -----------------------------------------------------------------------


def ai_calls(provider: str, outcome: str) -> float:
    labels = {"operation": "generate_items", "provider": provider, "outcome": outcome}
    return REGISTRY.get_sample_value("mastery_ai_calls_total", labels) or 0.0


def ai_seconds(provider: str) -> float:
    labels = {"operation": "generate_items", "provider": provider}
    return REGISTRY.get_sample_value("mastery_ai_call_duration_seconds_sum", labels) or 0.0


def ai_tokens(provider: str, kind: str) -> float:
    labels = {"operation": "generate_items", "provider": provider, "kind": kind}
    return REGISTRY.get_sample_value("mastery_ai_tokens_total", labels) or 0.0


def test_a_run_sends_the_material_and_count_and_counts_the_call(
    db_session: Session, make_job: MakeJob, skill: Skill, log: pytest.LogCaptureFixture
) -> None:
    job = make_job(params={"count": 3})
    loaded: list[uuid.UUID] = []

    def load_material(_session: Session, skill_id: uuid.UUID) -> str:
        loaded.append(skill_id)
        return "# notes.md\nChlorophyll absorbs red and blue light."

    before = (ai_calls("openai", "success"), ai_seconds("openai"))
    tokens = (ai_tokens("openai", "prompt"), ai_tokens("openai", "completion"))
    started = time.perf_counter()
    with respx.mock(base_url=AI_BASE_URL, assert_all_called=True) as ai:
        route = ai.post("/chat/completions").mock(return_value=completion(drafts(3)))
        with log.at_level(logging.INFO, "app.ai.runtime"):
            outcome = generation.run(db_session, job.id, http_provider(), TIMEOUT, load_material)
    elapsed = time.perf_counter() - started

    assert outcome == generation.Outcome(status=JobStatus.SUCCEEDED)
    assert loaded == [skill.id]
    prompt = json.loads(route.calls.last.request.content)["messages"][-1]["content"]
    assert "Chlorophyll absorbs red and blue light." in prompt
    assert "3" in prompt
    assert len(items_of(db_session, job)) == 3
    assert ai_calls("openai", "success") == before[0] + 1
    assert 0.0 <= ai_seconds("openai") - before[1] <= elapsed
    assert (ai_tokens("openai", "prompt"), ai_tokens("openai", "completion")) == (
        tokens[0] + 120,
        tokens[1] + 80,
    )
    (usage,) = messages(log, "ai.usage")
    assert usage.endswith(f" job_id={job.id}")


def test_a_provider_error_is_counted_and_the_attempt_fails(
    db_session: Session, make_job: MakeJob
) -> None:
    job = make_job()
    before = (ai_calls("openai", "error"), ai_seconds("openai"))
    started = time.perf_counter()
    with respx.mock(base_url=AI_BASE_URL, assert_all_called=True) as ai:
        ai.post("/chat/completions").mock(return_value=httpx.Response(503))
        outcome = generation.run(db_session, job.id, http_provider(), TIMEOUT, lambda *_: "")
    elapsed = time.perf_counter() - started

    assert outcome.status is JobStatus.QUEUED
    assert ai_calls("openai", "error") == before[0] + 1
    assert 0.0 <= ai_seconds("openai") - before[1] <= elapsed
    db_session.refresh(job)
    assert job.last_error is not None
    assert job.last_error.startswith("AI provider unavailable")


def test_a_crash_while_reading_the_material_is_logged_and_the_attempt_fails(
    db_session: Session, make_job: MakeJob, log: pytest.LogCaptureFixture
) -> None:
    job = make_job()

    def broken_loader(_session: Session, _skill_id: uuid.UUID) -> str:
        raise LookupError("no such bucket")

    outcome = generation.run(db_session, job.id, OfflineProvider(), TIMEOUT, broken_loader)

    assert outcome.status is JobStatus.QUEUED
    (crashed,) = [r for r in log.records if r.getMessage().startswith("job.crashed")]
    assert crashed.getMessage() == f"job.crashed job_id={job.id}"
    assert crashed.exc_info is not None
    assert isinstance(crashed.exc_info[1], LookupError)
    db_session.refresh(job)
    assert job.last_error == "an internal error interrupted the run"
