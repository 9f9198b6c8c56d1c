"""What a job's `last_error` may say, and the job errors the runner raises itself.

`last_error` is read by instructors (`GET /jobs/{job_id}`) and admins: it says what happened in
plain words and never carries SQL, host names, endpoints, keys or a provider's answer. The
error's class and text go to the log instead, with the job id and the request id that queued it
(the worker binds both to every line of a run), so an operator can follow a summary to its
detail.
"""

from __future__ import annotations

from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy.exc import SQLAlchemyError

from app.ai.errors import (
    AIConfigurationError,
    AIProviderError,
    CircuitOpenError,
    InvalidOutputError,
    ProviderRequestError,
    ProviderUnavailableError,
)
from app.storage import StorageError

MAX_ERROR = 2000

# What the platform itself writes when a run vanished (its worker was killed or hung).
WORKER_LOST_REQUEUED = "worker lost: the run stopped without finishing; re-queued by the sweeper"
WORKER_LOST_TAKEN_OVER = (
    "worker lost: the run stopped without finishing; a later delivery took the job over"
)
WORKER_LOST_NO_ATTEMPT_LEFT = (
    "worker lost: the run stopped without finishing and no attempt is left (every run was cut "
    "short: look for a worker killed while running this job)"
)


class PermanentJobError(Exception):
    """The job cannot succeed as asked (e.g. its skill was deleted). Its message is written by
    the platform and safe to show."""


class NoValidItemsError(AIProviderError):
    """The model answered, but none of its drafts is a valid item."""


def summary(error: BaseException) -> str:
    """A safe one-line description of why a run failed, by error class (never its text, which
    may quote a provider, a query or a host)."""
    if isinstance(error, PermanentJobError):
        return str(error)
    if isinstance(error, CircuitOpenError):
        return "AI provider failing: calls to it are paused for a while (circuit open)"
    if isinstance(error, ProviderUnavailableError):
        return "AI provider unavailable: no answer in time, or busy, after every retry"
    if isinstance(error, ProviderRequestError):
        return f"AI provider refused the request (HTTP {error.status_code})"
    if isinstance(error, InvalidOutputError):
        return "AI model's answer was not in the expected form, also after a repair attempt"
    if isinstance(error, NoValidItemsError):
        return "AI model returned no valid item"
    if isinstance(error, AIConfigurationError):
        return "AI provider is not configured on the platform"
    if isinstance(error, AIProviderError):
        return "AI provider error"
    if isinstance(error, StorageError):
        return "the skill's material could not be read from storage"
    if isinstance(error, SoftTimeLimitExceeded):
        return "the run took longer than the job time limit"
    if isinstance(error, SQLAlchemyError):
        return "a database error interrupted the run"
    return "an internal error interrupted the run"


def requeued_by(who: str, previous: str) -> str:
    """`last_error` of a job an admin or an operator put back in the queue."""
    return f"re-queued by {who} (it was {previous})"[:MAX_ERROR]
