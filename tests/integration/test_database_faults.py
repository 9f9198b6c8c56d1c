"""A Postgres restart, as the application's connection pool sees it.

A restart (or a failover, or an idle-session timeout) terminates every server process: the
server sends each connection a FATAL "terminating connection" message and closes it. The
connections idle in the pool are then dead, and the next requests must not be the ones that
find out. The test terminates the application's backends with `pg_terminate_backend`, which is
what a restart does to them, without stopping the server the other tests share.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import pytest
from apiflask import APIFlask
from flask.testing import FlaskClient
from sqlalchemy import text
from sqlalchemy.engine import Connection

from app import create_app
from app.auth.models import User
from app.config import Settings
from app.db import get_database

OTHER_BACKENDS = text(
    "SELECT pid FROM pg_stat_activity"
    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    " AND backend_type = 'client backend'"
)


def terminate_other_backends(connection: Connection) -> list[int]:
    """Terminate every other client of this test's database; wait until they are gone."""

    def others() -> set[int]:
        pids = {int(pid) for pid in connection.scalars(OTHER_BACKENDS)}
        connection.commit()  # pg_stat_activity is a snapshot per transaction
        return pids

    terminated = others()
    for pid in terminated:
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    connection.commit()
    deadline = time.monotonic() + 30
    while others() & terminated:
        assert time.monotonic() < deadline, "terminated backends are still there after 30 s"
        time.sleep(0.05)
    return sorted(terminated)


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
    # Fill the pool with several idle connections, so that more than one request meets a dead one.
    held: list[Any] = [engine.connect() for _ in range(3)]
    for connection in held:
        connection.execute(text("SELECT 1"))
        connection.close()
    assert client.get("/auth/me", headers=headers).status_code == 200
    idle_before = engine.pool.checkedin()  # type: ignore[attr-defined]

    terminated = terminate_other_backends(db_connection)

    statuses = [client.get("/auth/me", headers=headers).status_code for _ in range(5)]
    assert len(terminated) >= idle_before >= 3, (terminated, idle_before)
    assert statuses == [200] * 5, statuses


def test_a_database_that_refuses_connections_is_a_503_to_retry(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    # Nothing listens on port 1: every connection attempt is refused, as during a restart.
    down = create_app(
        settings.model_copy(update={"database_url": "postgresql+psycopg://postgres@127.0.0.1:1/x"})
    )
    client = down.test_client()

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
    assert "127.0.0.1:1" not in response.get_data(as_text=True)  # no connection details leak
    (record,) = [r for r in caplog.records if r.message.startswith("database unavailable")]
    assert record.exc_info is not None  # the traceback goes to the log (and Sentry)
    get_database(down).engine.dispose()
