"""The statements of the practice hot path (`/next` and answers), built once at import.

Every practice request runs these. Building a SQLAlchemy expression and its cache key anew on
each call cost more CPU than Postgres spends answering the query (docs/load-testing.md
"Query budget"); a statement built once keeps its cache key, and each call only binds its
values by name (`session_id`, `user_id`, `skill_id`, `item_id`, `idempotency_key`).
"""

from __future__ import annotations

from sqlalchemy import String, and_, bindparam, cast, exists, insert, select, update

from app.content.models import Course, Item, ItemStatus, Skill
from app.learning.models import Attempt, PracticeSession, SkillState

# How many of a learner's latest answers to a skill /next avoids repeating.
EXCLUDE_LAST_N = 20

_PRACTICE = (
    select(PracticeSession, SkillState, Course.status)
    .join(Skill, Skill.id == PracticeSession.skill_id)
    .join(Course, Course.id == Skill.course_id)
    .join(
        SkillState,
        and_(
            SkillState.user_id == PracticeSession.user_id,
            SkillState.skill_id == PracticeSession.skill_id,
        ),
    )
    .where(
        PracticeSession.id == bindparam("session_id"),
        PracticeSession.user_id == bindparam("user_id"),
    )
)
# The caller's session and skill state, both locked, and the course's status (/next and
# answers). Locking the state is what makes it fresh after a wait: Postgres re-reads only the
# locked rows when the holder commits, so /next waiting behind an answer sees that answer's
# estimate. And every answer of one learner to one skill is recorded under that lock,
# whichever of their sessions it comes from. The course's status is as of the statement's
# start: an unpublish landing during the wait is seen by the next request, as before this
# one reached the lock.
LOCK_PRACTICE = _PRACTICE.with_for_update(of=[PracticeSession, SkillState])
# /next's view of the same rows under the same locks, as plain columns: /next changes the
# session row with SERVE below and only reads the state, so it needs no ORM objects (loading
# the two was a twentieth of its work: docs/benchmarks.md "Serving cost").
LOCK_SERVING = LOCK_PRACTICE.with_only_columns(
    PracticeSession.id,
    PracticeSession.skill_id,
    PracticeSession.pending_item_id,
    PracticeSession.served,
    SkillState.theta,
    SkillState.se,
    SkillState.attempts,
    SkillState.mastered,
    Course.status,
)

# An answer's view of the same rows under the same locks: what recording the answer reads of
# the session and the skill state, as plain columns. The answer's writes are Core statements
# (RECORD_STATE and CLEAR_PENDING below), so ORM objects would only be built to be read.
LOCK_ANSWERING = LOCK_PRACTICE.with_only_columns(
    PracticeSession.id,
    PracticeSession.pending_item_id,
    SkillState.id,
    SkillState.theta,
    SkillState.posterior,
    SkillState.attempts,
    SkillState.correct,
    Course.status,
)

_RECENT = (
    select(Attempt.item_id)
    .join(PracticeSession, Attempt.session_id == PracticeSession.id)
    .where(
        Attempt.user_id == bindparam("user_id"), PracticeSession.skill_id == bindparam("skill_id")
    )
    .order_by(Attempt.created_at.desc())
    .limit(EXCLUDE_LAST_N)
)
# The skill's published bank as (id, a, b) rows, each flagged when it is among the learner's
# latest answers: what the engine needs, without building ORM objects (or decoding the choices)
# of a whole bank on every request. The id comes as text, the engine's id type (Postgres
# writes a uuid as `str(uuid.UUID)` does), so no row is converted in Python.
BANK = select(
    cast(Item.id, String).label("id"), Item.a, Item.b, Item.id.in_(_RECENT).label("recent")
).where(Item.skill_id == bindparam("skill_id"), Item.status == ItemStatus.PUBLISHED)

# The answered item under its lock, as the columns grading and calibration read; whether this
# learner answered it before (only a first answer calibrates it); and the attempt an earlier
# submission with this Idempotency-Key recorded in this session (None without a key: NULL
# matches nothing).
LOCK_ITEM = (
    select(
        Item.id,
        Item.kind,
        Item.status,
        Item.prompt,
        Item.choices,
        Item.reference_answer,
        Item.rubric,
        Item.a,
        Item.b,
        Item.calibration_attempts,
        exists()
        .where(Attempt.user_id == bindparam("user_id"), Attempt.item_id == bindparam("item_id"))
        .label("answered_before"),
        select(Attempt.id)
        .where(
            Attempt.session_id == bindparam("session_id"),
            Attempt.idempotency_key == bindparam("idempotency_key"),
        )
        .scalar_subquery()
        .label("replayed"),
    )
    .where(Item.id == bindparam("item_id"))
    .with_for_update(of=Item)
)

# What /next shows of an item (the public columns; never the answer key) and its status: a
# row, not an ORM object, since /next changes nothing on it. Loading the whole Item through
# the ORM was a tenth of a /next request's work (docs/benchmarks.md "Serving cost").
PUBLIC_ITEM = select(
    Item.id, Item.skill_id, Item.kind, Item.prompt, Item.choices, Item.status
).where(Item.id == bindparam("item_id"))

# /next's one write, on the session row it holds locked: the item now pending and the count.
# A Core UPDATE (run on the session's connection) rather than the ORM's unit of work, whose
# flush cost four times the statement itself (docs/benchmarks.md "Serving cost").
SERVE = (
    update(PracticeSession)
    .where(PracticeSession.id == bindparam("session_id"))
    .values(pending_item_id=bindparam("item_id"), served=bindparam("served_count"))
)

# An answer's writes, as Core statements run on the session's connection, on the rows the
# answer holds locked: the ORM's unit of work cost more than the four statements themselves
# (docs/benchmarks.md "Serving cost"). Each value is bound by the name given here, apart from
# the others' (the state's `correct` count is not the attempt's `correct` flag).
RECORD_STATE = (
    update(SkillState)
    .where(SkillState.id == bindparam("state_id"))
    .values(
        posterior=bindparam("state_posterior"),
        theta=bindparam("state_theta"),
        se=bindparam("state_se"),
        attempts=bindparam("state_attempts"),
        correct=bindparam("state_correct"),
        mastered=bindparam("state_mastered"),
        updated_at=bindparam("now"),
    )
)
CLEAR_PENDING = (
    update(PracticeSession)
    .where(PracticeSession.id == bindparam("session_id"))
    .values(pending_item_id=None)
)
CALIBRATE = (
    update(Item)
    .where(Item.id == bindparam("item_id"))
    .values(
        b=bindparam("item_b"),
        calibration_attempts=bindparam("item_calibration_attempts"),
        updated_at=bindparam("now"),
    )
)
# The attempt's values as `attempt_<column>`, except the session and item it shares with the
# UPDATEs and its creation time (`now`). No parameter may be named like a column of a table an
# UPDATE below writes: SQLAlchemy would add it to that UPDATE's SET clause.
_SHARED = {"session_id": "session_id", "item_id": "item_id", "created_at": "now"}
RECORD_ATTEMPT = insert(Attempt).values(
    {
        column.key: bindparam(_SHARED.get(column.key, f"attempt_{column.key}"))
        for column in Attempt.__table__.columns
    }
)
# On PostgreSQL the same writes as one statement, the UPDATEs riding on the INSERT as
# data-modifying CTEs: one round trip and one statement's overhead in Python where four
# cost four (a tenth of an answer's instructions). SQLite has no data-modifying CTEs; there
# the four statements above run in turn. Nothing reads what another writes, so running them
# on one snapshot changes nothing.
RECORD_ANSWER = RECORD_ATTEMPT.add_cte(
    RECORD_STATE.cte("recorded_state"), CLEAR_PENDING.cte("cleared_pending")
)
RECORD_CALIBRATING_ANSWER = RECORD_ANSWER.add_cte(CALIBRATE.cte("calibrated_item"))
