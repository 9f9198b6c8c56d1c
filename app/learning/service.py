"""Practice as plain functions over a session: enrol, start, serve the next item, answer, hint.

Concurrency: `submit_attempt` records under a lock on the practice session row, so two
submissions of one session are serialised; with an `Idempotency-Key`, a retry returns the first
result instead of counting twice (the key is unique per session in the database as well).

No lock and no transaction is held while an AI provider works (grading, hints can take
seconds): the request is read and validated first, the read transaction ends, the provider is
called, and only then is the session locked, everything checked again and the attempt recorded.
"""

from __future__ import annotations

import logging
import time
import uuid
import zlib
from dataclasses import dataclass
from itertools import compress
from typing import Any

import numpy as np
from sqlalchemy import Connection, Row, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.adaptive.calibration import update_difficulty
from app.adaptive.estimation import AbilityPosterior
from app.adaptive.irt import probability
from app.adaptive.mastery import MasteryRule
from app.adaptive.selection import ItemBank, select_item
from app.ai import AIProviderError, GradingRequest, HintRequest, Provider
from app.ai import metrics as ai_metrics
from app.ai.offline import OfflineProvider
from app.ai.runtime import log_usage
from app.auth.models import User
from app.content.models import Course, CourseStatus, Item, ItemKind, ItemStatus, Skill
from app.content.service import get_course, get_skill
from app.db import new_id, utcnow
from app.errors import Conflict, Forbidden, NotFound, ProblemError, validation_problem
from app.learning import queries
from app.learning.models import Attempt, Enrollment, PracticeSession, SkillState
from app.learning.schemas import AttemptIn, EstimateOut
from app.learning.scoring import (
    FALLBACK,
    Grade,
    grade_short_answer,
    reveals,
    score_mcq,
)
from app.observability import metrics

MASTERY = MasteryRule()
MAX_ANSWER_CHARS = 2000
# The hint of last resort, when neither the provider's nor the offline one may be shown.
GENERIC_HINT = "Re-read the question and name the key idea it asks about."
OFFLINE = OfflineProvider()

logger = logging.getLogger(__name__)


def _commit_keeping_loaded(session: Session) -> None:
    """Commit without expiring what is loaded: the response shows the rows just written, and
    reloading each of them after the commit would cost a statement per row (docs/load-testing.md
    "Query budget")."""
    expire = session.expire_on_commit
    session.expire_on_commit = False
    try:
        session.commit()
    finally:
        session.expire_on_commit = expire


def enrol(session: Session, user: User, course_id: uuid.UUID) -> tuple[Enrollment, bool]:
    """Enrol in a visible, published course; returns the enrolment and whether it is new."""
    course = get_course(session, user, course_id)
    if course.status is not CourseStatus.PUBLISHED:
        raise Conflict("Only published courses take enrolments.", slug="course-not-published")
    existing = session.scalar(
        select(Enrollment).where(Enrollment.user_id == user.id, Enrollment.course_id == course.id)
    )
    if existing is not None:
        return existing, False
    enrollment = Enrollment(user_id=user.id, course_id=course.id)
    session.add(enrollment)
    try:
        session.commit()
    except IntegrityError:  # a concurrent request enrolled first
        session.rollback()
        return enrol(session, user, course_id)
    return enrollment, True


def _skill_state(
    session: Session, user_id: uuid.UUID, skill_id: uuid.UUID, lock: bool = False
) -> SkillState:
    statement = select(SkillState).where(
        SkillState.user_id == user_id, SkillState.skill_id == skill_id
    )
    if lock:  # fresh values under the lock, whatever an earlier read left in the session
        statement = statement.with_for_update().execution_options(populate_existing=True)
    state = session.scalar(statement)
    if state is None:
        start = AbilityPosterior.start()
        state = SkillState(
            user_id=user_id,
            skill_id=skill_id,
            posterior=start.to_state(),
            theta=start.theta,
            se=start.se,
            attempts=0,
            correct=0,
            mastered=False,
        )
        try:
            with session.begin_nested():  # a concurrent first request may insert it first
                session.add(state)
        except IntegrityError:
            state = session.scalar(statement)
            if state is None:  # pragma: no cover - the conflicting row cannot vanish
                raise
    return state


def estimate_of(state: SkillState) -> EstimateOut:
    return EstimateOut(
        theta=state.theta, se=state.se, attempts=state.attempts, mastered=state.mastered
    )


def start_session(
    session: Session, user: User, skill_id: uuid.UUID
) -> tuple[PracticeSession, SkillState]:
    skill = get_skill(session, user, skill_id)
    if skill.course.status is not CourseStatus.PUBLISHED:
        raise NotFound("No such skill.")
    enrolled = session.scalar(
        select(Enrollment.id).where(
            Enrollment.user_id == user.id, Enrollment.course_id == skill.course_id
        )
    )
    if enrolled is None:
        raise Forbidden("Enrol in the course before practising its skills.", slug="not-enrolled")
    practice = PracticeSession(user_id=user.id, skill_id=skill.id)
    session.add(practice)
    state = _skill_state(session, user.id, skill.id)
    session.commit()
    return practice, state


def get_session_of(
    session: Session, user: User, session_id: uuid.UUID, lock: bool = False
) -> PracticeSession:
    """The caller's own practice session; anybody else's is a 404 so ids do not leak."""
    return _session_of(session, user.id, session_id, lock)


def _session_of(
    session: Session, user_id: uuid.UUID, session_id: uuid.UUID, lock: bool = False
) -> PracticeSession:
    statement = select(PracticeSession).where(
        PracticeSession.id == session_id, PracticeSession.user_id == user_id
    )
    if lock:  # fresh values under the lock, whatever an earlier read left in the session
        statement = statement.with_for_update().execution_options(populate_existing=True)
    practice = session.scalar(statement)
    if practice is None:
        raise NotFound("No such session.")
    return practice


def session_state(session: Session, user: User, practice: PracticeSession) -> SkillState:
    return _skill_state(session, user.id, practice.skill_id)


@dataclass(frozen=True)
class _Answering:
    """What an answer reads of the caller's locked session and skill state
    (queries.LOCK_ANSWERING)."""

    id: uuid.UUID
    pending_item_id: uuid.UUID | None
    state_id: uuid.UUID
    theta: float
    posterior: dict[str, Any]
    attempts: int
    correct: int
    status: CourseStatus | None


@dataclass(frozen=True)
class RecordedAttempt:
    """What an answer's response shows: the attempt recorded now, or the one an earlier
    submission with the same Idempotency-Key recorded (`of`)."""

    id: uuid.UUID
    item_id: uuid.UUID
    correct: bool
    score: float
    feedback: str
    graded_by: str
    theta_after: float
    se_after: float
    attempts_after: int
    mastered_after: bool

    @classmethod
    def of(cls, attempt: Attempt) -> RecordedAttempt:
        return cls(
            attempt.id,
            attempt.item_id,
            attempt.correct,
            attempt.score,
            attempt.feedback,
            attempt.graded_by,
            attempt.theta_after,
            attempt.se_after,
            attempt.attempts_after,
            attempt.mastered_after,
        )


def _locked_answering(session: Session, user_id: uuid.UUID, session_id: uuid.UUID) -> _Answering:
    """The caller's practice session and skill state under their row locks, and the course's
    status, in one statement (404 for anybody else's session; queries.LOCK_ANSWERING).

    Fresh values under the locks, whatever an earlier read left in the session: while this
    waits for a concurrent holder, Postgres re-reads the locked rows when it commits."""
    found = (
        session.connection()
        .execute(queries.LOCK_ANSWERING, {"session_id": session_id, "user_id": user_id})
        .one_or_none()
    )
    if found is not None:
        return _Answering(*found)
    # No such session (404 below), or its skill state is gone (start_session creates it; a
    # data repair may not have): the same, a statement at a time, creating the state.
    practice = _session_of(session, user_id, session_id, lock=True)
    state = _skill_state(session, user_id, practice.skill_id, lock=True)
    return _Answering(
        practice.id,
        practice.pending_item_id,
        state.id,
        state.theta,
        state.posterior,
        state.attempts,
        state.correct,
        _course_status(session, practice),
    )


@dataclass(frozen=True)
class _Serving:
    """What /next reads of the caller's locked session and skill state (queries.LOCK_SERVING)."""

    id: uuid.UUID
    skill_id: uuid.UUID
    pending_item_id: uuid.UUID | None
    served: int
    theta: float
    se: float
    attempts: int
    mastered: bool
    status: CourseStatus | None


def _locked_serving(session: Session, user_id: uuid.UUID, session_id: uuid.UUID) -> _Serving:
    """The caller's practice session and skill state under their row locks, and the course's
    status, as `_locked_answering` reads them, in columns (404 for anybody else's session)."""
    row = session.connection().execute(
        queries.LOCK_SERVING, {"session_id": session_id, "user_id": user_id}
    )
    found = row.one_or_none()
    if found is not None:
        return _Serving(*found)
    # No such session (404 below), or its skill state is gone: as in _locked_answering.
    practice = _session_of(session, user_id, session_id, lock=True)
    state = _skill_state(session, user_id, practice.skill_id, lock=True)
    status = _course_status(session, practice)
    return _Serving(
        practice.id,
        practice.skill_id,
        practice.pending_item_id,
        practice.served,
        state.theta,
        state.se,
        state.attempts,
        state.mastered,
        status,
    )


def next_item(session: Session, user: User, session_id: uuid.UUID) -> tuple[Row[Any], EstimateOut]:
    """The engine's choice for this learner now; asking again before answering repeats it.
    The item is its public columns (queries.PUBLIC_ITEM), with the learner's estimate."""
    practice = _locked_serving(session, user.id, session_id)
    _require_published(practice.status)
    estimate = EstimateOut(
        theta=practice.theta, se=practice.se, attempts=practice.attempts, mastered=practice.mastered
    )
    # Core statements go to the transaction's connection, not through the ORM's execute
    # (whose per-statement bookkeeping they do not need).
    connection = session.connection()
    if practice.pending_item_id is not None:
        pending = connection.execute(
            queries.PUBLIC_ITEM, {"item_id": practice.pending_item_id}
        ).one_or_none()
        if pending is not None and pending.status is ItemStatus.PUBLISHED:
            _commit_keeping_loaded(session)
            return pending, estimate
    # Selection latency: the bank query and the engine's pick (not a repeat).
    started = time.perf_counter()
    # The bank as (id, a, b) rows, the learner's latest answers flagged (queries.BANK).
    bank_items = connection.execute(
        queries.BANK, {"user_id": user.id, "skill_id": practice.skill_id}
    ).all()
    if not bank_items:
        raise Conflict("This skill has no published items yet.", slug="no-items")
    # Columns by zip and compress, in C: a loop over the rows in Python was a tenth of a /next
    # request's work (docs/benchmarks.md "Serving cost").
    ids, a, b, recent = zip(*bank_items, strict=True)
    bank = ItemBank(ids=ids, a=np.array(a, dtype=np.float64), b=np.array(b, dtype=np.float64))
    # Seeded by session and position, so a replayed session makes the same choices.
    rng = np.random.default_rng([zlib.crc32(practice.id.bytes), practice.served])
    excluded = frozenset(compress(ids, recent))
    chosen = select_item(bank, practice.theta, rng, excluded=excluded)
    if chosen is None:  # every item was seen recently: choose among all of them again
        chosen = select_item(bank, practice.theta, rng)
    item = connection.execute(queries.PUBLIC_ITEM, {"item_id": uuid.UUID(chosen)}).one()
    metrics.observe_selection(time.perf_counter() - started)
    served = practice.served + 1
    connection.execute(
        queries.SERVE, {"session_id": practice.id, "item_id": item.id, "served_count": served}
    )
    _commit_keeping_loaded(session)
    return item, estimate


def _course_status(session: Session, practice: PracticeSession) -> CourseStatus | None:
    return session.scalar(
        select(Course.status)
        .join(Skill, Skill.course_id == Course.id)
        .where(Skill.id == practice.skill_id)
    )


def _require_published(status: CourseStatus | None) -> None:
    if status is not CourseStatus.PUBLISHED:
        raise Conflict(
            "The course is no longer published; practice has ended.", slug="course-closed"
        )


def _require_open_course(session: Session, practice: PracticeSession) -> None:
    _require_published(_course_status(session, practice))


def _require_pending(practice: PracticeSession | _Answering, item_id: uuid.UUID) -> None:
    if practice.pending_item_id != item_id:
        raise Conflict(
            "This item was not served in this session (ask /next first).", slug="item-not-served"
        )


def _check_response(kind: ItemKind, choices: list[str] | None, response: int | str) -> None:
    """422 unless `response` has the shape an item of `kind` with `choices` takes."""
    if kind is ItemKind.MCQ:
        choices = choices or []
        if not isinstance(response, int) or not 0 <= response < len(choices):
            raise _bad_response(f"an integer from 0 to {len(choices) - 1} (the chosen choice)")
    elif not isinstance(response, str) or not response.strip() or len(response) > MAX_ANSWER_CHARS:
        raise _bad_response(f"the answer text (1-{MAX_ANSWER_CHARS} characters)")


def _bad_response(expected: str) -> ProblemError:
    return validation_problem("json", "response", f"expected {expected}")


def rubric_lines(rubric: str | None) -> list[str]:
    """The rubric's criteria: one per line, blank lines and bullet marks dropped."""
    lines = (line.strip().lstrip("-*\u2022").strip() for line in (rubric or "").splitlines())
    return [line for line in lines if line]


def _replay_by_id(
    session: Session, attempt_id: uuid.UUID | None, item_id: uuid.UUID
) -> Attempt | None:
    if attempt_id is None:
        return None
    return _check_replay(session.get_one(Attempt, attempt_id), item_id)


def _check_replay(replay: Attempt, item_id: uuid.UUID) -> Attempt:
    if replay.item_id != item_id:
        raise Conflict(
            "This Idempotency-Key was used for another answer.", slug="idempotency-key-reused"
        )
    return replay


def _replay(
    session: Session, practice_id: uuid.UUID, item_id: uuid.UUID, idempotency_key: str | None
) -> Attempt | None:
    """The attempt recorded earlier with this Idempotency-Key (409 if it answered another item)."""
    if idempotency_key is None:
        return None
    replay = session.scalar(
        select(Attempt).where(
            Attempt.session_id == practice_id, Attempt.idempotency_key == idempotency_key
        )
    )
    return _check_replay(replay, item_id) if replay is not None else None


def submit_attempt(
    session: Session,
    user: User,
    session_id: uuid.UUID,
    data: AttemptIn,
    idempotency_key: str | None,
    grader: Provider,
) -> tuple[RecordedAttempt, bool]:
    """Score an answer and move θ, SE and the item's difficulty in one transaction.

    The answer is recorded under the session's row lock. An mcq is scored there, exactly and
    at once. A short answer needs the provider, which may take seconds, and nothing may be
    locked or open meanwhile: the locked pass stops at the grading request, the transaction
    ends, the provider grades (the rules answer if it fails), and a second locked pass checks
    again what may have changed meanwhile and records. Returns the attempt and whether it was
    created now (False: an idempotent replay).
    """
    user_id = user.id  # read before a rollback expires `user` (reading it after costs a query)
    outcome = _record(session, user_id, session_id, data, idempotency_key, None)
    if isinstance(outcome, GradingRequest):
        session.rollback()  # the locked pass wrote nothing; no lock while the provider works
        grade = grade_short_answer(grader, outcome, session_id=str(session_id))
        outcome = _record(session, user_id, session_id, data, idempotency_key, grade)
    if isinstance(outcome, GradingRequest):  # pragma: no cover - a graded pass records
        raise RuntimeError("a graded answer asked for grading again")
    return outcome


def _record(
    session: Session,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    data: AttemptIn,
    idempotency_key: str | None,
    grade: Grade | None,
) -> tuple[RecordedAttempt, bool] | GradingRequest:
    """One locked pass of `submit_attempt`: the recorded attempt, or what grading needs when
    the item is a short answer and `grade` is None (then nothing is written)."""
    practice = _locked_answering(session, user_id, session_id)
    # The item under its lock, whether this learner answered it before, and the attempt an
    # earlier submission with this Idempotency-Key recorded: one statement. Both reads see
    # every earlier answer of this learner to this skill's items, because those answers were
    # recorded under the skill state's lock, which this request now holds.
    connection = session.connection()
    item = connection.execute(
        queries.LOCK_ITEM,
        {
            "item_id": data.item_id,
            "user_id": user_id,
            "session_id": practice.id,
            "idempotency_key": idempotency_key,
        },
    ).one_or_none()
    if idempotency_key is not None:
        # A concurrent submission may have recorded this answer while this one waited for the
        # lock: the same key returns it (409 if it answered another item).
        replay = (
            _replay(session, practice.id, data.item_id, idempotency_key)
            if item is None  # no such item: look the key up on its own
            else _replay_by_id(session, item.replayed, data.item_id)
        )
        if replay is not None:
            recorded = RecordedAttempt.of(replay)
            session.commit()
            return recorded, False
    _require_pending(practice, data.item_id)
    _require_published(practice.status)
    if item is None or item.status is not ItemStatus.PUBLISHED:
        connection.execute(queries.CLEAR_PENDING, {"session_id": practice.id})
        session.commit()
        raise Conflict("The item was withdrawn; ask /next for another.", slug="item-withdrawn")
    if grade is None:
        _check_response(item.kind, item.choices, data.response)
        if item.kind is ItemKind.SHORT_ANSWER:
            return GradingRequest(
                item_id=str(item.id),
                stem=item.prompt,
                reference_answer=item.reference_answer or "",
                rubric=rubric_lines(item.rubric),
                response=str(data.response),
            )
        grade = score_mcq(item.choices or [], int(data.response))

    theta_before = practice.theta
    # The engine's prediction for this attempt, made before the answer moves the estimate.
    predicted = float(probability(theta_before, item.a, item.b))
    posterior = AbilityPosterior.from_state(practice.posterior).update(
        item.a, item.b, grade.correct
    )
    now = utcnow()
    attempts = practice.attempts + 1
    mastered = MASTERY.is_mastered(posterior.theta, posterior.se)
    attempt = RecordedAttempt(
        id=new_id(),
        item_id=item.id,
        correct=grade.correct,
        score=grade.score,
        feedback=grade.feedback,
        graded_by=grade.graded_by,
        theta_after=posterior.theta,
        se_after=posterior.se,
        attempts_after=attempts,
        mastered_after=mastered,
    )
    values = {
        # The attempt's row: every column given its value here (no column default runs).
        **{f"attempt_{name}": value for name, value in vars(attempt).items()},
        "attempt_user_id": user_id,
        "attempt_response": data.response,
        "attempt_idempotency_key": idempotency_key,
        "session_id": practice.id,
        "item_id": item.id,
        "now": now,
        # The skill state's new estimate.
        "state_id": practice.state_id,
        "state_posterior": posterior.to_state(),
        "state_theta": posterior.theta,
        "state_se": posterior.se,
        "state_attempts": attempts,
        "state_correct": practice.correct + int(grade.correct),
        "state_mastered": mastered,
    }
    # Only a learner's first answer to an item calibrates it, so one learner repeating an
    # item cannot drag its difficulty for everybody.
    calibrates = not item.answered_before
    if calibrates:
        values["item_b"] = update_difficulty(
            item.a, item.b, theta_before, grade.correct, item.calibration_attempts
        )
        values["item_calibration_attempts"] = item.calibration_attempts + 1
    _write_answer(connection, values, calibrates)
    _commit_keeping_loaded(session)
    metrics.record_prediction(predicted, grade.correct, attempt.se_after)
    return attempt, True


def _write_answer(connection: Connection, values: dict[str, Any], calibrates: bool) -> None:
    """The answer's writes on the rows it holds locked: the skill state, the session's pending
    item cleared, the item's calibration when `calibrates`, and the attempt (queries)."""
    if connection.dialect.name == "postgresql":
        answer = queries.RECORD_CALIBRATING_ANSWER if calibrates else queries.RECORD_ANSWER
        connection.execute(answer, values)
        return
    for statement in (queries.RECORD_STATE, queries.CLEAR_PENDING, queries.RECORD_ATTEMPT):
        connection.execute(statement, values)
    if calibrates:
        connection.execute(queries.CALIBRATE, values)


def hint_request(
    session: Session, user: User, session_id: uuid.UUID, item_id: uuid.UUID
) -> HintRequest:
    """What a hint for the item pending in the caller's session needs, read without locks; the
    read transaction is over when this returns, so the provider can take its time."""
    practice = get_session_of(session, user, session_id)
    _require_pending(practice, item_id)
    _require_open_course(session, practice)
    item = session.get(Item, item_id)
    if item is None or item.status is not ItemStatus.PUBLISHED:
        raise Conflict("The item was withdrawn; ask /next for another.", slug="item-withdrawn")
    if item.kind is not ItemKind.SHORT_ANSWER:
        # A hint towards one of a few shown choices all but names it.
        raise Conflict("Hints are given for short-answer items only.", slug="no-hint-for-mcq")
    request = HintRequest(
        item_id=str(item.id),
        stem=item.prompt,
        reference_answer=item.reference_answer or "",
        rubric=rubric_lines(item.rubric),
    )
    session.rollback()
    return request


def give_hint(provider: Provider, request: HintRequest, **ids: uuid.UUID | str) -> tuple[str, str]:
    """(hint, hinted_by): the provider's hint; the offline one (`"fallback"`) when the provider
    fails or its hint contains the reference answer. Call it outside any transaction."""
    started = time.perf_counter()
    try:
        hint = provider.hint(request)
    except AIProviderError as error:
        ai_metrics.record_ai_call("hint", provider.name, time.perf_counter() - started, error=error)
        reason = type(error).__name__
    else:
        ai_metrics.record_ai_call(
            "hint", provider.name, time.perf_counter() - started, usage=hint.usage
        )
        log_usage(hint, item_id=request.item_id, **ids)
        if not reveals(hint.hint, request.reference_answer):
            return hint.hint, hint.provider
        reason = "reveals-answer"
    ai_metrics.record_ai_fallback("hint", provider.name)
    logger.warning(
        "ai.hint_fallback provider=%s reason=%s item_id=%s",
        provider.name,
        reason,
        request.item_id,
    )
    text = OFFLINE.hint(request).hint
    return (GENERIC_HINT if reveals(text, request.reference_answer) else text), FALLBACK


def progress(session: Session, user: User) -> list[tuple[SkillState, Skill]]:
    rows = session.execute(
        select(SkillState, Skill)
        .join(Skill, SkillState.skill_id == Skill.id)
        .join(Course, Skill.course_id == Course.id)
        .where(SkillState.user_id == user.id)
        .order_by(Course.title, Skill.name)
    ).all()
    return [(state, skill) for state, skill in rows]
