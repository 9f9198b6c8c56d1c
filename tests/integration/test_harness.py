"""Meta-tests: the harness really isolates tests, clones per worker and blocks the network."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

import psycopg
import pytest
import redis
from flask.testing import FlaskClient
from pytest_socket import SocketConnectBlockedError
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from app.auth.models import User
from tests.plugins.database import TEMPLATE_KEY, ensure_template, migrations_fingerprint
from tests.plugins.services import start_local_postgres, start_local_redis

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
    from tests.plugins.database import worker_database_name

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
