"""`flask --app app backup create|list|verify|restore`: backups with verified restores.

The logic lives in app/backup/; this module parses options, prints, and turns a
`BackupError` into a non-zero exit with its message.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import click
from alembic.script import ScriptDirectory
from flask import current_app
from flask.cli import AppGroup

from app.backup import service
from app.backup.crypto import ArtifactCipher, load_cipher
from app.backup.errors import BackupError
from app.backup.store import BackupStore, LocalBackupStore, open_store
from app.config import Settings
from app.migrations import alembic_config
from app.storage import Storage, StorageConfigError, build_storage, get_storage

backup_cli = AppGroup("backup", help="Backups: create, list, verify and restore them.")

LOCATION_HELP = (
    "Backup location: a directory, file://… or s3://bucket/prefix (default: BACKUP_URL)."
)


def _settings() -> Settings:
    settings: Settings = current_app.extensions["mastery.settings"]
    return settings


def _store(url: str | None) -> BackupStore:
    settings = _settings()
    return open_store(
        url if url is not None else settings.backup_url,
        sse=settings.backup_s3_sse,
        kms_key_id=settings.backup_s3_kms_key_id,
    )


def _cipher() -> ArtifactCipher | None:
    """BACKUP_ENCRYPTION_KEY as a cipher (None when unset); BackupError when malformed."""
    key = _settings().backup_encryption_key
    return load_cipher(key.get_secret_value() if key is not None else None)


def _progress(message: str) -> None:
    click.echo(f"  {message}", err=True)  # stderr: stdout stays parseable (id first)


@contextmanager
def _failures() -> Iterator[None]:
    try:
        yield
    except BackupError as error:
        raise click.ClickException(str(error)) from error


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:.2f} MB"


@backup_cli.command("create")
@click.option("--to", "url", help=LOCATION_HELP)
@click.option(
    "--keep",
    type=click.IntRange(min=1),
    default=None,
    help="Afterwards delete all but the newest N complete backups (default: BACKUP_KEEP).",
)
def create(url: str | None, keep: int | None) -> None:
    """Dump the database, archive object storage and write a manifest; print the backup id."""
    settings = _settings()
    with _failures():
        store = _store(url)
        storage = get_storage()
        exclude = store.root if isinstance(store, LocalBackupStore) else None
        result = service.create_backup(
            settings.database_url,
            storage,
            store,
            keep=keep if keep is not None else settings.backup_keep,
            exclude=exclude,
            log=_progress,
            cipher=_cipher(),
        )
    manifest = result.manifest
    click.echo(manifest.id)
    rows = sum(table.rows for table in manifest.tables.values())
    click.echo(
        f"backup {manifest.id} in {store.describe()}: {len(manifest.tables)} tables, {rows} rows, "
        f"{manifest.objects.count} objects, {_megabytes(manifest.size)}, revision "
        f"{manifest.migration_revision}, took {sum(manifest.seconds.values()):.2f} s"
    )
    for deleted in result.deleted:
        click.echo(f"retention: deleted backup {deleted}")


@backup_cli.command("list")
@click.option("--from", "url", help=LOCATION_HELP)
def list_command(url: str | None) -> None:
    """Complete backups, oldest first: id, time, size, migration revision, and the key id of
    the encrypted ones."""
    with _failures():
        manifests = service.list_backups(_store(url))
    if not manifests:
        click.echo("no backups")
        return
    click.echo(f"{'id':<28} {'created (UTC)':<19} {'size':>11}  revision  app")
    for manifest in manifests:
        click.echo(
            f"{manifest.id:<28} {manifest.created_at:%Y-%m-%d %H:%M:%S} "
            f"{_megabytes(manifest.size):>11}  {manifest.migration_revision or '-':<8}  "
            f"{manifest.app_version}"
            + (f"  encrypted, key id {manifest.encryption.key_id}" if manifest.encryption else "")
        )


@backup_cli.command("verify")
@click.argument("backup_id")
@click.option("--from", "url", help=LOCATION_HELP)
def verify(backup_id: str, url: str | None) -> None:
    """Re-check the size and sha256 of every artifact of BACKUP_ID against its manifest."""
    started = time.perf_counter()
    with _failures():
        service.verify_backup(_store(url), backup_id, log=_progress, cipher=_cipher())
    click.echo(f"backup {backup_id} verified in {time.perf_counter() - started:.2f} s")


def _target_storage(url: str | None) -> Storage:
    if url is None:
        return get_storage()
    try:
        return build_storage(_settings().model_copy(update={"storage_url": url}))
    except StorageConfigError as error:
        raise click.BadParameter(str(error), param_hint="--target-storage-url") from error


@backup_cli.command("restore")
@click.argument("backup_id")
@click.option(
    "--target-url",
    required=True,
    help="Database to restore into (must exist; empty unless --force).",
)
@click.option(
    "--target-storage-url",
    help="Object storage to restore into, as STORAGE_URL (default: the configured STORAGE_URL).",
)
@click.option("--force", is_flag=True, help="Replace the public schema of a non-empty target.")
@click.option("--from", "url", help=LOCATION_HELP)
def restore(
    backup_id: str,
    target_url: str,
    target_storage_url: str | None,
    force: bool,
    url: str | None,
) -> None:
    """Verify BACKUP_ID, restore it, and check every table's count and hash against it."""
    started = time.perf_counter()
    storage = _target_storage(target_storage_url)
    with _failures():
        result = service.restore_backup(
            _store(url),
            backup_id,
            target_url,
            storage,
            force=force,
            log=_progress,
            cipher=_cipher(),
        )
    elapsed = time.perf_counter() - started
    phases = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in result.seconds.items())
    rows = sum(table.rows for table in result.manifest.tables.values())
    click.echo(
        f"restored backup {backup_id}: {len(result.manifest.tables)} tables and {rows} rows "
        f"match the manifest, {result.objects_restored} objects restored"
    )
    click.echo(f"restore took {elapsed:.2f} s ({phases})")
    head = ScriptDirectory.from_config(alembic_config(target_url)).get_current_head()
    if result.manifest.migration_revision != head:
        click.echo(
            f"note: the restored schema is at migration {result.manifest.migration_revision}, "
            f"this version of the app expects {head}: run `flask --app app db upgrade` with "
            "DATABASE_URL pointing at the target before starting the app on it"
        )
