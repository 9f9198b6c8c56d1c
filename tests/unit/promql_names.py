"""Helpers shared by the alert-rule and dashboard tests: the metric contract and a small PromQL
metric-name extractor (file parsing only; promtool does the real PromQL checking in `nox -s
alerts`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "ops" / "prometheus"
RULE_FILES = sorted((PROMETHEUS / "rules").glob("*.yml"))
ALERTS_FILE = PROMETHEUS / "rules" / "mastery-alerts.yml"
RECORDING_FILE = PROMETHEUS / "rules" / "mastery-recording.yml"

COUNTERS = {
    "mastery_http_requests_total",
    "mastery_ai_calls_total",
    "mastery_ai_tokens_total",
    "mastery_adaptive_predictions_total",
    "mastery_adaptive_brier_sum",
    "mastery_adaptive_log_loss_sum",
    "mastery_jobs_total",
    "mastery_jobs_swept_total",
    "mastery_auth_login_failures_total",
    "mastery_auth_refresh_reuse_total",
    "mastery_ratelimit_storage_unavailable_total",
}
GAUGES = {
    "mastery_ai_circuit_state",
    "mastery_jobs_queued",
    "mastery_jobs_oldest_queued_age_seconds",
    "mastery_jobs_overdue_running",
    "mastery_jobs_oldest_overdue_running_seconds",
    "mastery_db_pool_connections",
    "up",
}
HISTOGRAMS = {
    "mastery_http_request_duration_seconds",
    "mastery_ai_call_duration_seconds",
    "mastery_adaptive_selection_duration_seconds",
    "mastery_adaptive_estimate_se",
}
# Every series name the platform (and Prometheus, for `up`) exposes under the metric contract.
CONTRACT_SERIES = (
    COUNTERS
    | GAUGES
    | {f"{name}{suffix}" for name in HISTOGRAMS for suffix in ("_bucket", "_sum", "_count")}
)

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE
)
_IDENTIFIER = re.compile(r"(?<![\w.$])[A-Za-z_:][\w:]*")
_KEYWORDS = {
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "inf",
    "nan",
}


def metric_names(expr: str) -> set[str]:
    """The metric (series) names a PromQL expression selects: identifiers that are not function
    calls, keywords, label names or durations."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub("", text)
    text = _RANGES.sub("", text)
    text = _GROUPING.sub("", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        rest = text[match.end() :].lstrip()
        if rest.startswith("("):  # a function or aggregation call
            continue
        if match[0].lower() in _KEYWORDS:
            continue
        names.add(match[0])
    return names


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def rules(path: Path) -> list[dict[str, Any]]:
    return [rule for group in load_yaml(path)["groups"] for rule in group["rules"]]


def recorded_names() -> set[str]:
    return {rule["record"] for path in RULE_FILES for rule in rules(path) if "record" in rule}
