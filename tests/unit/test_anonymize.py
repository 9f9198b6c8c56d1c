"""Pseudonyms, free-text scrubbing, the log anonymiser and the completeness of the policy."""

from __future__ import annotations

import ipaddress
import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.anonymize.logs import REDACTED, LogAnonymizer, remove_tokens
from app.anonymize.policy import POLICY, Rule, unruled_columns
from app.anonymize.pseudonyms import AnonymizeKeyError, NameIndex, Pseudonymizer
from app.audit.models import AuditRecord
from app.jobs.models import Job
from app.models import Base

KEY = "unit-test-anonymisation-key-0123"


@pytest.fixture(scope="module")
def p() -> Pseudonymizer:
    return Pseudonymizer(KEY)


# --- the policy ----------------------------------------------------------------------------


def test_every_column_of_every_model_has_an_explicit_rule() -> None:
    schema = {
        table.name: [c.name for c in table.columns] for table in Base.metadata.tables.values()
    }

    assert unruled_columns(schema) == []


def test_a_new_column_or_table_without_a_rule_is_reported_by_name() -> None:
    schema = {"users": ["id", "email", "phone"], "invoices": ["id"]}

    assert unruled_columns(schema) == ["invoices (the whole table)", "users.phone"]


def test_the_policy_names_no_column_the_models_do_not_have() -> None:
    """A renamed column must not leave a stale rule behind that covers nothing."""
    models = {
        table.name: {c.name for c in table.columns} for table in Base.metadata.tables.values()
    }
    for table, policy in POLICY.items():
        if table == "alembic_version":
            continue  # Alembic's table, not a model
        assert set(policy.columns) <= models[table], table


def test_personal_and_secret_columns_are_never_kept() -> None:
    users = POLICY["users"].columns
    assert users["email"] is Rule.EMAIL
    assert users["display_name"] is Rule.NAME
    assert users["password_hash"] is Rule.UNUSABLE_PASSWORD
    assert POLICY["audit_log"].columns["ip"] is Rule.IP
    assert POLICY["attempts"].columns["response"] is Rule.JSON
    for secret in ("signing_keys", "refresh_tokens", "refresh_families", "revoked_access_tokens"):
        assert not POLICY[secret].copy_rows


# --- pseudonyms ----------------------------------------------------------------------------


def test_a_short_key_is_refused() -> None:
    with pytest.raises(AnonymizeKeyError, match="at least 16"):
        Pseudonymizer("short")


def test_the_same_input_and_key_give_the_same_pseudonym_and_another_key_another(
    p: Pseudonymizer,
) -> None:
    other = Pseudonymizer(KEY + "-rotated")
    email, name, ip = "Ada.Lovelace@example.edu", "Ada Lovelace", "203.0.113.9"

    assert Pseudonymizer(KEY).email(email) == p.email(email)
    assert Pseudonymizer(KEY).name(name) == p.name(name)
    assert Pseudonymizer(KEY).ip(ip) == p.ip(ip)
    assert other.email(email) != p.email(email)
    assert other.ip(ip) != p.ip(ip)


def test_email_case_does_not_change_the_pseudonym(p: Pseudonymizer) -> None:
    assert p.email("Ada@Example.EDU") == p.email("ada@example.edu")


@settings(deadline=None)  # Faker is reseeded per e-mail: slow under coverage on a busy machine
@given(st.lists(st.emails(), min_size=2, max_size=40, unique_by=str.lower))
def test_distinct_emails_get_distinct_pseudonyms_on_reserved_domains(emails: list[str]) -> None:
    p = Pseudonymizer(KEY)
    pseudonyms = [p.email(e) for e in emails]

    assert len(set(pseudonyms)) == len(emails)
    for pseudonym in pseudonyms:
        local, _, domain = pseudonym.partition("@")
        assert domain in ("example.com", "example.net", "example.org")
        assert local


def test_names_look_like_names(p: Pseudonymizer) -> None:
    name = p.name("Grace Hopper")

    assert name != "Grace Hopper"
    assert len(name.split()) >= 2


def test_ip_pseudonyms_keep_the_family_and_the_network(p: Pseudonymizer) -> None:
    a, b, c = p.ip("203.0.113.9"), p.ip("203.0.113.200"), p.ip("198.51.100.9")
    v6 = p.ip("2001:db8:feed::42")

    assert ipaddress.ip_address(a) in ipaddress.ip_network("10.0.0.0/8")
    assert a.rsplit(".", 1)[0] == b.rsplit(".", 1)[0]  # same /24 → same network part
    assert a.rsplit(".", 1)[0] != c.rsplit(".", 1)[0]
    assert ipaddress.ip_address(v6) in ipaddress.ip_network("fd00::/8")
    assert p.ip("not an address").startswith("anon-")


# --- free text -----------------------------------------------------------------------------


def test_free_text_loses_emails_and_phone_numbers_but_keeps_the_rest(p: Pseudonymizer) -> None:
    text = (
        "Answer: 3/4. Mail me at ada@uni.example or call +44 20 7946 0958 / (415) 555-0199 "
        "or 555-123-4567; due 2026-11-26, pi is 3.14159, I scored 1000000."
    )

    scrubbed = p.scrub_text(text)

    for personal in ("ada@uni.example", "7946 0958", "555-0199", "555-123-4567"):
        assert personal not in scrubbed
    for kept in ("Answer: 3/4.", "2026-11-26", "3.14159", "1000000"):
        assert kept in scrubbed
    assert p.email("ada@uni.example") in scrubbed
    assert p.scrub_text(text) == scrubbed


def test_known_names_are_replaced_in_free_text_whatever_their_case(p: Pseudonymizer) -> None:
    names = NameIndex(["Zebulon Quixote", "Al"])

    scrubbed = p.scrub_text("I am ZEBULON quixote, not Al.", names)

    assert "zebulon" not in scrubbed.lower()
    assert p.name("Zebulon Quixote") in scrubbed
    assert "Al." in scrubbed  # too short to replace safely: ordinary words would go too


def test_json_values_are_walked_with_personal_keys_pseudonymised(p: Pseudonymizer) -> None:
    value = {
        "email": "ada@uni.example",
        "ip": "203.0.113.9",
        "jti": "3f2a",
        "nested": [{"note": "ring +1 (415) 555-0199"}],
        "count": 3,
        "ok": True,
    }

    scrubbed = p.scrub_json(value)

    assert scrubbed["email"] == p.email("ada@uni.example")
    assert scrubbed["ip"] == p.ip("203.0.113.9")
    assert scrubbed["jti"] == p.opaque("3f2a")
    assert "555-0199" not in scrubbed["nested"][0]["note"]
    assert (scrubbed["count"], scrubbed["ok"]) == (3, True)


def test_request_ids_become_keyed_pseudonyms_that_are_consistent_and_distinct(
    p: Pseudonymizer,
) -> None:
    chosen = "ticket-ada@uni.example-4711"

    pseudonym = p.request_id(chosen)

    assert re.fullmatch(r"req-[0-9a-f]{32}", pseudonym)
    assert p.request_id(chosen) == pseudonym  # the same in every table, run and log file
    assert p.request_id(chosen + "x") != pseudonym
    assert Pseudonymizer("another-key-0123456789").request_id(chosen) != pseudonym
    assert p.scrub_json({"request_id": chosen})["request_id"] == pseudonym
    line = json.dumps({"event": "request", "request_id": chosen, "x-request-id": chosen})
    logged = json.loads(LogAnonymizer(p).line(line))
    assert logged["request_id"] == logged["x-request-id"] == pseudonym


def test_request_id_columns_are_pseudonymised_and_their_pseudonyms_fit_the_columns() -> None:
    assert POLICY["audit_log"].columns["request_id"] is Rule.REQUEST_ID
    assert POLICY["jobs"].columns["request_id"] is Rule.REQUEST_ID
    width = len(Pseudonymizer("k" * 16).request_id("x"))
    for model in (AuditRecord, Job):
        length = getattr(model.__table__.c.request_id.type, "length", None)
        assert length is not None, model.__tablename__
        assert length >= width, model.__tablename__


# --- logs ----------------------------------------------------------------------------------


JWT = "eyJhbGciOiJIUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiI0MiIsImV4cCI6OTl9.Zm9vYmFyYmF6cXV4"  # pragma: allowlist secret


@pytest.mark.parametrize(
    "secret",
    [
        JWT,
        "Bearer abcdefgh12345678",
        "sk-proj-AbCdEf0123456789xyzXYZ",  # pragma: allowlist secret
        "AKIAIOSFODNN7EXAMPLE",  # pragma: allowlist secret
        "password=hunter2hunter2",  # pragma: allowlist secret
        "Zm9vYmFyQmF6UXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWprbG1u",  # pragma: allowlist secret
    ],
)
def test_token_like_strings_are_removed(secret: str) -> None:
    assert secret not in remove_tokens(f"before {secret} after")
    assert REDACTED in remove_tokens(f"before {secret} after")


def test_ids_that_correlate_logs_are_not_mistaken_for_tokens() -> None:
    text = "request 0f8e2c0b9d6a4e1f8a7b6c5d4e3f2a1b sha256 " + "ab" * 32
    text += " uuid 6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b"

    assert remove_tokens(text) == text


def test_a_log_line_keeps_its_shape_and_loses_personal_data(p: Pseudonymizer) -> None:
    logs = LogAnonymizer(p)
    line = json.dumps(
        {
            "event": "login failed for ada@uni.example from 203.0.113.9",
            "user_email": "ada@uni.example",
            "remote_addr": "203.0.113.9, 10.0.0.1",
            "authorization": "Bearer whatever-it-is",
            "status": 401,
        }
    )

    out = json.loads(logs.line(line + "\n"))

    assert "ada@uni.example" not in json.dumps(out)
    assert "203.0.113.9" not in json.dumps(out)
    assert out["user_email"] == p.email("ada@uni.example")
    assert out["authorization"] == REDACTED
    assert out["status"] == 401
    assert logs.line("plain text from 203.0.113.9\n") == f"plain text from {p.ip('203.0.113.9')}\n"


def test_empty_data_settings_copied_from_the_env_template_count_as_unset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app.config import Settings

    monkeypatch.setenv("BACKUP_KEEP", "")
    monkeypatch.setenv("ANONYMIZE_KEY", "")

    settings = Settings(_env_file=None)

    assert settings.backup_keep is None
    assert settings.anonymize_key is None
