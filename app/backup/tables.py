"""Per-table row counts and content hashes, the numbers a restore is checked against.

A table's hash is sha256 over the text form of each row (`t::text`), one per line, in
primary-key order. The rendering is pinned (UTC, ISO dates, shortest exact floats, hex
bytea) and the order compares keys as text under the "C" collation, so the same rows give
the same hash on any server and database whatever its locale or session defaults.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

import psycopg
from psycopg import sql

# Session settings that `t::text` depends on; SET LOCAL keeps them inside the transaction.
PINNED_SETTINGS = (
    "SET LOCAL TimeZone = 'UTC'",
    "SET LOCAL DateStyle = 'ISO, YMD'",
    "SET LOCAL IntervalStyle = 'postgres'",
    "SET LOCAL extra_float_digits = 1",
    "SET LOCAL bytea_output = 'hex'",
)
BATCH_ROWS = 5000


@dataclass(frozen=True)
class TableStats:
    rows: int
    sha256: str

    def as_json(self) -> dict[str, object]:
        return {"rows": self.rows, "sha256": self.sha256}


def public_tables(connection: psycopg.Connection[tuple[object, ...]]) -> list[str]:
    rows = connection.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY c.relname COLLATE \"C\""
    ).fetchall()
    return [str(row[0]) for row in rows]


def primary_key(connection: psycopg.Connection[tuple[object, ...]], table: str) -> list[str]:
    rows = connection.execute(
        "SELECT a.attname FROM pg_index i "
        "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
        "WHERE i.indrelid = %s::regclass AND i.indisprimary "
        "ORDER BY array_position(i.indkey::int2[], a.attnum)",
        (sql.Identifier("public", table).as_string(connection),),
    ).fetchall()
    return [str(row[0]) for row in rows]


def table_stats(connection: psycopg.Connection[tuple[object, ...]]) -> dict[str, TableStats]:
    """Counts and hashes of every table in the public schema, inside the caller's transaction
    (call it in the transaction whose snapshot pg_dump reads)."""
    for statement in PINNED_SETTINGS:
        connection.execute(statement)
    return {table: _one_table(connection, table) for table in public_tables(connection)}


def _one_table(connection: psycopg.Connection[tuple[object, ...]], table: str) -> TableStats:
    key = primary_key(connection, table)
    order = (
        sql.SQL(", ").join(
            sql.SQL('{}::text COLLATE "C"').format(sql.Identifier(column)) for column in key
        )
        if key
        else sql.SQL('t::text COLLATE "C"')  # no key: the whole row orders it
    )
    query = sql.SQL("SELECT t::text FROM {} AS t ORDER BY {}").format(
        sql.Identifier("public", table), order
    )
    digest = hashlib.sha256()
    rows = 0
    # A server-side cursor streams the table: memory stays flat whatever its size.
    with connection.cursor(name=f"hash_{uuid.uuid4().hex}") as cursor:
        cursor.itersize = BATCH_ROWS
        cursor.execute(query)
        for (text,) in cursor:
            digest.update(str(text).encode())
            digest.update(b"\n")
            rows += 1
    return TableStats(rows, digest.hexdigest())


def compare(expected: dict[str, TableStats], actual: dict[str, TableStats]) -> list[str]:
    """Every difference, one line each; empty when the two agree table by table."""
    problems: list[str] = []
    for table in sorted(expected.keys() - actual.keys()):
        problems.append(f"table {table}: missing after restore")
    for table in sorted(actual.keys() - expected.keys()):
        problems.append(f"table {table}: not in the backup")
    for table in sorted(expected.keys() & actual.keys()):
        want, got = expected[table], actual[table]
        if want.rows != got.rows:
            problems.append(f"table {table}: {got.rows} rows, the manifest says {want.rows}")
        elif want.sha256 != got.sha256:
            problems.append(f"table {table}: content hash differs from the manifest")
    return problems
