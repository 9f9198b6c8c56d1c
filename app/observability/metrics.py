"""Prometheus metrics: every metric the platform exposes, the hooks that feed them and `/metrics`.

The names and labels are a contract (ops/prometheus/ writes rules against them); docs/
observability.md ("Metrics") describes each one. Label values come from small fixed sets
(route templates, enum values, provider names): never a raw path, an id or an e-mail address.

Several gunicorn workers: with `PROMETHEUS_MULTIPROC_DIR` set (to an empty directory, before the
first import of prometheus_client), every process writes its values to files there and
`/metrics` merges them per scrape with `MultiProcessCollector`; gunicorn.conf.py marks dead
workers. Gauges say how workers combine (`livesum`, `livemax`). Without the variable the
process's default registry is served.

`/metrics` needs `Authorization: Bearer <METRICS_TOKEN>` whenever METRICS_TOKEN is set, which
staging and production require; development and test serve it openly without one.
"""

from __future__ import annotations

import hmac
import logging
import math
import os
import re
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from apiflask import APIBlueprint
from flask import Flask, Response, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Summary,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import Pool

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session

    from app.ai.models import Usage
    from app.config import Settings

logger = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
METRICS_PATH = "/metrics"
UNMATCHED = "unmatched"
OTHER_METHOD = "other"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
CIRCUIT_STATES = {"closed": 0, "half_open": 1, "open": 2}

# `_created` series double the exposition for nothing the rules use (multiprocess mode has none).
disable_created_metrics()  # type: ignore[no-untyped-call]

# --- HTTP ---------------------------------------------------------------------------------------
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
HTTP_REQUESTS = Counter(
    "mastery_http_requests_total",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "mastery_http_request_duration_seconds",
    "Time from the first before_request hook to the response, by method, route and status.",
    ["method", "route", "status"],
    buckets=HTTP_BUCKETS,
)

# --- AI -----------------------------------------------------------------------------------------
AI_CALLS = Counter(
    "mastery_ai_calls_total",
    "AI operations by outcome: success, error, circuit_open or invalid_output once per call; "
    "fallback in addition when the caller answered with its rule-based fallback instead.",
    ["operation", "provider", "outcome"],
)
AI_DURATION = Histogram(
    "mastery_ai_call_duration_seconds",
    "Wall time of one AI operation, retries and repair included (successes and failures).",
    ["operation", "provider"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0),
)
AI_CIRCUIT = Gauge(
    "mastery_ai_circuit_state",
    "Circuit breaker state as of the last call: 0 closed, 1 half_open, 2 open (worst worker).",
    ["provider"],
    multiprocess_mode="livemax",
)
AI_TOKENS = Counter(
    "mastery_ai_tokens_total",
    "Tokens the provider reported for successful operations, by kind (prompt, completion).",
    ["operation", "provider", "kind"],
)

# --- adaptive engine ------------------------------------------------------------------------------
ADAPTIVE_SELECTION = Histogram(
    "mastery_adaptive_selection_duration_seconds",
    "Time to choose the next item (bank query, exposure control and Fisher-information pick).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
ADAPTIVE_SE = Histogram(
    "mastery_adaptive_estimate_se",
    "Standard error of the ability estimate after each recorded attempt.",
    buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0, 1.5, 2.0),
)
ADAPTIVE_PREDICTIONS = Counter(
    "mastery_adaptive_predictions",
    "Attempts the engine predicted (one per recorded attempt).",
)
# Summaries expose exactly `<name>_sum` and `<name>_count`, which is what a running Brier score
# and log-loss need (a Counter would add `_total` to the contract's `_sum` names).
ADAPTIVE_BRIER = Summary(
    "mastery_adaptive_brier",
    "(p - y)^2 per attempt: p the 2PL probability of a correct answer at the ability before "
    "the attempt, y 1 if it was correct; Brier = rate(_sum) / rate(predictions_total).",
)
ADAPTIVE_LOG_LOSS = Summary(
    "mastery_adaptive_log_loss",
    "-(y ln p + (1 - y) ln(1 - p)) per attempt, p and y as for the Brier score.",
)

# --- jobs ---------------------------------------------------------------------------------------
JOBS = Counter(
    "mastery_jobs_total",
    "Job transitions into a status (queued, running, succeeded, failed, dead), by kind.",
    ["kind", "status"],
)

# --- auth ---------------------------------------------------------------------------------------
LOGIN_FAILURES = Counter(
    "mastery_auth_login_failures_total",
    "Failed logins by reason (unknown_email, bad_password, inactive).",
    ["reason"],
)
REFRESH_REUSE = Counter(
    "mastery_auth_refresh_reuse_total",
    "Refresh tokens presented a second time (the family was revoked).",
)

# --- database and rate limits ---------------------------------------------------------------------
DB_POOL = Gauge(
    "mastery_db_pool_connections",
    "SQLAlchemy pool connections by state (checked_out, idle, overflow), summed over workers; "
    "sampled on checkout, at the end of each request and at scrape time.",
    ["state"],
    multiprocess_mode="livesum",
)
RATELIMIT_STORAGE_UNAVAILABLE = Counter(
    "mastery_ratelimit_storage_unavailable_total",
    "Requests that found the rate-limit storage unreachable, by outcome (open: served "
    "unlimited, closed: refused with 503).",
    ["outcome"],
)

# Fixed vocabularies start at zero, so a rule sees the series before the first event.
for _outcome in ("open", "closed"):
    RATELIMIT_STORAGE_UNAVAILABLE.labels(_outcome)
for _reason in ("unknown_email", "bad_password", "inactive"):
    LOGIN_FAILURES.labels(_reason)

_PARAM = re.compile(r"<(?:[^<>:]+:)?([^<>]+)>")


def route_label(rule: str | None) -> str:
    """The route template of a URL rule in OpenAPI form (`/x/<uuid:id>` -> `/x/{id}`);
    `unmatched` when no rule matched (404s), so raw paths never become label values."""
    if not rule:
        return UNMATCHED
    return _PARAM.sub(r"{\1}", rule)


def method_label(method: str) -> str:
    """The HTTP method, or `other` for anything outside the standard set."""
    method = method.upper()
    return method if method in KNOWN_METHODS else OTHER_METHOD


def multiprocess_dir() -> str | None:
    """The multiprocess directory when multiprocess mode is on, else None."""
    return os.environ.get(MULTIPROC_ENV) or None


# --- hooks called where the events happen ---------------------------------------------------------


def ai_outcome(error: BaseException | None) -> str:
    """success | circuit_open | invalid_output | error (every other provider failure)."""
    if error is None:
        return "success"
    from app.ai.errors import CircuitOpenError, InvalidOutputError

    if isinstance(error, CircuitOpenError):
        return "circuit_open"
    if isinstance(error, InvalidOutputError):
        return "invalid_output"
    return "error"


def record_ai_call(
    operation: str,
    provider: str,
    seconds: float,
    error: BaseException | None = None,
    usage: Usage | None = None,
) -> None:
    """Count one AI operation (one provider method call, retries and repair included)."""
    AI_CALLS.labels(operation, provider, ai_outcome(error)).inc()
    AI_DURATION.labels(operation, provider).observe(seconds)
    if usage is not None:
        AI_TOKENS.labels(operation, provider, "prompt").inc(usage.prompt_tokens)
        AI_TOKENS.labels(operation, provider, "completion").inc(usage.completion_tokens)


def record_ai_fallback(operation: str, provider: str) -> None:
    """The caller answered with its rule-based fallback instead of `provider`'s answer."""
    AI_CALLS.labels(operation, provider, "fallback").inc()


def set_circuit_state(provider: str, state: str) -> None:
    AI_CIRCUIT.labels(provider).set(CIRCUIT_STATES.get(state, 0))


def observe_selection(seconds: float) -> None:
    ADAPTIVE_SELECTION.observe(seconds)


def record_prediction(probability: float, correct: bool, se_after: float) -> None:
    """Score the engine's prediction `probability` of a correct answer against the outcome."""
    outcome = 1.0 if correct else 0.0
    # The 2PL probability is clipped strictly inside (0, 1), but guard the log anyway.
    p = min(max(probability, 1e-12), 1.0 - 1e-12)
    ADAPTIVE_PREDICTIONS.inc()
    ADAPTIVE_BRIER.observe((p - outcome) ** 2)
    ADAPTIVE_LOG_LOSS.observe(-(outcome * math.log(p) + (1.0 - outcome) * math.log(1.0 - p)))
    ADAPTIVE_SE.observe(se_after)


def record_job_transition(kind: str, status: str) -> None:
    JOBS.labels(kind, status).inc()


def record_login_failure(reason: str) -> None:
    LOGIN_FAILURES.labels(reason).inc()


def record_refresh_reuse() -> None:
    REFRESH_REUSE.inc()


def record_ratelimit_storage_unavailable(outcome: str) -> None:
    RATELIMIT_STORAGE_UNAVAILABLE.labels(outcome).inc()


def observe_pool(pool: Pool) -> None:
    """Sample a QueuePool's counts (other pool classes have no such counts: left alone)."""
    try:
        checked_out = int(pool.checkedout())  # type: ignore[attr-defined]
        idle = int(pool.checkedin())  # type: ignore[attr-defined]
        overflow = max(int(pool.overflow()), 0)  # type: ignore[attr-defined]
    except AttributeError:
        return
    DB_POOL.labels("checked_out").set(checked_out)
    DB_POOL.labels("idle").set(idle)
    DB_POOL.labels("overflow").set(overflow)


# --- the jobs collector ---------------------------------------------------------------------------


class JobsQueueCollector:
    """`mastery_jobs_queued{kind}` and `mastery_jobs_oldest_queued_age_seconds{kind}` from the
    job rows at scrape time (the row is the truth, whichever worker answers the scrape).

    One grouped query over `status = 'queued'` (the status-leading index serves it). A queued
    row's `updated_at` is when it entered `queued` (created, retried or re-queued). On a
    database error the samples are left out and the error logged: a scrape never fails for it.
    """

    def __init__(self, session: Session) -> None:
        self.session = session

    def collect(self) -> Iterator[Metric]:
        from app.db import utcnow
        from app.jobs.models import Job, JobKind, JobStatus

        try:
            rows = self.session.execute(
                select(Job.kind, func.count(), func.min(Job.updated_at))
                .where(Job.status == JobStatus.QUEUED)
                .group_by(Job.kind)
            ).all()
        except SQLAlchemyError as error:
            logger.warning("metrics.jobs_query_failed error=%s", type(error).__name__)
            self.session.rollback()
            return
        self.session.rollback()
        queued = GaugeMetricFamily(
            "mastery_jobs_queued",
            "Jobs in status queued, by kind (from the job rows).",
            labels=["kind"],
        )
        oldest = GaugeMetricFamily(
            "mastery_jobs_oldest_queued_age_seconds",
            "Seconds since the longest-waiting queued job entered queued (0 when none), by kind.",
            labels=["kind"],
        )
        found = {kind: (count, since) for kind, count, since in rows}
        now = utcnow()
        for kind in JobKind:
            count, since = found.get(kind, (0, None))
            queued.add_metric([kind.value], float(count))
            age = max((now - since).total_seconds(), 0.0) if since is not None else 0.0
            oldest.add_metric([kind.value], age)
        yield queued
        yield oldest


class _DefaultRegistry:
    """The process's default registry, as one collector of a per-scrape registry."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


# --- /metrics -------------------------------------------------------------------------------------

# Not part of the API description (no tag, no path): Prometheus reads it, clients do not.
bp = APIBlueprint("metrics", __name__, enable_openapi=False)


def _authorised(settings: Settings) -> bool:
    token = settings.metrics_token
    if token is None:
        return not settings.is_hardened
    scheme, _, offered = request.headers.get("Authorization", "").partition(" ")
    expected = token.get_secret_value().encode()
    return scheme.lower() == "bearer" and hmac.compare_digest(offered.strip().encode(), expected)


def exposition(session: Session, engine: Engine | None = None) -> bytes:
    """The text exposition of every metric, built fresh for one scrape."""
    from app.ai.runtime import ai_providers

    providers = ai_providers()
    if providers.breaker is not None:
        set_circuit_state(providers.interactive.name, providers.breaker.state)
    if engine is not None:
        observe_pool(engine.pool)
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_dir():
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_DefaultRegistry())
    registry.register(JobsQueueCollector(session))
    return generate_latest(registry)


@bp.get(METRICS_PATH)
@bp.doc(hide=True)
def metrics() -> Any:
    """Prometheus text exposition (not part of the API description)."""
    from app.db import get_database, get_session
    from app.errors import problem_response

    settings: Settings = current_app.extensions["mastery.settings"]
    if not _authorised(settings):
        return problem_response(
            401,
            "Metrics need `Authorization: Bearer <METRICS_TOKEN>`.",
            slug="metrics-token-required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    body = exposition(get_session(), get_database(current_app).engine)
    return Response(body, status=200, headers={"Content-Type": CONTENT_TYPE_LATEST})


# --- HTTP middleware ------------------------------------------------------------------------------


def _start_timer() -> None:
    g.metrics_started = time.perf_counter()


def _record_request(response: Response) -> Response:
    started: float | None = g.get("metrics_started")
    rule = request.url_rule.rule if request.url_rule is not None else None
    labels = (method_label(request.method), route_label(rule), str(response.status_code))
    HTTP_REQUESTS.labels(*labels).inc()
    if started is not None:
        HTTP_DURATION.labels(*labels).observe(time.perf_counter() - started)
    return response


def _sample_pool(_exc: BaseException | None) -> None:
    database = current_app.extensions.get("mastery.db")
    if database is not None:
        observe_pool(database.engine.pool)


def init_app(app: Flask) -> None:
    """Time every request (register before other before_request hooks, so a request they
    answer early is timed too) and serve `/metrics`."""
    app.before_request(_start_timer)
    app.after_request(_record_request)
    # Teardown functions run in reverse order: registered before the database's, this one
    # samples the pool after the request's connection went back to it.
    app.teardown_appcontext(_sample_pool)
    app.register_blueprint(bp)


def init_engine(engine: Engine) -> None:
    """Sample the engine's pool on every checkout (the peak a request sees)."""
    from sqlalchemy import event

    event.listen(engine.pool, "checkout", lambda *_args: observe_pool(engine.pool))
