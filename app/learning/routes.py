"""Learning routes: thin wrappers over `service`."""

from __future__ import annotations

import uuid
from typing import Any

from apiflask import APIBlueprint
from flask import request

from app.ai.runtime import ai_providers
from app.auth.decorators import authenticated, current
from app.content.schemas import ItemPublicOut
from app.db import get_session
from app.errors import ProblemError
from app.learning import service
from app.learning.models import PracticeSession, SkillState
from app.learning.schemas import (
    AttemptIn,
    AttemptOut,
    EnrollmentOut,
    EstimateOut,
    HintOut,
    NextItemOut,
    ProgressOut,
    SessionIn,
    SessionOut,
    SkillProgressOut,
)

bp = APIBlueprint("learning", __name__, tag="Learning")

BODY_ERRORS = {400: "Malformed JSON body", 415: "The body is not application/json"}
IDEMPOTENCY_KEY = "Idempotency-Key"


def _session_out(practice: PracticeSession, state: SkillState) -> SessionOut:
    return SessionOut(
        id=practice.id,
        skill_id=practice.skill_id,
        created_at=practice.created_at,
        served=practice.served,
        pending_item_id=practice.pending_item_id,
        estimate=service.estimate_of(state),
    )


def _attempt_out(attempt: service.RecordedAttempt) -> AttemptOut:
    return AttemptOut(
        id=attempt.id,
        item_id=attempt.item_id,
        correct=attempt.correct,
        score=attempt.score,
        feedback=attempt.feedback,
        graded_by=attempt.graded_by,
        estimate=EstimateOut(
            theta=attempt.theta_after,
            se=attempt.se_after,
            attempts=attempt.attempts_after,
            mastered=attempt.mastered_after,
        ),
    )


@bp.post("/courses/<uuid:course_id>/enrollments")
@authenticated()
@bp.output(EnrollmentOut, status_code=201, description="Enrolled (200 when already enrolled)")
@bp.doc(responses={404: "No such course, or not visible", 409: "The course is not published"})
def enrol(course_id: uuid.UUID) -> Any:
    """Enrol the caller in a published course (idempotent)."""
    enrollment, created = service.enrol(get_session(), current(), course_id)
    return EnrollmentOut.model_validate(enrollment), 201 if created else 200


@bp.post("/sessions")
@authenticated()
@bp.input(SessionIn, arg_name="body")
@bp.output(SessionOut, status_code=201, description="A new practice session")
@bp.doc(responses={**BODY_ERRORS, 403: "Not enrolled in the skill's course", 404: "No such skill"})
def start_session(body: SessionIn) -> Any:
    """Start practising a skill of a course the caller is enrolled in."""
    practice, state = service.start_session(get_session(), current(), body.skill_id)
    return _session_out(practice, state)


@bp.get("/sessions/<uuid:session_id>")
@authenticated()
@bp.output(SessionOut, description="The session and the current estimate")
@bp.doc(responses={404: "No such session (or someone else's)"})
def get_session_route(session_id: uuid.UUID) -> Any:
    """Read one of the caller's practice sessions."""
    db = get_session()
    practice = service.get_session_of(db, current(), session_id)
    return _session_out(practice, service.session_state(db, current(), practice))


@bp.get("/sessions/<uuid:session_id>/next")
@authenticated()
@bp.output(NextItemOut, description="The next item (never its answer key)")
@bp.doc(responses={404: "No such session", 409: "The skill has no published items"})
def next_item(session_id: uuid.UUID) -> Any:
    """The adaptive engine's next item; asking again before answering returns the same one."""
    item, estimate = service.next_item(get_session(), current(), session_id)
    return NextItemOut(item=ItemPublicOut.model_validate(item), estimate=estimate)


@bp.post("/sessions/<uuid:session_id>/attempts")
@authenticated()
@bp.input(AttemptIn, arg_name="body")
@bp.output(AttemptOut, status_code=201, description="The graded attempt and the new estimate")
@bp.doc(
    responses={
        **BODY_ERRORS,
        200: "A replay of an earlier submission with the same Idempotency-Key",
        404: "No such session",
        409: "The item was not served in this session, or the key was used for another item",
    }
)
def submit_attempt(session_id: uuid.UUID, body: AttemptIn) -> Any:
    """Answer the served item. Send an `Idempotency-Key` header to make retries safe.

    Short answers are graded by the AI provider within a time budget; when it cannot answer,
    the rule-based scorer does and `graded_by` says `fallback`."""
    key = request.headers.get(IDEMPOTENCY_KEY)
    if key is not None and not 1 <= len(key) <= 128:
        raise ProblemError("Idempotency-Key must be 1-128 characters.", status=400)
    attempt, created = service.submit_attempt(
        get_session(), current(), session_id, body, key, ai_providers().interactive
    )
    return _attempt_out(attempt), 201 if created else 200


@bp.get("/sessions/<uuid:session_id>/items/<uuid:item_id>/hint")
@authenticated()
@bp.output(HintOut, description="A hint for the item pending in the session (never its answer)")
@bp.doc(
    responses={
        404: "No such session (or someone else's)",
        409: "The item is not the one pending in this session, was withdrawn, or is an mcq",
    }
)
def hint(session_id: uuid.UUID, item_id: uuid.UUID) -> Any:
    """A hint for the short-answer item being answered. Asking changes nothing."""
    hint_request = service.hint_request(get_session(), current(), session_id, item_id)
    text, hinted_by = service.give_hint(
        ai_providers().interactive, hint_request, session_id=str(session_id)
    )
    return HintOut(item_id=item_id, hint=text, hinted_by=hinted_by)


@bp.get("/me/progress")
@authenticated()
@bp.output(ProgressOut, description="Per-skill ability, uncertainty and mastery")
def progress() -> Any:
    """The caller's progress on every skill they have practised."""
    rows = service.progress(get_session(), current())
    return ProgressOut(
        skills=[
            SkillProgressOut(
                skill_id=skill.id,
                course_id=skill.course_id,
                skill_name=skill.name,
                theta=state.theta,
                se=state.se,
                attempts=state.attempts,
                correct=state.correct,
                mastered=state.mastered,
            )
            for state, skill in rows
        ]
    )
