"""Job routes: thin wrappers over `service`."""

from __future__ import annotations

import uuid
from typing import Any

from apiflask import APIBlueprint
from flask import current_app

from app.auth.decorators import authenticated, current
from app.auth.models import Role
from app.config import Settings
from app.db import get_session
from app.jobs import service
from app.jobs.schemas import GenerationJobIn, JobOut

bp = APIBlueprint("jobs", __name__, tag="Jobs")


@bp.post("/skills/<uuid:skill_id>/generation-jobs")
@authenticated(Role.INSTRUCTOR)
@bp.input(GenerationJobIn, arg_name="body")
@bp.output(JobOut, status_code=202, description="The job, queued (or already finished when eager)")
@bp.doc(
    responses={
        400: "Malformed JSON body",
        403: "Only the course's owner or an admin may generate items for it",
        404: "No such skill",
        415: "The body is not application/json",
        503: "The job queue is unavailable (the job is recorded as failed)",
    }
)
def create_generation_job(skill_id: uuid.UUID, body: GenerationJobIn) -> Any:
    """Draft items for a skill with the AI provider, in the background.

    Poll `GET /jobs/{job_id}`; the items land as `draft` with `origin: ai` for review.
    """
    settings: Settings = current_app.extensions["mastery.settings"]
    job = service.create_generation_job(
        get_session(), current(), skill_id, body, settings.job_max_attempts
    )
    return JobOut.model_validate(job), 202, {"Location": f"/jobs/{job.id}"}


@bp.get("/jobs/<uuid:job_id>")
@authenticated()
@bp.output(JobOut, description="The job's status, attempts, last error and result")
@bp.doc(responses={404: "No such job (or not yours to see)"})
def get_job(job_id: uuid.UUID) -> Any:
    """Read a job: its creator, the skill's course owner and admins may."""
    return JobOut.model_validate(service.get_job(get_session(), current(), job_id))
