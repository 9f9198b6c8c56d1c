"""Which database failures are a 503 to retry and which stay a 500 (app/errors.py)."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest
from psycopg import errors as pg
from sqlalchemy.exc import InterfaceError, OperationalError

from app.errors import is_transient_database_error


def wrapped(orig: BaseException, *, invalidated: bool = False) -> OperationalError:
    return OperationalError("SELECT 1", {}, orig, connection_invalidated=invalidated)


@pytest.mark.parametrize(
    "orig",
    [
        psycopg.OperationalError("connection refused"),  # no SQLSTATE: the server never answered
        pg.AdminShutdown("terminating connection due to administrator command"),
        pg.CannotConnectNow("the database system is starting up"),
        pg.TooManyConnections("too many clients"),
        pg.DeadlockDetected("deadlock detected"),
        pg.SerializationFailure("could not serialize access"),
        pg.LockNotAvailable("could not obtain lock"),
        pg.QueryCanceled("canceling statement due to statement timeout"),
    ],
    ids=type,
)
def test_failures_a_retry_can_outlive_are_transient(orig: BaseException) -> None:
    assert is_transient_database_error(wrapped(orig))


@pytest.mark.parametrize(
    "orig",
    [
        pg.ProgramLimitExceeded("index row size exceeds maximum"),
        pg.DiskFull("could not extend file"),
        sqlite3.OperationalError("no such table: users"),
    ],
    ids=type,
)
def test_bugs_and_lasting_conditions_are_not(orig: BaseException) -> None:
    assert not is_transient_database_error(wrapped(orig))


def test_a_connection_the_pool_invalidated_is_transient_whatever_the_driver_said() -> None:
    lost = InterfaceError(
        "SELECT 1", {}, sqlite3.InterfaceError("closed"), connection_invalidated=True
    )

    assert is_transient_database_error(lost)
