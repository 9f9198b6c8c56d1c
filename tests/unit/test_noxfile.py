"""The noxfile as its users meet it: `./noxw -l` shows whole sentences, `-t quick` needs no
service, and a partial test run never replaces the coverage data the gate combines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tools.pytest_runs import is_whole_tier

ROOT = Path(__file__).resolve().parents[2]


def sessions() -> dict[str, tuple[ast.FunctionDef, ast.Call]]:
    """Every nox session function in noxfile.py with its decorator call, read without nox."""
    tree = ast.parse((ROOT / "noxfile.py").read_text(encoding="utf-8"))
    found: dict[str, tuple[ast.FunctionDef, ast.Call]] = {}
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            if (
                isinstance(decorator, ast.Call)
                and isinstance(decorator.func, ast.Attribute)
                and decorator.func.attr == "session"
            ):
                name = next(
                    (
                        kw.value.value
                        for kw in decorator.keywords
                        if kw.arg == "name" and isinstance(kw.value, ast.Constant)
                    ),
                    node.name,
                )
                found[str(name)] = (node, decorator)
    return found


def test_the_noxfile_defines_the_sessions_the_design_names() -> None:
    names = set(sessions())
    assert {"lint", "unit", "integration", "contracts", "coverage", "dev", "load"} <= names


@pytest.mark.parametrize("name", sorted(sessions()))
def test_every_session_summary_is_one_whole_sentence(name: str) -> None:
    """`./noxw -l` prints only the docstring's first line: it must say the whole thing."""
    function, _ = sessions()[name]
    docstring = ast.get_docstring(function, clean=False)
    assert docstring, f"session {name} has no docstring"
    lines = docstring.split("\n")
    first = lines[0]
    assert first.rstrip().endswith(
        (".", ").")
    ), f"session {name}: the first docstring line does not end a sentence: {first!r}"
    assert len(lines) == 1 or not lines[1].strip(), (
        f"session {name}: the summary sentence runs on to a second line, which `nox -l` "
        f"cuts: {lines[1].strip()!r}"
    )
    assert len(first) <= 100, f"session {name}: summary longer than 100 characters"


def tag_names(call: ast.Call) -> set[str]:
    """The session's tags: a literal list, or the name of a module-level list (QUICK)."""
    module = ast.parse((ROOT / "noxfile.py").read_text(encoding="utf-8"))
    constants = {
        target.id: node.value
        for node in module.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    for keyword in call.keywords:
        if keyword.arg == "tags":
            value = keyword.value
            if isinstance(value, ast.Name):
                value = constants[value.id]
            return set(ast.literal_eval(value))
    return set()


def test_the_quick_tag_holds_the_service_free_checks() -> None:
    """`./noxw -t quick` is the loop before a push: what needs no Postgres, Redis or daemon."""
    quick = {name for name, (_, call) in sessions().items() if "quick" in tag_names(call)}
    assert quick == {"lint", "typecheck", "unit", "contracts"}


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["-n", "0"],
        ["-n0"],
        ["-nauto"],
        ["-p", "no:randomly"],
        ["--randomly-seed=12"],
        ["--randomly-seed", "12"],
        ["-v", "--tb=short", "-rA", "--durations=10"],
        ["--snapshot-update", "-p", "no:randomly"],
    ],
)
def test_runs_that_only_change_output_or_order_are_whole(args: list[str]) -> None:
    assert is_whole_tier(args)


@pytest.mark.parametrize(
    "args",
    [
        ["tests/integration/test_items.py"],
        ["-k", "refresh"],
        ["-kfoo"],
        ["-m", "commits"],
        ["--lf"],
        ["--last-failed"],
        ["-x"],
        ["--exitfirst"],
        ["--maxfail=2"],
        ["--sw"],
        ["--deselect", "tests/unit/test_config.py::test_x"],
        ["-n", "0", "-x"],
        ["--some-option-this-module-does-not-know"],
        ["-n"],
    ],
)
def test_runs_that_select_or_stop_early_are_partial(args: list[str]) -> None:
    assert not is_whole_tier(args)
