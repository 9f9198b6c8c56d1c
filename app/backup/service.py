"""Create, list, verify and restore backups; the CLI in app/ops/backup_cli.py is a thin shell.

Consistency: the row counts and content hashes in the manifest are taken inside one
REPEATABLE READ transaction whose snapshot pg_dump imports (`pg_export_snapshot()` +
`pg_dump --snapshot`), so the dump and the numbers describe the same instant even while the
platform keeps writing. Object storage is not transactional: it is archived right after, so
it holds every object the dumped rows refer to unless one was deleted in between.
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
from app.backup.errors import BackupError
from app.backup.manifest import (
    DATABASE_ARTIFACT,
    OBJECTS_ARTIFACT,
    Manifest,
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


def create_backup(
    database_url: str,
    storage: Storage,
    store: BackupStore,
    *,
    keep: int | None = None,
    exclude: Path | None = None,
    log: Log = _quiet,
) -> CreateResult:
    """Dump the database and archive the objects into a new backup; then apply retention."""
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
        manifest = Manifest(
            id=backup_id,
            created_at=created_at,
            app_version=_app_version(),
            migration_revision=revision,
            server_version=server,
            artifacts={
                DATABASE_ARTIFACT: file_artifact(dump),
                OBJECTS_ARTIFACT: file_artifact(archive),
            },
            tables=tables,
            objects=objects,
            seconds=seconds,
        )
        log(f"uploading to {store.describe()}")
        store.upload(backup_id, DATABASE_ARTIFACT, dump)
        store.upload(backup_id, OBJECTS_ARTIFACT, archive)
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


def _fetch_verified(store: BackupStore, backup_id: str, work: Path, log: Log) -> Manifest:
    """Download every artifact into `work` and check it against the manifest."""
    manifest = read_manifest(store, backup_id, work)
    for name in (DATABASE_ARTIFACT, OBJECTS_ARTIFACT):
        if name not in manifest.artifacts:
            raise BackupError(f"{MANIFEST} of {backup_id} lists no {name}")
    for name, expected in sorted(manifest.artifacts.items()):
        path = work / name
        store.download(backup_id, name, path)
        actual = file_artifact(path)
        if actual.bytes != expected.bytes:
            state = "truncated" if actual.bytes < expected.bytes else "longer than recorded"
            raise BackupError(
                f"{backup_id}/{name} is {state}: "
                f"{actual.bytes} bytes, the manifest says {expected.bytes}"
            )
        if actual.sha256 != expected.sha256:
            raise BackupError(
                f"{backup_id}/{name} is corrupted: its sha256 is {actual.sha256}, "
                f"the manifest says {expected.sha256}"
            )
        log(f"{name}: {actual.bytes} bytes, sha256 ok")
    pg.list_archive(work / DATABASE_ARTIFACT)
    return manifest


def verify_backup(store: BackupStore, backup_id: str, log: Log = _quiet) -> Manifest:
    """Re-check the size and sha256 of every artifact; BackupError names the bad one."""
    with tempfile.TemporaryDirectory(prefix="mastery-backup-") as work:
        return _fetch_verified(store, backup_id, Path(work), log)


def restore_backup(
    store: BackupStore,
    backup_id: str,
    target_url: str,
    target_storage: Storage,
    *,
    force: bool = False,
    log: Log = _quiet,
) -> RestoreResult:
    """Verify, then restore database and objects, then compare counts and hashes."""
    seconds: dict[str, float] = {}
    target = pg.target_of(target_url)
    with tempfile.TemporaryDirectory(prefix="mastery-restore-") as work:
        started = time.perf_counter()
        manifest = _fetch_verified(store, backup_id, Path(work), log)
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
