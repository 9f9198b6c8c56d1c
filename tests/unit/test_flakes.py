"""The flake finder (tools/flakes.py): outcomes from JUnit XML, the comparison between runs, the
plan of seeds and layouts, and the report with the commands that replay a failing run."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from tools.flakes import (
    LAYOUTS,
    SERIAL,
    PlannedRun,
    RunResult,
    compare,
    main,
    parse_junit,
    plan,
    replay_command,
)

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="0" failures="1" skipped="2" tests="6">
  <testcase classname="tests.unit.test_a" name="test_passes" file="tests/unit/test_a.py" line="3"/>
  <testcase classname="tests.unit.test_a" name="test_fails[1-x]" file="tests/unit/test_a.py">
    <failure message="assert 1 == 2">...</failure>
  </testcase>
  <testcase classname="tests.unit.test_a.TestGroup" name="test_skips" file="tests/unit/test_a.py">
    <skipped type="pytest.skip" message="no binary">...</skipped>
  </testcase>
  <testcase classname="tests.unit.test_a" name="test_expected" file="tests/unit/test_a.py">
    <skipped type="pytest.xfail" message="known"/>
  </testcase>
  <testcase classname="tests.unit.test_a" name="test_teardown" file="tests/unit/test_a.py">
    <failure message="boom"/>
    <error message="failed on teardown"/>
  </testcase>
  <testcase classname="" name="tests.unit.test_broken">
    <error message="collection failure"/>
  </testcase>
</testsuite></testsuites>
"""


def test_junit_testcases_become_node_ids_with_their_outcome() -> None:
    assert parse_junit(JUNIT) == {
        "tests/unit/test_a.py::test_passes": "passed",
        "tests/unit/test_a.py::test_fails[1-x]": "failed",
        "tests/unit/test_a.py::TestGroup::test_skips": "skipped",
        "tests/unit/test_a.py::test_expected": "xfailed",
        "tests/unit/test_a.py::test_teardown": "error",  # the stronger of the two
        "tests.unit.test_broken": "error",
    }


def result(number: int, outcomes: dict[str, str] | None, exit_code: int = 0) -> RunResult:
    run = PlannedRun(number, "unit", 1000 + number, LAYOUTS[(number - 1) % len(LAYOUTS)])
    return RunResult(run, f"replay {number}", exit_code, 1.0, outcomes)


def test_a_test_whose_outcome_changed_between_runs_is_flaky() -> None:
    verdict = compare(
        [
            result(1, {"t::a": "passed", "t::b": "passed"}),
            result(2, {"t::a": "failed", "t::b": "passed"}, exit_code=1),
            result(3, {"t::a": "passed", "t::b": "passed"}),
        ]
    )

    assert [(f.test, f.outcomes) for f in verdict.flaky] == [
        ("t::a", {1: "passed", 2: "failed", 3: "passed"})
    ]
    assert verdict.exit_code == 1
    assert verdict.word == "flaky"


@pytest.mark.parametrize(
    ("one", "other"),
    [("passed", "skipped"), ("passed", "error"), ("passed", "xfailed"), ("failed", "error")],
)
def test_any_change_of_outcome_counts_not_only_a_failure(one: str, other: str) -> None:
    verdict = compare([result(1, {"t::a": one}), result(2, {"t::a": other})])

    assert [f.test for f in verdict.flaky] == ["t::a"]


def test_a_test_failing_in_every_run_is_red_but_not_flaky() -> None:
    verdict = compare(
        [result(1, {"t::a": "failed"}, exit_code=1), result(2, {"t::a": "failed"}, exit_code=1)]
    )

    assert verdict.flaky == []
    assert [f.test for f in verdict.failing_every_run] == ["t::a"]
    assert verdict.exit_code == 2


def test_runs_that_agree_and_pass_are_stable() -> None:
    verdict = compare([result(1, {"t::a": "passed"}), result(2, {"t::a": "passed"})])

    assert (verdict.flaky, verdict.failing_every_run, verdict.exit_code) == ([], [], 0)
    assert verdict.word == "stable"


def test_a_test_missing_from_a_run_is_listed_but_not_called_flaky() -> None:
    verdict = compare(
        [result(1, {"t::a": "passed", "t::b": "passed"}), result(2, {"t::a": "passed"})]
    )

    assert verdict.flaky == []
    assert [(f.test, f.outcomes) for f in verdict.missing_somewhere] == [
        ("t::b", {1: "passed", 2: "absent"})
    ]


@pytest.mark.parametrize(("outcomes", "exit_code"), [(None, 1), ({"t::a": "passed"}, 2)])
def test_a_run_without_a_report_or_stopped_early_is_not_compared(
    outcomes: dict[str, str] | None, exit_code: int
) -> None:
    broken = result(2, outcomes, exit_code=exit_code)

    verdict = compare([result(1, {"t::a": "failed"}, exit_code=1), broken])

    assert verdict.flaky == []  # the only other run cannot make t::a flaky
    assert verdict.incomplete == [broken]
    assert verdict.exit_code == 2


def test_the_plan_gives_each_run_a_seed_and_rotates_the_layouts() -> None:
    planned = plan(4, ["unit", "contracts"], base_seed=7)

    unit = [p for p in planned if p.tier == "unit"]
    contracts = [p for p in planned if p.tier == "contracts"]
    assert [p.layout for p in unit] == [*LAYOUTS, LAYOUTS[0]]
    assert {p.layout for p in contracts} == {SERIAL}  # syrupy needs the whole tier in one process
    assert len({p.seed for p in unit}) == 4
    assert [p.seed for p in unit] == [p.seed for p in contracts]
    assert plan(4, ["unit", "contracts"], base_seed=7) == planned  # `--seed` replays the plan


def test_the_replay_command_is_the_run_with_its_seed_and_layout() -> None:
    run = PlannedRun(2, "integration", 123, LAYOUTS[1])

    whole = shlex.split(replay_command(run, ".nox/flakes/bin/python"))
    alone = shlex.split(replay_command(run, "python", "tests/integration/test_x.py::test_y[a b]"))

    assert whole[:4] == [".nox/flakes/bin/python", "-m", "pytest", "tests/integration"]
    seeded = ["-p", "randomly", "--randomly-seed=123", "-n", "2", "--dist", "loadgroup"]
    assert whole[4:11] == seeded
    assert "--cov" not in " ".join(whole)
    assert alone[3] == "tests/integration/test_x.py::test_y[a b]"
    assert "tests/integration" not in alone
    assert "--randomly-seed=123" in alone


def test_main_writes_the_report_and_fails_on_a_flake(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[list[str]] = []

    def fake_pytest(command: list[str], log: Path) -> int:
        """Run 2 fails `test_b`; every run writes its JUnit XML where it was told to."""
        calls.append(command)
        junit = Path(next(a for a in command if a.startswith("--junitxml=")).split("=", 1)[1])
        second = "run-2" in str(junit)
        failure = '<failure message="order"/>' if second else ""
        junit.write_text(
            "<testsuites><testsuite>"
            '<testcase classname="tests.unit.test_a" name="test_a" file="tests/unit/test_a.py"/>'
            f'<testcase classname="tests.unit.test_a" name="test_b" file="tests/unit/test_a.py">'
            f"{failure}</testcase></testsuite></testsuites>"
        )
        log.write_text("pytest output\n")
        return 1 if second else 0

    report_dir = tmp_path / "flakes"
    (report_dir / "run-9").mkdir(parents=True)  # an old report must not survive

    code = main(
        ["--runs", "3", "--tiers", "unit", "--seed", "5", "--report-dir", str(report_dir)],
        runner=fake_pytest,
    )

    assert code == 1
    assert len(calls) == 3
    assert not any("--cov" in arg for call in calls for arg in call)
    assert not (report_dir / "run-9").exists()
    report = json.loads((report_dir / "report.json").read_text())
    assert report["verdict"] == "flaky"
    assert report["base_seed"] == 5
    (flake,) = report["flaky"]
    assert flake["test"] == "tests/unit/test_a.py::test_b"
    assert [o["outcome"] for o in flake["outcomes"]] == ["passed", "failed", "passed"]
    (replay,) = flake["replay"]
    run_2 = report["run_results"][1]
    assert replay["run"] == 2
    assert f"--randomly-seed={run_2['seed']}" in replay["command"]
    assert run_2["layout"] == LAYOUTS[1].name
    summary = (report_dir / "summary.md").read_text()
    assert "# Flaky tests: flaky" in summary
    assert replay["command"] in summary
    assert "tests/unit/test_a.py::test_b" in capsys.readouterr().out


def test_fewer_than_two_runs_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["--runs", "1", "--report-dir", str(tmp_path)], runner=lambda *_: 0)
