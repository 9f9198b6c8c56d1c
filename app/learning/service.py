"""Practice as plain functions over a session: enrol, start, serve the next item, answer.

Concurrency: `submit_attempt` locks the practice session row, so two submissions of one
session are serialised; with an `Idempotency-Key`, a retry returns the first result instead of
counting twice (the key is unique per session in the database as well).
"""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Sequence

import numpy as np
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.adaptive.calibration import update_difficulty
from app.adaptive.estimation import AbilityPosterior
from app.adaptive.mastery import MasteryRule
from app.adaptive.selection import ItemBank, recently_seen, select_item
from app.auth.models import User
from app.content.models import Course, CourseStatus, Item, ItemKind, ItemStatus, Skill
from app.content.service import get_course, get_skill
from app.errors import Conflict, Forbidden, NotFound, ProblemError, validation_problem
from app.learning.models import Attempt, Enrollment, PracticeSession, SkillState
from app.learning.schemas import AttemptIn, EstimateOut
from app.learning.scoring import Grade, score_mcq, score_short_answer

EXCLUDE_LAST_N = 20
MASTERY = MasteryRule()


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
    session: Session, user: User, skill_id: uuid.UUID, lock: bool = False
) -> SkillState:
    statement = select(SkillState).where(
        SkillState.user_id == user.id, SkillState.skill_id == skill_id
    )
    state = session.scalar(statement.with_for_update() if lock else statement)
    if state is None:
        start = AbilityPosterior.start()
        state = SkillState(
            user_id=user.id,
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
            state = session.scalar(statement.with_for_update() if lock else statement)
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
    state = _skill_state(session, user, skill.id)
    session.commit()
    return practice, state


def get_session_of(
    session: Session, user: User, session_id: uuid.UUID, lock: bool = False
) -> PracticeSession:
    """The caller's own practice session; anybody else's is a 404 so ids do not leak."""
    statement = select(PracticeSession).where(
        PracticeSession.id == session_id, PracticeSession.user_id == user.id
    )
    practice = session.scalar(statement.with_for_update() if lock else statement)
    if practice is None:
        raise NotFound("No such session.")
    return practice


def session_state(session: Session, user: User, practice: PracticeSession) -> SkillState:
    return _skill_state(session, user, practice.skill_id)


def next_item(session: Session, user: User, session_id: uuid.UUID) -> tuple[Item, SkillState]:
    """The engine's choice for this learner now; asking again before answering repeats it."""
    practice = get_session_of(session, user, session_id, lock=True)
    _require_open_course(session, practice)
    state = _skill_state(session, user, practice.skill_id)
    if practice.pending_item_id is not None:
        pending = session.get(Item, practice.pending_item_id)
        if pending is not None and pending.status is ItemStatus.PUBLISHED:
            session.commit()
            return pending, state
    bank_items = session.scalars(
        select(Item).where(Item.skill_id == practice.skill_id, Item.status == ItemStatus.PUBLISHED)
    ).all()
    if not bank_items:
        raise Conflict("This skill has no published items yet.", slug="no-items")
    history: Sequence[uuid.UUID] = session.scalars(
        select(Attempt.item_id)
        .join(PracticeSession, Attempt.session_id == PracticeSession.id)
        .where(Attempt.user_id == user.id, PracticeSession.skill_id == practice.skill_id)
        .order_by(Attempt.created_at.desc())
        .limit(EXCLUDE_LAST_N)
    ).all()
    bank = ItemBank.from_items((str(i.id), i.a, i.b) for i in bank_items)
    # Seeded by session and position, so a replayed session makes the same choices.
    rng = np.random.default_rng([zlib.crc32(practice.id.bytes), practice.served])
    excluded = recently_seen([str(i) for i in reversed(history)], EXCLUDE_LAST_N)
    chosen = select_item(bank, state.theta, rng, excluded=excluded)
    if chosen is None:  # every item was seen recently: choose among all of them again
        chosen = select_item(bank, state.theta, rng)
    item = next(i for i in bank_items if str(i.id) == chosen)
    practice.pending_item_id = item.id
    practice.served += 1
    session.commit()
    return item, state


def _require_open_course(session: Session, practice: PracticeSession) -> None:
    skill = session.get(Skill, practice.skill_id)
    if skill is None or skill.course.status is not CourseStatus.PUBLISHED:
        raise Conflict(
            "The course is no longer published; practice has ended.", slug="course-closed"
        )


def _grade(item: Item, response: int | str) -> Grade:
    if item.kind is ItemKind.MCQ:
        choices = item.choices or []
        if not isinstance(response, int) or not 0 <= response < len(choices):
            raise _bad_response(f"an integer from 0 to {len(choices) - 1} (the chosen choice)")
        return score_mcq(choices, response)
    if not isinstance(response, str) or not response.strip() or len(response) > 2000:
        raise _bad_response("the answer text (1-2000 characters)")
    return score_short_answer(item.reference_answer or "", response)


def _bad_response(expected: str) -> ProblemError:
    return validation_problem("json", "response", f"expected {expected}")


def submit_attempt(
    session: Session,
    user: User,
    session_id: uuid.UUID,
    data: AttemptIn,
    idempotency_key: str | None,
) -> tuple[Attempt, bool]:
    """Score an answer and move θ, SE and the item's difficulty in one transaction.

    Returns the attempt and whether it was created now (False: an idempotent replay).
    """
    practice = get_session_of(session, user, session_id, lock=True)
    if idempotency_key is not None:
        replay = session.scalar(
            select(Attempt).where(
                Attempt.session_id == practice.id, Attempt.idempotency_key == idempotency_key
            )
        )
        if replay is not None:
            if replay.item_id != data.item_id:
                raise Conflict(
                    "This Idempotency-Key was used for another answer.",
                    slug="idempotency-key-reused",
                )
            session.commit()
            return replay, False
    if practice.pending_item_id != data.item_id:
        raise Conflict(
            "This item was not served in this session (ask /next first).", slug="item-not-served"
        )
    _require_open_course(session, practice)
    item = session.get(Item, data.item_id, with_for_update=True)
    if item is None or item.status is not ItemStatus.PUBLISHED:
        practice.pending_item_id = None
        session.commit()
        raise Conflict("The item was withdrawn; ask /next for another.", slug="item-withdrawn")
    grade = _grade(item, data.response)
    # Only a learner's first answer to an item calibrates it, so one learner repeating an
    # item cannot drag its difficulty for everybody.
    first_answer = (
        session.scalar(
            select(Attempt.id)
            .where(Attempt.user_id == user.id, Attempt.item_id == item.id)
            .limit(1)
        )
        is None
    )

    state = _skill_state(session, user, practice.skill_id, lock=True)
    theta_before = state.theta
    posterior = AbilityPosterior.from_state(state.posterior).update(item.a, item.b, grade.correct)
    state.posterior = posterior.to_state()
    state.theta, state.se = posterior.theta, posterior.se
    state.attempts += 1
    state.correct += int(grade.correct)
    state.mastered = MASTERY.is_mastered(state.theta, state.se)
    if first_answer:
        item.b = update_difficulty(
            item.a, item.b, theta_before, grade.correct, item.calibration_attempts
        )
        item.calibration_attempts += 1
    practice.pending_item_id = None
    attempt = Attempt(
        session_id=practice.id,
        user_id=user.id,
        item_id=item.id,
        response=data.response,
        correct=grade.correct,
        score=grade.score,
        feedback=grade.feedback,
        graded_by=grade.graded_by,
        theta_after=state.theta,
        se_after=state.se,
        mastered_after=state.mastered,
        attempts_after=state.attempts,
        idempotency_key=idempotency_key,
    )
    session.add(attempt)
    session.commit()
    return attempt, True


def progress(session: Session, user: User) -> list[tuple[SkillState, Skill]]:
    rows = session.execute(
        select(SkillState, Skill)
        .join(Skill, SkillState.skill_id == Skill.id)
        .join(Course, Skill.course_id == Course.id)
        .where(SkillState.user_id == user.id)
        .order_by(Course.title, Skill.name)
    ).all()
    return [(state, skill) for state, skill in rows]
