"""Encryption of backups at rest: the AES-256-GCM artifact format, BACKUP_ENCRYPTION_KEY
parsing, the encrypted manifest (format 2) and the S3 server-side encryption arguments. The
round trip through Postgres and an S3 bucket is in tests/integration/test_backup.py."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.backup.crypto import MAGIC, ArtifactCipher, BackupKeyError, load_cipher, parse_key
from app.backup.errors import BackupError
from app.backup.manifest import Artifact, Encryption, Manifest, Stored
from app.backup.objects import ObjectsSummary
from app.backup.store import S3BackupStore, open_store, sse_arguments
from app.backup.tables import TableStats
from app.config import SECRET_SETTINGS, Settings

KEY = bytes(range(32))
KEY_TEXT = base64.b64encode(KEY).decode()
PLAINTEXT = b"COPY users (email) FROM stdin;\nada@uni.example\n" * 50_000  # > one chunk


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    path = tmp_path / "database.dump"
    path.write_bytes(PLAINTEXT)
    return path


def sealed_copy(plain: Path, cipher: ArtifactCipher, associated: str = "b1/database.dump") -> Path:
    sealed = plain.with_name("database.dump.enc")
    cipher.encrypt_file(plain, sealed, associated)
    return sealed


# --- the key ---------------------------------------------------------------------------------


def test_a_base64_key_of_32_bytes_is_accepted_in_either_alphabet() -> None:
    assert parse_key(KEY_TEXT) == KEY
    assert parse_key(base64.urlsafe_b64encode(KEY).decode() + "\n") == KEY
    assert load_cipher(None) is None
    assert load_cipher("  ") is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (base64.b64encode(b"k" * 16).decode(), "decodes to 16 bytes"),
        ("not base64 at all!", "not valid base64"),
        ("correct-horse-battery-staple", "decodes to"),
    ],
    ids=["too-short", "not-base64", "a-passphrase"],
)
def test_a_malformed_key_is_refused_with_a_reason_and_never_echoed(value: str, reason: str) -> None:
    with pytest.raises(BackupKeyError) as refused:
        load_cipher(value)

    assert reason in str(refused.value)
    assert "openssl rand -base64 32" in str(refused.value)
    assert value not in str(refused.value)


def test_the_key_id_names_the_key_without_revealing_it() -> None:
    cipher = ArtifactCipher(KEY)

    assert cipher.key_id == ArtifactCipher(KEY).key_id
    assert cipher.key_id != ArtifactCipher(bytes(32)).key_id
    assert KEY.hex()[:16] not in cipher.key_id
    assert KEY_TEXT not in repr(cipher)


def test_the_key_is_a_secret_setting_readable_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "backup.key"
    secret.write_text(KEY_TEXT + "\n")

    settings = Settings(_env_file=None, backup_encryption_key_file=str(secret))

    assert "backup_encryption_key" in SECRET_SETTINGS
    assert settings.backup_encryption_key is not None
    assert parse_key(settings.backup_encryption_key.get_secret_value()) == KEY
    assert KEY_TEXT not in repr(settings)


def test_empty_encryption_settings_copied_from_the_template_mean_the_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("BACKUP_ENCRYPTION_KEY", "BACKUP_S3_SSE", "BACKUP_S3_KMS_KEY_ID"):
        monkeypatch.setenv(name, "")

    settings = Settings(_env_file=None)

    assert settings.backup_encryption_key is None
    assert settings.backup_s3_sse == "AES256"
    assert settings.backup_s3_kms_key_id is None


# --- the artifact format ---------------------------------------------------------------------


def test_an_artifact_round_trips_and_holds_no_plaintext(plain: Path, tmp_path: Path) -> None:
    cipher = ArtifactCipher(KEY)
    sealed = sealed_copy(plain, cipher)
    restored = tmp_path / "restored.dump"

    cipher.decrypt_file(sealed, restored, "b1/database.dump")

    data = sealed.read_bytes()
    assert data.startswith(MAGIC)
    assert b"ada@uni.example" not in data
    assert restored.read_bytes() == PLAINTEXT


def test_every_encryption_draws_a_new_nonce(plain: Path, tmp_path: Path) -> None:
    cipher = ArtifactCipher(KEY)
    first = sealed_copy(plain, cipher).read_bytes()
    second = sealed_copy(plain, cipher).read_bytes()

    assert first[len(MAGIC) :][:12] != second[len(MAGIC) :][:12]
    assert first != second


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _keep(_: Path) -> None:
    """No change to the file."""


@pytest.mark.parametrize(
    ("change", "associated", "key"),
    [
        (_keep, "b1/database.dump", os.urandom(32)),
        (lambda path: _flip(path, len(MAGIC) + 100), "b1/database.dump", KEY),
        (lambda path: _flip(path, path.stat().st_size - 1), "b1/database.dump", KEY),
        (lambda path: _flip(path, len(MAGIC) + 1), "b1/database.dump", KEY),
        (_keep, "b2/database.dump", KEY),
        (_keep, "b1/objects.tar.gz", KEY),
    ],
    ids=["wrong-key", "ciphertext", "tag", "nonce", "other-backup", "other-artifact"],
)
def test_anything_but_the_right_key_and_place_fails_authentication_and_writes_nothing(
    plain: Path, tmp_path: Path, change: Callable[[Path], None], associated: str, key: bytes
) -> None:
    sealed = sealed_copy(plain, ArtifactCipher(KEY))
    change(sealed)
    restored = tmp_path / "restored.dump"

    with pytest.raises(BackupError, match="failed AES-256-GCM authentication"):
        ArtifactCipher(key).decrypt_file(sealed, restored, associated)

    assert not restored.exists()


def test_a_file_that_is_not_an_encrypted_artifact_or_too_short_is_refused(
    plain: Path, tmp_path: Path
) -> None:
    cipher = ArtifactCipher(KEY)
    stub = tmp_path / "stub.enc"
    stub.write_bytes(MAGIC + b"\x00" * 5)

    with pytest.raises(BackupError, match="not an encrypted artifact"):
        cipher.decrypt_file(plain, tmp_path / "out", "b1/database.dump")
    with pytest.raises(BackupError, match="truncated"):
        cipher.decrypt_file(stub, tmp_path / "out", "b1/database.dump")


# --- the manifest ------------------------------------------------------------------------------


def manifest(encrypted: bool) -> Manifest:
    stored = Stored("database.dump.enc", "c" * 64, 120) if encrypted else None
    return Manifest(
        id="20261126T041548.123456Z-3f9a",
        created_at=datetime(2026, 11, 26, 4, 15, 48, tzinfo=UTC),
        app_version="0.1.0",
        migration_revision="0006",
        server_version="15.20",
        artifacts={"database.dump": Artifact("a" * 64, 100, stored)},
        tables={"users": TableStats(3, "b" * 64)},
        objects=ObjectsSummary(0, 0, "d" * 64),
        encryption=Encryption("AES-256-GCM", "0123456789abcdef") if encrypted else None,
    )


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_manifests_round_trip_and_only_encrypted_ones_are_format_2(encrypted: bool) -> None:
    original = manifest(encrypted)

    document = json.loads(original.to_json())

    assert Manifest.from_json(original.to_json()) == original
    assert document["format"] == (2 if encrypted else 1)
    assert ("encryption" in document) is encrypted
    assert original.size == (120 if encrypted else 100)  # what the store holds


def test_a_manifest_whose_encryption_parts_disagree_is_damaged() -> None:
    document = json.loads(manifest(True).to_json())
    del document["artifacts"]["database.dump"]["stored"]

    with pytest.raises(BackupError, match=r"manifest\.json is damaged"):
        Manifest.from_json(json.dumps(document))


# --- server-side encryption --------------------------------------------------------------------


def test_s3_uploads_ask_for_sse_s3_by_default_and_sse_kms_with_a_key_id() -> None:
    assert sse_arguments() == {"ServerSideEncryption": "AES256"}
    assert sse_arguments("aws:kms") == {"ServerSideEncryption": "aws:kms"}
    assert sse_arguments("aws:kms", "alias/backups") == {
        "ServerSideEncryption": "aws:kms",
        "SSEKMSKeyId": "alias/backups",
    }
    assert sse_arguments("none") == {}
    store = open_store("s3://bucket/prefix", sse="aws:kms", kms_key_id="alias/backups")
    assert isinstance(store, S3BackupStore)
    assert store.extra_args["SSEKMSKeyId"] == "alias/backups"


@pytest.mark.parametrize(
    ("sse", "kms_key_id", "message"),
    [
        ("aws:kms:dsse", None, "BACKUP_S3_SSE must be one of"),
        ("AES256", "alias/backups", "needs BACKUP_S3_SSE=aws:kms"),
    ],
)
def test_a_contradictory_sse_setting_is_refused_by_name(
    sse: str, kms_key_id: str | None, message: str
) -> None:
    with pytest.raises(BackupError, match=message):
        open_store("s3://bucket", sse=sse, kms_key_id=kms_key_id)
