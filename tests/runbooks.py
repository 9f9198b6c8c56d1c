"""Executable runbooks: finds the shell blocks in docs/runbooks/*.md and runs them for tests.

The convention (docs/runbooks/README.md, "How the runbooks are tested"): every fenced block in
a runbook whose language is `bash`, `sh`, `shell`, `console` or missing is preceded by a mark,

    <!-- runbook-test: <id> -->            run by the test decorated @covers("<file>#<id>")
    <!-- runbook-manual: <reason> -->      cannot run here, and the reason says why

and tests/integration/test_runbooks.py fails on a block with no mark, a tested block that no
test covers, and a test that covers a block that no longer exists. A tested block runs as the
runbook prints it, in bash with `set -euo pipefail`; only the environment (the variables the
runbook tells the operator to set) comes from the test.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parents[1]
RUNBOOKS = ROOT / "docs" / "runbooks"
# A fence without a language counts as shell too, so leaving it out cannot hide a command; output
# and other text go in `text` (or another language) blocks, which are not run.
SHELL_LANGUAGES = {"bash", "sh", "shell", "console", ""}

_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>```+|~~~+)\s*(?P<lang>[\w+-]*)\s*$")
_MARK = re.compile(r"^\s*<!--\s*runbook-(?P<kind>test|manual)\s*:\s*(?P<value>.*?)\s*-->\s*$")

F = TypeVar("F", bound=Callable[..., object])

#: Block keys ("file.md#id") that a test has claimed with @covers.
COVERED: dict[str, str] = {}


@dataclass(frozen=True)
class Block:
    """One fenced shell block of a runbook and the mark before it."""

    path: Path
    line: int  # of the opening fence, 1-based
    language: str
    text: str
    mark: str | None  # "test" or "manual"; None when the block is not marked
    value: str  # the id of a tested block, the reason of a manual one

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def key(self) -> str:
        return f"{self.path.name}#{self.value}"

    @property
    def script(self) -> str:
        """The commands only: `console` blocks keep the `$ ` lines (and their continuations)."""
        if self.language != "console":
            return self.text
        commands: list[str] = []
        continuing = False
        for line in self.text.splitlines():
            if line.startswith("$ ") or continuing:
                commands.append(line[2:] if line.startswith("$ ") else line)
                continuing = line.rstrip().endswith("\\")
        return "\n".join(commands) + "\n"


def parse(path: Path) -> list[Block]:
    """Every fenced shell block of one Markdown file, with its mark (if any)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        end = index + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            end += 1
        language = opening["lang"].lower()
        if language in SHELL_LANGUAGES:
            body = "\n".join(line[indent:] for line in lines[index + 1 : end]) + "\n"
            mark = _mark_before(lines, index)
            blocks.append(
                Block(
                    path=path,
                    line=index + 1,
                    language=language,
                    text=body,
                    mark=mark[0] if mark else None,
                    value=mark[1] if mark else "",
                )
            )
        index = end + 1
    return blocks


def _mark_before(lines: list[str], fence_index: int) -> tuple[str, str] | None:
    """The mark on the nearest non-blank line above a fence, if that line is a mark."""
    above = fence_index - 1
    while above >= 0 and not lines[above].strip():
        above -= 1
    if above < 0:
        return None
    found = _MARK.match(lines[above])
    return (found["kind"], found["value"]) if found else None


def runbook_files() -> list[Path]:
    return sorted(RUNBOOKS.glob("*.md"))


def all_blocks() -> list[Block]:
    return [block for path in runbook_files() for block in parse(path)]


def block(key: str) -> Block:
    """The tested block `file.md#id`; a KeyError names what exists when it is gone."""
    tested = {one.key: one for one in all_blocks() if one.mark == "test"}
    if key not in tested:
        raise KeyError(f"no block marked `runbook-test` with key {key!r}; known: {sorted(tested)}")
    return tested[key]


def covers(*keys: str) -> Callable[[F], F]:
    """Declare that the decorated test runs the runbook blocks `keys` ("file.md#id")."""

    def register(test: F) -> F:
        for key in keys:
            COVERED[key] = getattr(test, "__name__", repr(test))
        return test

    return register


def run(
    key: str,
    env: dict[str, str],
    cwd: Path,
    *,
    prelude: tuple[str, ...] = (),
    check: bool = True,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run a tested block in bash (errexit, nounset, pipefail) and return what it printed.

    `prelude` names blocks the runbook tells the operator to run first in the same shell (e.g.
    a shell function the later blocks call); they run before `key`, in the same bash. With
    `check` a failing block raises AssertionError carrying the block and its output.
    """
    one = block(key)
    script = "".join(block(first).script for first in prelude) + one.script
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"runbook block {key} ({one.where}) exited {result.returncode}\n"
            f"--- script ---\n{script}--- stdout ---\n{result.stdout}"
            f"--- stderr ---\n{result.stderr}"
        )
    return result
