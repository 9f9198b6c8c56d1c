"""Talking to PostgreSQL for backups: connection parameters, pg_dump and pg_restore.

SQLAlchemy URLs (`postgresql+psycopg://user@host/db`, maybe with a password) become a libpq
conninfo without the password; the password travels in `PGPASSWORD` in the child's
environment, so it never shows in a process listing, an error message or a log line.
"""

from __future__ import annotations

import os
import shutil

# subprocess: pg_dump/pg_restore with fixed argument lists.
import subprocess  # nosec B404
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from app.backup.errors import BackupError

INSTALL_HINT = (
    "install the PostgreSQL client tools of the server's major version "
    "(Debian/Ubuntu: apt-get install postgresql-client-15) or put them on PATH"
)
# libpq options a URL's query string may carry (e.g. ?sslmode=require).
PASSTHROUGH_OPTIONS = {
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "connect_timeout",
    "application_name",
    "options",
    "target_session_attrs",
}


@dataclass(frozen=True)
class Target:
    """Where a database is: a conninfo without secrets, plus the password (if any)."""

    conninfo: str
    password: str | None
    name: str  # the database name, for messages

    def connect(self, *, autocommit: bool = False) -> psycopg.Connection[tuple[object, ...]]:
        try:
            return psycopg.connect(self.conninfo, password=self.password, autocommit=autocommit)
        except psycopg.OperationalError as error:
            # libpq's message names host and database, never the password.
            raise BackupError(f"cannot connect to database {self.name!r}: {error}") from error

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("PGPASSWORD", None)
        if self.password:
            env["PGPASSWORD"] = self.password
        return env


def target_of(url: str) -> Target:
    """Parse a DATABASE_URL-style URL; only PostgreSQL can be backed up."""
    try:
        parsed = make_url(url)
    except ArgumentError as error:
        raise BackupError("not a database URL (expected postgresql://user@host/db)") from error
    if parsed.get_backend_name() != "postgresql":
        raise BackupError(
            f"backups need PostgreSQL; this URL is {parsed.get_backend_name()}:// "
            "(SQLite is for local development only)"
        )
    if not parsed.database:
        raise BackupError("the database URL names no database")
    params: dict[str, str] = {"dbname": parsed.database}
    if parsed.host:
        params["host"] = parsed.host
    if parsed.port:
        params["port"] = str(parsed.port)
    if parsed.username:
        params["user"] = parsed.username
    for key, value in parsed.query.items():
        if key in PASSTHROUGH_OPTIONS or key == "host":
            params[key] = value if isinstance(value, str) else value[-1]
    return Target(make_conninfo(**params), parsed.password, parsed.database)


def tool(name: str) -> str:
    """The path of pg_dump/pg_restore; a loud error with install instructions when missing."""
    found = shutil.which(name)
    if found is None:
        for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
            return str(candidate)
        raise BackupError(f"{name} is not installed: {INSTALL_HINT}")
    return found


def start_dump(
    target: Target, snapshot: str, path: Path, *, schema_only: bool = False
) -> subprocess.Popen[bytes]:
    """Start `pg_dump -Fc` reading the exported `snapshot` (the caller's transaction)."""
    command = [
        tool("pg_dump"),
        "--format=custom",
        *(["--schema-only"] if schema_only else []),
        "--no-password",
        f"--snapshot={snapshot}",
        f"--file={path}",
        f"--dbname={target.conninfo}",
    ]
    return subprocess.Popen(  # noqa: S603 - fixed argument list  # nosec B603
        command, env=target.environment(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def finish(process: subprocess.Popen[bytes], what: str) -> None:
    _, stderr = process.communicate()
    if process.returncode != 0:
        message = stderr.decode(errors="replace").strip().splitlines()
        detail = "; ".join(message[-3:]) or f"exit status {process.returncode}"
        raise BackupError(f"{what} failed: {detail}")


def list_archive(path: Path) -> None:
    """`pg_restore --list`: proves the dump is a readable custom-format archive."""
    process = subprocess.Popen(  # noqa: S603 - fixed argument list  # nosec B603
        [tool("pg_restore"), "--list", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    finish(process, "reading the dump's table of contents (pg_restore --list)")


def restore_dump(target: Target, path: Path, section: str | None = None) -> None:
    """Load the dump (or one section of it) in one transaction: a failure leaves the target
    as it was."""
    command = [
        tool("pg_restore"),
        *([f"--section={section}"] if section else []),
        "--no-password",
        "--no-owner",
        "--no-privileges",
        "--exit-on-error",
        "--single-transaction",
        f"--dbname={target.conninfo}",
        str(path),
    ]
    process = subprocess.Popen(  # noqa: S603 - fixed argument list  # nosec B603
        command, env=target.environment(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    finish(process, f"pg_restore{f' --section={section}' if section else ''}")


def user_relations(connection: psycopg.Connection[tuple[object, ...]]) -> list[str]:
    """Tables, views and sequences outside the system schemas: empty means safe to fill."""
    rows = connection.execute(
        "SELECT n.nspname || '.' || c.relname FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') "
        "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
        "AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%' "
        "ORDER BY 1"
    ).fetchall()
    return [str(row[0]) for row in rows]


def reset_public_schema(connection: psycopg.Connection[tuple[object, ...]]) -> None:
    """Drop everything in the public schema (the --force path) and recreate it empty."""
    connection.execute("DROP SCHEMA IF EXISTS public CASCADE")
    connection.execute("CREATE SCHEMA public")
