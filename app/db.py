"""Database: the declarative base, the engine, and one SQLAlchemy session per request.

Views and services call `get_session()`; the session is created on first use inside an
application context and closed (rolling back anything uncommitted) when the context ends.
Tests re-bind the session factory to a connection held inside an outer transaction so that
every `commit()` becomes a savepoint release and the whole test rolls back at the end.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Flask, current_app, g
from sqlalchemy import DateTime, MetaData, create_engine, event, make_url
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp that always comes back in UTC, SQLite included."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use app.db.utcnow()")
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> uuid.UUID:
    return uuid.uuid4()


def _enable_sqlite_foreign_keys(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def build_engine(url: str, pool_size: int = 5) -> Engine:
    """Create the engine; SQLite (local development only) gets foreign keys switched on."""
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url)
        event.listen(engine, "connect", _enable_sqlite_foreign_keys)
        return engine
    return create_engine(url, pool_size=pool_size, pool_pre_ping=True)


class Database:
    """Owns the engine and the session factory of one application."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.session_factory: sessionmaker[Session] = sessionmaker(bind=engine)

    def bind_to_connection(self, connection: Connection) -> None:
        """Route every session through `connection`, turning commits into savepoints (tests)."""
        self.session_factory = sessionmaker(
            bind=connection, join_transaction_mode="create_savepoint"
        )

    def bind_to_engine(self) -> None:
        self.session_factory = sessionmaker(bind=self.engine)

    def init_app(self, app: Flask) -> None:
        app.extensions["mastery.db"] = self
        app.teardown_appcontext(_close_session)


def get_database(app: Flask) -> Database:
    database: Database = app.extensions["mastery.db"]
    return database


def get_session() -> Session:
    """The session of the current application context, created on first use."""
    session: Session | None = g.get("db_session")
    if session is None:
        session = get_database(current_app).session_factory()
        g.db_session = session
    return session


def _close_session(_exc: BaseException | None) -> None:
    session: Session | None = g.pop("db_session", None)
    if session is not None:
        session.close()
