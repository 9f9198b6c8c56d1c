"""A Postgres restart, as the application's connection pool sees it.

A restart (or a failover, or an idle-session timeout) terminates every server process: the
server sends each connection a FATAL "terminating connection" message and closes it. The
connections idle in the pool are then dead, and the next requests must not be the ones that
find out. The test terminates the application's backends with `pg_terminate_backend`, which is
what a restart does to them, without stopping the server the other tests share.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from apiflask import APIFlask
from flask.testing import FlaskClient
from sqlalchemy import text
from sqlalchemy.engine import Connection

from app.auth.models import User
from app.db import get_database
from tests.conftest import MakeApp
from tools.processes import wait_until


def terminate(connection: Connection, pids: set[int]) -> None:
    """Terminate these backends and wait until they are gone, as after a restart."""

    def alive() -> set[int]:
        found = {
            int(pid)
            for pid in connection.scalars(
                text("SELECT pid FROM pg_stat_activity WHERE pid = ANY(:pids)"),
                {"pids": sorted(pids)},
            )
        }
        connection.commit()  # pg_stat_activity is a snapshot per transaction
        return found

    for pid in pids:
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    connection.commit()
    wait_until("the terminated backends to be gone", lambda: not alive(), 30, interval=0.05)


@pytest.mark.commits  # the application's own pool, not the test's connection
def test_requests_after_a_database_restart_get_fresh_connections(
    app: APIFlask,
    client: FlaskClient,
    db_connection: Connection,
    make_user: Callable[..., User],
    as_user: Callable[[User], dict[str, str]],
) -> None:
    headers = as_user(make_user())
    engine = get_database(app).engine
    assert client.get("/auth/me", headers=headers).status_code == 200
    # Fill the application's pool with idle connections, so that more than one request meets a
    # dead one, and note their server processes: only these are terminated (other fixtures'
    # connections to this database are not the application's to lose).
    held = [engine.connect() for _ in range(3)]
    pids = {int(connection.scalar(text("SELECT pg_backend_pid()"))) for connection in held}
    for connection in held:
        connection.close()
    assert len(pids) == 3

    terminate(db_connection, pids)

    statuses = [client.get("/auth/me", headers=headers).status_code for _ in range(5)]
    assert statuses == [200] * 5, statuses


def test_a_database_that_refuses_connections_is_a_503_to_retry(
    make_app: MakeApp, caplog: pytest.LogCaptureFixture
) -> None:
    # Nothing listens on port 1: every connection attempt is refused, as during a restart.
    client = make_app(database_url="postgresql+psycopg://postgres@127.0.0.1:1/x").test_client()

    with caplog.at_level(logging.ERROR, logger="app.errors"):
        response = client.post(
            "/auth/login", json={"email": "ada@example.com", "password": "x" * 12}
        )

    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["type"].endswith("/database-unavailable"), problem
    assert problem["request_id"] == response.headers["X-Request-ID"]
    assert response.headers["Retry-After"] == "5"
    body = response.get_data(as_text=True)
    # psycopg says 'connection to server at "127.0.0.1", port 1 failed: Connection refused'.
    leaked = [w for w in ("127.0.0.1", "port 1", "refused", "psycopg") if w in body.lower()]
    assert not leaked, body
    (record,) = [r for r in caplog.records if r.message.startswith("database unavailable")]
    assert record.exc_info is not None  # the traceback goes to the log (and Sentry)
    assert "Connection refused" in record.getMessage() + str(record.exc_info[1])
