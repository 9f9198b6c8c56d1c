"""`flask anonymize` end to end: data made through the API, copied into a scratch database,
then a full plain-SQL `pg_dump` of the copy is searched for every original e-mail, name and
IP; row counts and references must survive, and the same key must give the same copy."""

from __future__ import annotations

import json

# subprocess: runs pg_dump on the test's own database.
import subprocess  # nosec B404
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from apiflask import APIFlask
from click.testing import Result
from psycopg import sql
from pydantic import SecretStr

from app.anonymize.policy import POLICY
from app.anonymize.pseudonyms import Pseudonymizer
from app.backup import pg
from tests.conftest import MakeApp
from tests.integration.test_backup import (
    INSTRUCTOR,
    LEARNERS,
    build_platform_data,
    promoter,
)
from tests.plugins.database import database_url, drop_database

pytestmark = pytest.mark.commits

KEY = "anonymisation-test-key-0123456789"
PEOPLE = (*LEARNERS, INSTRUCTOR)


@pytest.fixture
def platform(make_app: MakeApp, tmp_path: Path) -> APIFlask:
    return make_app(storage_url=f"file://{tmp_path / 'storage'}", anonymize_key=SecretStr(KEY))


@pytest.fixture
def populated(platform: APIFlask, worker_database_url: str) -> APIFlask:
    build_platform_data(platform.test_client(), promoter(worker_database_url))
    return platform


@pytest.fixture
def scratch(postgres_server_url: str) -> Iterator[list[str]]:
    """Makes empty databases on demand; drops them all afterwards."""
    names: list[str] = []

    def make() -> str:
        name = f"mastery_anon_{uuid.uuid4().hex[:12]}"
        with pg.target_of(postgres_server_url).connect(autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        names.append(name)
        return database_url(postgres_server_url, name)

    urls: list[str] = []
    urls.append(make())
    urls.append(make())
    yield urls
    for name in names:
        drop_database(postgres_server_url, name)


def run(app: APIFlask, *args: str) -> Result:
    return app.test_cli_runner().invoke(args=list(args))


def full_dump(url: str) -> str:
    target = pg.target_of(url)
    completed = subprocess.run(
        [pg.tool("pg_dump"), "--format=plain", f"--dbname={target.conninfo}"],
        env=target.environment(),
        capture_output=True,
        check=True,
    )
    return completed.stdout.decode()


def counts(url: str) -> dict[str, int]:
    with pg.target_of(url).connect() as connection:
        tables = [
            str(r[0])
            for r in connection.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            ).fetchall()
        ]
        count = sql.SQL("SELECT count(*) FROM {}")
        return {
            t: int(connection.execute(count.format(sql.Identifier(t))).fetchone()[0])  # type: ignore[index,arg-type]  # count(*) always returns one row
            for t in tables
        }


def rows(url: str, query: str) -> list[tuple[object, ...]]:
    with pg.target_of(url).connect() as connection:
        return connection.execute(query).fetchall()


def test_the_copy_holds_no_original_email_name_or_ip_and_keeps_counts_and_references(
    populated: APIFlask, worker_database_url: str, scratch: list[str]
) -> None:
    target = scratch[0]
    source_dump = full_dump(worker_database_url)
    for person in PEOPLE:  # the originals really are in the source, where the test looks
        assert person.email in source_dump
        assert person.display_name in source_dump
    assert "203.0.113.77" in source_dump
    assert "+1 (415) 555-0199" in source_dump

    result = run(
        populated, "anonymize", "--source-url", worker_database_url, "--target-url", target
    )

    assert result.exit_code == 0, result.output + result.stderr
    dump = full_dump(target)
    lowered = dump.lower()
    for person in PEOPLE:
        assert person.email.lower() not in lowered
        assert person.display_name.lower() not in lowered
        for part in person.display_name.lower().split():
            assert part not in lowered, part
        assert person.ip not in dump
    assert "555-0199" not in dump  # the phone number in the free-text answers
    original, copy = counts(worker_database_url), counts(target)
    for table, policy in POLICY.items():
        if policy.copy_rows:
            assert copy[table] == original[table], table
        else:
            assert copy[table] == 0, f"{table} must not be copied"
    for table in ("users", "audit_log", "attempts", "courses", "materials", "refresh_tokens"):
        assert original[table] > 0, f"the data set left {table} empty: the test proves less"
    # References survive: every attempt still points at its user, item and session.
    orphans = rows(
        target,
        "SELECT count(*) FROM attempts a LEFT JOIN users u ON u.id = a.user_id "
        "LEFT JOIN practice_sessions s ON s.id = a.session_id WHERE u.id IS NULL OR s.id IS NULL",
    )
    assert orphans == [(0,)]
    assert rows(target, "SELECT count(DISTINCT email) FROM users") == rows(
        target, "SELECT count(*) FROM users"
    )
    # Audit IPs became pseudonyms of the same shape (IPv4 → 10/8, IPv6 → fd00::/8).
    ips = [
        str(r[0]) for r in rows(target, "SELECT DISTINCT ip FROM audit_log WHERE ip IS NOT NULL")
    ]
    assert ips
    assert all(ip.startswith(("10.", "fd")) for ip in ips)
    # Distributions survive: the same users answered the same items with the same scores.
    query = "SELECT user_id, item_id, score, correct FROM attempts ORDER BY id"
    assert rows(target, query) == rows(worker_database_url, query)


def test_the_same_key_gives_the_same_pseudonyms_run_after_run(
    populated: APIFlask, worker_database_url: str, scratch: list[str]
) -> None:
    for target in scratch:
        result = run(
            populated, "anonymize", "--source-url", worker_database_url, "--target-url", target
        )
        assert result.exit_code == 0, result.output + result.stderr

    query = "SELECT id, email, display_name FROM users ORDER BY id"
    first, second = rows(scratch[0], query), rows(scratch[1], query)
    assert first == second
    answers = "SELECT id, response::text, feedback FROM attempts ORDER BY id"
    assert rows(scratch[0], answers) == rows(scratch[1], answers)
    audit = "SELECT id, ip, details::text FROM audit_log ORDER BY id"
    assert rows(scratch[0], audit) == rows(scratch[1], audit)


def test_client_chosen_request_ids_become_the_same_keyed_pseudonym_in_every_row(
    populated: APIFlask, worker_database_url: str, scratch: list[str]
) -> None:
    # A client may send any id of a tame shape (letters, digits, `._:-`): here, who it is.
    chosen = "zebulon.quixote:learners.example:ticket-4711"
    client = populated.test_client()
    for _ in range(2):  # one request id, two audit rows: they must still share a pseudonym
        failed = client.post(
            "/auth/login",
            json={"email": LEARNERS[0].email, "password": "not-the-password-at-all"},
            headers={"X-Request-ID": chosen},
        )
        assert failed.status_code == 401
        assert failed.headers["X-Request-ID"] == chosen
    distinct = "SELECT count(DISTINCT request_id) FROM audit_log"
    assert chosen in full_dump(worker_database_url)

    for target in scratch:
        result = run(
            populated, "anonymize", "--source-url", worker_database_url, "--target-url", target
        )
        assert result.exit_code == 0, result.output + result.stderr

    assert chosen not in full_dump(scratch[0])
    copied = [
        str(r[0])
        for r in rows(scratch[0], "SELECT request_id FROM audit_log WHERE request_id IS NOT NULL")
    ]
    assert copied.count(Pseudonymizer(KEY).request_id(chosen)) == 2
    assert all(i.startswith("req-") and len(i) == 36 for i in copied)
    assert rows(scratch[0], distinct) == rows(worker_database_url, distinct)  # none merged
    query = "SELECT id, request_id FROM audit_log ORDER BY id"
    assert rows(scratch[0], query) == rows(scratch[1], query)  # the same key, the same copy


def test_anonymize_refuses_a_non_empty_target_and_a_missing_key(
    populated: APIFlask, make_app: MakeApp, worker_database_url: str, scratch: list[str]
) -> None:
    into_itself = run(
        populated,
        "anonymize",
        "--source-url",
        worker_database_url,
        "--target-url",
        worker_database_url,
    )
    no_key = run(
        make_app(), "anonymize", "--source-url", worker_database_url, "--target-url", scratch[0]
    )
    run(populated, "anonymize", "--source-url", worker_database_url, "--target-url", scratch[0])
    again = run(
        populated, "anonymize", "--source-url", worker_database_url, "--target-url", scratch[0]
    )
    forced = run(
        populated,
        "anonymize",
        "--source-url",
        worker_database_url,
        "--target-url",
        scratch[0],
        "--force",
    )

    assert into_itself.exit_code == 1
    assert "the same database" in into_itself.stderr
    assert no_key.exit_code == 1
    assert "ANONYMIZE_KEY is not set" in no_key.stderr
    assert again.exit_code == 1
    assert "is not empty" in again.stderr
    assert forced.exit_code == 0, forced.stderr


def test_anonymize_logs_scrubs_a_json_log_file(populated: APIFlask, tmp_path: Path) -> None:
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ"  # pragma: allowlist secret
    lines = [
        {"event": "login", "email": LEARNERS[0].email, "client_ip": LEARNERS[0].ip},
        {"event": f"Authorization: Bearer {jwt}", "request_id": "a" * 32},
        {
            "event": f"mail from {LEARNERS[1].email} at 198.51.100.23",
            "api_key": "sk-live-123",  # pragma: allowlist secret
        },
    ]
    source, target = tmp_path / "in.log", tmp_path / "out.log"
    source.write_text("\n".join(json.dumps(line) for line in lines) + "\nnot json " + jwt + "\n")

    result = run(populated, "anonymize-logs", str(source), str(target))

    assert result.exit_code == 0, result.output + result.stderr
    out = target.read_text()
    for secret in (
        LEARNERS[0].email,
        LEARNERS[1].email,
        LEARNERS[0].ip,
        "198.51.100.23",
        jwt,
        "sk-live-123",
    ):
        assert secret not in out
    parsed = [json.loads(line) for line in out.splitlines()[:3]]
    # a request id becomes the pseudonym the database copy gives it: logs and rows still join
    assert parsed[1]["request_id"] == Pseudonymizer(KEY).request_id("a" * 32)
    assert parsed[0]["email"].endswith((".com", ".net", ".org"))
    assert "@" in parsed[0]["email"]
    assert len(out.splitlines()) == 4
