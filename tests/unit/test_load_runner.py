"""What the load runner (load/run.py) leaves behind and how it serves: reports/load/summary.md
for the CI step summary, the logs of a failed run in reports/load/logs/, the `--serve` mode's
instructions and its wait for a stop signal. No stack and no Locust here: the shapes are
replaced by their results."""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from load import evaluate, run


@pytest.fixture
def reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "reports"
    monkeypatch.setattr(run, "REPORTS", directory)
    monkeypatch.setattr(run, "LOGS", directory / "logs")
    monkeypatch.setattr(run, "SUMMARY", directory / "summary.md")
    return directory


def checks(p95: float) -> list[evaluate.Check]:
    return [
        evaluate.Check("error ratio (all requests)", 0.0, 0.0, True),
        evaluate.Check("GET /sessions/{id}/next p95 ms", 3000, p95, True),
    ]


def fake_shapes(monkeypatch: pytest.MonkeyPatch, p95: dict[str, float]) -> None:
    """Replace running a shape by a result with the given p95 and a Locust log."""

    def run_shape(
        shape: str,
        args: argparse.Namespace,
        host: str,
        baseline_host: str | None,
        stack: run.Stack | None,
        logs: Path,
    ) -> run.ShapeResult:
        (logs / f"locust-{shape}.log").write_text(f"locust ran {shape} against {host}\n")
        found = checks(p95[shape])
        problems = [f"{shape}: {problem}" for problem in evaluate.failures(found)]
        return run.ShapeResult(shape, run.THRESHOLDS / f"{shape}.toml", found, problems)

    monkeypatch.setattr(run, "run_shape", run_shape)


def test_a_passing_run_writes_the_summary_and_keeps_no_logs(
    reports: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_shapes(monkeypatch, {"smoke": 40.0})

    code = run.main(["--host", "https://staging.example"])

    summary = (reports / "summary.md").read_text()
    assert code == 0
    assert "### smoke (`load/thresholds/smoke.toml`)" in summary
    assert "| `GET /sessions/{id}/next p95 ms` | ≤ 3000 | 40 | PASS |" in summary
    assert summary.rstrip().endswith("**LOAD GATE PASSED**: every threshold held (smoke)")
    assert not (reports / "logs").exists()


def test_a_failed_run_keeps_the_logs_and_says_what_failed(
    reports: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_shapes(monkeypatch, {"steady": 40.0, "ramp": 9000.0})
    (reports / "logs").mkdir(parents=True)
    (reports / "logs" / "platform.log").write_text("a previous run's log\n")

    code = run.main(["--host", "https://staging.example", "--shape", "steady", "--shape", "ramp"])

    summary = (reports / "summary.md").read_text()
    assert code == 1
    assert "| `GET /sessions/{id}/next p95 ms` | ≤ 3000 | 9000 | **FAIL** |" in summary
    assert "- ramp: GET /sessions/{id}/next p95 ms = 9000, above the maximum 3000" in summary
    assert "**LOAD GATE FAILED**: 1 problem(s) (steady, ramp)" in summary
    kept = sorted(path.name for path in (reports / "logs").iterdir())
    assert kept == ["locust-ramp.log", "locust-steady.log"]  # this run's, not the previous


def test_a_stack_that_fails_keeps_its_logs_and_fails_the_summary(
    reports: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_stack(logs: Path, args: argparse.Namespace) -> NoReturn:
        (logs / "worker.log").write_text("celery: cannot connect to redis\n")
        raise run.LoadFailed("worker exited with 1; see its log below")

    monkeypatch.setattr(run, "production_stack", broken_stack)

    code = run.main([])

    assert code == 2
    assert (reports / "logs" / "worker.log").read_text() == "celery: cannot connect to redis\n"
    summary = (reports / "summary.md").read_text()
    assert "**LOAD RUN FAILED**: worker exited with 1; see its log below" in summary


def test_serve_prints_the_url_and_the_locust_commands_with_the_seeded_pools(tmp_path: Path) -> None:
    args = run.parse_args(["--serve"])

    text = run.serve_instructions("http://127.0.0.1:41234", args, tmp_path)

    assert args.seed_args == ["--learners", "1000", "--admins", "20"]
    assert "export LOAD_LEARNERS=1000 LOAD_INSTRUCTORS=20 LOAD_ADMINS=20" in text
    assert "-f load/locustfile.py --host http://127.0.0.1:41234 --web-host 127.0.0.1" in text
    assert "--class-picker" in text
    assert "--headless -u 10 -r 5 -t 60s" in text
    assert "--processes -1" in text
    assert "Ctrl-C (SIGINT) or SIGTERM" in text


def test_serve_refuses_a_host_and_locust_arguments() -> None:
    with pytest.raises(SystemExit):
        run.parse_args(["--serve", "--host", "https://staging.example"])
    with pytest.raises(SystemExit):
        run.parse_args(["--serve", "-u", "3"])


@pytest.fixture
def signal_mask() -> Iterator[None]:
    before = signal.pthread_sigmask(signal.SIG_BLOCK, set())
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


@pytest.mark.usefixtures("signal_mask")
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_serving_waits_for_a_stop_signal(stop: signal.Signals) -> None:
    checked = []

    def alive() -> None:
        checked.append(True)
        signal.pthread_kill(threading.get_ident(), stop)  # blocked by now: waits for sigwait

    assert run.wait_for_signal(alive) == stop.name
    assert checked == [True]


@pytest.mark.usefixtures("signal_mask")
def test_serving_stops_when_a_process_of_the_stack_exits() -> None:
    calls = []

    def alive() -> None:
        calls.append(True)
        if len(calls) == 1:
            signal.pthread_kill(threading.get_ident(), signal.SIGCHLD)
            return
        raise run.LoadFailed("platform exited with 1")

    with pytest.raises(run.LoadFailed, match="platform exited"):
        run.wait_for_signal(alive)
    assert len(calls) == 2
