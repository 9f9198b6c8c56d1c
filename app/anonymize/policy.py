"""The anonymisation policy: an explicit rule for every column of every table.

A table is either copied row by row through its column rules, or emptied (its rows are
secrets or session state that must not leave production). tests/unit/test_anonymize_policy.py
fails when a model or a migration adds a column (or a table) this policy does not name, so
a new personal field can never be copied silently.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Rule(enum.StrEnum):
    KEEP = "keep"  # keys, references, enums, numbers, timestamps, authored content
    EMAIL = "pseudonymise-email"
    NAME = "pseudonymise-name"
    IP = "pseudonymise-ip"
    OPAQUE = "pseudonymise-opaque"  # client-chosen identifiers: unique, unlinkable
    # X-Request-ID is client-chosen (anything of a tame shape): it can carry an e-mail or a
    # customer's own ticket number. One keyed pseudonym per id, the same in every table and
    # in anonymised logs, so rows and log lines of one request still correlate.
    REQUEST_ID = "pseudonymise-request-id"
    FREE_TEXT = "scrub-free-text"  # e-mails, phone numbers and users' names replaced
    JSON = "scrub-json"  # FREE_TEXT on every string, pseudonyms for personal keys
    UNUSABLE_PASSWORD = (
        "replace-with-unusable-password-hash"  # noqa: S105  # pragma: allowlist secret
    )


@dataclass(frozen=True)
class TablePolicy:
    copy_rows: bool
    columns: dict[str, Rule] = field(default_factory=dict)
    why: str = ""


K = Rule.KEEP

POLICY: dict[str, TablePolicy] = {
    "alembic_version": TablePolicy(True, {"version_num": K}),
    "users": TablePolicy(
        True,
        {
            "id": K,
            "email": Rule.EMAIL,
            # One Argon2 hash of a random, discarded password for everybody: valid to the
            # app, matches nothing; `seed demo` or a password reset gives working accounts.
            "password_hash": Rule.UNUSABLE_PASSWORD,
            "display_name": Rule.NAME,
            "role": K,
            "is_active": K,
            "created_at": K,
            "updated_at": K,
            "tokens_valid_after": K,
        },
    ),
    "audit_log": TablePolicy(
        True,
        {
            "id": K,
            "occurred_at": K,
            "actor_id": K,
            "action": K,
            "target_type": K,
            "target_id": K,  # a uuid or a key id, never free text
            "request_id": Rule.REQUEST_ID,
            "ip": Rule.IP,
            "details": Rule.JSON,  # filenames, token ids ("jti" → opaque)
        },
    ),
    # Sessions and keys are secrets of the source environment, not data: a copy could let
    # someone continue a production session or sign tokens. The app makes a new signing key
    # on first use; everybody logs in afresh.
    "refresh_families": TablePolicy(False, why="login sessions of the source environment"),
    "refresh_tokens": TablePolicy(False, why="refresh-token ids of live sessions"),
    "revoked_access_tokens": TablePolicy(False, why="short-lived deny-list, useless elsewhere"),
    "signing_keys": TablePolicy(False, why="JWT signing secrets (encrypted under SECRET_KEY)"),
    "courses": TablePolicy(
        True,
        {
            "id": K,
            "owner_id": K,
            "title": K,
            "description": Rule.FREE_TEXT,  # authors sign descriptions with their address
            "status": K,
            "created_at": K,
            "updated_at": K,
        },
    ),
    "skills": TablePolicy(
        True,
        {
            "id": K,
            "course_id": K,
            "name": K,
            "description": Rule.FREE_TEXT,
            "created_at": K,
            "updated_at": K,
        },
    ),
    "items": TablePolicy(
        True,
        {
            # Questions are authored teaching material, kept verbatim so that a staging copy
            # grades and calibrates like production (phone-shaped numbers in a maths item
            # would otherwise be rewritten).
            "id": K,
            "skill_id": K,
            "kind": K,
            "status": K,
            "origin": K,
            "prompt": K,
            "choices": K,
            "reference_answer": K,
            "rubric": K,
            "a": K,
            "b": K,
            "calibration_attempts": K,
            "version": K,
            "previous_version_id": K,
            "source_job_id": K,
            "created_at": K,
            "updated_at": K,
        },
    ),
    "materials": TablePolicy(
        True,
        {
            "id": K,
            "skill_id": K,
            "storage_key": K,
            "filename": Rule.FREE_TEXT,  # "jane.doe@uni.edu-notes.md"
            "content_type": K,
            "size_bytes": K,
            "sha256": K,
            "uploaded_by": K,
            "created_at": K,
        },
    ),
    "jobs": TablePolicy(
        True,
        {
            "id": K,
            "kind": K,
            "status": K,
            "skill_id": K,
            "created_by": K,
            "params": Rule.JSON,
            "result": Rule.JSON,
            "attempts": K,
            "max_attempts": K,
            "last_error": Rule.FREE_TEXT,
            "request_id": Rule.REQUEST_ID,
            "created_at": K,
            "updated_at": K,
            "started_at": K,
            "finished_at": K,
            "deadline_at": K,
        },
    ),
    "enrollments": TablePolicy(True, {"id": K, "user_id": K, "course_id": K, "created_at": K}),
    "skill_states": TablePolicy(
        True,
        {
            "id": K,
            "user_id": K,
            "skill_id": K,
            "posterior": K,
            "theta": K,
            "se": K,
            "attempts": K,
            "correct": K,
            "mastered": K,
            "updated_at": K,
        },
    ),
    "practice_sessions": TablePolicy(
        True,
        {
            "id": K,
            "user_id": K,
            "skill_id": K,
            "pending_item_id": K,
            "served": K,
            "created_at": K,
        },
    ),
    "attempts": TablePolicy(
        True,
        {
            "id": K,
            "session_id": K,
            "user_id": K,
            "item_id": K,
            "response": Rule.JSON,  # learners' free-text answers
            "correct": K,
            "score": K,
            "feedback": Rule.FREE_TEXT,  # AI feedback may quote the answer
            "graded_by": K,
            "theta_after": K,
            "se_after": K,
            "mastered_after": K,
            "attempts_after": K,
            "idempotency_key": Rule.OPAQUE,
            "created_at": K,
        },
    ),
}


def unruled_columns(schema: dict[str, list[str]]) -> list[str]:
    """`table.column` of every column in `schema` the policy does not name (empty = covered)."""
    missing: list[str] = []
    for table, columns in sorted(schema.items()):
        policy = POLICY.get(table)
        if policy is None:
            missing.append(f"{table} (the whole table)")
            continue
        if not policy.copy_rows:
            continue  # emptied: no value of any column is copied
        missing.extend(f"{table}.{column}" for column in columns if column not in policy.columns)
    return missing
