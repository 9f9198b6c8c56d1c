"""The load gate's verdict (load/evaluate.py): thresholds against measurements, the table, the
readable failure and the exit status. No Locust here (it monkey-patches the process); the CSVs
are written the way Locust writes `<prefix>_stats.csv` and `<prefix>_exceptions.csv`."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import pytest

from load import evaluate
from load.stages import STAGES, users_at

ROOT = Path(__file__).resolve().parents[2]
HEADER = [
    "Type", "Name", "Request Count", "Failure Count", "Median Response Time",
    "Average Response Time", "Min Response Time", "Max Response Time", "Average Content Size",
    "Requests/s", "Failures/s", "50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%",
    "99.9%", "99.99%", "100%",
]  # fmt: skip
THRESHOLDS = """
[total]
max_error_ratio = 0.0
min_rps = 10.0

[routes."GET /sessions/{id}/next"]
p95_ms = 50
p99_ms = 100
min_requests = 10

[cpu_ratio]
"GET /sessions/{id}/next" = 3.0
"""


def write_stats(prefix: Path, rows: list[tuple[str, str, int, int, float, float]]) -> None:
    """rows: (type, name, requests, failures, p95, rps); p50 = p95 / 2, p99 = 2 * p95."""
    with Path(f"{prefix}_stats.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for kind, name, requests, failures, p95, rps in rows:
            values = {"50%": p95 / 2, "95%": p95, "99%": p95 * 2}
            writer.writerow(
                [kind, name, requests, failures, 0, 0, 0, 0, 0, rps, 0]
                + [values.get(column, 0) for column in HEADER[11:]]
            )


def write_exceptions(prefix: Path, rows: list[tuple[int, str]]) -> None:
    """rows: (count, message), with a traceback and the node, as Locust writes them."""
    with Path(f"{prefix}_exceptions.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Count", "Message", "Traceback", "Nodes"])
        for count, message in rows:
            trace = f'  File "load/scenarios.py", line 1, in practise\n    raise {message}\n'
            writer.writerow([count, message, trace, "local"])


def thresholds_file(tmp_path: Path, text: str = THRESHOLDS) -> Path:
    path = tmp_path / "thresholds.toml"
    path.write_text(text)
    return path


def measurements(p95: float, failures: int = 0, ratio: float = 2.0) -> evaluate.Measurements:
    route = evaluate.RouteStats(requests=100, failures=failures, p50_ms=p95 / 2, p95_ms=p95,
                                p99_ms=p95 * 1.5, rps=20.0)  # fmt: skip
    return evaluate.Measurements(
        routes={"GET /sessions/{id}/next": route},
        total=route,
        cpu_ratio={"GET /sessions/{id}/next": ratio},
        exceptions=(),
    )


def test_measurements_within_every_threshold_pass(tmp_path: Path) -> None:
    checks = evaluate.evaluate(
        evaluate.load_thresholds(thresholds_file(tmp_path)), measurements(40)
    )

    assert [c.passed for c in checks] == [True] * len(checks)
    assert evaluate.failures(checks) == []
    assert "FAIL" not in evaluate.table(checks)


def test_a_slow_route_fails_with_a_reason_naming_the_route_the_value_and_the_limit(
    tmp_path: Path,
) -> None:
    checks = evaluate.evaluate(
        evaluate.load_thresholds(thresholds_file(tmp_path)), measurements(80)
    )

    assert evaluate.failures(checks) == [
        "GET /sessions/{id}/next p95 ms = 80, above the maximum 50",
        "GET /sessions/{id}/next p99 ms = 120, above the maximum 100",
    ]
    assert "FAIL" in evaluate.table(checks)


def test_a_single_failed_request_breaks_the_zero_error_threshold(tmp_path: Path) -> None:
    checks = evaluate.evaluate(
        evaluate.load_thresholds(thresholds_file(tmp_path)), measurements(40, failures=1)
    )

    assert evaluate.failures(checks) == ["error ratio (all requests) = 0.01, above the maximum 0"]


def test_a_cpu_ratio_above_its_limit_fails_and_is_left_out_against_a_remote_host(
    tmp_path: Path,
) -> None:
    thresholds = evaluate.load_thresholds(thresholds_file(tmp_path))

    local = evaluate.evaluate(thresholds, measurements(40, ratio=4.5))
    remote = evaluate.evaluate(thresholds, measurements(40, ratio=4.5), with_cpu=False)

    assert evaluate.failures(local) == [
        "GET /sessions/{id}/next CPU/request ÷ baseline = 4.5, above the maximum 3"
    ]
    assert evaluate.failures(remote) == []


def test_a_route_that_was_never_requested_fails_instead_of_passing_vacuously(
    tmp_path: Path,
) -> None:
    empty = evaluate.Measurements(
        routes={}, total=evaluate.RouteStats(0, 0, 0, 0, 0, 0.0), cpu_ratio={}
    )

    problems = evaluate.failures(
        evaluate.evaluate(evaluate.load_thresholds(thresholds_file(tmp_path)), empty)
    )

    assert "GET /sessions/{id}/next p95 ms: not measured (limit 50)" in problems
    assert "GET /sessions/{id}/next requests = 0, below the minimum 10" in problems


def test_a_misspelt_threshold_key_is_an_error_not_a_silently_skipped_check(
    tmp_path: Path,
) -> None:
    path = thresholds_file(tmp_path, '[routes."GET /x"]\np59_ms = 10\n')

    with pytest.raises(evaluate.ThresholdsError, match="p59_ms"):
        evaluate.load_thresholds(path)


def test_the_csv_verdict_exits_non_zero_and_prints_the_violation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = tmp_path / "smoke"
    write_stats(
        prefix,
        [
            ("GET", "/sessions/{id}/next", 200, 0, 180.0, 15.0),
            ("GET", "/baseline", 900, 0, 4.0, 60.0),
            ("", "Aggregated", 1100, 0, 170.0, 75.0),
        ],
    )

    code = evaluate.main(["--csv", str(prefix), "--thresholds", str(thresholds_file(tmp_path))])

    assert code == 1
    err = capsys.readouterr().err
    assert "THRESHOLD VIOLATED: GET /sessions/{id}/next p95 ms = 180, above the maximum 50" in err


def test_the_baseline_is_left_out_of_the_platform_totals(tmp_path: Path) -> None:
    prefix = tmp_path / "run"
    write_stats(
        prefix,
        [
            ("GET", "/sessions/{id}/next", 200, 2, 30.0, 15.0),
            ("GET", "/baseline", 900, 0, 4.0, 60.0),
            ("", "Aggregated", 1100, 2, 20.0, 75.0),
        ],
    )

    measured = evaluate.read_locust_csv(prefix, exclude=("/baseline",))

    assert list(measured.routes) == ["GET /sessions/{id}/next"]
    assert (measured.total.requests, measured.total.failures) == (200, 2)
    assert measured.total.rps == pytest.approx(15.0)


@pytest.mark.parametrize("shape", sorted(STAGES))
def test_every_shape_has_a_valid_thresholds_file_with_a_hard_zero_error_limit(shape: str) -> None:
    thresholds = evaluate.load_thresholds(ROOT / "load" / "thresholds" / f"{shape}.toml")

    assert thresholds["total"]["max_error_ratio"] == 0.0


def test_a_shape_ends_after_its_last_stage() -> None:
    stages = [(10.0, 5, 1.0), (20.0, 50, 10.0)]

    assert users_at(stages, 0) == (5, 1.0)
    assert users_at(stages, 15) == (50, 10.0)
    assert users_at(stages, 20) is None


def test_an_exception_in_a_user_fails_the_verdict_even_with_every_request_successful(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = tmp_path / "smoke"
    write_stats(
        prefix,
        [
            ("GET", "/sessions/{id}/next", 200, 0, 30.0, 15.0),
            ("", "Aggregated", 200, 0, 30.0, 15.0),
        ],
    )
    write_exceptions(prefix, [(3, "KeyError('item')")])

    measured = evaluate.read_locust_csv(prefix)
    code = evaluate.main(["--csv", str(prefix), "--thresholds", str(thresholds_file(tmp_path))])

    assert measured.exception_count == 3
    assert code == 1
    err = capsys.readouterr().err
    assert "THRESHOLD VIOLATED: task exceptions (all users) = 3, above the maximum 0" in err
    assert "3 x KeyError('item')" in err


def test_the_exception_limit_is_zero_when_the_file_does_not_set_it(tmp_path: Path) -> None:
    thresholds = evaluate.load_thresholds(thresholds_file(tmp_path, "[total]\nmin_rps = 1.0\n"))
    crashed = replace(measurements(40), exceptions=(evaluate.TaskException(1, "boom"),))

    assert evaluate.failures(evaluate.evaluate(thresholds, measurements(40))) == []
    assert evaluate.failures(evaluate.evaluate(thresholds, crashed)) == [
        "task exceptions (all users) = 1, above the maximum 0"
    ]


def test_a_run_without_an_exceptions_csv_is_not_measured_and_fails(tmp_path: Path) -> None:
    prefix = tmp_path / "old"
    write_stats(prefix, [("", "Aggregated", 10, 0, 30.0, 15.0)])

    checks = evaluate.evaluate({}, evaluate.read_locust_csv(prefix))

    assert evaluate.failures(checks) == ["task exceptions (all users): not measured (limit 0)"]


def test_a_raised_exception_limit_lets_that_many_through(tmp_path: Path) -> None:
    path = thresholds_file(tmp_path, "[total]\nmax_exceptions = 2\n")
    two = replace(measurements(40), exceptions=(evaluate.TaskException(2, "boom"),))

    assert evaluate.failures(evaluate.evaluate(evaluate.load_thresholds(path), two)) == []


def test_the_markdown_summary_has_a_row_per_threshold_with_pass_or_fail(tmp_path: Path) -> None:
    checks = evaluate.evaluate(
        evaluate.load_thresholds(thresholds_file(tmp_path)), measurements(80, ratio=2.0)
    )

    lines = evaluate.markdown(checks).splitlines()

    assert lines[0] == "| threshold | limit | measured | verdict |"
    assert len(lines) == 2 + len(checks)
    assert "| `GET /sessions/{id}/next p95 ms` | ≤ 50 | 80 | **FAIL** |" in lines
    assert "| `task exceptions (all users)` | ≤ 0 | 0 | PASS |" in lines
    assert "| `GET /sessions/{id}/next CPU/request ÷ baseline` | ≤ 3 | 2 | PASS |" in lines
