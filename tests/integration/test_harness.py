"""Meta-tests: the harness really isolates tests, clones per worker and blocks the network, and
two runs at the same time on one Postgres and one Redis server keep out of each other's way."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from flask.testing import FlaskClient
from pytest_socket import SocketConnectBlockedError
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from app.auth.models import User
from tests.plugins.database import (
    TEMPLATE_IN_USE_LOCK,
    TEMPLATE_KEY,
    TEMPLATE_PREFIX,
    _drop_abandoned_worker_databases,
    drop_template_if_unused,
    ensure_template,
    migrations_fingerprint,
    template_lock_key,
    worker_database_name,
)
from tests.plugins.redis_claims import CLAIM_KEY, Claim, ClaimLost, claim_database, server_url
from tests.plugins.services import start_local_postgres, start_local_redis
from tools.processes import ROOT, wait_until

PROBE_EMAIL = "isolation-probe@example.com"
REGISTRATION = {
    "email": PROBE_EMAIL,
    "password": "a long enough passphrase",
    "display_name": "Probe",
}


def probe_count(session: Session) -> int:
    return (
        session.scalar(select(func.count()).select_from(User).where(User.email == PROBE_EMAIL)) or 0
    )


@pytest.mark.xdist_group("isolation")
@pytest.mark.parametrize("turn", ["first", "second"])
def test_a_row_committed_by_one_test_is_absent_in_the_next(
    client: FlaskClient, db_session: Session, turn: str
) -> None:
    """Both turns commit the same row through the API; the second only passes if it vanished."""
    assert probe_count(db_session) == 0

    assert client.post("/auth/register", json=REGISTRATION).status_code == 201

    assert probe_count(db_session) == 1


@pytest.mark.commits
@pytest.mark.xdist_group("isolation")
@pytest.mark.parametrize("turn", ["first", "second"])
def test_commits_marker_writes_for_real_and_is_cleaned_after(
    client: FlaskClient, engine: Engine, turn: str
) -> None:
    with Session(engine) as before:
        assert probe_count(before) == 0

    assert client.post("/auth/register", json=REGISTRATION).status_code == 201

    # A brand-new connection outside the test's own sees the row: it was really committed.
    with Session(engine) as other:
        assert probe_count(other) == 1


def test_each_worker_has_its_own_database_cloned_from_the_template(
    db_connection: Connection, worker_id_name: str, pytestconfig: pytest.Config
) -> None:
    name = db_connection.scalar(text("SELECT current_database()"))

    assert name.endswith(f"_{worker_id_name}")
    assert name != pytestconfig.stash[TEMPLATE_KEY]
    assert db_connection.scalar(text("SELECT version_num FROM alembic_version")) is not None


def test_worker_database_names_differ_per_worker() -> None:
    assert worker_database_name("42", "gw0") != worker_database_name("42", "gw1")
    assert worker_database_name("42", "gw0") != worker_database_name("43", "gw0")


def test_the_template_is_reused_while_migrations_are_unchanged(
    postgres_server_url: str, pytestconfig: pytest.Config
) -> None:
    template = ensure_template(postgres_server_url)

    assert template.created is False
    assert template.name == pytestconfig.stash[TEMPLATE_KEY]
    assert ensure_template(postgres_server_url).oid == template.oid


def test_the_template_name_changes_when_a_migration_changes(
    tmp_path: Path,
) -> None:
    from app.migrations import MIGRATIONS_DIR

    copy = tmp_path / "migrations"
    (copy / "versions").mkdir(parents=True)
    for path in MIGRATIONS_DIR.rglob("*.py"):
        if "__pycache__" not in path.parts:
            (copy / path.relative_to(MIGRATIONS_DIR)).write_bytes(path.read_bytes())
    assert migrations_fingerprint(copy) == migrations_fingerprint()

    (copy / "versions" / "0002_more.py").write_text("revision = '0002'\n")

    assert migrations_fingerprint(copy) != migrations_fingerprint()


def test_outbound_network_beyond_loopback_is_blocked() -> None:
    # A reserved .invalid name: if the guard were missing, resolution fails differently
    # (gaierror) and no packet can reach a real host.
    with (
        socket.socket() as sock,
        pytest.raises(SocketConnectBlockedError),
        pytest.warns(UserWarning, match="example.invalid"),
    ):
        sock.connect(("example.invalid", 80))


def test_loopback_stays_reachable(redis_client: redis.Redis) -> None:
    assert redis_client.ping() is True


def test_a_throwaway_postgres_starts_from_local_binaries() -> None:
    service = start_local_postgres()
    assert service is not None, "PostgreSQL server binaries are required for this check"
    try:
        engine = create_engine(service.url)
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT 1")) == 1
        engine.dispose()
    finally:
        assert service.stop is not None
        service.stop()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(
            service.url.replace("postgresql+psycopg", "postgresql"), connect_timeout=2
        ).close()


def test_a_throwaway_redis_starts_from_local_binaries() -> None:
    service = start_local_redis()
    assert service is not None, "redis-server is required for this check"
    try:
        client = redis.Redis.from_url(service.url)
        key = uuid.uuid4().hex
        client.set(key, "1")
        assert client.get(key) == b"1"
        client.close()
    finally:
        assert service.stop is not None
        service.stop()


# --- runs at the same time: Redis databases ------------------------------------------------------

PROBE_KEY = "harness-probe"


@pytest.mark.redis
@pytest.mark.xdist_group("isolation")
@pytest.mark.parametrize("turn", ["first", "second"])
def test_the_redis_marker_starts_each_test_on_an_empty_database(redis_url: str, turn: str) -> None:
    """Both turns leave a key behind; the second only passes if the marker flushed it."""
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.get(PROBE_KEY) is None

        client.set(PROBE_KEY, turn)
    finally:
        client.close()


@pytest.fixture
def private_redis() -> Iterator[str]:
    """A redis-server of this test's own, so it may arrange any database it likes."""
    service = start_local_redis()
    assert service is not None, "redis-server is required for this check"
    yield service.url
    assert service.stop is not None
    service.stop()


def test_claims_on_one_server_never_share_a_database_nor_take_one_with_foreign_data(
    private_redis: str,
) -> None:
    foreign = redis.Redis.from_url(f"{private_redis}/1")
    foreign.set("a-developers-key", "kept")
    first, second = claim_database(private_redis), claim_database(private_redis)
    try:
        assert (first.database, second.database) == (2, 3)

        first.flush()
        second.flush()

        assert foreign.get("a-developers-key") == b"kept"
    finally:
        first.release()
        second.release()
        foreign.close()


def test_a_dead_runs_database_is_reclaimed_emptied_and_lost_to_its_old_owner(
    private_redis: str,
) -> None:
    dead = claim_database(private_redis)
    view = redis.Redis.from_url(dead.url)
    view.set("leftover", "1")
    view.delete(CLAIM_KEY)  # as when the claim's TTL runs out: its process died

    new = claim_database(private_redis)
    try:
        assert new.database == dead.database
        assert view.get("leftover") is None
        view.set("the-new-owners", "1")
        with pytest.raises(ClaimLost):
            dead.flush()
        assert view.get("the-new-owners") == b"1"  # the old owner flushed nothing
    finally:
        dead.release()
        new.release()
        view.close()


def test_a_claim_is_kept_alive_until_released_and_then_free_and_empty(private_redis: str) -> None:
    claim = claim_database(private_redis)
    view = redis.Redis.from_url(claim.url)
    try:
        view.pexpire(CLAIM_KEY, 2_000)
        claim.keep_alive(every=0.05)

        wait_until("the claim's TTL to be refreshed", lambda: view.ttl(CLAIM_KEY) > 2, 5)
        claim.release()

        assert view.dbsize() == 0
        again = claim_database(private_redis)
        again.release()
        assert again.database == claim.database
    finally:
        claim.release()
        view.close()


CHILD_RUN = textwrap.dedent("""
    import json
    import os
    from pathlib import Path

    import redis
    from sqlalchemy import create_engine, text

    from tests.plugins.database import TEMPLATE_KEY


    def test_the_services_of_this_run(redis_url, worker_database_url, pytestconfig):
        client = redis.Redis.from_url(redis_url)
        client.set("child-run-probe", "1")
        client.close()
        engine = create_engine(worker_database_url)
        with engine.connect() as connection:
            migrated = connection.scalar(text("SELECT version_num FROM alembic_version"))
        engine.dispose()
        Path(os.environ["HARNESS_CHILD_REPORT"]).write_text(
            json.dumps(
                {
                    "redis_url": redis_url,
                    "database_url": worker_database_url,
                    "template": pytestconfig.stash[TEMPLATE_KEY],
                    "migrated": migrated,
                }
            )
        )
""")


def test_a_second_run_at_the_same_time_on_the_same_servers_passes_on_data_of_its_own(
    tmp_path: Path,
    redis_claim: Claim,
    worker_database_url: str,
    postgres_server_url: str,
    pytestconfig: pytest.Config,
) -> None:
    """While this run holds its template and its Redis database, a second pytest run against
    the same Postgres and Redis servers clones the same template and claims another database."""
    ours = redis.Redis.from_url(redis_claim.url)
    ours.set("parent-run-probe", "kept")
    (tmp_path / "test_child_run.py").write_text(CHILD_RUN)
    report = tmp_path / "report.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_CORE_"))}
    env |= {
        "TEST_DATABASE_URL": postgres_server_url,
        "TEST_REDIS_URL": redis_claim.server,
        "HARNESS_CHILD_REPORT": str(report),
        # Only the plugins the harness and pyproject's addopts need: half the start-up time.
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
    }
    command = [
        *(sys.executable, "-m", "pytest", str(tmp_path / "test_child_run.py")),
        *("-c", str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT)),
        *("-p", "xdist.plugin", "-p", "pytest_socket", "-p", "no:cacheprovider"),
        *("-p", "tests.plugins.services", "-p", "tests.plugins.database", "-n", "0", "-q"),
    ]

    child = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)

    assert child.returncode == 0, child.stdout + child.stderr
    seen = json.loads(report.read_text())
    assert server_url(seen["redis_url"]) == redis_claim.server
    assert seen["redis_url"] != redis_claim.url
    assert ours.get("parent-run-probe") == b"kept"  # its claim and flushes never touched ours
    ours.close()
    assert seen["template"] == pytestconfig.stash[TEMPLATE_KEY]
    assert seen["database_url"] != worker_database_url
    assert seen["migrated"] is not None


# --- runs at the same time: templates and worker databases -----------------------------------


def _database_exists(connection: Connection, name: str) -> bool:
    found: int | None = connection.scalar(
        text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
    )
    return found == 1


@pytest.fixture
def admin_engine(postgres_server_url: str) -> Iterator[Engine]:
    """Autocommit connections that really close (no pool keeps a session's advisory locks)."""
    engine = create_engine(postgres_server_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    yield engine
    engine.dispose()


def test_this_runs_template_is_held_so_no_rebuild_can_drop_it(
    admin_engine: Engine, pytestconfig: pytest.Config
) -> None:
    name = pytestconfig.stash[TEMPLATE_KEY]
    with admin_engine.connect() as builder:
        assert drop_template_if_unused(builder, name) is False

        assert _database_exists(builder, name)


def test_a_stale_template_is_dropped_only_once_no_run_holds_it(admin_engine: Engine) -> None:
    name = f"{TEMPLATE_PREFIX}stale_{uuid.uuid4().hex[:8]}"
    with admin_engine.connect() as builder:
        builder.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            lock = {"space": TEMPLATE_IN_USE_LOCK, "key": template_lock_key(name)}
            with admin_engine.connect() as other_run:
                other_run.execute(text("SELECT pg_advisory_lock_shared(:space, :key)"), lock)
                assert drop_template_if_unused(builder, name) is False
                assert _database_exists(builder, name)
                # That run ends (TemplateHold.release); a closed session's lock goes too, but
                # only once its backend has exited, a moment after the client hung up.
                other_run.execute(text("SELECT pg_advisory_unlock_shared(:space, :key)"), lock)

            assert drop_template_if_unused(builder, name) is True
            assert not _database_exists(builder, name)
        finally:
            builder.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_a_worker_database_of_a_dead_run_is_dropped_and_one_of_a_live_run_kept(
    admin_engine: Engine, postgres_server_url: str
) -> None:
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    worker = f"probe{uuid.uuid4().hex[:6]}"
    dead = worker_database_name(str(finished.pid), worker)
    live = worker_database_name(str(os.getpid()), worker)
    with admin_engine.connect() as admin:
        for name in (dead, live):
            admin.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            _drop_abandoned_worker_databases(postgres_server_url)

            assert not _database_exists(admin, dead)
            assert _database_exists(admin, live)
        finally:
            for name in (dead, live):
                admin.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
