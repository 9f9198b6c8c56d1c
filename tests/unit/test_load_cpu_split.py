"""The load runner's CPU arithmetic (load/run.py): the workers' whole CPU split between routes
by their thread CPU, the baseline from the baseline app's one-query route, the round-trip
floors of the hot routes as multiples of that baseline, and a failing baseline failing the run."""

from __future__ import annotations

from pathlib import Path

import pytest

from load import run
from load.run import CpuSnapshot, cpu_report
from tests.unit.test_load_thresholds import write_stats

NEXT = "GET /sessions/{id}/next"
ATTEMPTS = "POST /sessions/{id}/attempts"


def snapshot(
    app_cpu: float,
    baseline_cpu: float,
    routes: dict[str, tuple[int, float]],
    baseline_routes: dict[str, tuple[int, float]],
) -> CpuSnapshot:
    return CpuSnapshot(
        app_workers={101: app_cpu},
        baseline_workers={201: baseline_cpu},
        postgres={},
        routes=routes,
        baseline_routes=baseline_routes,
    )


def test_route_costs_split_whole_worker_cpu_and_divide_by_the_one_query_baseline() -> None:
    before = snapshot(
        10.0,
        5.0,
        {NEXT: (100, 1.0)},
        {"GET /baseline": (50, 0.1), "GET /baseline/next-round-trips": (10, 0.05)},
    )
    # Over the window: the app's workers spent 6 s, 3 s of it in request threads: next 1,000
    # requests with 2 s of thread CPU, attempts 500 with 1 s. The baseline's workers spent 2 s,
    # 1 s in threads: /baseline 2,000 requests with 0.5 s, the next floor 500 with 0.5 s.
    after = snapshot(
        16.0,
        7.0,
        {NEXT: (1_100, 3.0), ATTEMPTS: (500, 1.0)},
        {"GET /baseline": (2_050, 0.6), "GET /baseline/next-round-trips": (510, 0.55)},
    )

    report = cpu_report(before, after, locust_seconds=1.0, wall_seconds=60.0)

    assert report.app_requests == 1_500
    assert report.app_ms_per_request == pytest.approx(4.0)  # 6 s / 1,500
    assert report.route_ms[NEXT] == pytest.approx(4.0)  # 6 s x 2/3 / 1,000
    assert report.route_ms[ATTEMPTS] == pytest.approx(4.0)  # 6 s x 1/3 / 500
    assert report.baseline_requests == 2_000
    assert report.baseline_app_requests == 2_500
    assert report.baseline_ms_per_request == pytest.approx(0.5)  # 2 s x 1/2 / 2,000
    assert report.ratios[NEXT] == pytest.approx(8.0)
    assert report.floor_ratios[NEXT] == pytest.approx(4.0)  # 2 s x 1/2 / 500 = 2 ms
    assert ATTEMPTS not in report.floor_ratios  # its floor was not requested: no figure


def test_without_baseline_requests_there_are_no_ratios() -> None:
    before = snapshot(1.0, 1.0, {NEXT: (0, 0.0)}, {})
    after = snapshot(2.0, 1.5, {NEXT: (10, 0.5)}, {})

    report = cpu_report(before, after, locust_seconds=0.0, wall_seconds=1.0)

    assert report.route_ms[NEXT] == pytest.approx(100.0)
    assert report.baseline_ms_per_request == 0.0
    assert report.ratios == {}
    assert report.floor_ratios == {}


def test_a_failing_baseline_route_fails_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(run, "REPORTS", tmp_path)
    write_stats(
        tmp_path / "smoke",
        [
            ("GET", "/sessions/{id}/next", 200, 1, 30.0, 15.0),  # the thresholds' business
            ("GET", "/baseline", 900, 0, 4.0, 60.0),
            ("GET", "/baseline/next-round-trips", 150, 150, 1.0, 10.0),  # e.g. no Redis
            ("", "Aggregated", 1250, 151, 20.0, 85.0),
        ],
    )

    (problem,) = run.baseline_problems("smoke")

    assert "/baseline/next-round-trips: 150 of 150 requests failed" in problem
    write_stats(
        tmp_path / "steady",
        [("GET", "/baseline", 900, 0, 4.0, 60.0), ("", "Aggregated", 900, 0, 4.0, 60.0)],
    )
    assert run.baseline_problems("steady") == []
