"""Metric labels stay within small fixed sets, and the prediction scores are computed right."""

from __future__ import annotations

import logging
import math

import pytest
from apiflask import APIFlask
from prometheus_client import REGISTRY
from sqlalchemy.exc import OperationalError

from app.ai import metrics as ai_metrics
from app.ai.errors import (
    CircuitOpenError,
    InvalidOutputError,
    ProviderRequestError,
    ProviderUnavailableError,
)
from app.jobs import metrics as jobs_metrics
from app.observability import metrics
from app.observability.logging import route_template


@pytest.mark.parametrize(
    ("rule", "label"),
    [
        ("/sessions/<uuid:session_id>/next", "/sessions/{session_id}/next"),
        (
            "/sessions/<uuid:session_id>/items/<uuid:item_id>/hint",
            "/sessions/{session_id}/items/{item_id}/hint",
        ),
        ("/docs/<path:filename>", "/docs/{filename}"),
        ("/skills/<skill_id>", "/skills/{skill_id}"),
        ("/healthz", "/healthz"),
        (None, "unmatched"),
        ("", "unmatched"),
    ],
)
def test_a_url_rule_becomes_its_route_template(rule: str | None, label: str) -> None:
    assert route_template(rule) == label


@pytest.mark.parametrize(
    ("method", "label"),
    [("GET", "GET"), ("post", "POST"), ("PROPFIND", "other"), ("X" * 500, "other")],
)
def test_unknown_methods_share_one_label(method: str, label: str) -> None:
    assert metrics.method_label(method) == label


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (None, "success"),
        (CircuitOpenError("open"), "circuit_open"),
        (InvalidOutputError("bad"), "invalid_output"),
        (ProviderUnavailableError("503"), "error"),
        (ProviderRequestError(400, "no"), "error"),
    ],
)
def test_ai_errors_map_to_a_fixed_outcome(error: Exception | None, outcome: str) -> None:
    assert ai_metrics.ai_outcome(error) == outcome


def sample(name: str) -> float:
    found = REGISTRY.get_sample_value(name)
    return 0.0 if found is None else found


def test_a_prediction_adds_its_brier_and_log_loss_terms() -> None:
    before = {
        name: sample(name)
        for name in (
            "mastery_adaptive_predictions_total",
            "mastery_adaptive_brier_sum",
            "mastery_adaptive_log_loss_sum",
            "mastery_adaptive_estimate_se_count",
        )
    }

    metrics.record_prediction(0.8, correct=False, se_after=0.4)
    metrics.record_prediction(0.8, correct=True, se_after=0.35)

    assert sample("mastery_adaptive_predictions_total") - before[
        "mastery_adaptive_predictions_total"
    ] == pytest.approx(2)
    assert sample("mastery_adaptive_brier_sum") - before["mastery_adaptive_brier_sum"] == (
        pytest.approx(0.8**2 + 0.2**2)
    )
    assert sample("mastery_adaptive_log_loss_sum") - before["mastery_adaptive_log_loss_sum"] == (
        pytest.approx(-math.log(0.2) - math.log(0.8))
    )
    assert sample("mastery_adaptive_estimate_se_count") - before[
        "mastery_adaptive_estimate_se_count"
    ] == pytest.approx(2)


def test_a_certain_wrong_prediction_has_a_finite_log_loss() -> None:
    before = sample("mastery_adaptive_log_loss_sum")

    metrics.record_prediction(1.0, correct=False, se_after=0.3)

    assert math.isfinite(sample("mastery_adaptive_log_loss_sum") - before)


class FailingSession:
    """Stands in for a session whose database is down."""

    def __init__(self) -> None:
        self.rolled_back = False

    def execute(self, *_args: object) -> None:
        raise OperationalError("SELECT", {}, Exception("connection refused"))

    def rollback(self) -> None:
        self.rolled_back = True


def test_the_jobs_collector_leaves_its_samples_out_when_the_database_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    session = FailingSession()

    with caplog.at_level(logging.WARNING, logger="app.jobs.metrics"):
        families = list(jobs_metrics.JobsCollector(session).collect())  # type: ignore[arg-type]  # a stand-in session with only the queries used

    assert families == []
    assert session.rolled_back
    assert "metrics.jobs_query_failed" in caplog.text


def test_the_sweeper_counter_starts_at_zero_for_every_kind_and_outcome() -> None:
    for outcome in ("requeued", "dead"):
        labels = {"kind": "generate_items", "outcome": outcome}
        assert REGISTRY.get_sample_value("mastery_jobs_swept_total", labels) is not None


def test_capabilities_register_their_scrape_sources_with_the_app(bare_app: APIFlask) -> None:
    sources = metrics.scrape_sources(bare_app)

    assert jobs_metrics.JobsCollector in sources.collectors  # app.jobs: gauges from the rows
    assert len(sources.hooks) == 1  # app.ai: the circuit breaker's state before each scrape
