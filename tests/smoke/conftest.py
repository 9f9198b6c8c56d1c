"""Options, fixtures and the summary of the smoke suite.

Run it against any deployment (docs/staging.md):

    python -m pytest tests/smoke --base-url https://staging.example.org

tests/smoke/pytest.ini makes this directory the rootdir, so the repository's tests/conftest.py
(which needs Postgres and Redis) is never loaded. Credentials come from the environment, where
the process list does not show them: SMOKE_ADMIN_EMAIL and SMOKE_ADMIN_PASSWORD (an existing
admin account) and SMOKE_METRICS_TOKEN (`--metrics-token` exists for a quick manual run). Every
option also has an environment variable, so a CI job can set them once.

The suite creates one throwaway learner (registering costs one request of the per-client
register limit) and a draft-then-published course; both are undone at the end of the run (the
course deleted, the learner deactivated, every login logged out), also when a check fails.
"""

from __future__ import annotations

import os
import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from tests.smoke.client import Ledger, Target, bearer, expect, tls_verification

HERE = Path(__file__).resolve().parent
ORDER = pytest.StashKey[list[tuple[str, str]]]()
LEDGER = pytest.StashKey[Ledger]()

# option name -> (environment variable, help)
OPTIONS = {
    "--base-url": (
        "SMOKE_BASE_URL",
        "the deployment's public URL, e.g. https://staging.example.org",
    ),
    "--http-url": (
        "SMOKE_HTTP_URL",
        "its plain-HTTP URL for the redirect check (default: --base-url with http:// when it "
        "has no explicit port)",
    ),
    "--ca-file": ("SMOKE_CA_FILE", "a PEM CA bundle to verify the certificate with"),
    "--metrics-token": ("SMOKE_METRICS_TOKEN", "METRICS_TOKEN, to check the authorised /metrics"),
    "--cors-origin": (
        "SMOKE_CORS_ORIGIN",
        "a browser origin listed in the deployment's CORS_ORIGINS",
    ),
    "--email-domain": ("SMOKE_EMAIL_DOMAIN", "domain of the throwaway accounts (example.com)"),
    "--second-source-address": (
        "SMOKE_SECOND_SOURCE_ADDRESS",
        "another local address to send requests from, as a second client (a stack on loopback: "
        "127.0.0.2)",
    ),
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("smoke", "Mastery smoke suite (docs/staging.md)")
    for name, (variable, text) in OPTIONS.items():
        group.addoption(name, default=os.environ.get(variable), help=f"{text} [env {variable}]")
    group.addoption(
        "--job-timeout",
        type=float,
        default=float(os.environ.get("SMOKE_JOB_TIMEOUT", "60")),
        help="seconds a background job may take to succeed (60) [env SMOKE_JOB_TIMEOUT]",
    )
    group.addoption(
        "--insecure",
        action="store_true",
        default=os.environ.get("SMOKE_INSECURE") == "1",
        help="do not verify the TLS certificate (throwaway deployments only) [env SMOKE_INSECURE=1]",
    )
    group.addoption(
        "--require-all",
        action="store_true",
        default=os.environ.get("SMOKE_REQUIRE_ALL") == "1",
        help="fail, instead of skipping, a check whose option or credential is missing "
        "[env SMOKE_REQUIRE_ALL=1]",
    )


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Keep the smoke checks out of a repository-wide run (`pytest` from the root collects
    tests/): they need a deployment, and that run has no --base-url. Pointing pytest at
    tests/smoke makes it the rootdir, and then everything here is collected."""
    if config.rootpath != HERE and collection_path.is_relative_to(HERE):
        return True
    return None


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.rootpath != HERE:
        return  # loaded by a repository-wide run, which collects nothing from here
    # Stable sort: the `last` checks (the rate limit spent on purpose) move to the end.
    items.sort(key=lambda item: item.get_closest_marker("last") is not None)
    config.stash[ORDER] = [
        (item.nodeid, marker.args[0] if (marker := item.get_closest_marker("check")) else item.name)
        for item in items
    ]


def pytest_configure(config: pytest.Config) -> None:
    config.stash[ORDER] = []
    config.stash[LEDGER] = Ledger()


def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    if not config.getoption("--base-url") and not config.getoption("collectonly"):
        raise pytest.UsageError("give the deployment's URL: --base-url URL (or SMOKE_BASE_URL)")


# --- options ----------------------------------------------------------------------------------


def derived_http_url(base_url: str) -> str | None:
    """The plain-HTTP twin of an https URL on the default port; None when it has a port of its
    own (which HTTP port goes with it cannot be guessed)."""
    parts = urlsplit(base_url)
    if parts.scheme != "https" or parts.port is not None:
        return None
    return urlunsplit(("http", parts.netloc, parts.path, "", ""))


@dataclass(frozen=True)
class Options:
    base_url: str
    http_url: str | None
    metrics_token: str | None
    cors_origin: str | None
    email_domain: str
    job_timeout: float
    require_all: bool
    second_source_address: str | None = None


@pytest.fixture(scope="session")
def options(pytestconfig: pytest.Config) -> Options:
    base_url = str(pytestconfig.getoption("--base-url")).rstrip("/")
    return Options(
        base_url=base_url,
        http_url=(pytestconfig.getoption("--http-url") or derived_http_url(base_url)),
        metrics_token=pytestconfig.getoption("--metrics-token") or None,
        cors_origin=(pytestconfig.getoption("--cors-origin") or "").rstrip("/") or None,
        email_domain=pytestconfig.getoption("--email-domain") or "example.com",
        job_timeout=pytestconfig.getoption("--job-timeout"),
        require_all=pytestconfig.getoption("--require-all"),
        second_source_address=pytestconfig.getoption("--second-source-address") or None,
    )


def needs(options: Options, available: object, what: str) -> None:
    """Skip a check whose input is missing, with the reason in the summary; fail it instead
    under --require-all (staging and the deploy workflow run with it)."""
    if available:
        return
    if options.require_all:
        pytest.fail(f"{what} (required by --require-all)")
    pytest.skip(what)


@pytest.fixture(scope="session")
def target(pytestconfig: pytest.Config, options: Options) -> Target:
    verify = tls_verification(
        pytestconfig.getoption("--ca-file"), pytestconfig.getoption("--insecure")
    )
    return Target(base_url=options.base_url, http_url=options.http_url, verify=verify)


@pytest.fixture(scope="session")
def api(target: Target) -> Iterator[httpx.Client]:
    with target.client() as client:
        yield client


@pytest.fixture(scope="session")
def run_id() -> str:
    """Marks everything this run creates, so a leftover is recognisable (`smoke-<run id>`)."""
    return f"{time.strftime('%Y%m%d%H%M%S', time.gmtime())}-{secrets.token_hex(3)}"


@pytest.fixture(scope="session")
def ledger(pytestconfig: pytest.Config, api: httpx.Client) -> Iterator[Ledger]:
    """Undoes what the run created after the last check, and fails the run if it could not."""
    ledger = pytestconfig.stash[LEDGER]
    yield ledger
    ledger.run()
    if ledger.failed:
        pytest.fail("cleanup failed:\n  " + "\n  ".join(ledger.failed), pytrace=False)


# --- accounts ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    id: str
    email: str
    password: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.access_token)


def log_in(api: httpx.Client, email: str, password: str) -> dict[str, Any]:
    tokens: dict[str, Any] = expect(
        api.post("/auth/login", json={"email": email, "password": password}), 200
    )
    return tokens


def log_out(api: httpx.Client, access_token: str, refresh_token: str) -> None:
    expect(
        api.post(
            "/auth/logout", json={"refresh_token": refresh_token}, headers=bearer(access_token)
        ),
        204,
    )


@pytest.fixture(scope="session")
def admin(api: httpx.Client, ledger: Ledger) -> Account:
    """The existing admin account named by SMOKE_ADMIN_EMAIL / SMOKE_ADMIN_PASSWORD."""
    email = os.environ.get("SMOKE_ADMIN_EMAIL", "")
    password = os.environ.get("SMOKE_ADMIN_PASSWORD", "")
    if not (email and password):
        pytest.fail(
            "set SMOKE_ADMIN_EMAIL and SMOKE_ADMIN_PASSWORD to an admin account of the "
            "deployment: it authors the practice content and deactivates the throwaway learner",
            pytrace=False,
        )
    tokens = log_in(api, email, password)
    me = expect(api.get("/auth/me", headers=bearer(tokens["access_token"])), 200)
    assert me["role"] == "admin", f"SMOKE_ADMIN_EMAIL is a {me['role']}, not an admin"
    account = Account(me["id"], email, password, tokens["access_token"], tokens["refresh_token"])
    ledger.add(
        "log the admin out", lambda: log_out(api, account.access_token, account.refresh_token)
    )
    return account


@pytest.fixture(scope="session")
def learner(
    api: httpx.Client, ledger: Ledger, admin: Account, options: Options, run_id: str
) -> Account:
    """A learner registered for this run; deactivated by the admin at the end."""
    email = f"smoke-{run_id}@{options.email_domain}"
    password = f"smoke-{secrets.token_urlsafe(18)}"
    created = expect(
        api.post(
            "/auth/register",
            json={"email": email, "password": password, "display_name": f"Smoke {run_id}"},
        ),
        201,
    )
    assert created["role"] == "learner", created

    def deactivate() -> None:
        expect(
            api.patch(
                f"/admin/users/{created['id']}", json={"is_active": False}, headers=admin.headers
            ),
            200,
        )

    ledger.add(f"deactivate the throwaway learner {email}", deactivate)
    tokens = log_in(api, email, password)
    account = Account(
        created["id"], email, password, tokens["access_token"], tokens["refresh_token"]
    )
    ledger.add(
        "log the learner out", lambda: log_out(api, account.access_token, account.refresh_token)
    )
    return account


@pytest.fixture(scope="session")
def course(api: httpx.Client, ledger: Ledger, admin: Account, run_id: str) -> dict[str, Any]:
    """A published course with one skill and one published multiple-choice item, deleted (with
    its enrolments, sessions and attempts) at the end of the run."""
    created = expect(
        api.post(
            "/courses",
            json={
                "title": f"[smoke {run_id}] deleted automatically",
                "description": "Created by the smoke suite; removed when the run ends.",
            },
            headers=admin.headers,
        ),
        201,
    )
    ledger.add(
        f"delete the smoke course {created['id']}",
        lambda: expect(api.delete(f"/courses/{created['id']}", headers=admin.headers), 204),
    )
    skill = expect(
        api.post(
            f"/courses/{created['id']}/skills",
            json={"name": "Smoke arithmetic"},
            headers=admin.headers,
        ),
        201,
    )
    item = expect(
        api.post(
            f"/skills/{skill['id']}/items",
            json={
                "kind": "mcq",
                "prompt": "What is 2 + 2?",
                "choices": [{"text": "4", "correct": True}, {"text": "5"}, {"text": "22"}],
            },
            headers=admin.headers,
        ),
        201,
    )
    expect(api.post(f"/items/{item['id']}/publish", headers=admin.headers), 200)
    published = expect(
        api.patch(f"/courses/{created['id']}", json={"status": "published"}, headers=admin.headers),
        200,
    )
    assert published["status"] == "published", published
    return {"course": created, "skill": skill, "item": item, "correct_choice": 0}


def random_id() -> str:
    return str(uuid.uuid4())


# --- reporting --------------------------------------------------------------------------------


def check_states(reports: list[pytest.TestReport]) -> tuple[str, str]:
    """The outcome of one check from its setup, call and teardown reports, and a reason."""
    by_phase = {report.when: report for report in reports}
    for phase in ("setup", "call"):
        report = by_phase.get(phase)
        if report is not None and report.skipped:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else ""
            return "SKIPPED", str(reason).removeprefix("Skipped: ")
    setup, call, teardown = (by_phase.get(phase) for phase in ("setup", "call", "teardown"))
    if setup is not None and setup.failed:
        return "ERROR", "in setup"
    if call is None:
        return "NOT RUN", ""
    if call.failed:
        return "FAILED", ""
    if teardown is not None and teardown.failed:
        return "PASSED", "but the cleanup after it failed"
    return "PASSED", ""


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    order = config.stash[ORDER]
    if not order:
        return
    reports: dict[str, list[pytest.TestReport]] = {}
    for category in terminalreporter.stats.values():
        for report in category:
            if isinstance(report, pytest.TestReport):
                reports.setdefault(report.nodeid, []).append(report)
    if not reports:
        return
    write = terminalreporter.write_line
    terminalreporter.section(f"smoke checks against {config.getoption('--base-url')}", sep="=")
    passed = 0
    for nodeid, label in order:
        state, reason = check_states(reports.get(nodeid, []))
        passed += state == "PASSED"
        write(f"{state:<8} {label}" + (f"  ({reason})" if reason else ""))
    write(f"{passed} of {len(order)} smoke checks passed")
    ledger = config.stash[LEDGER]
    for done in ledger.done:
        write(f"cleanup  done: {done}")
    for failed in ledger.failed:
        write(f"cleanup  FAILED: {failed}")
