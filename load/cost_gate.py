"""The serving-cost gate's pure half (load/cost.py measures): the figures of each hot route
from callgrind's dumps, their spread over runs, the comparison with the committed budgets
(load/cost-budgets.toml), the printed table, cost.json, and the per-route profile's top list.
No measuring here, so the gate's logic is unit-tested without valgrind
(tests/unit/test_cost_gate.py)."""

from __future__ import annotations

import argparse
import os
import sys
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "reports" / "cost"
COST_JSON = REPORTS / "cost.json"
PROFILE_MD = REPORTS / "profile.md"
SUMMARY_MD = REPORTS / "summary.md"
DUMPS = REPORTS / "dumps"
BUDGETS = ROOT / "load" / "cost-budgets.toml"
UPDATE_COMMAND = "./noxw -s cost -- --update-budgets"
# A rise of this much above a route's budget fails the gate...
TOLERANCE = 0.05
# ...measured to within this: separate sessions of the same tree differ by up to ~0.3 % per
# route on a quiet machine (the client side of a round trip does a little more or less work
# as the server answers sooner or later; docs/benchmarks.md "Serving cost"), so a real 5 %
# rise may measure 4.8 %. The gate fails from TOLERANCE - NOISE (4.5 %): a 5 % slowdown is
# caught whichever way the noise falls, and an unchanged tree is 4 % away from failing.
NOISE = 0.005
FAIL_ABOVE = TOLERANCE - NOISE
# Two runs of the same tree should agree within this (reported, not enforced).
SPREAD_TARGET = 0.01

NEXT = "GET /sessions/{id}/next"
ATTEMPT = "POST /sessions/{id}/attempts"
COURSES = "GET /courses"
PROGRESS = "GET /me/progress"
LOGIN = "POST /auth/login"
REFRESH = "POST /auth/refresh"
BASELINE = "GET /baseline"
ROUTES = (NEXT, ATTEMPT, COURSES, PROGRESS, LOGIN, REFRESH, BASELINE)
# The platform's endpoint (Flask's view name) behind each route, for --inject-slowdown.
ENDPOINTS = {
    NEXT: "learning.next_item",
    ATTEMPT: "learning.submit_attempt",
    COURSES: "content.list_courses",
    PROGRESS: "learning.progress",
    LOGIN: "auth.login",
    REFRESH: "auth.refresh",
}


def say(message: str) -> None:
    print(f"[cost] {message}", flush=True)


class CostFailed(Exception):
    """The harness could not measure (a service or tool is missing, a request failed)."""


# --- pure logic: parsing, figures, budgets, the gate ----------------------------------------------


def callgrind_total(text: str) -> int:
    """The instruction count of one callgrind dump (its `totals:` line, else `summary:`)."""
    found: dict[str, int] = {}
    for line in text.splitlines():
        for key in ("totals:", "summary:"):
            if line.startswith(key):
                found[key] = int(line.split()[1])
    if not found:
        raise ValueError("no totals: or summary: line in the callgrind dump")
    return found.get("totals:", found.get("summary:", 0))


def per_request(samples: Mapping[str, Sequence[int]]) -> dict[str, float]:
    """Mean instructions per request of each route over its measured requests."""
    return {route: sum(counts) / len(counts) for route, counts in samples.items() if counts}


def combine_runs(runs: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """The figure of each route over several runs: their mean."""
    routes = [route for route in ROUTES if all(route in run for run in runs)]
    return {route: sum(run[route] for run in runs) / len(runs) for route in routes}


def spread(runs: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """(max - min) / min of each route over the runs: 0.004 is 0.4 %."""
    result = {}
    for route in ROUTES:
        values = [run[route] for run in runs if route in run]
        if len(values) >= 2 and min(values) > 0:
            result[route] = (max(values) - min(values)) / min(values)
    return result


@dataclass(frozen=True)
class Row:
    route: str
    instructions: float
    ratio: float | None  # to the baseline's instructions per request
    budget: int | None
    delta: float | None  # (instructions - budget) / budget
    spread: float | None

    @property
    def failed(self) -> bool:
        return self.delta is not None and self.delta > FAIL_ABOVE


def compare(
    figures: Mapping[str, float],
    budgets: Mapping[str, int],
    spreads: Mapping[str, float] | None = None,
) -> list[Row]:
    """One row per measured route, in ROUTES order, against its budget."""
    baseline = figures.get(BASELINE)
    rows = []
    for route in ROUTES:
        if route not in figures:
            continue
        value = figures[route]
        budget = budgets.get(route)
        rows.append(
            Row(
                route=route,
                instructions=value,
                ratio=value / baseline if baseline else None,
                budget=budget,
                delta=(value - budget) / budget if budget else None,
                spread=(spreads or {}).get(route),
            )
        )
    return rows


def failures(rows: Iterable[Row]) -> list[Row]:
    return [row for row in rows if row.failed]


def missing_budgets(rows: Iterable[Row]) -> list[str]:
    return [row.route for row in rows if row.budget is None]


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "-" if value is None else f"{format(value, spec)}{suffix}"


def table(rows: Sequence[Row]) -> str:
    """The printed table: route, instructions/request, x baseline, budget, delta %, verdict."""
    header = (
        f"{'route':<30} {'instr/request':>14} {'x base':>7} {'budget':>14} {'delta':>8}"
        f" {'spread':>7}  verdict"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        verdict = "FAIL" if row.failed else ("no budget" if row.budget is None else "ok")
        delta = None if row.delta is None else 100 * row.delta
        spread_pct = None if row.spread is None else 100 * row.spread
        lines.append(
            f"{row.route:<30} {row.instructions:>14,.0f} {_fmt(row.ratio, '.2f', 'x'):>7}"
            f" {_fmt(row.budget, ',d'):>14} {_fmt(delta, '+.1f', ' %'):>8}"
            f" {_fmt(spread_pct, '.2f', ' %'):>7}  {verdict}"
        )
    return "\n".join(lines)


def verdict(rows: Sequence[Row], spreads: Mapping[str, float]) -> tuple[int, list[str]]:
    """(exit status, the lines that explain it): 1 when a route is more than FAIL_ABOVE above
    its budget, naming each such route with its figure, or when a route has no budget."""
    lines = []
    wide = [route for route, value in spreads.items() if value > SPREAD_TARGET]
    if wide:
        lines.append(
            f"note: runs differ by more than {100 * SPREAD_TARGET:g} % on {', '.join(wide)}"
        )
    failed = failures(rows)
    for row in failed:
        lines.append(
            f"FAIL {row.route}: {row.instructions:,.0f} instructions per request, "
            f"{100 * (row.delta or 0):+.1f} % over its budget of {row.budget:,}"
        )
    if failed:
        lines.append(f"if the change is intended, rewrite the budgets with `{UPDATE_COMMAND}`")
        return 1, lines
    absent = missing_budgets(rows)
    if absent:
        lines.append(
            f"FAIL: no budget for {', '.join(absent)} in {BUDGETS.name}: `{UPDATE_COMMAND}`"
        )
        return 1, lines
    lines.append(
        f"PASS: no route more than {100 * FAIL_ABOVE:g} % above its budget (the {100 * TOLERANCE:g} %"
        f" tolerance less {100 * NOISE:g} % for measurement noise)"
    )
    return 0, lines


def summary_markdown(rows: Sequence[Row], lines: Sequence[str]) -> str:
    """reports/cost/summary.md, for CI's run summary: the table and the verdict."""
    body = [
        "### cost: instructions per request",
        "",
        "```",
        table(rows),
        "```",
        "",
        *(f"- {line}" for line in lines),
        "",
        "Counted in the platform's process by callgrind; Postgres and Redis server work is not.",
    ]
    return "\n".join(body) + "\n"


def read_budgets(path: Path) -> dict[str, int]:
    """The committed budgets: `[budgets]` route = instructions per request."""
    if not path.exists():
        return {}
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    budgets = data.get("budgets", {})
    unknown = sorted(set(budgets) - set(ROUTES))
    if unknown:
        raise ValueError(f"{path.name}: unknown routes {unknown}; known: {list(ROUTES)}")
    return {route: int(value) for route, value in budgets.items()}


BUDGETS_HEADER = """\
# Instructions per request of each hot route, the budget `nox -s cost` holds them to
# (docs/benchmarks.md "Serving cost (instructions per request)"). A route 5 % above its budget
# fails the gate (from +4.5 %, allowing for measurement noise). After a change that makes a
# route cheaper (or a justified one that makes it dearer), rewrite these figures from a
# measurement with one command:
#
#     ./noxw -s cost -- --update-budgets
#
# Counted by callgrind in the platform's own process: Postgres and Redis server work is not in
# these figures.
"""


def render_budgets(figures: Mapping[str, float]) -> str:
    lines = [BUDGETS_HEADER, "[budgets]"]
    for route in ROUTES:
        if route in figures:
            lines.append(f'"{route}" = {round(figures[route])}')
    return "\n".join(lines) + "\n"


def select_routes(text: str) -> tuple[str, ...]:
    """The routes whose name contains `text` (`--only next`); at least one."""
    chosen = tuple(route for route in ROUTES if text in route)
    if not chosen:
        raise argparse.ArgumentTypeError(f"no route contains {text!r}; routes: {list(ROUTES)}")
    return chosen


def parse_slowdown(text: str) -> tuple[str, float]:
    """`ROUTE=PERCENT` (e.g. `GET /sessions/{id}/next=5`) -> (route, 0.05)."""
    route, sep, percent = text.rpartition("=")
    if not sep or route not in ENDPOINTS:
        raise argparse.ArgumentTypeError(
            f"expected ROUTE=PERCENT with ROUTE one of {sorted(ENDPOINTS)}, got {text!r}"
        )
    try:
        share = float(percent) / 100
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not a percentage: {percent!r}") from error
    if share <= 0:
        raise argparse.ArgumentTypeError("the slowdown must be above 0 %")
    return route, share


def report(
    runs: Sequence[Mapping[str, float]],
    samples: Sequence[Mapping[str, Sequence[int]]],
    budgets: Mapping[str, int],
    injected: tuple[str, float] | None,
) -> dict[str, Any]:
    """The cost.json document."""
    figures = combine_runs(runs)
    rows = compare(figures, budgets, spread(runs))
    return {
        "unit": "instructions per request (callgrind Ir, the platform's process only)",
        "not_counted": "Postgres and Redis server work (other processes), kernel work",
        "tolerance": TOLERANCE,
        "fails_above": FAIL_ABOVE,
        "injected_slowdown": None if injected is None else {injected[0]: injected[1]},
        "routes": {
            row.route: {
                "instructions_per_request": round(row.instructions),
                "ratio_to_baseline": None if row.ratio is None else round(row.ratio, 3),
                "budget": row.budget,
                "delta": None if row.delta is None else round(row.delta, 4),
                "spread": None if row.spread is None else round(row.spread, 5),
                "failed": row.failed,
            }
            for row in rows
        },
        "runs": [
            {
                route: {
                    "instructions_per_request": round(run[route]),
                    "requests": len(sample.get(route, ())),
                    "min": min(sample.get(route, (0,))),
                    "max": max(sample.get(route, (0,))),
                    "samples": list(sample.get(route, ())),
                }
                for route in ROUTES
                if route in run
            }
            for run, sample in zip(runs, samples, strict=True)
        ],
    }


# --- the deterministic profile --------------------------------------------------------------------


class TickTimer:
    """A profiler clock that advances one tick per profiler event: "time" is then the number
    of calls and returns below a function, the same on every run (wall time is not)."""

    def __init__(self) -> None:
        self.ticks = 0

    def __call__(self) -> int:
        self.ticks += 1
        return self.ticks


TraceFunction = Callable[[FrameType, str, object], Any]


class BytecodeClock:
    """A profiler clock that reads the number of bytecodes executed since `start`.

    The event clock weighs a one-line call like a loop of a thousand turns; bytecodes weigh
    what the interpreter does (about 125 instructions each on this platform), so the profile's
    figures add up like the callgrind counts they explain, and stay deterministic. It costs a
    trace call per bytecode: minutes where the event clock takes seconds.
    """

    def __init__(self) -> None:
        self.ticks = 0
        self._previous = sys.gettrace()

    def __call__(self) -> int:
        return self.ticks

    def start(self) -> None:
        # The trace function in place (coverage's, a debugger's) comes back at `stop`.
        self._previous = sys.gettrace()
        sys.settrace(self._enter)

    def stop(self) -> None:
        sys.settrace(self._previous)

    def _enter(self, frame: FrameType, _event: str, _arg: object) -> TraceFunction:
        frame.f_trace_opcodes = True
        frame.f_trace_lines = False
        return self._count

    def _count(self, _frame: FrameType, event: str, _arg: object) -> TraceFunction:
        if event == "opcode":
            self.ticks += 1
        return self._count


def top_functions(
    stats: Any, limit: int = 20, *, own: bool = False
) -> list[tuple[str, int, float]]:
    """(function, calls, ticks) of the `limit` heaviest functions of a pstats.Stats: by
    inclusive ticks (the function and all it calls), or by `own` ticks (its body alone)."""
    rows = []
    for (filename, line, name), (_cc, calls, tt, ct, _callers) in stats.stats.items():
        where = _short_path(filename)
        label = f"{name}" if filename == "~" else f"{where}:{line} {name}"
        rows.append((label, int(calls), float(tt if own else ct)))
    rows.sort(key=lambda row: (-row[2], row[0]))
    return rows[:limit]


def _short_path(filename: str) -> str:
    path = filename.replace(os.sep, "/")
    for marker in ("/site-packages/", "/lib/python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    root = str(ROOT).replace(os.sep, "/") + "/"
    return path[len(root) :] if path.startswith(root) else path


Rows = list[tuple[str, int, float]]


def profile_markdown(profiles: Mapping[str, Mapping[str, Any]]) -> str:
    """Per route: the top functions by inclusive cost, then by own cost, as markdown tables."""
    lines = []
    for route, profile in profiles.items():
        requests, clock = profile["requests"], profile["clock"]
        unit = "bytecodes" if clock == "bytecodes" else "events"
        lines.append(f"#### {route} ({requests} requests profiled, {unit})\n")
        for title, rows in (("inclusive", profile["inclusive"]), ("own", profile["own"])):
            total = profile["total"] or 1.0
            lines.append(f"| # | function | calls/request | {title} {unit}/request | share |")
            lines.append("|---|---|---:|---:|---:|")
            for number, (label, calls, ticks) in enumerate(rows, 1):
                lines.append(
                    f"| {number} | `{label}` | {calls / requests:.1f} | {ticks / requests:,.0f}"
                    f" | {100 * ticks / total:.0f} % |"
                )
            lines.append("")
    return "\n".join(lines)
