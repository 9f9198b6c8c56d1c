"""The smoke suite's HTTP side: a client for one deployment and the throwaway-resource ledger.

Nothing here imports the platform or touches a database: every check goes through the public
HTTP API of whatever deployment `--base-url` names, exactly as a client would.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

TIMEOUT_SECONDS = 15.0
PROBLEM_JSON = "application/problem+json"


@dataclass(frozen=True)
class Target:
    """Where the deployment is and how to reach it."""

    base_url: str
    http_url: str | None
    verify: ssl.SSLContext | bool

    def client(self, base_url: str | None = None) -> httpx.Client:
        # Redirects are never followed: the HTTPS redirect is one of the checks, and an API
        # answering a redirect anywhere else is itself something to see.
        return httpx.Client(
            base_url=base_url or self.base_url,
            verify=self.verify,
            timeout=TIMEOUT_SECONDS,
            follow_redirects=False,
            headers={"User-Agent": "mastery-smoke/1"},
        )


def tls_verification(ca_file: str | None, insecure: bool) -> ssl.SSLContext | bool:
    """Certificate verification: the system store, a CA bundle (e.g. a self-signed staging
    certificate) or none at all (`--insecure`: only for a throwaway deployment)."""
    if insecure:
        return False
    if ca_file:
        return ssl.create_default_context(cafile=ca_file)
    return True


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def describe(response: httpx.Response) -> str:
    """One line for an assertion message: the request, the status and the start of the body."""
    body = response.text[:300].replace("\n", " ")
    return f"{response.request.method} {response.request.url} -> {response.status_code}: {body}"


def expect(response: httpx.Response, status: int) -> Any:
    """The JSON body of `response`, which must have `status`; else an assertion naming both."""
    assert response.status_code == status, f"expected {status}, got {describe(response)}"
    if status == 204 or not response.content:
        return None
    return response.json()


def expect_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """An RFC 9457 problem document with `status` and the fields the platform promises."""
    assert response.status_code == status, f"expected {status}, got {describe(response)}"
    content_type = response.headers.get("Content-Type", "")
    assert content_type.startswith(PROBLEM_JSON), f"not problem+json: {describe(response)}"
    problem: dict[str, Any] = response.json()
    missing = {"type", "title", "status", "detail", "request_id"} - problem.keys()
    assert not missing, f"problem document lacks {sorted(missing)}: {describe(response)}"
    assert problem["status"] == status, describe(response)
    return problem


@dataclass
class Ledger:
    """What the suite created on the deployment, undone in reverse order at the end of the run
    whether the checks passed or not. A step that fails is recorded and the others still run."""

    steps: list[tuple[str, Callable[[], None]]] = field(default_factory=list)
    done: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def add(self, description: str, undo: Callable[[], None]) -> None:
        self.steps.append((description, undo))

    def run(self) -> None:
        while self.steps:
            description, undo = self.steps.pop()
            # Every failure is reported and none stops the rest, so any exception is caught.
            try:
                undo()
            except Exception as error:  # noqa: BLE001 - see the comment above
                self.failed.append(f"{description}: {error}")
            else:
                self.done.append(description)
