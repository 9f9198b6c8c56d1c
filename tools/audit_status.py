"""Decide what a pip-audit run means for the `security` session.

pip-audit needs its vulnerability service (PyPI's JSON API by default). Where that service
cannot be reached, every dependency comes back "not found on PyPI", and without `--strict`
pip-audit still says "No known vulnerabilities found" and exits 0: a fake pass. The session
therefore runs with `--strict` and reads the output: an audit that could not be performed is
reported with a banner and fails, unless the caller explicitly allows an offline audit
(`ALLOW_OFFLINE_AUDIT=1`). Vulnerabilities, and any failure this module does not recognise,
always fail.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass

BANNER_PREFIX = "DEPENDENCY AUDIT NOT PERFORMED"
ALLOW_OFFLINE_ENV = "ALLOW_OFFLINE_AUDIT"

_VULNERABILITIES = re.compile(r"Found \d+ known vulnerabilit(?:y|ies)")
_CLEAN = re.compile(r"No known vulnerabilities found")
# What pip-audit prints when its service cannot be used: PyPI's JSON API answering 404 for
# every package (only the package index is reachable), DNS failures, refused or timed-out
# connections, proxy and TLS failures, and pip-audit's own advice for those cases.
_UNREACHABLE = re.compile(
    r"could not be audited"
    r"|Could not connect to"
    r"|your network may be blocking"
    r"|NameResolutionError|Failed to resolve|Name or service not known"
    r"|Temporary failure in name resolution|nodename nor servname"
    r"|Max retries exceeded|Connection refused|Network is unreachable|No route to host"
    r"|ConnectTimeout|ReadTimeout|timed out"
    r"|ProxyError|SSLError|CERTIFICATE_VERIFY_FAILED"
    r"|PyPI is not redirecting properly",
    re.IGNORECASE,
)
_MAX_REASON = 200


class Outcome(enum.Enum):
    """What a pip-audit run established."""

    CLEAN = "clean"
    VULNERABLE = "vulnerable"
    NOT_PERFORMED = "not-performed"
    ERROR = "error"


@dataclass(frozen=True)
class AuditDecision:
    """The verdict on one run: its outcome, whether the session fails, and what to print."""

    outcome: Outcome
    failed: bool
    reason: str

    @property
    def banner(self) -> str | None:
        """The loud line to print when the audit did not happen; None when it did."""
        if self.outcome is not Outcome.NOT_PERFORMED:
            return None
        return f"{BANNER_PREFIX}: {self.reason}"


def offline_audit_allowed(environ: Mapping[str, str]) -> bool:
    """True when the environment explicitly accepts an audit that could not be performed."""
    return environ.get(ALLOW_OFFLINE_ENV, "").strip().lower() in {"1", "true", "yes"}


def _first_line(output: str, pattern: re.Pattern[str]) -> str:
    for line in output.splitlines():
        if pattern.search(line):
            line = line.strip()
            # pip-audit logs "ERROR:pip_audit._cli:<message>"; the logger name is noise.
            line = re.sub(r"^[A-Z]+:pip_audit[\w.]*:", "", line).strip()
            if len(line) > _MAX_REASON:
                line = line[: _MAX_REASON - 3] + "..."
            return line
    return ""


def classify_audit(output: str, *, allow_offline: bool) -> AuditDecision:
    """Classify the combined stdout/stderr of `pip-audit --strict ...`.

    Reported vulnerabilities win over everything else; then an unreachable service; then a
    clean report. Anything else is an unexplained failure and fails.
    """
    if _VULNERABILITIES.search(output):
        summary = _first_line(output, _VULNERABILITIES)
        return AuditDecision(Outcome.VULNERABLE, failed=True, reason=summary)
    if _UNREACHABLE.search(output):
        detail = _first_line(output, _UNREACHABLE)
        reason = f"pip-audit could not get vulnerability data from its service ({detail})"
        return AuditDecision(Outcome.NOT_PERFORMED, failed=not allow_offline, reason=reason)
    if _CLEAN.search(output):
        return AuditDecision(Outcome.CLEAN, failed=False, reason="No known vulnerabilities found")
    return AuditDecision(
        Outcome.ERROR,
        failed=True,
        reason="pip-audit failed without reporting vulnerabilities or a connection problem",
    )
