"""What CI shows a reviewer: the JUnit summaries of tools/ci_artifacts.py, the logs a failed stack
keeps, and the workflow wiring that puts them on the run's page and in its artifacts."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from ops.drill import alert_drill
from ops.staging import staging
from tools.ci_artifacts import (
    MAX_FAILURES_LISTED,
    code,
    junit_markdown,
    keep_logs,
    main,
    node_id,
    read_junit,
)

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
JUNIT_TIERS = ["unit", "integration", "contracts", "fuzz", "migrations"]

# The shape pytest writes (junit_family xunit2): one <testsuite> inside <testsuites>.
REPORT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites name="pytest tests">
  <testsuite name="pytest" errors="1" failures="2" skipped="2" tests="7" time="3.5">
    <testcase classname="tests.unit.test_config" name="test_defaults" time="0.5"/>
    <testcase classname="tests.unit.test_config" name="test_env_wins" time="0.5"/>
    <testcase classname="tests.unit.test_config.TestProduction" name="test_refuses[debug]" time="1.0">
      <failure message="AssertionError: assert 'on' == 'off'&#10;  - off&#10;  + on">trace</failure>
    </testcase>
    <testcase classname="tests.unit.test_gone" name="test_removed" time="0.5">
      <failure message="">bare failure</failure>
    </testcase>
    <testcase classname="tests.unit.test_config" name="test_db" time="0.5">
      <error message="failed on setup with &quot;RuntimeError: no database&quot;">trace</error>
    </testcase>
    <testcase classname="tests.unit.test_config" name="test_later" time="0.25">
      <skipped type="pytest.skip" message="not yet">skip</skipped>
    </testcase>
    <testcase classname="tests.unit.test_config" name="test_known_bug" time="0.25">
      <skipped type="pytest.xfail" message="bug 12"/>
    </testcase>
  </testsuite>
</testsuites>
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository root holding the test file the report names (test_gone.py is not there)."""
    (tmp_path / "tests" / "unit").mkdir(parents=True)
    (tmp_path / "tests" / "unit" / "test_config.py").write_text("")
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "unit.xml").write_text(REPORT)
    return tmp_path


def test_a_report_is_counted_by_outcome_with_every_failed_test_named(repo: Path) -> None:
    counts = read_junit(repo / "reports" / "unit.xml", repo)

    assert (counts.passed, counts.failed, counts.errors, counts.skipped) == (2, 2, 1, 2)
    assert counts.total == 7
    assert counts.seconds == pytest.approx(3.5)
    assert counts.failures == [
        (
            "tests/unit/test_config.py::TestProduction::test_refuses[debug]",
            "AssertionError: assert 'on' == 'off'",
        ),
        ("tests.unit.test_gone::test_removed", "bare failure"),
        ("tests/unit/test_config.py::test_db", 'failed on setup with "RuntimeError: no database"'),
    ]


def test_the_summary_leads_with_the_verdict_and_lists_rerunnable_node_ids(repo: Path) -> None:
    text = junit_markdown(repo / "reports" / "unit.xml", "unit", repo)

    assert text.startswith("### ❌ unit: 2 passed, 2 failed, 1 errors, 2 skipped\n")
    assert "| 7 | 2 | 2 | 1 | 2 | 3.5 s |" in text
    assert "- `tests/unit/test_config.py::test_db`: " in text
    assert "Failed (3):" in text


def test_a_green_report_has_a_green_heading_and_no_failure_list(tmp_path: Path) -> None:
    report = tmp_path / "contracts.xml"
    report.write_text(
        '<testsuites><testsuite><testcase classname="c" name="t" time="1"/></testsuite></testsuites>'
    )

    text = junit_markdown(report, "contracts", tmp_path)

    assert text.startswith("### ✅ contracts: 1 passed, 0 failed, 0 errors, 0 skipped")
    assert "| 1.0 s |" in text  # no suite time: the tests' own times add up
    assert "Failed" not in text


def test_a_missing_or_broken_report_is_said_not_hidden(tmp_path: Path) -> None:
    broken = tmp_path / "fuzz.xml"
    broken.write_text("<testsuites><testsuite>")

    assert "no test report" in junit_markdown(tmp_path / "absent.xml", "unit", tmp_path)
    assert "unreadable test report" in junit_markdown(broken, "fuzz", tmp_path)


def test_a_long_failure_list_is_cut_and_says_how_many_are_left(tmp_path: Path) -> None:
    cases = "".join(
        f'<testcase classname="c" name="t{n}"><failure message="m{n}"/></testcase>'
        for n in range(MAX_FAILURES_LISTED + 5)
    )
    report = tmp_path / "integration.xml"
    report.write_text(f"<testsuites><testsuite>{cases}</testsuite></testsuites>")

    text = junit_markdown(report, "integration", tmp_path)

    assert text.count("\n- `c::t") == MAX_FAILURES_LISTED
    assert "… and 5 more" in text


def test_node_ids_fall_back_to_the_dotted_name_when_no_file_matches(tmp_path: Path) -> None:
    assert node_id("contracts.prompts.test_x", "test_y", tmp_path) == (
        "contracts.prompts.test_x::test_y"
    )
    assert node_id("", "test_y", tmp_path) == "test_y"


@pytest.mark.parametrize(
    ("text", "span"),
    [("plain", "`plain`"), ("a `b` c", "``a `b` c``"), ("`edge", "`` `edge ``")],
)
def test_code_spans_survive_backticks_in_test_names_and_messages(text: str, span: str) -> None:
    assert code(text) == span


def test_the_command_prints_the_summary_and_always_exits_zero(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["junit", str(repo / "reports" / "unit.xml"), "--root", str(repo)])

    assert status == 0
    assert capsys.readouterr().out.startswith("### ❌ unit:")
    assert main(["junit", str(repo / "missing.xml"), "--title", "fuzz"]) == 0


def test_keep_logs_copies_the_matching_files_and_only_the_latest_runs(tmp_path: Path) -> None:
    work = tmp_path / "work"
    (work / "nginx").mkdir(parents=True)
    for name in ("gunicorn.log", "worker.log", "nginx/error.log", "nginx/nginx.conf", "cert.pem"):
        (work / name).write_text(name)
    target = tmp_path / "reports" / "staging" / "logs"
    target.mkdir(parents=True)
    (target / "stale.log").write_text("a previous run")

    kept = keep_logs(work, target, ("*.log", "nginx/*.log", "nginx/nginx.conf"))

    names = {path.relative_to(target).as_posix() for path in kept}
    assert names == {"gunicorn.log", "nginx/error.log", "nginx/nginx.conf", "worker.log"}
    assert {p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()} == names
    assert (target / "nginx" / "error.log").read_text() == "nginx/error.log"


# --- the workflows ------------------------------------------------------------------------------


def workflow(name: str) -> dict[str | bool, Any]:
    """A workflow file; PyYAML reads its bare key `on` as True."""
    data: dict[str | bool, Any] = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    return data


def steps_using(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [step for step in job["steps"] if str(step.get("uses", "")).startswith(action + "@")]


def test_ci_reports_to_merge_queues() -> None:
    # PyYAML reads the bare key `on` as True
    assert "merge_group" in workflow("ci.yml")[True]


@pytest.mark.parametrize("tier", JUNIT_TIERS)
def test_every_pytest_tier_uploads_its_junit_report_and_summarises_it_whatever_happened(
    tier: str,
) -> None:
    job = workflow("ci.yml")["jobs"][tier]
    uploads = [
        step
        for step in steps_using(job, "actions/upload-artifact")
        if step["with"]["name"] == f"junit-{tier}"
    ]
    summaries = [
        step for step in job["steps"] if "tools/ci_artifacts.py junit" in step.get("run", "")
    ]

    assert len(uploads) == 1
    assert uploads[0]["if"] == "always()"
    assert uploads[0]["with"]["path"] == f"reports/junit/{tier}.xml"
    assert uploads[0]["with"]["retention-days"] == 14
    assert [step["if"] for step in summaries] == ["always()"]
    assert f"reports/junit/{tier}.xml" in summaries[0]["run"]


@pytest.mark.parametrize("name", ["ci.yml", "python-versions.yml", "alert-drill.yml"])
def test_every_job_restores_and_saves_a_cache_of_its_own(name: str) -> None:
    for job_name, job in workflow(name)["jobs"].items():
        for step in steps_using(job, "actions/cache"):
            key, restore = step["with"]["key"], step["with"]["restore-keys"]
            assert f"-{job_name}-${{{{ hashFiles(" in key, f"{name} {job_name}: {key}"
            assert key.startswith(restore), f"{name} {job_name} falls back to another job's cache"
            assert ".nox" not in step["with"]["path"]


def test_ruff_findings_become_annotations_in_the_lint_job() -> None:
    assert workflow("ci.yml")["jobs"]["lint"]["env"]["RUFF_OUTPUT_FORMAT"] == "github"


def test_diff_coverage_runs_for_pull_requests_and_merge_groups_with_event_data_in_env() -> None:
    job = workflow("ci.yml")["jobs"]["coverage"]
    (checkout,) = steps_using(job, "actions/checkout")
    (step,) = [step for step in job["steps"] if "diff-cover" in step.get("run", "")]

    assert checkout["with"]["fetch-depth"] == 0
    assert "pull_request" in step["if"]
    assert "merge_group" in step["if"]
    assert "--fail-under 95" in step["run"]
    assert "${{" not in step["run"]  # contexts come in through env: (zizmor's template-injection)
    assert step["env"]["BASE_REF"] == "${{ github.base_ref }}"


@pytest.mark.parametrize(
    ("name", "job_name", "artifact", "kept"),
    [
        ("ci.yml", "staging", "staging-logs", staging.KEPT_LOGS),
        ("alert-drill.yml", "alert-drill", "alert-drill-logs", alert_drill.KEPT_LOGS),
    ],
)
def test_a_failed_stack_uploads_the_logs_its_script_keeps(
    name: str, job_name: str, artifact: str, kept: Path
) -> None:
    job = workflow(name)["jobs"][job_name]
    (upload,) = [
        step
        for step in steps_using(job, "actions/upload-artifact")
        if step["with"]["name"] == artifact
    ]

    assert upload["if"] == "failure()"
    assert upload["with"]["path"] == kept.relative_to(ROOT).as_posix()
    assert f"./noxw -s {job_name}" in [step.get("run") for step in job["steps"]]


def test_the_newer_pythons_run_the_io_free_tiers_with_nox_forcing_the_version() -> None:
    job = workflow("python-versions.yml")["jobs"]["unit-contracts"]
    (setup,) = steps_using(job, "actions/setup-python")
    runs = [step.get("run", "") for step in job["steps"]]

    assert job["strategy"]["matrix"]["python"] == ["3.12", "3.13"]
    assert setup["with"]["python-version"] == "${{ matrix.python }}"
    assert './noxw -s unit contracts --force-python "$MATRIX_PYTHON"' in runs
    # what the matrix adds to the gate's 3.11 is what requires-python promises
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["requires-python"] == ">=3.11"
