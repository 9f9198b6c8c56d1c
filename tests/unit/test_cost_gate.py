"""The serving-cost gate (load/cost_gate.py): figures from callgrind dumps, the spread of two
runs, the comparison with the committed budgets, the table and the verdict that names a route
over its budget. No valgrind here: the figures are written as callgrind and the measuring
process would produce them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

from load import cost_gate
from load.cost_gate import (
    ATTEMPT,
    BASELINE,
    COURSES,
    LOGIN,
    NEXT,
    PROGRESS,
    REFRESH,
    ROUTES,
    TOLERANCE,
    UPDATE_COMMAND,
)

BUDGETS = {
    NEXT: 12_000_000,
    ATTEMPT: 14_000_000,
    COURSES: 10_000_000,
    PROGRESS: 9_000_000,
    LOGIN: 200_000_000,
    REFRESH: 12_000_000,
    BASELINE: 700_000,
}


def at_budget(**changes: float) -> dict[str, float]:
    """Figures equal to BUDGETS, with some routes scaled: at_budget(NEXT=1.06)."""
    figures = {route: float(value) for route, value in BUDGETS.items()}
    named = {"NEXT": NEXT, "ATTEMPT": ATTEMPT, "COURSES": COURSES, "BASELINE": BASELINE}
    for name, factor in changes.items():
        figures[named[name]] *= factor
    return figures


def test_a_dump_counts_its_totals_line_and_falls_back_to_its_summary_line() -> None:
    dump = "version: 1\ncmd: python\nevents: Ir\nsummary: 1200\ntotals: 1234\n"

    assert cost_gate.callgrind_total(dump) == 1234
    assert cost_gate.callgrind_total("events: Ir\nsummary: 987\n") == 987
    with pytest.raises(ValueError, match="no totals"):
        cost_gate.callgrind_total("events: Ir\nfn=main\n")


def test_the_figure_is_the_mean_per_request_then_the_mean_over_runs() -> None:
    runs = [
        cost_gate.per_request({NEXT: [100, 110, 120], ATTEMPT: []}),
        cost_gate.per_request({NEXT: [130]}),
    ]

    assert runs[0] == {NEXT: 110}  # a route without samples has no figure
    assert cost_gate.combine_runs(runs) == {NEXT: 120}


def test_spread_is_the_distance_between_the_extreme_runs_over_the_smaller() -> None:
    runs = [{NEXT: 1000.0, ATTEMPT: 500.0}, {NEXT: 1008.0, ATTEMPT: 500.0}, {NEXT: 1004.0}]

    spreads = cost_gate.spread(runs)

    assert spreads[NEXT] == pytest.approx(0.008)
    assert spreads[ATTEMPT] == 0.0
    assert cost_gate.spread(runs[:1]) == {}  # one run has no spread


def test_each_route_is_compared_with_its_budget_and_the_baseline() -> None:
    rows = {row.route: row for row in cost_gate.compare(at_budget(NEXT=1.02), BUDGETS)}

    assert list(rows) == list(ROUTES)
    assert rows[NEXT].delta == pytest.approx(0.02)
    assert rows[NEXT].ratio == pytest.approx(12_000_000 * 1.02 / 700_000)
    assert rows[BASELINE].ratio == 1.0
    assert not any(row.failed for row in rows.values())


@pytest.mark.parametrize(
    ("factor", "fails"),
    [
        (0.5, False),
        (1.0, False),
        (1.0449, False),
        (1.0451, True),
        (1 + TOLERANCE, True),
        (1.3, True),
    ],
)
def test_a_route_fails_from_five_percent_above_its_budget_less_the_noise_allowance(
    factor: float, fails: bool
) -> None:
    # 4.5 %: a real 5 % rise that the run measures a little low still fails.
    rows = cost_gate.compare(at_budget(ATTEMPT=factor), BUDGETS)

    assert [row.route for row in cost_gate.failures(rows)] == ([ATTEMPT] if fails else [])


def test_an_injected_five_percent_slowdown_fails_the_gate_naming_that_route_and_its_figure() -> (
    None
):
    # What `--inject-slowdown 'GET /sessions/{id}/next=5'` adds: 5 % of the budget, on a run
    # that measured the route 0.3 % below its budget (the noise between sessions).
    figures = at_budget()
    figures[NEXT] = 0.997 * BUDGETS[NEXT] + 0.05 * BUDGETS[NEXT]

    status, lines = cost_gate.verdict(cost_gate.compare(figures, BUDGETS), {})

    assert status == 1
    failed = [line for line in lines if line.startswith("FAIL")]
    assert failed == [
        "FAIL GET /sessions/{id}/next: 12,564,000 instructions per request, "
        "+4.7 % over its budget of 12,000,000"
    ]
    assert UPDATE_COMMAND in lines[-1]


def test_routes_within_their_budgets_pass_and_say_so() -> None:
    status, lines = cost_gate.verdict(cost_gate.compare(at_budget(NEXT=0.6), BUDGETS), {})

    assert status == 0
    assert lines == [
        "PASS: no route more than 4.5 % above its budget (the 5 % tolerance less 0.5 % for "
        "measurement noise)"
    ]


def test_a_route_without_a_budget_fails_the_gate() -> None:
    budgets = {route: value for route, value in BUDGETS.items() if route != REFRESH}

    status, lines = cost_gate.verdict(cost_gate.compare(at_budget(), budgets), {})

    assert status == 1
    assert lines[-1].startswith(f"FAIL: no budget for {REFRESH}")


def test_runs_further_apart_than_the_spread_target_are_noted_without_failing() -> None:
    status, lines = cost_gate.verdict(cost_gate.compare(at_budget(), BUDGETS), {NEXT: 0.02})

    assert status == 0
    assert lines[0] == f"note: runs differ by more than 1 % on {NEXT}"


def test_the_table_names_each_route_with_its_figure_ratio_delta_and_verdict() -> None:
    rows = cost_gate.compare(at_budget(COURSES=1.10), BUDGETS, {COURSES: 0.0004})

    lines = cost_gate.table(rows).splitlines()

    courses = next(line for line in lines if line.startswith(COURSES))
    assert courses.split() == [
        "GET", "/courses", "11,000,000", "15.71x", "10,000,000", "+10.0", "%", "0.04", "%",
        "FAIL",
    ]  # fmt: skip
    baseline = next(line for line in lines if line.startswith(BASELINE))
    assert baseline.split()[-1] == "ok"
    assert baseline.split()[-2] == "-"  # no spread given for it


def test_budgets_written_by_the_update_command_read_back_as_measured(tmp_path: Path) -> None:
    path = tmp_path / "cost-budgets.toml"
    figures = {**at_budget(), NEXT: 12_345_678.4}

    path.write_text(cost_gate.render_budgets(figures), encoding="utf-8")

    assert cost_gate.read_budgets(path) == {**BUDGETS, NEXT: 12_345_678}
    assert UPDATE_COMMAND in path.read_text(encoding="utf-8")


def test_a_budget_for_an_unknown_route_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cost-budgets.toml"
    path.write_text('[budgets]\n"GET /nowhere" = 5\n', encoding="utf-8")

    with pytest.raises(ValueError, match="unknown routes"):
        cost_gate.read_budgets(path)


def test_the_committed_budgets_cover_every_measured_route() -> None:
    assert set(cost_gate.read_budgets(cost_gate.BUDGETS)) == set(ROUTES)


@pytest.mark.parametrize(
    ("text", "expected"),
    [(f"{NEXT}=5", (NEXT, 0.05)), (f"{ATTEMPT}=12.5", (ATTEMPT, 0.125))],
)
def test_a_slowdown_names_a_platform_route_and_a_percentage(
    text: str, expected: tuple[str, float]
) -> None:
    assert cost_gate.parse_slowdown(text) == expected


@pytest.mark.parametrize(
    "text", [f"{BASELINE}=5", "GET /nowhere=5", f"{NEXT}", f"{NEXT}=five", f"{NEXT}=0"]
)
def test_a_slowdown_outside_the_platform_routes_or_not_above_zero_is_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        cost_gate.parse_slowdown(text)


def test_the_report_keeps_each_runs_samples_and_the_combined_verdict() -> None:
    samples = [{NEXT: [100, 102]}, {NEXT: [101, 101]}]
    runs = [cost_gate.per_request(sample) for sample in samples]

    document = cost_gate.report(runs, samples, {NEXT: 95}, (NEXT, 0.05))

    route = document["routes"][NEXT]
    assert route["instructions_per_request"] == 101
    assert route["failed"] is True  # 101 is 6.3 % above 95
    assert route["spread"] == 0.0
    assert document["runs"][0][NEXT]["samples"] == [100, 102]
    assert document["injected_slowdown"] == {NEXT: 0.05}
    assert "Postgres and Redis server work" in document["not_counted"]


def test_the_tick_clock_makes_a_profile_count_events_not_time() -> None:
    clock = cost_gate.TickTimer()

    assert [clock(), clock(), clock()] == [1, 2, 3]


def _loop(turns: int) -> int:
    total = 0
    for turn in range(turns):
        total += turn
    return total


def _bytecodes_of(turns: int) -> int:
    clock = cost_gate.BytecodeClock()
    clock.start()
    try:
        _loop(turns)
    finally:
        clock.stop()
    return clock()


def test_the_bytecode_clock_counts_the_work_done_the_same_on_every_run() -> None:
    tracing = sys.gettrace()  # coverage's, when the unit session measures it
    assert _bytecodes_of(100) == _bytecodes_of(100)
    # Each turn of the loop runs the same few bytecodes: ten times the turns, ~ten times the count.
    growth = (_bytecodes_of(1000) - _bytecodes_of(0)) / (_bytecodes_of(100) - _bytecodes_of(0))
    assert 9 < growth < 11
    assert sys.gettrace() is tracing  # handed back, not switched off


def test_a_profile_ranks_functions_by_inclusive_or_by_own_ticks() -> None:
    import cProfile
    import pstats

    clock = cost_gate.BytecodeClock()
    profiler = cProfile.Profile(clock)
    clock.start()
    profiler.enable()
    try:
        results = [_loop(50) for _ in range(3)]
    finally:
        profiler.disable()
        clock.stop()
    assert results == [1225] * 3
    stats = pstats.Stats(profiler)

    inclusive = cost_gate.top_functions(stats, limit=50)
    own = cost_gate.top_functions(stats, limit=50, own=True)

    loop = next(row for row in own if row[0].endswith(" _loop"))
    assert loop[1] == 3  # calls
    assert loop[2] > 0
    # The list comprehension includes the loops it calls; its own ticks leave them out.
    comprehension = [row for row in inclusive if "<listcomp>" in row[0]]
    comprehension_own = [row for row in own if "<listcomp>" in row[0]]
    assert comprehension
    assert comprehension_own
    assert comprehension[0][2] >= loop[2] + comprehension_own[0][2]
    assert [row[2] for row in own] == sorted((row[2] for row in own), reverse=True)


def test_the_profile_tables_show_both_rankings_in_the_clock_unit() -> None:
    profile = {
        "requests": 2,
        "clock": "bytecodes",
        "total": 100.0,
        "inclusive": [("app.py:1 view", 2, 100.0), ("app.py:9 helper", 4, 40.0)],
        "own": [("app.py:1 view", 2, 60.0), ("app.py:9 helper", 4, 40.0)],
    }

    markdown = cost_gate.profile_markdown({NEXT: profile})

    assert f"#### {NEXT} (2 requests profiled, bytecodes)" in markdown
    assert "| # | function | calls/request | inclusive bytecodes/request | share |" in markdown
    assert "| # | function | calls/request | own bytecodes/request | share |" in markdown
    assert "| 2 | `app.py:9 helper` | 2.0 | 20 | 40 % |" in markdown
    assert "| 1 | `app.py:1 view` | 1.0 | 30 | 60 % |" in markdown


def test_only_selects_the_routes_whose_name_contains_the_text() -> None:
    assert cost_gate.select_routes("next") == (NEXT,)
    assert cost_gate.select_routes("/auth/") == (LOGIN, REFRESH)
    with pytest.raises(argparse.ArgumentTypeError, match="no route contains"):
        cost_gate.select_routes("nowhere")
