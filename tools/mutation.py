"""Mutation testing of the critical modules (`nox -s mutants`): run mutmut, then summarise.

    python -m tools.mutation run                         # every mutant in scope
    python -m tools.mutation run --changed origin/main   # only functions the change touched
    python -m tools.mutation run app.adaptive.irt        # one module (mutmut name globs)
    python -m tools.mutation run --rerun-survivors       # re-test last run's survivors
    python -m tools.mutation summarise                   # reports from the last run

The scope and the tests are mutmut's own configuration (pyproject `[tool.mutmut]`); mutmut
copies app/ into mutants/, rewrites every function of the scope into a trampoline with its
mutants, maps each test to the functions it calls once, and then runs, per mutant, only the
tests that call its function.

This module adds what the project needs around it: the Postgres and Redis of the harness's
service discovery (found once, handed to every pytest run through TEST_DATABASE_URL and
TEST_REDIS_URL), the diff-scoped mode (`git diff -U0` line ranges mapped to the functions that
contain them), the reviewed list of equivalent mutants (contracts/mutation/equivalent.toml,
counted apart and left out of the score; an entry that names no mutant any more, or one that
tests now kill, fails the run), and the reports: reports/mutation/summary.json (score =
killed / (killed + survived), per module and overall) and survivors.md (module, line, diff).
"""

from __future__ import annotations

import argparse
import ast
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MUTANTS_DIR = Path("mutants")
REPORTS_DIR = Path("reports/mutation")
EQUIVALENT_FILE = Path("contracts/mutation/equivalent.toml")
DEFAULT_CHANGED_FAIL_UNDER = 90.0
# The pure modules are held to the unit tier and the contracts: their mutants run only those
# tests, even where an integration test happens to call them too (which would make every
# surviving mutant cost seconds of HTTP round trips). auth, security and jobs keep theirs.
UNIT_TESTED_MODULES = ("app.adaptive", "app.learning.scoring", "app.ai.resilience")
INTEGRATION_TESTS = "tests/integration/"

# mutmut's exit-code vocabulary (mutmut.stats.status_by_exit_code), reduced to what the score
# needs; tests/unit/test_mutation_reports.py checks that the two agree.
KILLED, SURVIVED, NO_TESTS, TIMEOUT = "killed", "survived", "no tests", "timeout"
NOT_CHECKED, EQUIVALENT, OTHER = "not checked", "equivalent", "other"
STATUS_BY_EXIT_CODE: dict[int | None, str] = {
    None: NOT_CHECKED,
    0: SURVIVED,
    1: KILLED,
    3: KILLED,  # pytest's internal error: the mutant broke the run
    5: NO_TESTS,
    33: NO_TESTS,
    24: TIMEOUT,
    -24: TIMEOUT,
    36: TIMEOUT,
    152: TIMEOUT,
    255: TIMEOUT,
}


def status_of(exit_code: int | None) -> str:
    """The status of a mutant from the exit code mutmut recorded (suspicious and the rest: other)."""
    return STATUS_BY_EXIT_CODE.get(exit_code, OTHER)


# --- names ---------------------------------------------------------------------------------------


def module_of(path: str | Path) -> str:
    """`app/auth/tokens.py` -> `app.auth.tokens`; a package's `__init__.py` is the package."""
    dotted = Path(path).with_suffix("").as_posix().replace("/", ".")
    return dotted.removesuffix(".__init__")


def function_key(name: str, class_name: str | None = None) -> str:
    """mutmut's mangled name of a function (`x_name`) or method (`xǁClassǁname`)."""
    return f"xǁ{class_name}ǁ{name}" if class_name else f"x_{name}"


def function_of(mutant: str) -> str:
    """`app.auth.tokens.x_issue__mutmut_3` -> `app.auth.tokens.x_issue`."""
    return mutant.partition("__mutmut_")[0]


def readable_function(mutant: str) -> str:
    """`app.auth.tokens.xǁKeyringǁget__mutmut_3` -> `Keyring.get`."""
    key = function_of(mutant).rpartition(".")[2]
    if key.startswith("xǁ"):
        return key[2:].replace("ǁ", ".")
    return key.removeprefix("x_")


# --- scope ---------------------------------------------------------------------------------------


def mutmut_config(pyproject: Path = ROOT / "pyproject.toml") -> dict[str, Any]:
    config: dict[str, Any] = tomllib.loads(pyproject.read_text(encoding="utf-8"))["tool"]["mutmut"]
    return config


def scope_files(config: Mapping[str, Any], root: Path = ROOT) -> list[str]:
    """The Python files mutmut mutates: under source_paths, in only_mutate, not do_not_mutate."""
    found: list[str] = []
    for source in config["source_paths"]:
        for path in sorted((root / source).rglob("*.py")):
            relative = path.relative_to(root).as_posix()
            wanted = any(fnmatch.fnmatch(relative, p) for p in config.get("only_mutate", ["*"]))
            excluded = any(fnmatch.fnmatch(relative, p) for p in config.get("do_not_mutate", []))
            if wanted and not excluded and "__pycache__" not in path.parts:
                found.append(relative)
    return found


# --- results -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str  # the source file, e.g. app/auth/tokens.py
    status: str


def read_results(files: Iterable[str], mutants_dir: Path = MUTANTS_DIR) -> list[Mutant]:
    """Every mutant mutmut generated for `files`, with its status, from mutants/<file>.meta."""
    mutants: list[Mutant] = []
    for path in files:
        meta = mutants_dir / f"{path}.meta"
        if not meta.is_file():
            continue
        exit_codes = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
        mutants.extend(Mutant(name, path, status_of(code)) for name, code in exit_codes.items())
    return sorted(mutants, key=lambda m: (m.path, mutant_order(m.name)))


def mutant_order(name: str) -> tuple[str, int]:
    function, _, number = name.partition("__mutmut_")
    return function, int(number) if number.isdigit() else 0


@dataclass(frozen=True)
class Equivalent:
    name: str
    reason: str


class EquivalentListError(ValueError):
    """contracts/mutation/equivalent.toml is malformed."""


def load_equivalents(path: Path = EQUIVALENT_FILE) -> dict[str, Equivalent]:
    """The reviewed equivalent mutants: `[[mutant]]` tables with `name` and a `reason`."""
    if not path.is_file():
        return {}
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    unknown = set(data) - {"mutant"}
    if unknown:
        raise EquivalentListError(f"{path}: unknown top-level keys {sorted(unknown)}")
    entries: dict[str, Equivalent] = {}
    for index, entry in enumerate(data.get("mutant", []), start=1):
        name, reason = entry.get("name"), entry.get("reason")
        if not isinstance(name, str) or "__mutmut_" not in name:
            raise EquivalentListError(f"{path}: entry {index} needs a mutant `name`")
        if not isinstance(reason, str) or len(reason.strip()) < 10:
            raise EquivalentListError(f"{path}: {name} needs a `reason` saying why")
        if name in entries:
            raise EquivalentListError(f"{path}: {name} is listed twice")
        extra = set(entry) - {"name", "reason"}
        if extra:
            raise EquivalentListError(f"{path}: {name} has unknown keys {sorted(extra)}")
        entries[name] = Equivalent(name, reason.strip())
    return entries


def equivalent_problems(
    equivalents: Mapping[str, Equivalent], mutants: Iterable[Mutant]
) -> list[str]:
    """Entries that name no generated mutant (stale), or a mutant the tests now kill."""
    by_name = {m.name: m for m in mutants}
    problems: list[str] = []
    for name in sorted(equivalents):
        mutant = by_name.get(name)
        if mutant is None:
            problems.append(
                f"stale entry in {EQUIVALENT_FILE}: {name} no longer exists (the code changed: "
                "find the mutant's new name with `mutmut results`, or remove the entry)"
            )
        elif mutant.status in (KILLED, TIMEOUT):
            problems.append(
                f"{name} is listed in {EQUIVALENT_FILE} as equivalent, but a test kills it: "
                "remove the entry"
            )
    return problems


def score(killed: int, survived: int) -> float | None:
    """killed / (killed + survived) as a fraction; None when there is nothing to score."""
    return round(killed / (killed + survived), 4) if killed + survived else None


def summarise(mutants: Iterable[Mutant], equivalents: Mapping[str, Equivalent]) -> dict[str, Any]:
    """The summary.json document: the overall score and per module counts and score.

    `survived` includes the mutants no test reaches (`no_tests` says how many); equivalent
    mutants are counted apart and are in neither; timeouts are counted apart (a mutant that
    makes the tests hang is detected, but it is not a failing assertion). Mutants the run did
    not check (outside a diff-scoped or module run) are left out.
    """
    modules: dict[str, dict[str, Any]] = {}
    for mutant in mutants:
        if mutant.status == NOT_CHECKED:
            continue
        counts = modules.setdefault(
            mutant.path,
            {KILLED: 0, SURVIVED: 0, TIMEOUT: 0, "no_tests": 0, EQUIVALENT: 0, OTHER: 0},
        )
        if mutant.name in equivalents and mutant.status not in (KILLED, TIMEOUT):
            counts[EQUIVALENT] += 1
        elif mutant.status in (SURVIVED, NO_TESTS):
            counts[SURVIVED] += 1
            counts["no_tests"] += mutant.status == NO_TESTS
        elif mutant.status in (KILLED, TIMEOUT):
            counts[mutant.status] += 1
        else:
            counts[OTHER] += 1
    for counts in modules.values():
        counts["score"] = score(counts[KILLED], counts[SURVIVED])
    killed = sum(c[KILLED] for c in modules.values())
    survived = sum(c[SURVIVED] for c in modules.values())
    return {
        "score": score(killed, survived),
        "killed": killed,
        "survived": survived,
        "timeout": sum(c[TIMEOUT] for c in modules.values()),
        "equivalent": sum(c[EQUIVALENT] for c in modules.values()),
        "modules": dict(sorted(modules.items())),
    }


def survivors(mutants: Iterable[Mutant], equivalents: Mapping[str, Equivalent]) -> list[Mutant]:
    return [m for m in mutants if m.status in (SURVIVED, NO_TESTS) and m.name not in equivalents]


# --- survivors.md --------------------------------------------------------------------------------


def function_lines(source: str) -> dict[str, int]:
    """mutmut function key -> line of its `def`, for module functions and class methods."""
    lines: dict[str, int] = {}
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            lines[function_key(node.name)] = node.lineno
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    lines[function_key(item.name, node.name)] = item.lineno
    return lines


HUNK = re.compile(r"^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,(\d+))? @@")


def mutated_line(diff: str, def_line: int) -> int | None:
    """The source line a mutant changes: its function's `def` line plus the offset of the first
    removed line in mutmut's diff of the function (which starts at the `def`)."""
    old_line: int | None = None
    for line in diff.splitlines():
        hunk = HUNK.match(line)
        if hunk:
            old_line = int(hunk[1])
            continue
        if old_line is None or line.startswith(("---", "+++")):
            continue
        if line.startswith("-"):
            return def_line + old_line - 1
        if line.startswith("+"):  # a pure insertion: report the line it precedes
            return def_line + old_line - 1
        old_line += 1
    return None


def survivors_markdown(
    found: list[Mutant],
    diff_for: Callable[[Mutant], str],
    def_lines: Mapping[str, Mapping[str, int]],
    title: str = "Surviving mutants",
) -> str:
    """The readable list: per module, each survivor's function, line and diff."""
    out = [f"# {title}", ""]
    if not found:
        out += ["None: every mutant checked was killed or is a listed equivalent.", ""]
        return "\n".join(out)
    out += [
        f"{len(found)} mutants survived. Each needs a test whose assertion fails on it, or, if "
        f"no test can tell it from the original, an entry with its reason in {EQUIVALENT_FILE}. "
        "`mutmut show NAME` prints one again; `mutmut apply NAME` writes it into app/ "
        "(revert afterwards).",
        "",
    ]
    current = None
    for mutant in found:
        if mutant.path != current:
            current = mutant.path
            out += [f"## {current}", ""]
        diff = diff_for(mutant).strip()
        key = function_of(mutant.name).rpartition(".")[2]
        def_line = def_lines.get(mutant.path, {}).get(key)
        line = mutated_line(diff, def_line) if def_line else None
        where = f"line {line}" if line else "line unknown"
        status = " (no test reaches it)" if mutant.status == NO_TESTS else ""
        out += [
            f"### `{mutant.name}`",
            "",
            f"`{readable_function(mutant.name)}`, {where}{status}",
            "",
            "```diff",
            diff,
            "```",
            "",
        ]
    return "\n".join(out)


def step_summary(summary: Mapping[str, Any], found: list[Mutant], limit: int = 30) -> str:
    """Markdown for CI's job summary: the score table and the first survivors' names."""
    out = [
        "## Mutation testing",
        "",
        "| module | killed | survived | timeout | equivalent | score |",
    ]
    out.append("|---|---|---|---|---|---|")
    for path, c in summary["modules"].items():
        out.append(
            f"| `{path}` | {c[KILLED]} | {c[SURVIVED]} | {c[TIMEOUT]} | {c[EQUIVALENT]} "
            f"| {percent(c['score'])} |"
        )
    out.append(
        f"| **all** | {summary['killed']} | {summary['survived']} | {summary['timeout']} "
        f"| {summary['equivalent']} | **{percent(summary['score'])}** |"
    )
    out.append("")
    if found:
        out.append(f"Survivors ({len(found)}; diffs in the `mutation-report` artifact):")
        out.append("")
        out += [f"- `{m.name}` ({m.path})" for m in found[:limit]]
        if len(found) > limit:
            out.append(f"- … and {len(found) - limit} more")
        out.append("")
    return "\n".join(out)


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f} %"


# --- diff-scoped runs ----------------------------------------------------------------------------

DIFF_FILE = re.compile(r"^\+\+\+ (?:b/)?(.+)$")


def changed_lines(diff: str) -> dict[str, set[int]]:
    """Lines of the new version each file's `git diff -U0` hunks touch. A pure deletion touches
    the lines on both sides of where it was, so the function it was cut from counts."""
    touched: dict[str, set[int]] = {}
    current: set[int] | None = None
    for line in diff.splitlines():
        header = DIFF_FILE.match(line)
        if header:
            name = header[1].strip()
            current = None if name == "/dev/null" else touched.setdefault(name, set())
            continue
        hunk = HUNK.match(line)
        if hunk and current is not None:
            start, count = int(hunk[2]), int(hunk[3] if hunk[3] is not None else 1)
            current.update(range(start, start + count) if count else {start, start + 1})
    return touched


def functions_touching(source: str, lines: set[int]) -> set[str]:
    """mutmut keys of the module functions and methods (decorators included) containing `lines`;
    a line in a nested function counts for the function around it."""
    keys: set[str] = set()

    def span(node: ast.FunctionDef | ast.AsyncFunctionDef) -> range:
        first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        return range(first, (node.end_lineno or node.lineno) + 1)

    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            if lines.intersection(span(node)):
                keys.add(function_key(node.name))
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and lines.intersection(
                    span(item)
                ):
                    keys.add(function_key(item.name, node.name))
    return keys


def changed_function_patterns(
    diff: str, files: Iterable[str], read: Callable[[str], str]
) -> list[str]:
    """mutmut name globs (`app.auth.tokens.x_issue__mutmut_*`) of the changed functions in scope."""
    touched = changed_lines(diff)
    patterns: list[str] = []
    for path in files:
        if path not in touched:
            continue
        for key in sorted(functions_touching(read(path), touched[path])):
            patterns.append(f"{module_of(path)}.{key}__mutmut_*")
    return patterns


def git_diff(base: str, files: Iterable[str]) -> str:
    """`git diff -U0` of the scope between the merge base with `base` and the working tree."""
    merge_base = subprocess.run(  # noqa: S603 - a fixed command line
        ["git", "merge-base", base, "HEAD"],  # noqa: S607 - git from PATH, as developers run it
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout.strip()
    command = ["git", "diff", "-U0", "--no-color", "--no-ext-diff", merge_base, "--", *files]
    return subprocess.run(  # noqa: S603 - a fixed command line
        command, check=True, capture_output=True, text=True, cwd=ROOT
    ).stdout


def matching(names: Iterable[str], patterns: Iterable[str]) -> list[str]:
    patterns = list(patterns)
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]


def prune_integration_tests(
    stats: dict[str, Any], modules: Iterable[str] = UNIT_TESTED_MODULES
) -> int:
    """Drop the integration tests from the tests mutmut recorded for functions of `modules`
    (mutants/mutmut-stats.json, `tests_by_mangled_function_name`); return how many it dropped."""
    prefixes = tuple(f"{m}." for m in modules)
    dropped = 0
    for function, tests in stats["tests_by_mangled_function_name"].items():
        if function.startswith(prefixes):
            kept = [t for t in tests if not t.startswith(INTEGRATION_TESTS)]
            dropped += len(tests) - len(kept)
            stats["tests_by_mangled_function_name"][function] = kept
    return dropped


# --- running mutmut ------------------------------------------------------------------------------


@dataclass
class Services:
    env: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    stops: list[Callable[[], None]] = field(default_factory=list)

    def stop(self) -> None:
        for stop in self.stops:
            stop()


def discover_services() -> Services:
    """Postgres and Redis the way the test tiers find them (tests/plugins/services.py), once,
    so every pytest run mutmut starts in mutants/ uses the same servers."""
    from tests.plugins.services import Probes, ServiceUnavailable, discover

    found = Services()
    probes = Probes(env=dict(os.environ))
    docker = probes.docker()
    probes.docker = lambda: docker
    try:
        for name, variable in (("postgres", "TEST_DATABASE_URL"), ("redis", "TEST_REDIS_URL")):
            service, notes = discover(name, probes)
            found.env[variable] = service.url
            found.notes.append(f"{name}: {service.source}")
            found.notes.extend(notes)
            if service.stop is not None:
                found.stops.append(service.stop)
    except ServiceUnavailable:
        found.stop()
        raise
    return found


def generate_mutants(max_children: int) -> None:
    """Copy the tree into mutants/ and write the mutants, without running tests, so that a
    diff-scoped run knows which changed functions have any mutants. mutmut has no command for
    this step alone; these are the calls `mutmut run` starts with (mutmut is pinned)."""
    from mutmut.__main__ import create_mutants
    from mutmut.utils.file_utils import copy_also_copy_files, copy_src_dir

    MUTANTS_DIR.mkdir(exist_ok=True)
    copy_src_dir()
    copy_also_copy_files()
    create_mutants(max_children)


def mutant_diff(mutant: Mutant) -> str:
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    try:
        return str(get_diff_for_mutant(mutant.name, path=mutant.path))
    except Exception as error:  # noqa: BLE001 - a missing diff must not lose the report
        return f"(no diff: {error})"


def write_reports(
    mutants: list[Mutant],
    equivalents: Mapping[str, Equivalent],
    extra: Mapping[str, Any],
    diff_for: Callable[[Mutant], str] = mutant_diff,
    reports_dir: Path = REPORTS_DIR,
    title: str = "Surviving mutants",
) -> tuple[dict[str, Any], list[Mutant]]:
    summary = summarise(mutants, equivalents)
    summary.update(extra)
    found = survivors(mutants, equivalents)
    def_lines = {
        path: function_lines((ROOT / path).read_text(encoding="utf-8"))
        for path in {m.path for m in found}
    }
    reports_dir.mkdir(parents=True, exist_ok=True)
    (reports_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (reports_dir / "survivors.md").write_text(
        survivors_markdown(found, diff_for, def_lines, title), encoding="utf-8"
    )
    (reports_dir / "step-summary.md").write_text(step_summary(summary, found), encoding="utf-8")
    return summary, found


def verdict(summary: Mapping[str, Any], fail_under: float | None, per_module: bool) -> list[str]:
    """Why the run fails its threshold (percent), if it does."""
    if fail_under is None:
        return []
    limit = fail_under / 100
    if per_module:
        return [
            f"{path}: mutation score {percent(c['score'])} is under {fail_under:g} %"
            for path, c in summary["modules"].items()
            if c["score"] is not None and c["score"] < limit
        ]
    value = summary["score"]
    if value is not None and value < limit:
        return [f"mutation score {percent(value)} is under {fail_under:g} %"]
    return []


def run_mutmut(argv: list[str]) -> None:
    """`mutmut <argv>`, with the pure modules held to their unit tests: right after mutmut has
    recorded (or loaded) which tests call which function, the integration tests are dropped from
    the lists of UNIT_TESTED_MODULES' functions, in memory and in mutants/mutmut-stats.json.
    mutmut has no setting for a test selection per module; this wraps the one function of
    `mutmut run` that builds the map (mutmut is pinned; tests/unit/test_mutation_reports.py
    checks that the function is still there)."""
    import mutmut.__main__ as mutmut_main
    from mutmut.state import state
    from mutmut.stats import save_stats

    collect = mutmut_main.collect_or_load_stats

    def collect_then_prune(*args: Any, **kwargs: Any) -> None:
        collect(*args, **kwargs)
        links = state().tests_by_mangled_function_name
        stats = {"tests_by_mangled_function_name": {k: sorted(v) for k, v in links.items()}}
        dropped = prune_integration_tests(stats)
        for function, tests in stats["tests_by_mangled_function_name"].items():
            links[function] = set(tests)
        save_stats()
        print(f"mutants: {dropped} integration-test links of pure modules dropped", flush=True)

    mutmut_main.collect_or_load_stats = collect_then_prune
    mutmut_main.cli(argv, prog_name="mutmut")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="nox -s mutants --", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run mutmut on the scope, then write the reports")
    run.add_argument("patterns", nargs="*", help="mutmut name globs, e.g. app.adaptive.irt")
    run.add_argument("--changed", metavar="REF", help="only functions changed since REF")
    run.add_argument(
        "--fail-under",
        type=float,
        default=None,
        help=f"percent; default {DEFAULT_CHANGED_FAIL_UNDER:g} with --changed, else none "
        "(with no --changed it applies to every module)",
    )
    run.add_argument("--max-children", type=int, default=os.cpu_count() or 2)
    run.add_argument(
        "--rerun-survivors",
        action="store_true",
        help="keep mutants/ and re-test the last run's survivors (after adding tests)",
    )
    sub.add_parser("summarise", help="write the reports from mutants/ as it is")
    sub.add_parser("mutmut", help="mutmut itself, pure modules held to their unit tests")
    return parser.parse_args(argv)


def expand(patterns: Iterable[str]) -> list[str]:
    """`app.adaptive.irt` -> `app.adaptive.irt.*`: a bare module or function name is a prefix."""
    return [p if any(c in p for c in "*?[") else f"{p}*" for p in patterns]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    os.chdir(ROOT)
    if argv[:1] == ["mutmut"]:
        run_mutmut(argv[1:])  # click exits with mutmut's own status
        return 0
    args = parse_args(argv)
    config = mutmut_config()
    files = scope_files(config)
    equivalents = load_equivalents()
    if args.command == "summarise":
        mutants = read_results(files)
        summary, _ = write_reports(mutants, equivalents, {"mode": "summarise"})
        problems = equivalent_problems(equivalents, mutants)
        return report(summary, problems)

    started = time.monotonic()
    # A full or diff-scoped run starts clean; a run of named mutants (or of the survivors)
    # keeps mutmut's map of tests to functions, and mutmut re-tests mutants named to it.
    fresh = not (args.rerun_survivors or args.patterns)
    if fresh and MUTANTS_DIR.exists():
        shutil.rmtree(MUTANTS_DIR)
    generate_mutants(args.max_children)
    all_mutants = read_results(files)
    names = [m.name for m in all_mutants]
    mode = "full"
    selected: list[str] = []
    if args.rerun_survivors:
        mode = "rerun-survivors"
        selected = [m.name for m in survivors(all_mutants, equivalents)]
    elif args.changed:
        mode = f"changed since {args.changed}"
        patterns = changed_function_patterns(
            git_diff(args.changed, files), files, lambda p: (ROOT / p).read_text()
        )
        selected = matching(names, patterns)
        print(f"changed functions in scope: {len(patterns)}; their mutants: {len(selected)}")
    elif args.patterns:
        mode = "patterns " + " ".join(args.patterns)
        selected = matching(names, expand(args.patterns))
    problems = equivalent_problems(equivalents, all_mutants)
    partial = mode != "full"
    if partial and not selected:
        print(f"mutants: nothing to test ({mode})")
        summary, _ = write_reports([], equivalents, {"mode": mode, "seconds": 0})
        return report(summary, problems)

    services = discover_services()
    try:
        for note in services.notes:
            print(f"mutants: {note}")
        env = {**os.environ, **services.env}
        command = [sys.executable, "-m", "tools.mutation", "mutmut", "run"]
        command += ["--max-children", str(args.max_children), *selected]
        print(f"mutants: {mode}: mutmut run ({len(selected) or len(names)} mutants)", flush=True)
        result = subprocess.run(command, env=env, check=False)  # noqa: S603 - built here
    finally:
        services.stop()
    seconds = round(time.monotonic() - started, 1)
    if result.returncode != 0:
        print(f"mutants: mutmut exited with {result.returncode}", file=sys.stderr)
        return result.returncode
    mutants = read_results(files)
    if partial:
        chosen = set(selected)
        mutants = [m for m in mutants if m.name in chosen]
    summary, _ = write_reports(
        mutants, equivalents, {"mode": mode, "seconds": seconds, "workers": args.max_children}
    )
    problems += equivalent_problems(equivalents, read_results(files))
    fail_under = args.fail_under
    if fail_under is None and args.changed:
        fail_under = DEFAULT_CHANGED_FAIL_UNDER
    problems += verdict(summary, fail_under, per_module=not args.changed)
    return report(summary, sorted(set(problems)))


def report(summary: Mapping[str, Any], problems: list[str]) -> int:
    print(step_summary(summary, []))
    print(f"reports: {REPORTS_DIR / 'summary.json'}, {REPORTS_DIR / 'survivors.md'}")
    for problem in problems:
        print(f"FAIL: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
