"""Find flaky tests: run the unit, integration and contracts tiers several times, each run in
another random order and another xdist layout, and report every test whose outcome changed.

    python -m tools.flakes --runs 3          # what `nox -s flakes -- --runs 3` runs
    python -m tools.flakes --tiers unit      # one tier (repeat the option for several)
    python -m tools.flakes --seed 1234       # the same seeds and layouts again

Run n of a tier gets its own pytest-randomly seed (`-p randomly --randomly-seed=S`: the order
of modules, classes and tests, and every `random` seed) and the layout n of LAYOUTS (serial,
two workers grouping `xdist_group`s, three workers per file), without coverage and without a
rerun plugin: a test that fails once is reported, never retried into green. Contracts always
run serially: syrupy's unused-snapshot check must see the whole tier in one process.

Each run writes pytest's JUnit XML (reports/flakes/run-<n>/<tier>.xml) and its output
(`<tier>.log` beside it); the outcomes are read from the XML only. A test flaked when it
passed, failed, errored or skipped differently in two runs of its tier. The report,
reports/flakes/report.json and reports/flakes/summary.md, lists each flaky test with every
run's outcome, seed and layout and the exact command that replays a failing run (the whole
tier in the same order; under xdist which worker gets which test also depends on timing, so
a layout with workers reproduces an order-dependent failure only most of the time).

Exit status: 0 when every run of every tier agreed and passed; 1 when a test flaked; 2 when
none flaked but a test failed in every run, or a run ended without a usable report.
"""

from __future__ import annotations

import argparse
import json
import random
import shlex
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REPORT_DIR = Path("reports/flakes")
DEFAULT_RUNS = 3
LISTED = 20  # tests missing from some runs that summary.md names (report.json has them all)


@dataclass(frozen=True)
class Layout:
    name: str
    args: tuple[str, ...]


SERIAL = Layout("serial", ("-n", "0"))
LAYOUTS = (
    SERIAL,
    Layout("2 workers, --dist loadgroup", ("-n", "2", "--dist", "loadgroup")),
    Layout("3 workers, --dist loadfile", ("-n", "3", "--dist", "loadfile")),
)


@dataclass(frozen=True)
class Tier:
    name: str
    args: tuple[str, ...]
    layouts: tuple[Layout, ...] = LAYOUTS


TIERS = {
    "unit": Tier("unit", ("tests/unit",)),
    "integration": Tier("integration", ("tests/integration",)),
    "contracts": Tier("contracts", ("contracts", "--ignore=contracts/fuzz"), (SERIAL,)),
}

# Outcomes, strongest first: a testcase with both a failure and a teardown error is an error.
OUTCOMES = ("error", "failed", "xfailed", "skipped", "passed")
NOT_PASSING = frozenset({"error", "failed"})


# --- what one run is ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedRun:
    number: int  # 1-based
    tier: str
    seed: int
    layout: Layout

    def junit(self, report_dir: Path) -> Path:
        return report_dir / f"run-{self.number}" / f"{self.tier}.xml"

    def log(self, report_dir: Path) -> Path:
        return report_dir / f"run-{self.number}" / f"{self.tier}.log"

    def pytest_args(self) -> list[str]:
        """pytest's arguments for this run, the JUnit option aside."""
        return [
            *TIERS[self.tier].args,
            *("-p", "randomly", f"--randomly-seed={self.seed}"),
            *self.layout.args,
            # xunit1 keeps each test's file, from which the node id is rebuilt exactly.
            *("-o", "junit_family=xunit1", "-p", "no:cacheprovider"),
        ]


def plan(runs: int, tiers: Sequence[str], base_seed: int) -> list[PlannedRun]:
    """Run n of every tier: a seed drawn from `base_seed` (so `--seed` replays the whole plan)
    and the tier's layout n (round robin)."""
    draw = random.Random(base_seed)  # noqa: S311 - test orders, not secrets
    planned = []
    for number in range(1, runs + 1):
        seed = draw.getrandbits(32)
        for name in tiers:
            layouts = TIERS[name].layouts
            planned.append(PlannedRun(number, name, seed, layouts[(number - 1) % len(layouts)]))
    return planned


def display_python(executable: str = sys.executable) -> str:
    """The interpreter as a developer at the repository root would type it."""
    path = Path(executable)
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return executable


def replay_command(run: PlannedRun, python: str, test: str | None = None) -> str:
    """The command that runs `run` again: the whole tier, or one `test` in the same layout."""
    args = run.pytest_args()
    if test is not None:
        args = [test, *args[len(TIERS[run.tier].args) :]]
    return shlex.join([python, "-m", "pytest", *args])


# --- reading JUnit XML ---------------------------------------------------------------------------


def node_id(testcase: ET.Element) -> str:
    """pytest's node id of a JUnit (xunit1) testcase: `path.py::Class::test[param]`."""
    name = testcase.get("name", "")
    classname = testcase.get("classname", "")
    file = testcase.get("file")
    if not file:  # a collection error has no file: its name is the module
        return f"{classname}::{name}" if classname else name
    module = file.removesuffix(".py").replace("/", ".")
    inner = classname.removeprefix(module).lstrip(".")
    return "::".join(part for part in (file, *inner.split("."), name) if part)


def outcome_of(testcase: ET.Element) -> str:
    found = {"passed"}
    for child in testcase:
        if child.tag == "error":
            found.add("error")
        elif child.tag == "failure":
            found.add("failed")
        elif child.tag == "skipped":
            found.add("xfailed" if child.get("type") == "pytest.xfail" else "skipped")
    return next(outcome for outcome in OUTCOMES if outcome in found)


def parse_junit(text: str) -> dict[str, str]:
    """Node id -> outcome (OUTCOMES) of every testcase in a JUnit XML document."""
    root = ET.fromstring(text)  # noqa: S314 - pytest's own report
    outcomes: dict[str, str] = {}
    for testcase in root.iter("testcase"):
        test = node_id(testcase)
        outcome = outcome_of(testcase)
        previous = outcomes.get(test)
        if previous is None or OUTCOMES.index(outcome) < OUTCOMES.index(previous):
            outcomes[test] = outcome
    return outcomes


# --- comparing runs ------------------------------------------------------------------------------


@dataclass
class RunResult:
    run: PlannedRun
    command: str
    exit_code: int
    seconds: float
    outcomes: dict[str, str] | None  # None: no usable JUnit XML

    @property
    def complete(self) -> bool:
        # pytest: 0 all passed, 1 some failed; anything else stopped the run early.
        return self.outcomes is not None and self.exit_code in (0, 1)

    def counts(self) -> dict[str, int]:
        counted: dict[str, int] = {}
        for outcome in (self.outcomes or {}).values():
            counted[outcome] = counted.get(outcome, 0) + 1
        return counted


@dataclass
class Finding:
    """One test of one tier and what each complete run of that tier made of it."""

    tier: str
    test: str
    outcomes: dict[int, str]  # run number -> outcome, "absent" when that run lacked the test

    @property
    def flaky(self) -> bool:
        return len({o for o in self.outcomes.values() if o != "absent"}) > 1

    @property
    def failing_every_run(self) -> bool:
        present = [o for o in self.outcomes.values() if o != "absent"]
        return bool(present) and all(o in NOT_PASSING for o in present)

    @property
    def missing_somewhere(self) -> bool:
        return "absent" in self.outcomes.values()


@dataclass
class Verdict:
    flaky: list[Finding] = field(default_factory=list)
    failing_every_run: list[Finding] = field(default_factory=list)
    missing_somewhere: list[Finding] = field(default_factory=list)
    incomplete: list[RunResult] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        if self.flaky:
            return 1
        return 2 if self.failing_every_run or self.incomplete else 0

    @property
    def word(self) -> str:
        return {0: "stable", 1: "flaky", 2: "inconclusive"}[self.exit_code]


def compare(results: Sequence[RunResult]) -> Verdict:
    """Sort every test of the complete runs into flaky, failing in every run, or missing from
    some runs; runs that stopped early or left no report are listed apart, not compared."""
    verdict = Verdict(incomplete=[r for r in results if not r.complete])
    by_tier: dict[str, list[RunResult]] = {}
    for result in results:
        if result.complete:
            by_tier.setdefault(result.run.tier, []).append(result)
    for tier, tier_results in by_tier.items():
        tests = sorted({test for r in tier_results for test in r.outcomes or {}})
        for test in tests:
            finding = Finding(
                tier,
                test,
                {r.run.number: (r.outcomes or {}).get(test, "absent") for r in tier_results},
            )
            if finding.flaky:
                verdict.flaky.append(finding)
            elif finding.failing_every_run:
                verdict.failing_every_run.append(finding)
            if finding.missing_somewhere:
                verdict.missing_somewhere.append(finding)
    return verdict


# --- the report ----------------------------------------------------------------------------------


def finding_json(finding: Finding, results: Sequence[RunResult], python: str) -> dict[str, Any]:
    runs = {r.run.number: r.run for r in results if r.run.tier == finding.tier}
    return {
        "tier": finding.tier,
        "test": finding.test,
        "outcomes": [
            {
                "run": number,
                "outcome": outcome,
                "seed": runs[number].seed,
                "layout": runs[number].layout.name,
            }
            for number, outcome in sorted(finding.outcomes.items())
        ],
        "replay": [
            {
                "run": number,
                "outcome": outcome,
                "command": replay_command(runs[number], python),
                "test_alone": replay_command(runs[number], python, finding.test),
            }
            for number, outcome in sorted(finding.outcomes.items())
            if outcome in NOT_PASSING
        ],
    }


def report_json(
    results: Sequence[RunResult],
    verdict: Verdict,
    *,
    base_seed: int,
    runs: int,
    seconds: float,
    python: str,
) -> dict[str, Any]:
    return {
        "verdict": verdict.word,
        "exit_code": verdict.exit_code,
        "runs": runs,
        "base_seed": base_seed,
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(seconds, 1),
        "replay_plan": f"python -m tools.flakes --runs {runs} --seed {base_seed}",
        "run_results": [
            {
                "run": r.run.number,
                "tier": r.run.tier,
                "seed": r.run.seed,
                "layout": r.run.layout.name,
                "command": r.command,
                "exit_code": r.exit_code,
                "seconds": round(r.seconds, 1),
                "complete": r.complete,
                "counts": r.counts(),
            }
            for r in results
        ],
        "flaky": [finding_json(f, results, python) for f in verdict.flaky],
        "failing_every_run": [finding_json(f, results, python) for f in verdict.failing_every_run],
        "missing_in_some_runs": [
            {"tier": f.tier, "test": f.test, "outcomes": f.outcomes}
            for f in verdict.missing_somewhere
        ],
    }


def summary_markdown(report: dict[str, Any]) -> str:
    """The report for people: the verdict, a table of runs, then each finding with its replay."""
    lines = [
        f"# Flaky tests: {report['verdict']}",
        "",
        f"{report['runs']} runs of each tier, {report['seconds']} s; the same seeds and layouts "
        f"again: `{report['replay_plan']}`.",
        "",
        "| run | tier | seed | layout | exit | time | outcomes |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report["run_results"]:
        counts = ", ".join(f"{n} {o}" for o, n in sorted(r["counts"].items())) or "no report"
        lines.append(
            f"| {r['run']} | {r['tier']} | {r['seed']} | {r['layout']} | {r['exit_code']} "
            f"| {r['seconds']} s | {counts} |"
        )
    sections = (
        ("flaky", "Flaky: the outcome changed between runs"),
        ("failing_every_run", "Failing in every run (not flaky, but red)"),
    )
    for key, title in sections:
        findings = report[key]
        lines += ["", f"## {title}: {len(findings)}"]
        for f in findings:
            outcomes = ", ".join(
                f"run {o['run']} {o['outcome']} (seed {o['seed']}, {o['layout']})"
                for o in f["outcomes"]
            )
            lines += ["", f"- `{f['test']}` ({f['tier']}): {outcomes}"]
            for replay in f["replay"]:
                lines += [
                    f"  - replay run {replay['run']}: `{replay['command']}`",
                    f"    (the test alone: `{replay['test_alone']}`)",
                ]
    missing = report["missing_in_some_runs"]
    if missing:
        lines += ["", f"## Missing from some runs: {len(missing)}", ""]
        lines += [f"- `{m['test']}` ({m['tier']})" for m in missing[:LISTED]]
        if len(missing) > LISTED:
            lines.append(f"- and {len(missing) - LISTED} more (report.json)")
    incomplete = [r for r in report["run_results"] if not r["complete"]]
    if incomplete:
        lines += ["", "## Runs without a usable report (see their .log)", ""]
        lines += [f"- run {r['run']} {r['tier']}: exit {r['exit_code']}" for r in incomplete]
    return "\n".join(lines) + "\n"


# --- running ------------------------------------------------------------------------------------

Runner = Callable[[list[str], Path], int]


def run_pytest(command: list[str], log: Path) -> int:
    """Run `command` from the repository root, its output going to `log`."""
    with log.open("wb") as sink:
        return subprocess.run(  # noqa: S603 - a command line built here
            command, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT, check=False
        ).returncode


def execute(
    planned: Sequence[PlannedRun],
    report_dir: Path,
    runner: Runner = run_pytest,
    say: Callable[[str], None] = print,
    python: str = sys.executable,
) -> list[RunResult]:
    results = []
    total = max(run.number for run in planned)
    for run in planned:
        junit = run.junit(report_dir)
        junit.parent.mkdir(parents=True, exist_ok=True)
        command = [python, "-m", "pytest", *run.pytest_args(), f"--junitxml={junit}"]
        say(f"run {run.number}/{total} {run.tier}: seed {run.seed}, {run.layout.name}")
        started = time.monotonic()
        code = runner(command, run.log(report_dir))
        seconds = time.monotonic() - started
        try:
            outcomes: dict[str, str] | None = parse_junit(junit.read_text(encoding="utf-8"))
        except (OSError, ET.ParseError):
            outcomes = None
        result = RunResult(
            run, replay_command(run, display_python(python)), code, seconds, outcomes
        )
        counts = ", ".join(f"{n} {o}" for o, n in sorted(result.counts().items()))
        say(f"  exit {code} in {seconds:.0f} s: {counts or 'no JUnit report'}")
        results.append(result)
    return results


def main(argv: Sequence[str] | None = None, runner: Runner = run_pytest) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.flakes", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS, help="runs of each tier (3)")
    parser.add_argument(
        "--tiers",
        action="append",
        choices=sorted(TIERS),
        help="a tier to run (repeatable; default: unit, integration, contracts)",
    )
    parser.add_argument("--seed", type=int, default=None, help="replay the seeds of a report")
    parser.add_argument("--report-dir", type=Path, default=REPORT_DIR)
    args = parser.parse_args(argv)
    if args.runs < 2:
        parser.error("--runs must be at least 2: a flake is a difference between runs")
    tiers = args.tiers or ["unit", "integration", "contracts"]
    base_seed = args.seed if args.seed is not None else random.SystemRandom().getrandbits(32)
    report_dir: Path = args.report_dir
    if report_dir.exists():
        shutil.rmtree(report_dir)  # an old run's XML must never be read as this run's
    report_dir.mkdir(parents=True)

    def say(line: str) -> None:
        print(f"[flakes] {line}", flush=True)

    say(f"{args.runs} runs of {', '.join(tiers)}; plan seed {base_seed} (`--seed {base_seed}`)")
    started = time.monotonic()
    results = execute(plan(args.runs, tiers, base_seed), report_dir, runner, say)
    verdict = compare(results)
    report = report_json(
        results,
        verdict,
        base_seed=base_seed,
        runs=args.runs,
        seconds=time.monotonic() - started,
        python=display_python(),
    )
    (report_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    summary = summary_markdown(report)
    (report_dir / "summary.md").write_text(summary, encoding="utf-8")
    print(summary, flush=True)
    say(f"{verdict.word}: {report_dir / 'report.json'}, {report_dir / 'summary.md'}")
    return verdict.exit_code


if __name__ == "__main__":
    sys.exit(main())
