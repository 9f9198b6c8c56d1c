"""The Grafana dashboard queries only metrics that exist: the metric contract and the recording
rules in ops/prometheus/rules/ (file parsing only; `nox -s alert-drill` runs every query against
a live Prometheus)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.unit.promql_names import (
    CONTRACT_SERIES,
    COUNTERS,
    GAUGES,
    HISTOGRAMS,
    ROOT,
    RULE_FILES,
    load_yaml,
    metric_names,
    recorded_names,
    rules,
)

GRAFANA = ROOT / "ops" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "mastery.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels() -> Iterator[dict[str, Any]]:
    for panel in dashboard()["panels"]:
        yield panel
        yield from panel.get("panels", [])  # a collapsed row holds its panels


def targets() -> list[tuple[str, dict[str, Any]]]:
    return [(panel["title"], target) for panel in panels() for target in panel.get("targets", [])]


@pytest.mark.parametrize(
    ("title", "target"), targets(), ids=[f"{title}:{t['refId']}" for title, t in targets()]
)
def test_panel_query_uses_only_contract_metrics_and_recording_rules(
    title: str, target: dict[str, Any]
) -> None:
    names = metric_names(target["expr"])
    assert names, f"{title}: no metric found in {target['expr']!r}"
    unknown = names - CONTRACT_SERIES - recorded_names()
    assert not unknown, f"{title}: {sorted(unknown)} are neither in the contract nor recorded"


def test_every_contract_metric_is_on_the_dashboard() -> None:
    recording = {
        rule["record"]: rule["expr"]
        for path in RULE_FILES
        for rule in rules(path)
        if "record" in rule
    }
    shown = set().union(*(metric_names(target["expr"]) for _, target in targets()))
    pending = list(shown)
    while pending:  # a recording rule shows the metrics it is built from
        name = pending.pop()
        new = metric_names(recording.get(name, "")) - shown
        shown |= new
        pending.extend(new)
    histogram_series = {
        base: {f"{base}{suffix}" for suffix in ("_bucket", "_sum", "_count")} for base in HISTOGRAMS
    }
    missing = sorted(COUNTERS - shown) + sorted(GAUGES - shown)
    missing += sorted(base for base, series in histogram_series.items() if not series & shown)
    assert not missing, f"contract metrics on no panel: {missing}"


def test_every_panel_and_target_uses_the_datasource_variable() -> None:
    variables = {variable["name"]: variable for variable in dashboard()["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in panels():
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert all(target["datasource"] == DATASOURCE for target in panel["targets"])


def test_dashboard_has_the_required_rows_and_unique_ids() -> None:
    board = dashboard()
    assert board["schemaVersion"] >= 39
    rows = [panel["title"] for panel in panels() if panel["type"] == "row"]
    for area in ("RED per route", "AI", "Adaptive engine", "Jobs", "Database", "rate limits"):
        assert any(area in row for row in rows), f"no row for {area}: {rows}"
    ids = [panel["id"] for panel in panels()]
    assert len(ids) == len(set(ids))


def test_provisioning_points_grafana_at_the_dashboards_and_prometheus() -> None:
    datasources = load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")
    assert [source["type"] for source in datasources["datasources"]] == ["prometheus"]
    providers = load_yaml(GRAFANA / "provisioning" / "dashboards" / "mastery.yml")
    assert providers["providers"][0]["type"] == "file"
