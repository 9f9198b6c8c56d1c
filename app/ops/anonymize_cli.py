"""`flask --app app anonymize` and `flask --app app anonymize-logs`: anonymised copies of a
database and of JSON log files (app/anonymize/). The pseudonym key is ANONYMIZE_KEY."""

from __future__ import annotations

import time
from typing import IO, TYPE_CHECKING

import click
from flask import current_app
from flask.cli import with_appcontext

from app.config import Settings

if TYPE_CHECKING:
    from app.anonymize.pseudonyms import Pseudonymizer

# app/anonymize is imported inside the commands: Faker costs every other `flask` command
# (and every web worker start) a second otherwise.


def _pseudonymizer() -> Pseudonymizer:
    from app.anonymize.pseudonyms import AnonymizeKeyError, Pseudonymizer

    settings: Settings = current_app.extensions["mastery.settings"]
    key = settings.anonymize_key.get_secret_value() if settings.anonymize_key else ""
    if not key.strip():
        raise click.ClickException(
            "ANONYMIZE_KEY is not set: export a secret of at least 16 characters (keep it; the "
            "same key gives the same pseudonyms), e.g. ANONYMIZE_KEY=$(openssl rand -hex 32)"
        )
    try:
        return Pseudonymizer(key)
    except AnonymizeKeyError as error:
        raise click.ClickException(str(error)) from error


def _progress(message: str) -> None:
    click.echo(f"  {message}", err=True)


@click.command("anonymize")
@with_appcontext
@click.option("--source-url", required=True, help="Database to read (e.g. a restored backup).")
@click.option("--target-url", required=True, help="Empty database to write the copy into.")
@click.option("--force", is_flag=True, help="Replace the public schema of a non-empty target.")
def anonymize_command(source_url: str, target_url: str, force: bool) -> None:
    """Copy a database with every personal field pseudonymised (policy: app/anonymize/policy.py)."""
    from app.anonymize.database import AnonymizeError, anonymize_database

    pseudonyms = _pseudonymizer()
    started = time.perf_counter()
    try:
        report = anonymize_database(source_url, target_url, pseudonyms, force=force, log=_progress)
    except AnonymizeError as error:
        raise click.ClickException(str(error)) from error
    rows = sum(report.rows.values())
    click.echo(
        f"anonymised copy written: {len(report.rows)} tables, {rows} rows, emptied "
        f"{', '.join(report.emptied) or 'nothing'}; took {time.perf_counter() - started:.2f} s"
    )


@click.command("anonymize-logs")
@with_appcontext
@click.argument("source", type=click.File("r", encoding="utf-8", errors="replace"))
@click.argument("destination", type=click.File("w", encoding="utf-8", atomic=True))
def anonymize_logs_command(source: IO[str], destination: IO[str]) -> None:
    """Anonymise the JSON log file SOURCE into DESTINATION (`-` for stdin/stdout)."""
    from app.anonymize.logs import LogAnonymizer

    anonymizer = LogAnonymizer(_pseudonymizer())
    count = 0
    for line in anonymizer.lines(source):
        destination.write(line)
        count += 1
    click.echo(f"{count} lines anonymised", err=True)
