"""Backups end to end: data made through the API, `flask backup create`, then `verify` and
`restore` into a scratch database whose every table must match the original row for row;
corrupted, truncated and missing artifacts are refused. Real Postgres, real pg_dump and
pg_restore, real commits (pg_dump reads from its own connection)."""

from __future__ import annotations

import base64
import io
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
from apiflask import APIFlask
from click.testing import Result
from flask.testing import FlaskClient
from pydantic import SecretStr
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.test import encode_multipart

from app import create_app
from app.auth.models import Role
from app.backup import pg
from app.backup.crypto import ArtifactCipher, parse_key
from app.backup.tables import TableStats, table_stats
from app.config import Settings
from app.db import get_database
from app.storage import LocalStorage, get_storage
from tests.conftest import PASSWORD, MakeApp, bearer
from tests.plugins.database import database_url, drop_database

pytestmark = pytest.mark.commits

Headers = dict[str, str]
NOTES = "# Fractions\n\nHalves and quarters; ask fiona.fieldmark@school.example for help.\n"


# --- the data set --------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    email: str
    display_name: str
    ip: str


LEARNERS = (
    Person("zebulon.quixote@learners.example", "Zebulon Quixote", "203.0.113.77"),
    Person("yolanda.vexworth@learners.example", "Yolanda Vexworth", "198.51.100.23"),
    Person("xavier.plumtree@learners.example", "Xavier Plumtree", "2001:db8:feed::42"),
)
INSTRUCTOR = Person("wilhelmina.ostrander@faculty.example", "Wilhelmina Ostrander", "192.0.2.10")


def _ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.get_json()
    return response.get_json()


def register_and_login(client: FlaskClient, person: Person) -> dict[str, str]:
    env = {"REMOTE_ADDR": person.ip}
    body = {"email": person.email, "password": PASSWORD, "display_name": person.display_name}
    _ok(client.post("/auth/register", json=body, environ_base=env), 201)
    login = {"email": person.email, "password": PASSWORD}
    tokens: dict[str, str] = _ok(client.post("/auth/login", json=login, environ_base=env))
    return tokens


def build_platform_data(client: FlaskClient, promote: Callable[[str, Role], None]) -> None:
    """Users, a published course with items, enrolments, sessions, attempts with free-text
    answers, an uploaded material, a logout: every table gets rows, all through the API."""
    author_tokens = register_and_login(client, INSTRUCTOR)
    promote(INSTRUCTOR.email, Role.INSTRUCTOR)
    author = {**bearer(author_tokens["access_token"]), "X-Forwarded-For": INSTRUCTOR.ip}
    env = {"REMOTE_ADDR": INSTRUCTOR.ip}
    course = _ok(
        client.post(
            "/courses",
            json={"title": "Fractions", "description": f"Questions? Mail {INSTRUCTOR.email}"},
            headers=author,
            environ_base=env,
        ),
        201,
    )
    skill = _ok(
        client.post(f"/courses/{course['id']}/skills", json={"name": "Adding"}, headers=author),
        201,
    )
    items = [
        {
            "kind": "short_answer",
            "prompt": "Why do fractions need a common denominator before adding?",
            "reference_answer": "Only parts of the same size can be counted together.",
            "rubric": "mentions parts of equal size",
        },
        {
            "kind": "mcq",
            "prompt": "What is 1/2 + 1/4?",
            "choices": [{"text": "3/4", "correct": True}, {"text": "2/6"}, {"text": "1/8"}],
        },
    ]
    for item in items:
        created = _ok(client.post(f"/skills/{skill['id']}/items", json=item, headers=author), 201)
        _ok(client.post(f"/items/{created['id']}/publish", headers=author, environ_base=env))
    _ok(
        client.patch(f"/courses/{course['id']}", json={"status": "published"}, headers=author),
    )
    boundary, body = encode_multipart(
        MultiDict({"file": FileStorage(io.BytesIO(NOTES.encode()), "notes.md", "text/markdown")})
    )
    _ok(
        client.post(
            f"/skills/{skill['id']}/materials",
            data=body,
            headers=author,
            content_type=f"multipart/form-data; boundary={boundary}",
            environ_base=env,
        ),
        201,
    )
    for person in LEARNERS:
        tokens = register_and_login(client, person)
        headers, env = bearer(tokens["access_token"]), {"REMOTE_ADDR": person.ip}
        _ok(client.post(f"/courses/{course['id']}/enrollments", headers=headers), 201)
        session = _ok(
            client.post("/sessions", json={"skill_id": skill["id"]}, headers=headers), 201
        )
        for _ in range(2):
            served = _ok(client.get(f"/sessions/{session['id']}/next", headers=headers))["item"]
            answer: str | int = (
                0
                if served["kind"] == "mcq"
                else f"Same-size parts. I am {person.display_name}, reach me at "
                f"{person.email} or +1 (415) 555-0199."
            )
            _ok(
                client.post(
                    f"/sessions/{session['id']}/attempts",
                    json={"item_id": served["id"], "response": answer},
                    headers={**headers, "Idempotency-Key": f"{person.email}-{served['id']}"},
                    environ_base=env,
                ),
                201,
            )
        client.post(
            "/auth/logout",
            json={"refresh_token": tokens["refresh_token"]},
            headers=headers,
            environ_base=env,
        )


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def platform(make_app: MakeApp, tmp_path: Path) -> APIFlask:
    """An application of its own (object storage under tmp_path) on the worker database,
    committing for real; `db_connection` (commits marker) truncates every table afterwards."""
    return make_app(storage_url=f"file://{tmp_path / 'storage'}")


def promoter(worker_database_url: str) -> Callable[[str, Role], None]:
    def promote(email: str, role: Role) -> None:
        with pg.target_of(worker_database_url).connect() as connection:
            connection.execute("UPDATE users SET role = %s WHERE email = %s", (role.value, email))

    return promote


@pytest.fixture
def populated(platform: APIFlask, worker_database_url: str) -> APIFlask:
    build_platform_data(platform.test_client(), promoter(worker_database_url))
    return platform


@pytest.fixture
def scratch_database(postgres_server_url: str) -> Iterator[str]:
    """An empty database of this test's own, dropped afterwards."""
    name = f"mastery_scratch_{uuid.uuid4().hex[:12]}"
    with pg.target_of(postgres_server_url).connect(autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    yield database_url(postgres_server_url, name)
    drop_database(postgres_server_url, name)


def stats_of(url: str) -> dict[str, TableStats]:
    with pg.target_of(url).connect() as connection:
        return table_stats(connection)


def run(app: APIFlask, *args: str) -> Result:
    return app.test_cli_runner().invoke(args=list(args))


def create_backup(app: APIFlask, location: str, *extra: str) -> str:
    result = run(app, "backup", "create", "--to", location, *extra)
    assert result.exit_code == 0, result.output + result.stderr
    return result.stdout.splitlines()[0]


# --- the round trip ------------------------------------------------------------------------


def test_a_restored_backup_matches_every_table_and_object_of_the_original(
    populated: APIFlask, worker_database_url: str, scratch_database: str, tmp_path: Path
) -> None:
    backups = tmp_path / "backups"
    original = stats_of(worker_database_url)
    backup_id = create_backup(populated, f"file://{backups}")

    verified = run(populated, "backup", "verify", backup_id, "--from", str(backups))
    restored = run(
        populated,
        "backup",
        "restore",
        backup_id,
        "--from",
        str(backups),
        "--target-url",
        scratch_database,
        "--target-storage-url",
        f"file://{tmp_path / 'restored'}",
    )

    assert verified.exit_code == 0, verified.output + verified.stderr
    assert restored.exit_code == 0, restored.output + restored.stderr
    assert "restore took" in restored.stdout
    assert "note: the restored schema is at migration" not in restored.stdout  # same revision
    # Independently of the command's own check: every table, same count, same content.
    copy = stats_of(scratch_database)
    assert copy == original
    for table in ("users", "audit_log", "attempts", "items", "materials", "revoked_access_tokens"):
        assert original[table].rows > 0, f"the data set left {table} empty"
    source = get_storage(populated)
    assert isinstance(source, LocalStorage)
    objects = sorted(p.relative_to(source.root) for p in source.root.rglob("*") if p.is_file())
    assert objects, "the data set stored no object"
    for key in objects:
        assert (tmp_path / "restored" / key).read_bytes() == (source.root / key).read_bytes()


def test_the_restored_audit_log_is_still_append_only(
    populated: APIFlask, scratch_database: str, tmp_path: Path
) -> None:
    backup_id = create_backup(populated, str(tmp_path / "backups"))
    run(
        populated,
        "backup",
        "restore",
        backup_id,
        "--from",
        str(tmp_path / "backups"),
        "--target-url",
        scratch_database,
        "--target-storage-url",
        f"file://{tmp_path / 'r'}",
    )

    with (
        pg.target_of(scratch_database).connect() as connection,
        pytest.raises(psycopg.errors.RaiseException, match="append-only"),
    ):
        connection.execute("DELETE FROM audit_log")


def test_restore_refuses_a_non_empty_target_unless_forced(
    populated: APIFlask, worker_database_url: str, scratch_database: str, tmp_path: Path
) -> None:
    backups = str(tmp_path / "backups")
    backup_id = create_backup(populated, backups)
    args = [
        "backup",
        "restore",
        backup_id,
        "--from",
        backups,
        "--target-url",
        scratch_database,
        "--target-storage-url",
        f"file://{tmp_path / 'restored'}",
    ]
    assert run(populated, *args).exit_code == 0
    with pg.target_of(scratch_database).connect() as connection:
        connection.execute("DELETE FROM enrollments")  # the target drifts from the backup

    refused = run(populated, *args)
    forced = run(populated, *args, "--force")

    assert refused.exit_code != 0
    assert "is not empty" in refused.stderr
    assert "--force" in refused.stderr
    assert forced.exit_code == 0, forced.output + forced.stderr
    assert stats_of(scratch_database) == stats_of(worker_database_url)


def test_a_backup_taken_during_writes_restores_to_exactly_its_manifest(
    populated: APIFlask, worker_database_url: str, scratch_database: str, tmp_path: Path
) -> None:
    """Counts and hashes come from pg_dump's own snapshot: rows committed while the backup
    runs are in neither or both, so the restore check still passes."""
    writing, stop, written = threading.Event(), threading.Event(), [0]

    def write() -> None:
        with pg.target_of(worker_database_url).connect(autocommit=True) as connection:
            while not stop.is_set():
                connection.execute(
                    "INSERT INTO audit_log (id, occurred_at, action, details) "
                    "VALUES (gen_random_uuid(), now(), 'test.write', '{}')"
                )
                written[0] += 1
                writing.set()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert writing.wait(timeout=30), "the writer never wrote"
        before = written[0]
        backup_id = create_backup(populated, str(tmp_path / "backups"))
        after = written[0]
    finally:
        stop.set()
        writer.join(timeout=30)

    restored = run(
        populated,
        "backup",
        "restore",
        backup_id,
        "--from",
        str(tmp_path / "backups"),
        "--target-url",
        scratch_database,
        "--target-storage-url",
        f"file://{tmp_path / 'r'}",
    )

    assert restored.exit_code == 0, restored.output + restored.stderr
    assert after > before  # rows really were committed while the backup ran


# --- damaged backups -----------------------------------------------------------------------


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])


@pytest.mark.parametrize(
    ("artifact", "damage", "message"),
    [
        ("database.dump", _flip_a_byte, "database.dump is corrupted"),
        ("database.dump", _truncate, "database.dump is truncated"),
        ("objects.tar.gz", _flip_a_byte, "objects.tar.gz is corrupted"),
        ("objects.tar.gz", _truncate, "objects.tar.gz is truncated"),
        ("database.dump", Path.unlink, "database.dump is missing"),
    ],
    ids=["dump-flipped", "dump-truncated", "objects-flipped", "objects-truncated", "dump-gone"],
)
def test_a_damaged_artifact_fails_verify_and_restore_and_the_target_stays_empty(
    populated: APIFlask,
    scratch_database: str,
    tmp_path: Path,
    artifact: str,
    damage: Callable[[Path], None],
    message: str,
) -> None:
    backups = tmp_path / "backups"
    backup_id = create_backup(populated, str(backups))
    damage(backups / backup_id / artifact)

    verified = run(populated, "backup", "verify", backup_id, "--from", str(backups))
    restored = run(
        populated,
        "backup",
        "restore",
        backup_id,
        "--from",
        str(backups),
        "--target-url",
        scratch_database,
        "--target-storage-url",
        f"file://{tmp_path / 'r'}",
    )

    for result in (verified, restored):
        assert result.exit_code == 1, result.output
        assert message in result.stderr
        assert backup_id in result.stderr
    with pg.target_of(scratch_database).connect() as connection:
        assert pg.user_relations(connection) == []
    assert not (tmp_path / "r").exists()


def test_an_unknown_or_incomplete_backup_is_refused_by_name(
    populated: APIFlask, tmp_path: Path
) -> None:
    backups = tmp_path / "backups"
    backup_id = create_backup(populated, str(backups))
    (backups / backup_id / "manifest.json").unlink()  # as if creation died before the end

    result = run(populated, "backup", "verify", backup_id, "--from", str(backups))
    listed = run(populated, "backup", "list", "--from", str(backups))

    assert result.exit_code == 1
    assert f"backup {backup_id} has no manifest.json" in result.stderr
    assert backup_id not in listed.stdout


# --- retention and listing -----------------------------------------------------------------


def test_keep_deletes_all_but_the_newest_complete_backups(
    populated: APIFlask, tmp_path: Path
) -> None:
    backups = str(tmp_path / "backups")
    made = [create_backup(populated, backups, "--keep", "2") for _ in range(3)]

    listed = run(populated, "backup", "list", "--from", backups)

    assert listed.exit_code == 0
    assert made[0] not in listed.stdout
    assert made[1] in listed.stdout
    assert made[2] in listed.stdout
    assert sorted(p.name for p in (tmp_path / "backups").iterdir()) == sorted(made[1:])


def test_a_sqlite_database_is_refused_with_a_clear_message(
    settings: Settings, tmp_path: Path
) -> None:
    app = create_app(
        settings.model_copy(
            update={
                "database_url": f"sqlite:///{tmp_path / 'x.db'}",
                "storage_url": f"file://{tmp_path}",
            }
        )
    )
    result = run(app, "backup", "create", "--to", str(tmp_path / "b"))
    get_database(app).engine.dispose()

    assert result.exit_code == 1
    assert "backups need PostgreSQL" in result.stderr


# --- an S3-compatible store ----------------------------------------------------------------


@pytest.fixture
def bucket(aws_env: str) -> str:
    name = f"backups-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name


def test_backups_in_s3_are_listed_verified_restored_and_pruned(
    populated: APIFlask,
    worker_database_url: str,
    scratch_database: str,
    bucket: str,
    tmp_path: Path,
) -> None:
    location = f"s3://{bucket}/mastery/prod"
    first = create_backup(populated, location)
    second = create_backup(populated, location, "--keep", "1")

    listed = run(populated, "backup", "list", "--from", location)
    verified = run(populated, "backup", "verify", second, "--from", location)
    restored = run(
        populated,
        "backup",
        "restore",
        second,
        "--from",
        location,
        "--target-url",
        scratch_database,
        "--target-storage-url",
        f"file://{tmp_path / 'r'}",
    )

    assert second in listed.stdout
    assert first not in listed.stdout
    assert verified.exit_code == 0, verified.stderr
    assert restored.exit_code == 0, restored.stderr
    assert stats_of(scratch_database) == stats_of(worker_database_url)
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=bucket)["Contents"]]
    assert sorted(keys) == sorted(
        f"mastery/prod/{second}/{name}"
        for name in ("database.dump", "objects.tar.gz", "manifest.json")
    )


def test_a_corrupted_artifact_in_s3_fails_verify(populated: APIFlask, bucket: str) -> None:
    location = f"s3://{bucket}/prod"
    backup_id = create_backup(populated, location)
    s3 = boto3.client("s3")
    key = f"prod/{backup_id}/database.dump"
    data = bytearray(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    data[100] ^= 0xFF
    s3.put_object(Bucket=bucket, Key=key, Body=bytes(data))

    result = run(populated, "backup", "verify", backup_id, "--from", location)

    assert result.exit_code == 1
    assert "database.dump is corrupted" in result.stderr


# --- encryption at rest --------------------------------------------------------------------

BACKUP_KEY = base64.b64encode(bytes(range(32))).decode()
OTHER_KEY = base64.b64encode(bytes(range(32, 64))).decode()
KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


def keyed_app(make_app: MakeApp, tmp_path: Path, key: str | None, **changes: Any) -> APIFlask:
    """An application on the same database and object storage as `populated`, with its own
    BACKUP_ENCRYPTION_KEY (None: unset)."""
    return make_app(
        storage_url=f"file://{tmp_path / 'storage'}",
        backup_encryption_key=SecretStr(key) if key else None,
        **changes,
    )


def restore_args(backup_id: str, location: str, target: str, tmp_path: Path) -> list[str]:
    return [
        "backup",
        "restore",
        backup_id,
        "--from",
        location,
        "--target-url",
        target,
        "--target-storage-url",
        f"file://{tmp_path / 'restored'}",
    ]


@pytest.mark.parametrize(
    ("sse", "kms_key_id"), [("AES256", None), ("aws:kms", KMS_KEY)], ids=["sse-s3", "sse-kms"]
)
def test_an_encrypted_backup_in_s3_is_encrypted_twice_and_restores_with_its_key(
    populated: APIFlask,
    make_app: MakeApp,
    worker_database_url: str,
    scratch_database: str,
    bucket: str,
    tmp_path: Path,
    sse: str,
    kms_key_id: str | None,
) -> None:
    app = keyed_app(
        make_app, tmp_path, BACKUP_KEY, backup_s3_sse=sse, backup_s3_kms_key_id=kms_key_id
    )
    location = f"s3://{bucket}/prod"
    backup_id = create_backup(app, location)

    s3 = boto3.client("s3")
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == [
        f"prod/{backup_id}/{name}"
        for name in ("database.dump.enc", "manifest.json", "objects.tar.gz.enc")
    ]
    for key in keys:  # server-side encryption on every object, the manifest included
        head = s3.head_object(Bucket=bucket, Key=key)
        assert head["ServerSideEncryption"] == sse, key
        if kms_key_id:
            assert head["SSEKMSKeyId"] == kms_key_id, key
    stored = s3.get_object(Bucket=bucket, Key=keys[0])["Body"].read()
    objects = s3.get_object(Bucket=bucket, Key=keys[2])["Body"].read()
    sealed, plain = tmp_path / "sealed", tmp_path / "plain"
    sealed.write_bytes(stored)
    ArtifactCipher(parse_key(BACKUP_KEY)).decrypt_file(sealed, plain, f"{backup_id}/database.dump")
    # The decrypted dump shows its table of contents in clear; the stored object shows nothing.
    for needle in (b"PGDMP", b"CREATE TABLE", b"users", b"audit_log"):
        assert needle in plain.read_bytes()
        assert needle not in stored
    assert b"notes.md" not in objects
    assert b"Fractions" not in objects
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=keys[1])["Body"].read())
    assert manifest["format"] == 2
    assert manifest["encryption"]["algorithm"] == "AES-256-GCM"

    listed = run(app, "backup", "list", "--from", location)
    verified = run(app, "backup", "verify", backup_id, "--from", location)
    restored = run(app, *restore_args(backup_id, location, scratch_database, tmp_path))

    assert "encrypted, key id" in listed.stdout
    assert verified.exit_code == 0, verified.stderr
    assert "decrypted, GCM tag and sha256 ok" in verified.stderr
    assert restored.exit_code == 0, restored.output + restored.stderr
    assert "match the manifest" in restored.stdout
    assert stats_of(scratch_database) == stats_of(worker_database_url)
    assert (tmp_path / "restored" / "materials").is_dir()


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (OTHER_KEY, "BACKUP_ENCRYPTION_KEY is not the key backup"),
        (None, "is encrypted (AES-256-GCM, key id"),
        ("bm90LTMyLWJ5dGVz", "decodes to 12 bytes"),
    ],
    ids=["wrong-key", "no-key", "malformed-key"],
)
def test_an_encrypted_backup_without_its_key_fails_cleanly_and_restores_nothing(
    populated: APIFlask,
    make_app: MakeApp,
    scratch_database: str,
    tmp_path: Path,
    key: str | None,
    message: str,
) -> None:
    location = str(tmp_path / "backups")
    backup_id = create_backup(keyed_app(make_app, tmp_path, BACKUP_KEY), location)
    app = keyed_app(make_app, tmp_path, key)

    verified = run(app, "backup", "verify", backup_id, "--from", location)
    restored = run(app, *restore_args(backup_id, location, scratch_database, tmp_path))

    for result in (verified, restored):
        assert result.exit_code == 1, result.output
        assert message in result.stderr
        assert "Traceback" not in result.output + result.stderr
        assert BACKUP_KEY not in result.output + result.stderr
    with pg.target_of(scratch_database).connect() as connection:
        assert pg.user_relations(connection) == []
    assert not (tmp_path / "restored").exists()


def test_a_tampered_encrypted_artifact_is_named_and_nothing_is_restored(
    populated: APIFlask, make_app: MakeApp, scratch_database: str, tmp_path: Path
) -> None:
    backups = tmp_path / "backups"
    app = keyed_app(make_app, tmp_path, BACKUP_KEY)
    backup_id = create_backup(app, str(backups))
    _flip_a_byte(backups / backup_id / "objects.tar.gz.enc")

    restored = run(app, *restore_args(backup_id, str(backups), scratch_database, tmp_path))

    assert restored.exit_code == 1
    assert f"{backup_id}/objects.tar.gz.enc is corrupted" in restored.stderr
    assert not (tmp_path / "restored").exists()
