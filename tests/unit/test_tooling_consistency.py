"""The tooling agrees with itself: pre-commit pins match the lock, the mypy hook installs all
that app/ imports, `nox -s lint` runs every hook, and the dependency audit never passes
silently when it could not run."""

from __future__ import annotations

import ast
import importlib.metadata
import itertools
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tools.audit_status import BANNER_PREFIX, Outcome, classify_audit, offline_audit_allowed

ROOT = Path(__file__).resolve().parents[2]
LOCK_COMMAND = "./noxw -s lock"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)")


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_pins(filename: str) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (ROOT / filename).read_text().splitlines():
        match = PIN.match(line)
        if match:
            pins[normalise(match[1])] = match[3]
    return pins


def precommit_config() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    return config


def additional_dependencies() -> list[tuple[str, str]]:
    """(hook id, requirement) for every additional_dependency of every hook."""
    return [
        (hook["id"], requirement)
        for repo in precommit_config()["repos"]
        for hook in repo["hooks"]
        for requirement in hook.get("additional_dependencies", [])
    ]


# --- pre-commit and the lock -------------------------------------------------------------------


def test_every_precommit_dependency_has_the_version_locked_in_requirements_dev() -> None:
    locked = locked_pins("requirements-dev.txt")
    dependencies = additional_dependencies()
    assert dependencies, "no additional_dependencies found in .pre-commit-config.yaml"

    mismatches = []
    for hook_id, requirement in dependencies:
        match = PIN.match(requirement)
        assert match, f"{hook_id}: {requirement!r} is not pinned with =="
        name, version = normalise(match[1]), match[3]
        if locked.get(name) != version:
            mismatches.append(
                f"{hook_id}: {requirement} but requirements-dev.txt has {locked.get(name)}"
            )
    assert not mismatches, "\n".join(mismatches)


def test_every_precommit_hook_is_local_because_hook_repositories_are_unreachable() -> None:
    repos = [repo["repo"] for repo in precommit_config()["repos"]]

    assert repos == ["local"]


def test_each_tool_hook_installs_the_tool_it_runs() -> None:
    installed: dict[str, set[str]] = {}
    for hook_id, requirement in additional_dependencies():
        match = PIN.match(requirement)
        assert match, f"{hook_id}: {requirement!r} is not pinned with =="
        installed.setdefault(hook_id, set()).add(normalise(match[1]))

    for tool in ("ruff", "isort", "black", "mypy", "bandit"):
        assert tool in installed.get(tool, set()), f"the {tool} hook does not install {tool}"


# --- the mypy hook sees every third-party type that mypy sees in the typecheck session ---------


def hook(hook_id: str) -> dict[str, Any]:
    hooks = [hook for repo in precommit_config()["repos"] for hook in repo["hooks"]]
    matches = [hook for hook in hooks if hook["id"] == hook_id]
    assert len(matches) == 1, f"expected one {hook_id!r} hook in .pre-commit-config.yaml"
    found: dict[str, Any] = matches[0]
    return found


def mypy_config() -> dict[str, Any]:
    config: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    return config


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def mypy_sources() -> list[Path]:
    """Every .py file that mypy checks, from `files` in [tool.mypy]."""
    sources: list[Path] = []
    for entry in as_list(mypy_config()["files"]):
        path = ROOT / entry
        sources.extend([path] if path.is_file() else sorted(path.rglob("*.py")))
    return sources


def first_party_modules() -> set[str]:
    return {Path(entry).parts[0].removesuffix(".py") for entry in as_list(mypy_config()["files"])}


def imported_modules() -> dict[str, Path]:
    """Top-level module -> the first checked file importing it (stdlib and first party left out),
    plus the modules of mypy's plugins. Imports under `if TYPE_CHECKING:` count too."""
    ignored = set(sys.stdlib_module_names) | first_party_modules() | {"__future__"}
    modules: dict[str, Path] = {}
    for source in mypy_sources():
        for node in ast.walk(ast.parse(source.read_text(), filename=str(source))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.partition(".")[0]
                if top not in ignored:
                    modules.setdefault(top, source.relative_to(ROOT))
    for plugin in as_list(mypy_config().get("plugins", [])):
        modules.setdefault(plugin.partition(".")[0], Path("pyproject.toml"))
    return modules


def stub_distributions() -> dict[str, set[str]]:
    """Module -> installed stub-only distributions for it (a `<module>-stubs` package, PEP 561),
    such as celery-types for celery and kombu, boto3-stubs for boto3."""
    stubs: dict[str, set[str]] = {}
    for distribution in importlib.metadata.distributions():
        for top in {file.parts[0] for file in distribution.files or [] if file.parts}:
            if top.endswith("-stubs"):
                module = top.removesuffix("-stubs")
                stubs.setdefault(module, set()).add(normalise(distribution.metadata["Name"]))
    return stubs


def mypy_hook_distributions() -> set[str]:
    names = set()
    for requirement in hook("mypy").get("additional_dependencies", []):
        match = PIN.match(requirement)
        assert match, f"mypy: {requirement!r} is not pinned with =="
        names.add(normalise(match[1]))
    return names


def test_the_import_scan_finds_the_third_party_imports_of_app() -> None:
    modules = imported_modules()

    assert {"flask", "sqlalchemy", "psycopg", "pydantic", "celery", "boto3"} <= modules.keys()
    assert not modules.keys() & {"app", "os", "typing", "collections"}


def test_the_mypy_hook_installs_every_distribution_that_app_imports_and_its_stubs() -> None:
    """Without them mypy in the hook fails (missing imports) while the typecheck session, which
    installs the whole lock, passes: only a developer's commit or push would notice."""
    by_module = importlib.metadata.packages_distributions()
    stubs = stub_distributions()
    locked = locked_pins("requirements-dev.txt")
    installed = mypy_hook_distributions()

    unmapped, missing = [], []
    for module, source in sorted(imported_modules().items()):
        distributions = {normalise(name) for name in by_module.get(module, [])}
        if not distributions:
            unmapped.append(f"{module} (imported in {source})")
        for distribution in sorted((distributions | stubs.get(module, set())) - installed):
            pin = f"{distribution}=={locked[distribution]}" if distribution in locked else None
            fix = (
                f'add "{pin}" to its additional_dependencies'
                if pin
                else f"add {distribution} to pyproject.toml, run `{LOCK_COMMAND}`, then add its "
                "pin from requirements-dev.txt to the hook's additional_dependencies"
            )
            missing.append(f"{distribution} (for `import {module}` in {source}): {fix}")

    assert not unmapped, "no installed distribution provides: " + ", ".join(unmapped)
    assert not missing, "the mypy hook in .pre-commit-config.yaml does not install:\n" + (
        "\n".join(missing)
    )


# --- hook stages, and `nox -s lint` running all of them ------------------------------------------


def hook_stages() -> dict[str, list[str]]:
    config = precommit_config()
    default = config.get("default_stages")
    assert default, "set default_stages, or every hook without `stages` runs at every stage"
    return {
        hook["id"]: hook.get("stages", default)
        for repo in config["repos"]
        for hook in repo["hooks"]
    }


def test_mypy_and_bandit_run_on_push_and_every_other_hook_on_commit() -> None:
    stages = hook_stages()

    assert {hook_id for hook_id, hook_stage in stages.items() if hook_stage != ["pre-commit"]} == {
        "mypy",
        "bandit",
    }
    assert stages["mypy"] == stages["bandit"] == ["pre-push"]


def test_pre_commit_install_installs_a_git_hook_for_every_stage_a_hook_runs_in() -> None:
    used = {stage for hook_stage in hook_stages().values() for stage in hook_stage}

    assert used <= set(precommit_config()["default_install_hook_types"])


def lint_session() -> ast.FunctionDef:
    tree = ast.parse((ROOT / "noxfile.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "lint":
            return node
    raise AssertionError("noxfile.py has no `lint` session")


def constants(node: ast.AST) -> list[str]:
    return [
        child.value
        for child in ast.walk(node)
        if isinstance(child, ast.Constant) and isinstance(child.value, str)
    ]


def lint_hook_stages(session: ast.FunctionDef) -> set[str]:
    """The values given to `--hook-stage` in the session: a string, or the variable of a
    `for` loop over strings."""
    loops = {
        node.target.id: constants(node.iter)
        for node in ast.walk(session)
        if isinstance(node, ast.For) and isinstance(node.target, ast.Name)
    }
    stages: set[str] = set()
    for call in ast.walk(session):
        if not isinstance(call, ast.Call):
            continue
        for flag, value in itertools.pairwise(call.args):
            if isinstance(flag, ast.Constant) and flag.value == "--hook-stage":
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    stages.add(value.value)
                elif isinstance(value, ast.Name):
                    stages.update(loops.get(value.id, []))
    return stages


def test_the_lint_session_runs_every_hook_of_every_stage_and_skips_none() -> None:
    session = lint_session()
    strings = set(constants(session))
    stages = {stage for hook_stage in hook_stages().values() for stage in hook_stage}

    assert not [text for text in strings if "SKIP" in text], "the lint session sets SKIP"
    assert {"pre-commit", "run", "--all-files"} <= strings
    missing = stages - lint_hook_stages(session)
    assert not missing, f"the lint session does not run `--hook-stage` {sorted(missing)}"
    assert any(
        isinstance(node, ast.Attribute) and node.attr == "posargs" for node in ast.walk(session)
    ), "the lint session drops session.posargs"


def test_requirements_dev_carries_exactly_the_runtime_pins_of_requirements_txt() -> None:
    runtime = locked_pins("requirements.txt")
    dev = locked_pins("requirements-dev.txt")

    assert runtime, "requirements.txt has no pins"
    assert {name: dev.get(name) for name in runtime} == runtime


def test_noxw_tools_share_every_common_pin_with_requirements_dev() -> None:
    """pre-commit (and what it shares with nox) runs at one version from noxw and from nox."""
    nox_tools = locked_pins("requirements-nox.txt")
    dev = locked_pins("requirements-dev.txt")

    assert {"nox", "uv", "pre-commit"} <= nox_tools.keys()
    common = nox_tools.keys() & dev.keys()
    assert "pre-commit" in common
    assert {name: nox_tools[name] for name in common} == {name: dev[name] for name in common}


@pytest.mark.parametrize(
    "filename", ["requirements.txt", "requirements-dev.txt", "requirements-nox.txt"]
)
def test_lock_files_pin_every_package_with_hashes_and_name_one_regeneration_command(
    filename: str,
) -> None:
    text = (ROOT / filename).read_text()
    requirements = [line for line in text.splitlines() if line[:1].isalpha()]

    assert "#    ./noxw -s lock\n" in text
    assert requirements
    assert [line for line in requirements if not PIN.match(line)] == []
    for block in re.split(r"\n(?=[A-Za-z])", text)[1:]:
        assert "--hash=sha256:" in block, f"{filename}: no hash for {block.splitlines()[0]}"


# --- the dependency audit ----------------------------------------------------------------------

# What pip-audit 2.10 prints (stdout and stderr merged) in the situations that matter.
OFFLINE_STRICT = (
    "ERROR:pip_audit._cli:alembic: Dependency not found on PyPI and could not be audited: "
    "alembic (1.20.1)\n"
)
OFFLINE_NOT_STRICT = (
    "No known vulnerabilities found\n"
    "Name    Skip Reason\n"
    "------- -----------------------------------------------------------------------\n"
    "alembic Dependency not found on PyPI and could not be audited: alembic (1.20.1)\n"
    "flask   Dependency not found on PyPI and could not be audited: flask (3.1.3)\n"
)
DNS_FAILURE = (
    "Traceback (most recent call last):\n"
    '  File "pip_audit/_service/osv.py", line 70, in query\n'
    "requests.exceptions.ConnectionError: HTTPSConnectionPool(host='api.osv.dev', port=443): "
    'Max retries exceeded with url: /v1/query (Caused by NameResolutionError("Failed to '
    "resolve 'api.osv.dev' ([Errno -2] Name or service not known)\"))\n"
)
UNREACHABLE_FEED = (
    "ERROR:pip_audit._cli:Could not connect to PyPI's vulnerability feed\n"
    "ERROR:pip_audit._cli:Tip: your network may be blocking this service. "
    "Try another service with `-s SERVICE`\n"
)
VULNERABLE = (
    "Found 2 known vulnerabilities in 1 package\n"
    "Name  Version ID             Fix Versions\n"
    "----- ------- -------------- ------------\n"
    "flask 0.5     PYSEC-2019-179 1.0\n"
    "flask 0.5     PYSEC-2018-66  0.12.3\n"
)
CLEAN = "No known vulnerabilities found\n"


@pytest.mark.parametrize(
    "output",
    [OFFLINE_STRICT, OFFLINE_NOT_STRICT, DNS_FAILURE, UNREACHABLE_FEED],
    ids=["not-found-on-pypi", "fake-pass-without-strict", "dns-failure", "connection-refused"],
)
def test_an_unreachable_vulnerability_service_means_the_audit_was_not_performed_and_fails(
    output: str,
) -> None:
    decision = classify_audit(output, allow_offline=False)

    assert decision.outcome is Outcome.NOT_PERFORMED
    assert decision.failed
    assert decision.banner is not None
    assert decision.banner.startswith(f"{BANNER_PREFIX}: ")
    assert "\n" not in decision.banner


def test_the_banner_names_the_first_problem_without_the_logger_prefix() -> None:
    decision = classify_audit(OFFLINE_STRICT, allow_offline=False)

    assert decision.banner is not None
    assert "Dependency not found on PyPI and could not be audited: alembic (1.20.1)" in (
        decision.banner
    )
    assert "pip_audit._cli" not in decision.banner


def test_allowing_an_offline_audit_passes_but_still_prints_the_banner() -> None:
    decision = classify_audit(OFFLINE_STRICT, allow_offline=True)

    assert decision.outcome is Outcome.NOT_PERFORMED
    assert not decision.failed
    assert decision.banner is not None
    assert decision.banner.startswith(f"{BANNER_PREFIX}: ")


@pytest.mark.parametrize("allow_offline", [False, True])
def test_reported_vulnerabilities_always_fail(allow_offline: bool) -> None:
    decision = classify_audit(VULNERABLE, allow_offline=allow_offline)

    assert decision.outcome is Outcome.VULNERABLE
    assert decision.failed
    assert decision.banner is None
    assert decision.reason == "Found 2 known vulnerabilities in 1 package"


def test_vulnerabilities_win_over_connection_noise_in_the_same_output() -> None:
    decision = classify_audit(UNREACHABLE_FEED + VULNERABLE, allow_offline=True)

    assert decision.outcome is Outcome.VULNERABLE
    assert decision.failed


def test_a_complete_audit_without_findings_passes_without_a_banner() -> None:
    decision = classify_audit(CLEAN, allow_offline=False)

    assert decision.outcome is Outcome.CLEAN
    assert not decision.failed
    assert decision.banner is None


@pytest.mark.parametrize("allow_offline", [False, True])
def test_an_unrecognised_pip_audit_failure_fails_even_when_offline_is_allowed(
    allow_offline: bool,
) -> None:
    output = "ERROR:pip_audit._cli:invalid requirements input: requirements.txt\n"

    decision = classify_audit(output, allow_offline=allow_offline)

    assert decision.outcome is Outcome.ERROR
    assert decision.failed
    assert decision.banner is None


@pytest.mark.parametrize(
    ("environ", "allowed"),
    [
        ({"ALLOW_OFFLINE_AUDIT": "1"}, True),
        ({"ALLOW_OFFLINE_AUDIT": "true"}, True),
        ({"ALLOW_OFFLINE_AUDIT": "0"}, False),
        ({"ALLOW_OFFLINE_AUDIT": ""}, False),
        ({}, False),
    ],
    ids=["one", "true", "zero", "empty", "unset"],
)
def test_only_an_explicit_allow_offline_audit_accepts_a_missing_audit(
    environ: dict[str, str], allowed: bool
) -> None:
    assert offline_audit_allowed(environ) is allowed
