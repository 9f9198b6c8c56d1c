"""The tooling agrees with itself: pre-commit pins match the lock, and the dependency audit
never passes silently when it could not run."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tools.audit_status import BANNER_PREFIX, Outcome, classify_audit, offline_audit_allowed

ROOT = Path(__file__).resolve().parents[2]
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
