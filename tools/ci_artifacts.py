"""What CI shows a reviewer without downloading anything, and what it keeps when a stack fails.

* `python tools/ci_artifacts.py junit reports/junit/unit.xml` prints Markdown for GitHub's job
  summary (`>>"$GITHUB_STEP_SUMMARY"`): the tier's passed / failed / error / skipped counts and
  each failed test as a node id that `./noxw -s <tier> -- <node id>` re-runs, with the first
  line of its message. A missing or unreadable report becomes a line saying so (pytest did not
  get as far as writing it); the command always exits 0, the tier's own exit status is the
  verdict.
* `keep_logs()` copies a failed stack's log files out of its temporary directory into
  `reports/<stack>/logs/`, where CI uploads them (ops/staging/staging.py,
  ops/drill/alert_drill.py).

Standard library only, so a workflow step runs it with any Python >= 3.11 and no venv.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

MAX_FAILURES_LISTED = 30
MAX_MESSAGE = 200


@dataclass
class JUnitCounts:
    """A pytest JUnit XML report reduced to what a reviewer reads first."""

    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    seconds: float = 0.0
    # (node id, first line of the message) of every failed or erroring test, in report order
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.errors + self.skipped


def node_id(classname: str, name: str, root: Path) -> str:
    """pytest's node id for a JUnit test case: `tests.unit.test_x.TestY` + `test_z` becomes
    `tests/unit/test_x.py::TestY::test_z` when that file exists under `root`; the dotted
    `classname::name` otherwise."""
    parts = classname.split(".") if classname else []
    for end in range(len(parts), 0, -1):
        path = Path(*parts[:end]).with_suffix(".py")
        if (root / path).is_file():
            return "::".join([path.as_posix(), *parts[end:], name])
    return f"{classname}::{name}" if classname else name


def first_line(text: str | None) -> str:
    line = next((line.strip() for line in (text or "").splitlines() if line.strip()), "")
    return line if len(line) <= MAX_MESSAGE else line[: MAX_MESSAGE - 1] + "…"


def read_junit(path: Path, root: Path) -> JUnitCounts:
    """Count the test cases of a report (every <testcase>, whichever <testsuite> holds it)."""
    # S314: the report is pytest's own output, written earlier in the same CI job.
    tree = ElementTree.parse(path)  # noqa: S314 - pytest's own JUnit report
    counts = JUnitCounts()
    # The suites' time is the run's wall clock (with xdist, less than the tests' sum).
    suites = [suite.get("time") for suite in tree.iter("testsuite")]
    timed_by_suite = bool(suites) and all(suites)
    counts.seconds = sum(float(time or 0) for time in suites) if timed_by_suite else 0.0
    for case in tree.iter("testcase"):
        if not timed_by_suite:
            counts.seconds += float(case.get("time") or 0)
        failure, error = case.find("failure"), case.find("error")
        outcome = failure if failure is not None else error
        if outcome is not None:
            if failure is not None:
                counts.failed += 1
            else:
                counts.errors += 1
            message = outcome.get("message") or outcome.text
            counts.failures.append(
                (
                    node_id(case.get("classname", ""), case.get("name", ""), root),
                    first_line(message),
                )
            )
        elif case.find("skipped") is not None:
            counts.skipped += 1
        else:
            counts.passed += 1
    return counts


def code(text: str) -> str:
    """`text` as a Markdown code span, whatever backticks it holds (CommonMark's rule: a fence
    longer than any run of backticks inside)."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def junit_markdown(path: Path, title: str, root: Path) -> str:
    """The job-summary section for one tier's report."""
    if not path.is_file():
        return (
            f"### {title}: no test report\n\n"
            f"{code(str(path))} was not written: the session stopped before pytest finished "
            "(see the job's log).\n"
        )
    try:
        counts = read_junit(path, root)
    except (ElementTree.ParseError, ValueError) as error:
        return f"### {title}: unreadable test report\n\n{code(str(path))}: {error}\n"
    verdict = "❌" if counts.failed or counts.errors else "✅"
    lines = [
        f"### {verdict} {title}: {counts.passed} passed, {counts.failed} failed, "
        f"{counts.errors} errors, {counts.skipped} skipped",
        "",
        "| tests | passed | failed | errors | skipped | time |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {counts.total} | {counts.passed} | {counts.failed} | {counts.errors} "
        f"| {counts.skipped} | {counts.seconds:.1f} s |",
    ]
    if counts.failures:
        lines += ["", f"Failed ({len(counts.failures)}):", ""]
        for test, message in counts.failures[:MAX_FAILURES_LISTED]:
            lines.append(f"- {code(test)}" + (f": {code(message)}" if message else ""))
        hidden = len(counts.failures) - MAX_FAILURES_LISTED
        if hidden > 0:
            lines.append(f"- … and {hidden} more, in the job's log and its JUnit artifact")
    return "\n".join(lines) + "\n"


def keep_logs(source: Path, target: Path, patterns: Iterable[str]) -> list[Path]:
    """Copy the files under `source` matching `patterns` (globs relative to it) into `target`,
    keeping their relative paths, and return the copies. `target` is emptied first, so it only
    ever holds the latest run's logs."""
    shutil.rmtree(target, ignore_errors=True)
    copies = []
    for pattern in patterns:
        for path in sorted(source.glob(pattern)):
            if path.is_file():
                copy = target / path.relative_to(source)
                copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, copy)
                copies.append(copy)
    return copies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    junit = commands.add_parser("junit", help="Markdown summary of a pytest JUnit XML report")
    junit.add_argument("report", type=Path)
    junit.add_argument("--title", help="heading (default: the report's file name, e.g. unit)")
    junit.add_argument(
        "--root", type=Path, default=Path.cwd(), help="repository root, for node ids (cwd)"
    )
    args = parser.parse_args(argv)
    sys.stdout.write(junit_markdown(args.report, args.title or args.report.stem, args.root))
    return 0


if __name__ == "__main__":
    sys.exit(main())
