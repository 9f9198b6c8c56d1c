"""Backups with verified restores: `pg_dump -Fc` of the database, a tar archive of object
storage and a manifest (checksums, per-table row counts and content hashes, migration
revision, app version, time), kept in a local directory or an S3-compatible store.

`service` holds the operations (`create_backup`, `verify_backup`, `restore_backup`,
`list_backups`); the command line is `flask --app app backup …` (app/ops/backup_cli.py).
"""

from app.backup.errors import BackupError

__all__ = ["BackupError"]
