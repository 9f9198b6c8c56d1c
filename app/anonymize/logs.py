"""Anonymise JSON log files (one JSON object per line, as app/observability/logging writes).

Every string goes through the same pseudonyms as the database copy (so a user's pseudonym in
the logs matches the one in an anonymised database made with the same key, and so does a
request id under `request_id`, which the client may have chosen), IPv4 addresses
in text are pseudonymised too, and token-like strings are removed outright: JWTs, `Bearer …`
credentials, API keys (`sk-…` and similar), values of keys that name a secret, and long
mixed-case base64-ish strings. Lines that are not JSON are scrubbed as plain text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

from app.anonymize.pseudonyms import Pseudonymizer, field_rule

REDACTED = "[redacted]"
SECRET_KEYS = re.compile(
    r"(pass(word)?|secret|token|authorization|api[_-]?key|cookie|credential|signature|dsn)$",
    re.IGNORECASE,
)
TOKEN_PATTERNS = (
    # JWT: header.payload.signature, the first two base64url JSON ("eyJ").
    re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"),
    re.compile(r"\b(?:Bearer|Basic|Token)\s+[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE),
    # Provider-style keys: sk-…, pk_live_…, ghp_…, xoxb-…, AKIA… (AWS access key ids).
    re.compile(r"\b(?:sk|pk|rk)[-_](?:live_|test_|proj-)?[A-Za-z0-9_-]{16,}"),
    re.compile(r"\b(?:ghp|gho|ghs|github_pat|xox[abpr])[-_][A-Za-z0-9_-]{16,}"),
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    # key=value secrets inside messages and URLs.
    re.compile(r"(?i)\b(?:password|passwd|secret|token|api[_-]?key|access[_-]?key)=[^\s&\"']+"),
)
# A long run of base64url characters mixing upper case, lower case and digits looks like a
# random secret; hex ids (request ids, sha256) and uuids are left alone.
RANDOM_LOOKING = re.compile(r"[A-Za-z0-9_\-+/]{32,}={0,2}")


def _looks_random(candidate: str) -> bool:
    return (
        any(c.isupper() for c in candidate)
        and any(c.islower() for c in candidate)
        and any(c.isdigit() for c in candidate)
    )


def remove_tokens(text: str) -> str:
    for pattern in TOKEN_PATTERNS:
        text = pattern.sub(REDACTED, text)
    return RANDOM_LOOKING.sub(lambda m: REDACTED if _looks_random(m.group(0)) else m.group(0), text)


class LogAnonymizer:
    def __init__(self, pseudonyms: Pseudonymizer) -> None:
        self.p = pseudonyms

    def text(self, value: str) -> str:
        return self.p.scrub_text(remove_tokens(value))

    def value(self, value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {k: self.value(v, str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v, key) for v in value]
        if not isinstance(value, str):
            return value
        if key and SECRET_KEYS.search(key.replace("-", "_")):
            return REDACTED
        rule = field_rule(key)
        if rule == "email":
            return self.p.email(value)
        if rule == "ip":
            # X-Forwarded-For style lists: every address.
            return ", ".join(self.p.ip(part) for part in value.split(","))
        if rule == "name":
            return self.p.name(value)
        if rule == "opaque":
            return self.p.opaque(value)
        if rule == "request_id":
            return self.p.request_id(value)
        return self.text(value)

    def line(self, line: str) -> str:
        ending = "\n" if line.endswith("\n") else ""
        body = line.rstrip("\r\n")
        if not body.strip():
            return line
        try:
            document = json.loads(body)
        except ValueError:
            return self.text(body) + ending
        return json.dumps(self.value(document), ensure_ascii=False) + ending

    def lines(self, lines: Iterable[str]) -> Iterator[str]:
        for line in lines:
            yield self.line(line)
