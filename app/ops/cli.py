"""The `flask --app app` command groups operators and developers use."""

from __future__ import annotations

# subprocess: runs only the repository's own drill script.
import subprocess  # nosec B404
import sys
import uuid
from pathlib import Path

import click
from alembic import command
from flask import Flask, current_app
from flask.cli import AppGroup
from kombu.exceptions import OperationalError as KombuOperationalError
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from app.audit.service import record as audit_record
from app.auth import passwords
from app.auth import service as auth_service
from app.auth import tokens
from app.auth.models import Role, User
from app.config import Settings
from app.db import get_session, utcnow
from app.errors import ProblemError
from app.jobs import service as jobs
from app.jobs import sweeper
from app.jobs.celery_app import get_celery, is_eager, send_generation
from app.migrations import alembic_config
from app.ops import anonymize_cli, backup_cli, load_data

db_cli = AppGroup("db", help="Database schema migrations (Alembic).")
seed_cli = AppGroup("seed", help="Load data into the database.")
keys_cli = AppGroup("keys", help="JWT signing keys.")
jobs_cli = AppGroup("jobs", help="Background jobs: find, sweep and re-queue stuck ones.")
alerts_cli = AppGroup("alerts", help="Alerting: the live alert drill.")
users_cli = AppGroup("users", help="Accounts operators manage outside the API.")

DEMO_USERS = (
    ("admin@mastery.local", "Demo Admin", Role.ADMIN, "mastery-demo-admin-pass"),
    (
        "instructor@mastery.local",
        "Demo Instructor",
        Role.INSTRUCTOR,
        "mastery-demo-instructor-pass",
    ),
    ("learner@mastery.local", "Demo Learner", Role.LEARNER, "mastery-demo-learner-pass"),
)


def _settings() -> Settings:
    settings: Settings = current_app.extensions["mastery.settings"]
    return settings


@db_cli.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Migrate the database up to REVISION (default: head)."""
    command.upgrade(alembic_config(_settings().database_url), revision)


@db_cli.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Migrate the database down to REVISION (e.g. base, -1)."""
    command.downgrade(alembic_config(_settings().database_url), revision)


@db_cli.command("revision")
@click.option("-m", "--message", required=True, help="What the migration does.")
def db_revision(message: str) -> None:
    """Autogenerate a migration from the difference between the models and the database."""
    command.revision(alembic_config(_settings().database_url), message, autogenerate=True)


@db_cli.command("check")
def db_check() -> None:
    """Fail when the models and the migrated database disagree (a migration is missing)."""
    command.check(alembic_config(_settings().database_url))


@seed_cli.command("demo")
def seed_demo() -> None:
    """Create (or reset) an admin, an instructor and a learner and print their credentials."""
    if _settings().is_hardened:
        raise click.ClickException("demo users are never seeded in staging or production")
    session = get_session()
    click.echo(f"{'role':<11} {'e-mail':<26} password")
    for email, name, role, password in DEMO_USERS:
        user = session.scalar(select(User).where(User.email == email))
        if user is None:
            user = User(email=email, display_name=name, role=role, password_hash="")
            session.add(user)
        user.password_hash = passwords.hash_password(password)
        user.role, user.is_active = role, True
        click.echo(f"{role.value:<11} {email:<26} {password}")
    session.commit()


@users_cli.command("create-admin")
@click.argument("email")
@click.option("--name", "display_name", default="Administrator", show_default=True)
@click.option(
    "--reset",
    is_flag=True,
    help="If the account exists: make it an active admin, set the password, end its sessions.",
)
@click.password_option(
    "--password",
    envvar="ADMIN_PASSWORD",
    help="Read from ADMIN_PASSWORD, else prompted for (never pass it on the command line).",
)
def users_create_admin(email: str, display_name: str, reset: bool, password: str) -> None:
    """Create the admin account EMAIL: the first admin of a new deployment, or the account a
    post-deploy smoke suite signs in with. Works in every environment, unlike `seed demo`.
    """
    email = auth_service.normalise_email(email)
    problem = passwords.policy_violation(password, email)
    if problem is not None:
        raise click.BadParameter(f"the password {problem}", param_hint="ADMIN_PASSWORD")
    session = get_session()
    user = session.scalar(select(User).where(User.email == email))
    if user is None:
        user = User(email=email, display_name=display_name, role=Role.ADMIN, password_hash="")
        session.add(user)
        action = "users.admin_created"
    elif not reset:
        raise click.ClickException(f"{email} already exists; add --reset to reset it")
    else:
        tokens.end_all_sessions(session, user, "admin_reset")
        action = "users.admin_reset"
    user.password_hash = passwords.hash_password(password)
    user.role, user.is_active = Role.ADMIN, True
    session.flush()
    audit_record(session, action, target_type="user", target_id=str(user.id))
    session.commit()
    click.echo(f"{action.removeprefix('users.').replace('_', ' ')}: {email}")


@keys_cli.command("rotate")
def keys_rotate() -> None:
    """Make a new signing key active; tokens signed by the old one verify until they expire."""
    session = get_session()
    key = current_app.extensions["mastery.keyring"].rotate(session)
    audit_record(session, "keys.rotated", target_type="signing_key", target_id=key.kid)
    session.commit()
    click.echo(f"active signing key: {key.kid}")


@jobs_cli.command("stuck")
def jobs_stuck() -> None:
    """List running jobs past their deadline (their worker died or hangs)."""
    now = utcnow()
    stuck = jobs.stuck_jobs(get_session(), now)
    if not stuck:
        click.echo("no stuck jobs")
        return
    click.echo(f"{'job id':<36}  {'kind':<14} {'attempts':>8}  {'started (UTC)':<19}  overdue")
    for job in stuck:
        started = job.started_at.strftime("%Y-%m-%d %H:%M:%S") if job.started_at else "-"
        overdue = int((now - job.deadline_at).total_seconds()) if job.deadline_at else 0
        click.echo(
            f"{job.id!s:<36}  {job.kind.value:<14} {job.attempts:>8}  {started:<19}  {overdue}s"
        )


@jobs_cli.command("requeue")
@click.argument("job_id", required=False, type=click.UUID)
@click.option("--stuck", "all_stuck", is_flag=True, help="Re-queue every stuck job.")
def jobs_requeue(job_id: uuid.UUID | None, all_stuck: bool) -> None:
    """Re-queue JOB_ID (stuck, failed or dead), or every stuck job with --stuck."""
    if (job_id is None) == (not all_stuck):
        raise click.UsageError("give a JOB_ID or --stuck (not both)")
    session = get_session()
    ids = [job.id for job in jobs.stuck_jobs(session)] if all_stuck else [job_id]
    failures = 0
    for one in ids:
        assert one is not None  # noqa: S101 - narrowed by the usage check above
        try:
            job = jobs.requeue(session, one, None, reason="operator requeue", via="cli")
        except ProblemError as error:
            failures += 1
            click.echo(f"{one}: not re-queued: {error.detail}", err=True)
            continue
        click.echo(f"{one}: re-queued (now {job.status.value})")
    if all_stuck and not ids:
        click.echo("no stuck jobs")
    if failures:
        raise SystemExit(1)


@jobs_cli.command("sweep")
def jobs_sweep() -> None:
    """Run one pass of the sweeper every worker runs: re-queue each running job past its
    deadline (or end it `dead` when its lost run was its last attempt), audited."""
    celery = get_celery()
    try:
        swept = sweeper.sweep(
            get_session(),
            lambda job_id, request_id: send_generation(celery, job_id, request_id),
            eager=is_eager(),
            strict=True,
        )
    except (KombuOperationalError, OSError, SQLAlchemyError) as error:
        raise click.ClickException(
            f"nothing swept: the broker or the database is unavailable ({type(error).__name__})"
        ) from error
    if not swept:
        click.echo("nothing to sweep")
    for done in swept:
        click.echo(
            f"{done.job_id}: {done.outcome} by the sweeper "
            f"(attempts {done.attempts} of {done.max_attempts})"
        )


@alerts_cli.command("drill", context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def alerts_drill(args: tuple[str, ...]) -> None:
    """Run the live alert drill (ops/drill/alert_drill.py; the same as `nox -s alert-drill`).

    It needs a source checkout and Prometheus, Alertmanager and redis-server on PATH; ARGS go
    to the drill (`--keep` keeps its working directory).
    """
    script = Path(current_app.root_path).parent / "ops" / "drill" / "alert_drill.py"
    if not script.is_file():
        raise click.ClickException(f"no drill script at {script}: run this from a source checkout")
    command = [sys.executable, str(script), *args]
    raise SystemExit(subprocess.call(command))  # noqa: S603 - the repository's own script


def init_app(app: Flask) -> None:
    seed_cli.add_command(load_data.seed_load_command)  # `seed load`: the load-test data set
    for group in (db_cli, seed_cli, users_cli, keys_cli, jobs_cli, alerts_cli):
        app.cli.add_command(group)
    # Backups and anonymisation (docs/data-management.md).
    app.cli.add_command(backup_cli.backup_cli)
    app.cli.add_command(anonymize_cli.anonymize_command)
    app.cli.add_command(anonymize_cli.anonymize_logs_command)
