"""The jobs capability's metrics: transitions, the sweeper's actions, and gauges read from the
job rows at scrape time.

Registered with the observability layer from `app.jobs.celery_app.init_app`
(`register_collector`); observability never imports this package. Names and labels are part of
the metric contract (docs/observability.md, "Metrics").
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime

from flask import Flask
from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app.db import utcnow
from app.jobs.models import Job, JobKind, JobStatus
from app.observability.metrics import register_collector

logger = logging.getLogger(__name__)

SWEEP_OUTCOMES = ("requeued", "dead")

JOBS = Counter(
    "mastery_jobs_total",
    "Job transitions into a status (queued, running, succeeded, failed, dead), by kind.",
    ["kind", "status"],
)
SWEPT = Counter(
    "mastery_jobs_swept_total",
    "Running jobs past their deadline that the sweeper re-queued (requeued) or, with no "
    "attempt left, ended (dead), by kind.",
    ["kind", "outcome"],
)

# Fixed vocabularies start at zero, so a rule sees the series before the first event.
for _kind in JobKind:
    for _outcome in SWEEP_OUTCOMES:
        SWEPT.labels(_kind.value, _outcome)


def record_job_transition(kind: str, status: str) -> None:
    JOBS.labels(kind, status).inc()


def record_swept(kind: str, outcome: str) -> None:
    SWEPT.labels(kind, outcome).inc()


class JobsCollector:
    """Gauges from the job rows at scrape time (the row is the truth, whichever process answers
    the scrape):

    * `mastery_jobs_queued{kind}` and `mastery_jobs_oldest_queued_age_seconds{kind}`: a queued
      row's `updated_at` is when it entered `queued` (created, retried or re-queued);
    * `mastery_jobs_overdue_running{kind}` and `mastery_jobs_oldest_overdue_running_seconds{kind}`:
      running rows past their `deadline_at`, i.e. whose worker died or hangs, and how far past
      it the longest-overdue one is. The sweeper keeps these near zero; JobStuckRunning fires
      when it does not.

    One grouped query over the two statuses (the `(status, deadline_at)` index serves it). On a
    database error the samples are left out and the error logged: a scrape never fails for it.
    """

    def __init__(self, session: Session, now: datetime | None = None) -> None:
        self.session = session
        self.now = now

    def collect(self) -> Iterator[Metric]:
        now = self.now or utcnow()
        overdue = and_(Job.status == JobStatus.RUNNING, Job.deadline_at < now)
        queued = Job.status == JobStatus.QUEUED
        try:
            rows = self.session.execute(
                select(
                    Job.kind,
                    func.count().filter(queued),
                    func.min(Job.updated_at).filter(queued),
                    func.count().filter(overdue),
                    func.min(Job.deadline_at).filter(overdue),
                )
                .where(or_(queued, overdue))
                .group_by(Job.kind)
            ).all()
        except SQLAlchemyError as error:
            logger.warning("metrics.jobs_query_failed error=%s", type(error).__name__)
            self.session.rollback()
            return
        self.session.rollback()
        families = {
            "queued": GaugeMetricFamily(
                "mastery_jobs_queued",
                "Jobs in status queued, by kind (from the job rows).",
                labels=["kind"],
            ),
            "queued_age": GaugeMetricFamily(
                "mastery_jobs_oldest_queued_age_seconds",
                "Seconds since the longest-waiting queued job entered queued (0 when none), "
                "by kind.",
                labels=["kind"],
            ),
            "overdue": GaugeMetricFamily(
                "mastery_jobs_overdue_running",
                "Jobs in status running past their deadline (worker lost or hung), by kind.",
                labels=["kind"],
            ),
            "overdue_age": GaugeMetricFamily(
                "mastery_jobs_oldest_overdue_running_seconds",
                "Seconds the longest-overdue running job is past its deadline (0 when none), "
                "by kind.",
                labels=["kind"],
            ),
        }
        found = {row[0]: row[1:] for row in rows}
        for kind in JobKind:
            queued_count, queued_since, overdue_count, deadline = found.get(
                kind, (0, None, 0, None)
            )
            label = [kind.value]
            families["queued"].add_metric(label, float(queued_count))
            families["queued_age"].add_metric(label, _seconds_since(queued_since, now))
            families["overdue"].add_metric(label, float(overdue_count))
            families["overdue_age"].add_metric(label, _seconds_since(deadline, now))
        yield from families.values()


def _seconds_since(moment: datetime | None, now: datetime) -> float:
    return max((now - moment).total_seconds(), 0.0) if moment is not None else 0.0


def init_app(app: Flask) -> None:
    """Serve the row-based job gauges on `app`'s `/metrics`."""
    register_collector(app, JobsCollector)
