"""Copy a database with every personal field replaced, following `policy.POLICY`.

The target gets the source's schema in two halves around the data: tables and types first
(`pg_restore --section=pre-data` of a schema-only dump), then the anonymised rows streamed
with COPY, then indexes, constraints and triggers (`--section=post-data`). Building the
constraints last makes Postgres re-check every foreign key and unique index against the
copied rows, and the audit log's append-only trigger never stands in the way.

Only transformed rows are ever written, so an interrupted run cannot leave real personal
data in the target; the rows are written in one transaction. The source is read in one
REPEATABLE READ snapshot (the schema dump shares it), so the copy is consistent.
"""

from __future__ import annotations

import json
import secrets
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from app.anonymize.policy import POLICY, Rule, unruled_columns
from app.anonymize.pseudonyms import NameIndex, Pseudonymizer
from app.auth import passwords
from app.backup import pg
from app.backup.errors import BackupError

Connection = psycopg.Connection[tuple[object, ...]]
BATCH_ROWS = 2000


class AnonymizeError(Exception):
    """The copy could not be made; the message says why."""


@dataclass(frozen=True)
class CopyReport:
    rows: dict[str, int]  # per copied table
    emptied: list[str]


def source_schema(connection: Connection) -> dict[str, list[str]]:
    """{table: [columns in order]} of the public schema."""
    rows = connection.execute(
        "SELECT c.relname, a.attname FROM pg_attribute a "
        "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND a.attnum > 0 "
        "AND NOT a.attisdropped ORDER BY c.relname, a.attnum"
    ).fetchall()
    schema: dict[str, list[str]] = {}
    for table, column in rows:
        schema.setdefault(str(table), []).append(str(column))
    return schema


class _Transformer:
    """Applies one rule to one value, all values arriving as Postgres text (or None)."""

    def __init__(self, pseudonyms: Pseudonymizer, names: NameIndex) -> None:
        self.p = pseudonyms
        self.names = names
        self._password: str | None = None

    def unusable_password(self) -> str:
        if self._password is None:
            # Hashed once per run: a valid Argon2 hash whose password nobody ever saw.
            self._password = passwords.hash_password(secrets.token_urlsafe(32))
        return self._password

    def apply(self, rule: Rule, value: str | None) -> str | None:
        if value is None or rule is Rule.KEEP:
            return value
        if rule is Rule.EMAIL:
            return self.p.email(value)
        if rule is Rule.NAME:
            return self.p.name(value)
        if rule is Rule.IP:
            return self.p.ip(value)
        if rule is Rule.OPAQUE:
            return self.p.opaque(value)
        if rule is Rule.REQUEST_ID:
            return self.p.request_id(value)
        if rule is Rule.FREE_TEXT:
            return self.p.scrub_text(value, self.names)
        if rule is Rule.JSON:
            return json.dumps(self.p.scrub_json(json.loads(value), self.names))
        if rule is Rule.UNUSABLE_PASSWORD:
            return self.unusable_password()
        raise AssertionError(f"unhandled rule {rule}")


def anonymize_database(
    source_url: str,
    target_url: str,
    pseudonyms: Pseudonymizer,
    *,
    force: bool = False,
    log: Callable[[str], None] = lambda _message: None,
) -> CopyReport:
    """Write the anonymised copy of `source_url` into `target_url` (empty unless `force`)."""
    try:
        source, target = pg.target_of(source_url), pg.target_of(target_url)
    except BackupError as error:
        raise AnonymizeError(str(error)) from error
    if (source.conninfo, source.name) == (target.conninfo, target.name):
        raise AnonymizeError("the source and the target are the same database")
    try:
        return _copy(source, target, pseudonyms, force, log)
    except BackupError as error:
        raise AnonymizeError(str(error)) from error


def _copy(
    source: pg.Target,
    target: pg.Target,
    pseudonyms: Pseudonymizer,
    force: bool,
    log: Callable[[str], None],
) -> CopyReport:
    with source.connect() as reader, target.connect(autocommit=True) as admin:
        existing = pg.user_relations(admin)
        if existing and not force:
            raise AnonymizeError(
                f"target database {target.name!r} is not empty ({len(existing)} relations, "
                f"e.g. {existing[0]}); use an empty database or pass --force"
            )
        reader.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        reader.read_only = True
        reader.execute("SET LOCAL extra_float_digits = 1")  # floats as exact text
        schema = source_schema(reader)
        missing = unruled_columns(schema)
        if missing:
            raise AnonymizeError(
                "the anonymisation policy (app/anonymize/policy.py) has no rule for: "
                + ", ".join(missing)
            )
        if existing:
            log(f"--force: dropping the public schema of {target.name!r}")
            pg.reset_public_schema(admin)
        row = reader.execute("SELECT pg_export_snapshot()").fetchone()
        assert row is not None  # noqa: S101 - always one row
        with tempfile.TemporaryDirectory(prefix="mastery-anonymize-") as work:
            dump = Path(work) / "schema.dump"
            pg.finish(pg.start_dump(source, str(row[0]), dump, schema_only=True), "pg_dump")
            log("creating the schema (pre-data)")
            pg.restore_dump(target, dump, "pre-data")
            names = NameIndex(
                [str(r[0]) for r in reader.execute("SELECT display_name FROM users").fetchall()]
                if "users" in schema
                else []
            )
            transformer = _Transformer(pseudonyms, names)
            counts: dict[str, int] = {}
            emptied: list[str] = []
            with target.connect() as writer:
                for table, columns in schema.items():
                    policy = POLICY[table]
                    if not policy.copy_rows:
                        emptied.append(table)
                        continue
                    log(f"copying {table}")
                    counts[table] = _copy_table(reader, writer, table, columns, transformer)
                writer.commit()
            log("creating indexes, constraints and triggers (post-data)")
            pg.restore_dump(target, dump, "post-data")
        reader.rollback()
    return CopyReport(counts, sorted(emptied))


def _copy_table(
    reader: Connection,
    writer: Connection,
    table: str,
    columns: list[str],
    transformer: _Transformer,
) -> int:
    rules = [POLICY[table].columns[column] for column in columns]
    select = sql.SQL("SELECT {} FROM {}").format(
        sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c)) for c in columns),
        sql.Identifier("public", table),
    )
    copy = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier("public", table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    count = 0
    with (
        reader.cursor(name=f"anon_{uuid.uuid4().hex}") as cursor,
        writer.cursor() as out,
        out.copy(copy) as sink,
    ):
        cursor.itersize = BATCH_ROWS
        cursor.execute(select)
        for record in cursor:
            values = [str(v) if v is not None else None for v in record]  # all ::text
            sink.write_row(
                [transformer.apply(rule, value) for rule, value in zip(rules, values, strict=True)]
            )
            count += 1
    return count
