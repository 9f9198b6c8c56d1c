"""Create, list, verify and restore backups; the CLI in app/ops/backup_cli.py is a thin shell.

Consistency: the row counts and content hashes in the manifest are taken inside one
REPEATABLE READ transaction whose snapshot pg_dump imports (`pg_export_snapshot()` +
`pg_dump --snapshot`), so the dump and the numbers describe the same instant even while the
platform keeps writing. Object storage is not transactional: it is archived right after, so
it holds every object the dumped rows refer to unless one was deleted in between.

Encryption: given an `ArtifactCipher` (BACKUP_ENCRYPTION_KEY), every artifact is encrypted
before it leaves the machine and kept as `<name>.enc`; the manifest keeps the plaintext's
sha256 and size, so verify and restore decrypt and check exactly what they checked before.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from app.backup import pg
from app.backup.crypto import ALGORITHM, ArtifactCipher, BackupKeyError
from app.backup.errors import BackupError
from app.backup.manifest import (
    DATABASE_ARTIFACT,
    ENCRYPTED_SUFFIX,
    OBJECTS_ARTIFACT,
    Artifact,
    Encryption,
    Manifest,
    Stored,
    file_artifact,
    is_backup_id,
    new_backup_id,
)
from app.backup.objects import archive_objects, restore_objects, summarize
from app.backup.store import MANIFEST, BackupStore
from app.backup.tables import TableStats, compare, table_stats
from app.storage import Storage

Log = Callable[[str], None]


def _quiet(_message: str) -> None:
    """The default progress sink: say nothing."""


@dataclass(frozen=True)
class CreateResult:
    manifest: Manifest
    deleted: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RestoreResult:
    manifest: Manifest
    seconds: dict[str, float]
    objects_restored: int


def _app_version() -> str:
    from app import __version__  # late: app/__init__ imports the CLI that imports this

    return __version__


def _snapshot_dump(database_url: str, dump: Path) -> tuple[dict[str, TableStats], str | None, str]:
    target = pg.target_of(database_url)
    with target.connect() as connection:
        connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        connection.read_only = True
        row = connection.execute("SELECT pg_export_snapshot()").fetchone()
        assert row is not None  # noqa: S101 - the function always returns one row
        process = pg.start_dump(target, str(row[0]), dump)
        try:
            tables = table_stats(connection)
            revision = None
            if "alembic_version" in tables:
                found = connection.execute("SELECT version_num FROM alembic_version").fetchone()
                revision = str(found[0]) if found else None
            shown = connection.execute("SHOW server_version").fetchone()
            server = str(shown[0]) if shown else "unknown"
        except BaseException:
            process.kill()
            process.wait()
            raise
        # The transaction stays open until pg_dump is done: its snapshot must stay alive.
        pg.finish(process, "pg_dump")
        connection.rollback()
    return tables, revision, server.split(" ")[0]


def _seal(cipher: ArtifactCipher, backup_id: str, name: str, plain: Path) -> tuple[Artifact, Path]:
    """Encrypt `plain` beside itself; its artifact record (plaintext numbers + stored object)
    and the path of the encrypted file."""
    stored_name = f"{name}{ENCRYPTED_SUFFIX}"
    sealed = plain.with_name(stored_name)
    cipher.encrypt_file(plain, sealed, f"{backup_id}/{name}")
    plaintext, kept = file_artifact(plain), file_artifact(sealed)
    stored = Stored(stored_name, kept.sha256, kept.bytes)
    return Artifact(plaintext.sha256, plaintext.bytes, stored), sealed


def create_backup(
    database_url: str,
    storage: Storage,
    store: BackupStore,
    *,
    keep: int | None = None,
    exclude: Path | None = None,
    log: Log = _quiet,
    cipher: ArtifactCipher | None = None,
) -> CreateResult:
    """Dump the database and archive the objects into a new backup (encrypted under `cipher`
    when given); then apply retention."""
    if keep is not None and keep < 1:
        raise BackupError("--keep must be at least 1 (the backup just made)")
    backup_id = new_backup_id()
    created_at = datetime.now(UTC)
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="mastery-backup-") as work:
        dump, archive = Path(work) / DATABASE_ARTIFACT, Path(work) / OBJECTS_ARTIFACT
        started = time.perf_counter()
        log("dumping the database (pg_dump -Fc) and hashing its tables")
        tables, revision, server = _snapshot_dump(database_url, dump)
        seconds["database"] = round(time.perf_counter() - started, 3)
        started = time.perf_counter()
        log("archiving object storage")
        objects = archive_objects(storage, archive, exclude)
        seconds["objects"] = round(time.perf_counter() - started, 3)
        artifacts: dict[str, Artifact] = {}
        uploads: list[tuple[str, Path]] = []
        for name, path in ((DATABASE_ARTIFACT, dump), (OBJECTS_ARTIFACT, archive)):
            if cipher is None:
                artifacts[name] = file_artifact(path)
                uploads.append((name, path))
            else:
                artifacts[name], sealed = _seal(cipher, backup_id, name, path)
                uploads.append((sealed.name, sealed))
        if cipher is not None:
            log(f"encrypted the artifacts ({ALGORITHM}, key id {cipher.key_id})")
        manifest = Manifest(
            id=backup_id,
            created_at=created_at,
            app_version=_app_version(),
            migration_revision=revision,
            server_version=server,
            artifacts=artifacts,
            tables=tables,
            objects=objects,
            seconds=seconds,
            encryption=Encryption(ALGORITHM, cipher.key_id) if cipher is not None else None,
        )
        log(f"uploading to {store.describe()}")
        for name, path in uploads:
            store.upload(backup_id, name, path)
        manifest_path = Path(work) / MANIFEST
        manifest_path.write_text(manifest.to_json())
        store.upload(backup_id, MANIFEST, manifest_path)  # last: now the backup is complete
    deleted = prune(store, keep) if keep is not None else []
    return CreateResult(manifest, deleted)


def complete_ids(store: BackupStore) -> list[str]:
    return [i for i in store.ids() if is_backup_id(i) and store.has(i, MANIFEST)]


def prune(store: BackupStore, keep: int) -> list[str]:
    """Delete all but the newest `keep` complete backups; incomplete ones are left alone."""
    complete = complete_ids(store)
    doomed = complete[: max(len(complete) - keep, 0)]
    for backup_id in doomed:
        store.delete(backup_id)
    return doomed


def read_manifest(store: BackupStore, backup_id: str, work: Path) -> Manifest:
    if not is_backup_id(backup_id):
        raise BackupError(f"{backup_id!r} is not a backup id (e.g. 20261126T041548.123456Z-3f9a)")
    if not store.has(backup_id, MANIFEST):
        raise BackupError(
            f"backup {backup_id} has no {MANIFEST} in {store.describe()}: "
            "it does not exist or was never completed"
        )
    path = work / MANIFEST
    store.download(backup_id, MANIFEST, path)
    manifest = Manifest.from_json(path.read_bytes())
    if manifest.id != backup_id:
        raise BackupError(f"{MANIFEST} of {backup_id} describes another backup ({manifest.id})")
    return manifest


def list_backups(store: BackupStore) -> list[Manifest]:
    with tempfile.TemporaryDirectory(prefix="mastery-backup-") as work:
        return [read_manifest(store, i, Path(work)) for i in complete_ids(store)]


def _check(backup_id: str, name: str, path: Path, sha256: str, size: int) -> None:
    actual = file_artifact(path)
    if actual.bytes != size:
        state = "truncated" if actual.bytes < size else "longer than recorded"
        raise BackupError(
            f"{backup_id}/{name} is {state}: {actual.bytes} bytes, the manifest says {size}"
        )
    if actual.sha256 != sha256:
        raise BackupError(
            f"{backup_id}/{name} is corrupted: its sha256 is {actual.sha256}, "
            f"the manifest says {sha256}"
        )


def _usable_cipher(
    manifest: Manifest, cipher: ArtifactCipher | None, log: Log
) -> ArtifactCipher | None:
    """The cipher to decrypt `manifest`'s artifacts with; BackupKeyError when the backup is
    encrypted and the key is missing or another one."""
    encryption = manifest.encryption
    if encryption is None:
        if cipher is not None:
            log("this backup is not encrypted: BACKUP_ENCRYPTION_KEY is not needed for it")
        return None
    if encryption.algorithm != ALGORITHM:
        raise BackupError(
            f"backup {manifest.id} is encrypted with {encryption.algorithm}; this version "
            f"decrypts {ALGORITHM} only"
        )
    if cipher is None:
        raise BackupKeyError(
            f"backup {manifest.id} is encrypted ({ALGORITHM}, key id {encryption.key_id}): set "
            "BACKUP_ENCRYPTION_KEY (or BACKUP_ENCRYPTION_KEY_FILE) to the key it was made with"
        )
    if cipher.key_id != encryption.key_id:
        raise BackupKeyError(
            f"BACKUP_ENCRYPTION_KEY is not the key backup {manifest.id} was encrypted with "
            f"(the backup's key id is {encryption.key_id}, this key's is {cipher.key_id})"
        )
    return cipher


def _fetch_verified(
    store: BackupStore,
    backup_id: str,
    work: Path,
    log: Log,
    cipher: ArtifactCipher | None = None,
) -> Manifest:
    """Download every artifact into `work` (decrypted, under its plaintext name) and check it
    against the manifest: the stored object's size and sha256 first when it is encrypted,
    then, after the GCM tag, the plaintext's."""
    manifest = read_manifest(store, backup_id, work)
    for name in (DATABASE_ARTIFACT, OBJECTS_ARTIFACT):
        if name not in manifest.artifacts:
            raise BackupError(f"{MANIFEST} of {backup_id} lists no {name}")
    key = _usable_cipher(manifest, cipher, log)
    for name, expected in sorted(manifest.artifacts.items()):
        path = work / name
        stored = expected.stored
        if stored is None or key is None:
            store.download(backup_id, name, path)
        else:
            sealed = work / stored.name
            store.download(backup_id, stored.name, sealed)
            _check(backup_id, stored.name, sealed, stored.sha256, stored.bytes)
            key.decrypt_file(sealed, path, f"{backup_id}/{name}")
            sealed.unlink()
        _check(backup_id, name, path, expected.sha256, expected.bytes)
        how = "decrypted, GCM tag and sha256 ok" if stored is not None else "sha256 ok"
        log(f"{name}: {expected.bytes} bytes, {how}")
    pg.list_archive(work / DATABASE_ARTIFACT)
    return manifest


def verify_backup(
    store: BackupStore,
    backup_id: str,
    log: Log = _quiet,
    cipher: ArtifactCipher | None = None,
) -> Manifest:
    """Re-check the size and sha256 of every artifact (decrypting it first when the backup is
    encrypted); BackupError names the bad one."""
    with tempfile.TemporaryDirectory(prefix="mastery-backup-") as work:
        return _fetch_verified(store, backup_id, Path(work), log, cipher)


def restore_backup(
    store: BackupStore,
    backup_id: str,
    target_url: str,
    target_storage: Storage,
    *,
    force: bool = False,
    log: Log = _quiet,
    cipher: ArtifactCipher | None = None,
) -> RestoreResult:
    """Verify (and decrypt), then restore database and objects, then compare counts and
    hashes."""
    seconds: dict[str, float] = {}
    target = pg.target_of(target_url)
    with tempfile.TemporaryDirectory(prefix="mastery-restore-") as work:
        started = time.perf_counter()
        manifest = _fetch_verified(store, backup_id, Path(work), log, cipher)
        seconds["verify"] = time.perf_counter() - started

        with target.connect(autocommit=True) as connection:
            existing = pg.user_relations(connection)
            if existing and not force:
                shown = ", ".join(existing[:3]) + (" …" if len(existing) > 3 else "")
                raise BackupError(
                    f"target database {target.name!r} is not empty ({len(existing)} relations: "
                    f"{shown}); restore into an empty database, or pass --force to replace "
                    "its public schema"
                )
            if existing:
                log(f"--force: dropping the public schema of {target.name!r}")
                pg.reset_public_schema(connection)

        started = time.perf_counter()
        log(f"restoring the database into {target.name!r} (pg_restore)")
        pg.restore_dump(target, Path(work) / DATABASE_ARTIFACT)
        seconds["database"] = time.perf_counter() - started

        started = time.perf_counter()
        log("restoring objects")
        keys = restore_objects(Path(work) / OBJECTS_ARTIFACT, target_storage)
        seconds["objects"] = time.perf_counter() - started

    started = time.perf_counter()
    log("comparing row counts and content hashes with the manifest")
    with target.connect() as connection:
        connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        actual = table_stats(connection)
        connection.rollback()
    problems = compare(manifest.tables, actual)
    objects = summarize(target_storage, keys)
    if objects != manifest.objects:
        problems.append(
            f"objects: {objects.count} objects / {objects.bytes} bytes restored, the manifest "
            f"says {manifest.objects.count} / {manifest.objects.bytes} (or their content differs)"
        )
    seconds["check"] = time.perf_counter() - started
    if problems:
        raise BackupError("restored data differs from the manifest:\n  " + "\n  ".join(problems))
    return RestoreResult(manifest, seconds, len(keys))
