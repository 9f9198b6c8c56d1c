"""Database isolation for the integration tests (Warehouse's pattern, with a template).

* A template database is migrated once and named after a hash of the migrations, so it is
  rebuilt only when a migration changes (`hold_template`).
* A run holds a shared advisory lock on its template for its whole life (on a session
  connection of the controlling process); a build drops the templates of older migrations
  only when it gets their exclusive lock at once (`drop_template_if_unused`), so it never
  drops one another run on the same server is still cloning from.
* Each xdist worker clones its own database from the template (`CREATE DATABASE … TEMPLATE`);
  databases of runs whose controlling process is gone are dropped at the next run's start.
* Each test runs inside an outer transaction; the application's sessions join it with
  savepoints, so `commit()` in the code under test is real but the test's end rolls it all back.
* Tests marked `commits` run against the worker database for real and the tables are
  truncated afterwards.
* `bind_app` puts an application on the test's connection: the one way tests bind an app.
"""

from __future__ import annotations

import hashlib
import os
import socket
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
from alembic import command
from flask import Flask
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.db import get_database
from app.migrations import MIGRATIONS_DIR, alembic_config
from tests.plugins.services import services_of
from tests.plugins.xdist_node import WorkerNode
from tools.processes import pid_alive

TEMPLATE_PREFIX = "mastery_tmpl_"
WORKER_PREFIX = "mastery_test_"
# Worker databases carry the host, so a run only ever cleans up after its own machine.
HOST_TOKEN = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
TEMPLATE_LOCK = 7_304_211  # pg_advisory_lock key: one template build at a time per server
# First half of the two-int4 advisory lock key of one template (that key space never overlaps
# the single-bigint one of TEMPLATE_LOCK); the second half is `template_lock_key(name)`.
TEMPLATE_IN_USE_LOCK = 7_304_212

TEMPLATE_KEY = pytest.StashKey[str]()
TEMPLATE_HOLD_KEY = pytest.StashKey["TemplateHold"]()
TEMPLATE_NOTE_KEY = pytest.StashKey[str]()
ISOLATION_MS = "isolation_ms"
_setup_seconds: dict[str, float] = {}
_overhead_samples: list[float] = []  # pytest's setup + teardown, every fixture included
_isolation_samples: list[float] = []  # the transaction work of `db_connection` alone
AppT = TypeVar("AppT", bound=Flask)


def migrations_fingerprint(directory: Path = MIGRATIONS_DIR) -> str:
    """A hash of every migration file: the template's name changes when any of them does."""
    digest = hashlib.sha256()
    for path in sorted(directory.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        digest.update(str(path.relative_to(directory)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def database_url(server_url: str, name: str) -> str:
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def _admin_engine(server_url: str) -> Engine:
    return create_engine(server_url, isolation_level="AUTOCOMMIT", pool_size=1)


@dataclass(frozen=True)
class Template:
    name: str
    oid: int
    created: bool


def template_lock_key(name: str) -> int:
    """The second half of template `name`'s advisory lock key: a signed int4 from its name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big", signed=True)


def _template_lock_args(name: str) -> dict[str, int]:
    return {"space": TEMPLATE_IN_USE_LOCK, "key": template_lock_key(name)}


@dataclass
class TemplateHold:
    """A template and the session connection holding its shared lock; `release()` ends both."""

    template: Template
    connection: Connection
    engine: Engine

    def release(self) -> None:
        try:
            self.connection.execute(
                text("SELECT pg_advisory_unlock_shared(:space, :key)"),
                _template_lock_args(self.template.name),
            )
            self.connection.close()
        except DBAPIError:
            pass  # the server is gone (a throwaway one stopped first): so is the lock
        finally:
            self.engine.dispose()


def hold_template(server_url: str, fingerprint: str | None = None) -> TemplateHold:
    """The migrated template of the current migrations, built if needed, and held in use.

    Under the build lock (TEMPLATE_LOCK): build the template if it is missing, then take its
    shared lock on the same connection before letting the next run in, so no build can drop it
    between the check and the hold. The caller keeps the connection until the run ends.
    """
    name = TEMPLATE_PREFIX + (fingerprint or migrations_fingerprint())
    engine = _admin_engine(server_url)
    conn = engine.connect()
    try:
        conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": TEMPLATE_LOCK})
        try:
            created = False
            if _database_oid(conn, name) is None:
                _build_template(conn, server_url, name)
                created = True
            oid = _database_oid(conn, name)
            assert oid is not None
            conn.execute(
                text("SELECT pg_advisory_lock_shared(:space, :key)"), _template_lock_args(name)
            )
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": TEMPLATE_LOCK})
    except BaseException:
        conn.close()
        engine.dispose()
        raise
    return TemplateHold(Template(name, oid, created), conn, engine)


def ensure_template(server_url: str, fingerprint: str | None = None) -> Template:
    """Return the migrated template database for the current migrations, building it if needed."""
    hold = hold_template(server_url, fingerprint)
    hold.release()
    return hold.template


def _database_oid(conn: Connection, name: str) -> int | None:
    oid: int | None = conn.scalar(
        text("SELECT oid FROM pg_database WHERE datname = :n"), {"n": name}
    )
    return oid


def drop_template_if_unused(conn: Connection, name: str) -> bool:
    """Drop template `name` unless a run holds it (its shared lock); True when it is gone."""
    args = _template_lock_args(name)
    if not conn.scalar(text("SELECT pg_try_advisory_lock(:space, :key)"), args):
        return False  # a run is cloning from it: the next build tries again
    try:
        # Without FORCE: a stray session on it (someone's psql) keeps it until next time.
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    except DBAPIError:
        return False
    finally:
        conn.execute(text("SELECT pg_advisory_unlock(:space, :key)"), args)
    return True


def _build_template(conn: Connection, server_url: str, name: str) -> None:
    building = f"{name}_building"
    conn.execute(text(f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)'))
    conn.execute(text(f'CREATE DATABASE "{building}"'))
    command.upgrade(alembic_config(database_url(server_url, building)), "head")
    # Templates of older migrations are dropped so they do not pile up on a long-lived server,
    # except those another run holds (two branches' runs on one server at the same time).
    stale = conn.scalars(
        text("SELECT datname FROM pg_database WHERE datname LIKE :p AND datname <> :b"),
        {"p": TEMPLATE_PREFIX + "%", "b": building},
    ).all()
    for old in stale:
        drop_template_if_unused(conn, old)
    # Renaming last makes a half-built template impossible to mistake for a finished one.
    conn.execute(text(f'ALTER DATABASE "{building}" RENAME TO "{name}"'))


def worker_database_name(run_id: str, worker_id: str) -> str:
    return f"{WORKER_PREFIX}{HOST_TOKEN}_{run_id}_{worker_id}"


def clone_database(server_url: str, template: str, name: str) -> str:
    engine = _admin_engine(server_url)
    try:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    finally:
        engine.dispose()
    return database_url(server_url, name)


def drop_database(server_url: str, name: str) -> None:
    engine = _admin_engine(server_url)
    try:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()


def _drop_abandoned_worker_databases(server_url: str) -> None:
    """Remove worker databases left by runs whose controlling process no longer exists."""
    engine = _admin_engine(server_url)
    try:
        with engine.connect() as conn:
            names = conn.scalars(
                text("SELECT datname FROM pg_database WHERE datname LIKE :p"),
                {"p": WORKER_PREFIX + "%"},
            ).all()
            prefix = f"{WORKER_PREFIX}{HOST_TOKEN}_"
            for name in names:
                if not name.startswith(prefix):
                    continue  # another machine's run: its processes are not ours to judge
                pid = name.removeprefix(prefix).split("_", 1)[0]
                if pid.isdigit() and not pid_alive(int(pid)):
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()


# --- pytest wiring ---------------------------------------------------------------------------


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        config.stash[TEMPLATE_KEY] = workerinput.get("mastery_template", "")
        return
    postgres = services_of(config).get("postgres")
    if postgres is None:
        return
    _drop_abandoned_worker_databases(postgres.url)
    hold = hold_template(postgres.url)
    config.stash[TEMPLATE_HOLD_KEY] = hold
    config.stash[TEMPLATE_KEY] = hold.template.name
    verb = "built" if hold.template.created else "reused"
    config.stash[TEMPLATE_NOTE_KEY] = (
        f"template database {hold.template.name} ({verb}; held in use by this run: "
        "a shared advisory lock no other run's rebuild drops it under)"
    )


@pytest.hookimpl(tryfirst=True)  # before tests.plugins.services stops a throwaway server
def pytest_unconfigure(config: pytest.Config) -> None:
    hold = config.stash.get(TEMPLATE_HOLD_KEY, None)
    if hold is not None:
        hold.release()


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: WorkerNode) -> None:
    config: pytest.Config = node.config
    node.workerinput["mastery_template"] = config.stash.get(TEMPLATE_KEY, "")
    node.workerinput["mastery_run_id"] = str(os.getpid())


def pytest_report_header(config: pytest.Config) -> list[str]:
    note = config.stash.get(TEMPLATE_NOTE_KEY, "")
    return [note] if note else []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Collect pytest's own setup + teardown time of every test that used the database."""
    if report.when == "setup":
        _setup_seconds[report.nodeid] = report.duration
    elif report.when == "teardown":
        setup = _setup_seconds.pop(report.nodeid, 0.0)
        for key, value in report.user_properties:
            if key == ISOLATION_MS and isinstance(value, float):
                _isolation_samples.append(value)
                _overhead_samples.append((setup + report.duration) * 1000)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if getattr(terminalreporter.config, "workerinput", None) is not None or not _overhead_samples:
        return
    terminalreporter.write_line(
        f"database isolation over {len(_isolation_samples)} tests: median "
        f"{statistics.median(_isolation_samples):.2f} ms of connection + savepoint rollback; "
        f"median setup+teardown {statistics.median(_overhead_samples):.2f} ms "
        "with every fixture (and coverage tracing, when on)"
    )


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server_url(pytestconfig: pytest.Config) -> str:
    service = services_of(pytestconfig).get("postgres")
    if service is None:
        raise RuntimeError("integration tests need Postgres but discovery did not run")
    return service.url


@pytest.fixture(scope="session")
def worker_id_name(request: pytest.FixtureRequest) -> str:
    workerinput = getattr(request.config, "workerinput", None)
    return workerinput["workerid"] if workerinput else "main"


@pytest.fixture(scope="session")
def worker_database_url(
    pytestconfig: pytest.Config, postgres_server_url: str, worker_id_name: str
) -> Iterator[str]:
    """This worker's own database, cloned from the template and dropped at the end."""
    workerinput = getattr(pytestconfig, "workerinput", None)
    run_id = workerinput["mastery_run_id"] if workerinput else str(os.getpid())
    name = worker_database_name(run_id, worker_id_name)
    url = clone_database(postgres_server_url, pytestconfig.stash[TEMPLATE_KEY], name)
    yield url
    drop_database(postgres_server_url, name)


@pytest.fixture(scope="session")
def engine(worker_database_url: str) -> Iterator[Engine]:
    engine = create_engine(worker_database_url, pool_size=2)
    yield engine
    engine.dispose()


def _truncate_all(engine: Engine) -> None:
    from app.models import Base

    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture
def db_connection(engine: Engine, request: pytest.FixtureRequest) -> Iterator[Connection]:
    """The test's connection: inside a transaction that is rolled back afterwards.

    Under the `commits` marker there is no outer transaction; the tables are truncated instead.
    """
    commits = request.node.get_closest_marker("commits") is not None
    started = time.perf_counter()
    conn = engine.connect()
    transaction = None if commits else conn.begin()
    setup_seconds = time.perf_counter() - started
    yield conn
    started = time.perf_counter()
    if transaction is not None:
        transaction.rollback()
    conn.close()
    if commits:
        _truncate_all(engine)
    else:
        spent = setup_seconds + time.perf_counter() - started
        request.node.user_properties.append((ISOLATION_MS, round(spent * 1000, 4)))


@pytest.fixture
def db_session(db_connection: Connection) -> Iterator[Session]:
    """A session on the test's connection, for arranging data and asserting on it."""
    session = Session(bind=db_connection, join_transaction_mode="create_savepoint")
    yield session
    session.close()


@pytest.fixture
def bind_app(db_connection: Connection) -> Iterator[Callable[[AppT], AppT]]:
    """`bind_app(app)` routes every session of `app` through the test's connection, for the test.

    Inside the test's transaction the application's commits become savepoints, rolled back with
    the test; under `commits` the application keeps its own pool and commits for real. The
    signing-key cache is emptied too: keys an earlier test created were rolled back with it.
    Each bound application is bound back to its own engine after the test.
    """
    bound: list[Flask] = []

    def bind(app: AppT) -> AppT:
        if db_connection.in_transaction():
            get_database(app).bind_to_connection(db_connection)
        app.extensions["mastery.keyring"].clear_cache()
        bound.append(app)
        return app

    yield bind
    for app in reversed(bound):
        get_database(app).bind_to_engine()
