"""Prometheus metrics: the platform-wide ones (HTTP, adaptive engine, auth, database, rate
limits), the registry that capabilities plug their own into, and `/metrics`.

This layer imports no capability. A capability that owns metrics (app/ai/metrics.py,
app/jobs/metrics.py) defines them in its own package and, from its `init_app`, registers with
`register_collector` whatever must be read at scrape time (rows, a provider's circuit), so the
dependency points from the capability to observability and never back.

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

import functools
import hmac
import logging
import math
import os
import time
from collections.abc import Callable, Iterable
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
from prometheus_client.core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import event
from sqlalchemy.pool import Pool

from app.db import get_database, get_session
from app.errors import problem_response
from app.observability.logging import route_template

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session

    from app.config import Settings

logger = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
METRICS_PATH = "/metrics"
OTHER_METHOD = "other"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
EXTENSION = "mastery.metrics"

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
# The labelled children hot paths set, looked up once: `labels()` per call (checks, a lock, a
# dict) was most of sampling the pool, twice a request (docs/benchmarks.md "Serving cost").
_POOL_CHECKED_OUT = DB_POOL.labels("checked_out")
_POOL_IDLE = DB_POOL.labels("idle")
_POOL_OVERFLOW = DB_POOL.labels("overflow")

for _outcome in ("open", "closed"):
    RATELIMIT_STORAGE_UNAVAILABLE.labels(_outcome)
for _reason in ("unknown_email", "bad_password", "inactive"):
    LOGIN_FAILURES.labels(_reason)


def method_label(method: str) -> str:
    """The HTTP method, or `other` for anything outside the standard set."""
    method = method.upper()
    return method if method in KNOWN_METHODS else OTHER_METHOD


def multiprocess_dir() -> str | None:
    """The multiprocess directory when multiprocess mode is on, else None."""
    return os.environ.get(MULTIPROC_ENV) or None


# --- hooks called where the events happen ---------------------------------------------------------


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
    _POOL_CHECKED_OUT.set(checked_out)
    _POOL_IDLE.set(idle)
    _POOL_OVERFLOW.set(overflow)


# --- what capabilities register -----------------------------------------------------------------

# Built for one scrape from the scrape's database session (e.g. gauges read from job rows).
CollectorFactory = Callable[["Session"], Collector]
# Runs before each scrape, in the application context (e.g. sample a circuit breaker's state).
ScrapeHook = Callable[[], None]


class ScrapeSources:
    """What one application's capabilities registered for its scrapes."""

    def __init__(self) -> None:
        self.collectors: list[CollectorFactory] = []
        self.hooks: list[ScrapeHook] = []


def scrape_sources(app: Flask) -> ScrapeSources:
    """The sources registered with `app` (created on first use)."""
    sources: ScrapeSources = app.extensions.setdefault(EXTENSION, ScrapeSources())
    return sources


def register_collector(app: Flask, factory: CollectorFactory) -> None:
    """Serve `factory(session)`'s samples on every scrape of `app`'s `/metrics`. A collector that
    reads the database must leave its samples out, not raise, when the database fails."""
    scrape_sources(app).collectors.append(factory)


def register_scrape_hook(app: Flask, hook: ScrapeHook) -> None:
    """Call `hook()` before every scrape of `app`'s `/metrics` (inside its app context)."""
    scrape_sources(app).hooks.append(hook)


class _DefaultRegistry:
    """The process's default registry, as one collector of a per-scrape registry."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


# --- /metrics -------------------------------------------------------------------------------------

# Not part of the API description (no tag, no path): Prometheus reads it, clients do not.
bp = APIBlueprint("metrics", __name__, enable_openapi=False)


def bearer_matches(authorization: str, token: str) -> bool:
    """Does an `Authorization` header carry `Bearer <token>`? (constant-time comparison; the
    web `/metrics` and the worker's endpoint share it.)"""
    scheme, _, offered = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        offered.strip().encode(), token.encode()
    )


def _authorised(settings: Settings) -> bool:
    token = settings.metrics_token
    if token is None:
        return not settings.is_hardened
    return bearer_matches(request.headers.get("Authorization", ""), token.get_secret_value())


def exposition(session: Session, sources: ScrapeSources, engine: Engine | None = None) -> bytes:
    """The text exposition of every metric, built fresh for one scrape."""
    for hook in sources.hooks:
        hook()
    if engine is not None:
        observe_pool(engine.pool)
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_dir():
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_DefaultRegistry())
    for factory in sources.collectors:
        registry.register(factory(session))
    return generate_latest(registry)


@bp.get(METRICS_PATH)
@bp.doc(hide=True)
def metrics() -> Any:
    """Prometheus text exposition (not part of the API description)."""
    settings: Settings = current_app.extensions["mastery.settings"]
    if not _authorised(settings):
        return problem_response(
            401,
            "Metrics need `Authorization: Bearer <METRICS_TOKEN>`.",
            slug="metrics-token-required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    body = exposition(get_session(), scrape_sources(current_app), get_database(current_app).engine)
    return Response(body, status=200, headers={"Content-Type": CONTENT_TYPE_LATEST})


# --- HTTP middleware ------------------------------------------------------------------------------


def _start_timer() -> None:
    g.metrics_started = time.perf_counter()


def _record_request(response: Response) -> Response:
    started: float | None = g.get("metrics_started")
    rule = request.url_rule.rule if request.url_rule is not None else None
    labels = (method_label(request.method), route_template(rule), str(response.status_code))
    count, duration = _http_children(labels)
    count.inc()
    if started is not None:
        duration.observe(time.perf_counter() - started)
    return response


@functools.cache  # bounded: methods, route templates and statuses are small fixed sets
def _http_children(labels: tuple[str, str, str]) -> tuple[Counter, Histogram]:
    """The request counter's and the duration histogram's children for one label set."""
    return HTTP_REQUESTS.labels(*labels), HTTP_DURATION.labels(*labels)


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
    scrape_sources(app)
    app.register_blueprint(bp)


def init_engine(engine: Engine) -> None:
    """Sample the engine's pool on every checkout (the peak a request sees)."""
    event.listen(engine.pool, "checkout", lambda *_args: observe_pool(engine.pool))
