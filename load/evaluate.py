"""Thresholds against measurements: the pass/fail verdict of a load run.

Pure functions over plain data, so the verdict is unit-tested without Locust or a server
(tests/unit/test_load_thresholds.py). A thresholds file (load/thresholds/*.toml) holds:

    [total]
    max_error_ratio = 0.0        # failed / all requests
    max_exceptions = 0           # exceptions raised in the users' code (default 0)
    min_rps = 20.0               # requests per second over the whole run
    min_requests = 500

    [routes."GET /sessions/{id}/next"]
    p95_ms = 250
    p99_ms = 600
    min_requests = 50            # the route must have been exercised

    [cpu_ratio]                  # app CPU-ms per request / the baseline's (stack runs only)
    "GET /sessions/{id}/next" = 6.0

Every key is optional; an unknown key is an error, so a typo cannot silently disable a check.
`max_exceptions` applies even when absent (limit 0): a scenario that crashes after a successful
request (a KeyError on a response, an account it could not get) has stopped simulating its user,
whatever the request statistics say. Exceptions come from Locust's `<prefix>_exceptions.csv`.
`python -m load.evaluate --csv reports/load/smoke --thresholds load/thresholds/smoke.toml`
evaluates the CSV of any Locust run (a distributed one included) against a file.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TOTAL_KEYS = {"max_error_ratio", "max_exceptions", "min_rps", "min_requests"}
DEFAULT_MAX_EXCEPTIONS = 0
ROUTE_KEYS = {"p50_ms", "p95_ms", "p99_ms", "max_error_ratio", "min_requests"}


@dataclass(frozen=True)
class RouteStats:
    requests: int
    failures: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    rps: float = 0.0

    @property
    def error_ratio(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class TaskException:
    """One row of Locust's exceptions CSV: the same traceback, counted."""

    count: int
    message: str
    traceback: str = ""


@dataclass(frozen=True)
class Measurements:
    routes: dict[str, RouteStats]
    total: RouteStats
    cpu_ratio: dict[str, float] = field(default_factory=dict)
    # None: not measured (no exceptions CSV), which fails the max_exceptions check.
    exceptions: tuple[TaskException, ...] | None = None

    @property
    def exception_count(self) -> int | None:
        if self.exceptions is None:
            return None
        return sum(e.count for e in self.exceptions)


@dataclass(frozen=True)
class Check:
    """One threshold against its measured value."""

    name: str
    limit: float
    measured: float | None  # None: not measured (e.g. no baseline against a remote host)
    upper: bool  # True: measured must be <= limit; False: >= limit

    @property
    def passed(self) -> bool:
        if self.measured is None:
            return False
        return self.measured <= self.limit if self.upper else self.measured >= self.limit

    @property
    def reason(self) -> str:
        if self.measured is None:
            return f"{self.name}: not measured (limit {_fmt(self.limit)})"
        relation = "above the maximum" if self.upper else "below the minimum"
        return f"{self.name} = {_fmt(self.measured)}, {relation} {_fmt(self.limit)}"


class ThresholdsError(ValueError):
    """The thresholds file is malformed."""


def _fmt(value: float) -> str:
    if isinstance(value, float) and abs(value) < 1000:
        return f"{value:.4g}"
    return f"{value:.0f}"


def load_thresholds(path: Path) -> dict[str, Any]:
    """Read and validate a thresholds file."""
    try:
        document = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ThresholdsError(f"{path}: {error}") from error
    unknown = set(document) - {"total", "routes", "cpu_ratio", "about"}
    if unknown:
        raise ThresholdsError(f"{path}: unknown sections {sorted(unknown)}")
    if not isinstance(document.get("total", {}).get("max_exceptions", 0), int):
        raise ThresholdsError(f"{path}: max_exceptions must be a whole number")
    if set(document.get("total", {})) - TOTAL_KEYS:
        raise ThresholdsError(
            f"{path}: unknown keys in [total]: {sorted(set(document['total']) - TOTAL_KEYS)}"
        )
    for route, limits in document.get("routes", {}).items():
        bad = set(limits) - ROUTE_KEYS
        if bad:
            raise ThresholdsError(f"{path}: unknown keys for route {route!r}: {sorted(bad)}")
    for route, limit in document.get("cpu_ratio", {}).items():
        if not isinstance(limit, int | float):
            raise ThresholdsError(f"{path}: cpu_ratio for {route!r} must be a number")
    return document


def evaluate(
    thresholds: dict[str, Any], measured: Measurements, with_cpu: bool = True
) -> list[Check]:
    """Every threshold as a Check. A route with limits but no requests is measured as 0
    requests and None latencies, so it fails instead of passing vacuously. `with_cpu=False`
    (a run against a remote host, where no CPU is measured) leaves out the cpu_ratio checks."""
    checks: list[Check] = []
    total = thresholds.get("total", {})
    if "max_error_ratio" in total:
        checks.append(
            Check(
                "error ratio (all requests)",
                total["max_error_ratio"],
                measured.total.error_ratio,
                True,
            )
        )
    raised = measured.exception_count
    checks.append(
        Check(
            "task exceptions (all users)",
            total.get("max_exceptions", DEFAULT_MAX_EXCEPTIONS),
            None if raised is None else float(raised),
            True,
        )
    )
    if "min_rps" in total:
        checks.append(
            Check("requests/s (all requests)", total["min_rps"], measured.total.rps, False)
        )
    if "min_requests" in total:
        checks.append(
            Check("requests (all)", total["min_requests"], float(measured.total.requests), False)
        )
    for route, limits in thresholds.get("routes", {}).items():
        stats = measured.routes.get(route)
        for key in ("p50_ms", "p95_ms", "p99_ms"):
            if key in limits:
                value = getattr(stats, key) if stats and stats.requests else None
                checks.append(Check(f"{route} {key[:3]} ms", limits[key], value, True))
        if "max_error_ratio" in limits:
            value = stats.error_ratio if stats and stats.requests else None
            checks.append(Check(f"{route} error ratio", limits["max_error_ratio"], value, True))
        if "min_requests" in limits:
            count = float(stats.requests) if stats else 0.0
            checks.append(Check(f"{route} requests", limits["min_requests"], count, False))
    if with_cpu:
        for route, limit in thresholds.get("cpu_ratio", {}).items():
            checks.append(
                Check(f"{route} CPU/request ÷ baseline", limit, measured.cpu_ratio.get(route), True)
            )
    return checks


def table(checks: list[Check]) -> str:
    """The checks as a fixed-width table with a verdict per line."""
    width = max([len(c.name) for c in checks] + [9])
    lines = [f"{'threshold':<{width}}  {'limit':>10}  {'measured':>10}  verdict"]
    lines.append("-" * len(lines[0]) + "--------")
    for check in checks:
        sign = "<=" if check.upper else ">="
        measured = "-" if check.measured is None else _fmt(check.measured)
        verdict = "ok" if check.passed else "FAIL"
        lines.append(
            f"{check.name:<{width}}  {sign} {_fmt(check.limit):>7}  {measured:>10}  {verdict}"
        )
    return "\n".join(lines)


def markdown(checks: list[Check]) -> str:
    """The checks as a GitHub-flavoured markdown table (the CI step summary)."""
    lines = ["| threshold | limit | measured | verdict |", "|---|---:|---:|---|"]
    for check in checks:
        sign = "≤" if check.upper else "≥"
        measured = "not measured" if check.measured is None else _fmt(check.measured)
        name = check.name.replace("|", "\\|")
        verdict = "PASS" if check.passed else "**FAIL**"
        lines.append(f"| `{name}` | {sign} {_fmt(check.limit)} | {measured} | {verdict} |")
    return "\n".join(lines)


def failures(checks: list[Check]) -> list[str]:
    return [check.reason for check in checks if not check.passed]


def exception_lines(measured: Measurements, limit: int = 5) -> list[str]:
    """The most frequent exceptions, one line each: what to look at when max_exceptions fails."""
    if not measured.exceptions:
        return []
    ranked = sorted(measured.exceptions, key=lambda e: -e.count)
    lines = [f"{e.count} x {e.message}" for e in ranked[:limit]]
    if len(ranked) > limit:
        lines.append(f"... and {len(ranked) - limit} more kinds (see the _exceptions.csv)")
    return lines


def _number(value: str) -> float:
    return float(value) if value not in ("", "N/A") else 0.0


def read_exceptions_csv(prefix: Path) -> tuple[TaskException, ...] | None:
    """The rows of Locust's `<prefix>_exceptions.csv`, or None when the run wrote none."""
    path = Path(f"{prefix}_exceptions.csv")
    if not path.exists():
        return None
    with path.open(newline="") as handle:
        return tuple(
            TaskException(int(row["Count"]), row["Message"], row.get("Traceback") or "")
            for row in csv.DictReader(handle)
        )


def read_locust_csv(prefix: Path, exclude: tuple[str, ...] = ()) -> Measurements:
    """Measurements from Locust's `<prefix>_stats.csv` and `<prefix>_exceptions.csv`. Routes
    whose name starts with one of `exclude` (the baseline) are left out of the routes and
    subtracted from the total; exceptions are counted whoever raised them."""
    routes: dict[str, RouteStats] = {}
    aggregated: RouteStats | None = None
    with Path(f"{prefix}_stats.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            stats = RouteStats(
                requests=int(row["Request Count"]),
                failures=int(row["Failure Count"]),
                p50_ms=_number(row["50%"]),
                p95_ms=_number(row["95%"]),
                p99_ms=_number(row["99%"]),
                rps=_number(row["Requests/s"]),
            )
            if row["Name"] == "Aggregated":
                aggregated = stats
            else:
                routes[f"{row['Type']} {row['Name']}"] = stats
    if aggregated is None:
        raise ThresholdsError(f"{prefix}_stats.csv has no Aggregated row")
    excluded = {name: s for name, s in routes.items() if name.split(" ", 1)[-1].startswith(exclude)}
    if excluded:
        requests = aggregated.requests - sum(s.requests for s in excluded.values())
        total = RouteStats(
            requests=requests,
            failures=aggregated.failures - sum(s.failures for s in excluded.values()),
            p50_ms=aggregated.p50_ms,  # the aggregate percentiles include the baseline: unused
            p95_ms=aggregated.p95_ms,
            p99_ms=aggregated.p99_ms,
            rps=aggregated.rps - sum(s.rps for s in excluded.values()),
        )
        routes = {name: s for name, s in routes.items() if name not in excluded}
    else:
        total = aggregated
    return Measurements(routes=routes, total=total, exceptions=read_exceptions_csv(prefix))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Evaluate a Locust CSV against thresholds.")
    parser.add_argument("--csv", type=Path, required=True, help="the --csv prefix of the run")
    parser.add_argument("--thresholds", type=Path, required=True)
    args = parser.parse_args(argv)
    measured = read_locust_csv(args.csv, exclude=("/baseline",))
    checks = evaluate(load_thresholds(args.thresholds), measured, with_cpu=False)
    print(table(checks))
    for line in exception_lines(measured):
        print(f"exception: {line}", file=sys.stderr)
    problems = failures(checks)
    for problem in problems:
        print(f"THRESHOLD VIOLATED: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
