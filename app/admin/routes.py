"""Admin routes: thin wrappers over `service`."""

from __future__ import annotations

import uuid
from typing import Any

from apiflask import APIBlueprint

from app.admin import service
from app.admin.schemas import StatsOut, UserPage, UserPatchIn, UsersQuery
from app.audit.schemas import AuditPage, AuditQuery
from app.audit.service import search as search_audit
from app.auth.decorators import authenticated, current
from app.auth.models import Role
from app.auth.schemas import UserOut
from app.db import get_session
from app.jobs import service as jobs
from app.jobs.schemas import JobOut, JobPage, JobsQuery

bp = APIBlueprint("admin", __name__, url_prefix="/admin", tag="Admin")


@bp.patch("/users/<uuid:user_id>")
@authenticated(Role.ADMIN)
@bp.input(UserPatchIn, arg_name="body")
@bp.output(UserOut, description="The updated account")
@bp.doc(
    responses={
        400: "Malformed JSON body",
        404: "No such user",
        409: "An administrator cannot change their own account",
        415: "The body is not application/json",
    }
)
def update_user(user_id: uuid.UUID, body: UserPatchIn) -> Any:
    """Change a user's role or deactivate them (their tokens stop working at once)."""
    return service.update_user(get_session(), current(), user_id, body.role, body.is_active)


@bp.get("/users")
@authenticated(Role.ADMIN)
@bp.input(UsersQuery, location="query", arg_name="query")
@bp.output(UserPage, description="A page of users, newest first")
def list_users(query: UsersQuery) -> Any:
    """List and search users (by e-mail or display name, role, active flag)."""
    users, next_cursor = service.list_users(get_session(), query)
    return UserPage(items=[UserOut.model_validate(u) for u in users], next_cursor=next_cursor)


@bp.get("/audit-log")
@authenticated(Role.ADMIN)
@bp.input(AuditQuery, location="query", arg_name="query")
@bp.output(AuditPage, description="A page of audit records, newest first")
def audit_log(query: AuditQuery) -> Any:
    """Read the audit trail, filtered by actor, action and time range."""
    records, next_cursor = search_audit(get_session(), query)
    return {"items": records, "next_cursor": next_cursor}


@bp.get("/stats")
@authenticated(Role.ADMIN)
@bp.output(StatsOut, description="Platform-wide counts")
def stats() -> Any:
    """Users by role and recent audit activity."""
    return service.stats(get_session())


@bp.get("/jobs")
@authenticated(Role.ADMIN)
@bp.input(JobsQuery, location="query", arg_name="query")
@bp.output(JobPage, description="A page of jobs, newest first")
def list_jobs(query: JobsQuery) -> Any:
    """List background jobs, by status; `stuck=true` lists running jobs past their deadline."""
    rows, next_cursor = jobs.list_jobs(get_session(), query)
    return JobPage(items=[JobOut.model_validate(job) for job in rows], next_cursor=next_cursor)


@bp.post("/jobs/<uuid:job_id>/retry")
@authenticated(Role.ADMIN)
@bp.output(JobOut, status_code=202, description="The job, queued again")
@bp.doc(
    responses={
        404: "No such job",
        409: "The job is queued or running within its deadline",
        503: "The job queue is unavailable (the job is recorded as failed)",
    }
)
def retry_job(job_id: uuid.UUID) -> Any:
    """Re-queue a stuck, failed or dead job with a fresh attempt budget (audited)."""
    job = jobs.requeue(get_session(), job_id, current(), reason="admin retry", via="http")
    return JobOut.model_validate(job), 202
