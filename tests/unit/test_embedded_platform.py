"""The quick start's platform on its embedded defaults: the SQLite file `./noxw -s serve`
creates, the offline AI provider, eager jobs. A learner practises there end to end, through
the same routes as on PostgreSQL, whose answers take another path of their own
(app/learning/service.py `_write_answer`: one statement with CTEs there, four statements
here). The integration tier checks the PostgreSQL path; this is SQLite's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from apiflask import APIFlask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text

from app import create_app
from app.auth.models import Role
from app.config import Settings
from app.db import get_database
from app.ops.load_data import DEFAULT_PASSWORD, load_email

ITEMS = 6


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[tuple[APIFlask, str]]:
    url = f"sqlite:///{tmp_path / 'development.db'}"
    settings = Settings(_env_file=None, app_env="development", database_url=url)
    app = create_app(settings)
    runner = app.test_cli_runner()
    seed = ["seed", "load", "--courses", "1", "--skills-per-course", "1", "--learners", "1"]
    for command in (
        ["db", "upgrade"],
        [*seed, "--items-per-skill", str(ITEMS), "--attempts-per-learner", "0"],
    ):
        result = runner.invoke(args=command)
        assert result.exit_code == 0, (command, result.output, result.exception)
    yield app, url
    get_database(app).engine.dispose()


def _json(client: FlaskClient, method: str, path: str, token: str, **kwargs: Any) -> Any:
    response = client.open(
        path, method=method, headers={"Authorization": f"Bearer {token}"}, **kwargs
    )
    assert response.status_code in (200, 201), (path, response.get_json())
    return response.get_json()


def test_a_learner_practises_on_the_embedded_sqlite_database(
    embedded: tuple[APIFlask, str],
) -> None:
    app, url = embedded
    client = app.test_client()
    login = client.post(
        "/auth/login",
        json={"email": load_email(Role.LEARNER, 0), "password": DEFAULT_PASSWORD},
    )
    assert login.status_code == 200, login.get_json()
    token = login.get_json()["access_token"]
    course = _json(client, "GET", "/courses", token)["items"][0]
    _json(client, "POST", f"/courses/{course['id']}/enrollments", token)
    skill = _json(client, "GET", f"/courses/{course['id']}/skills", token)["items"][0]
    session = _json(client, "POST", "/sessions", token, json={"skill_id": skill["id"]})

    answered = []
    for number in range(1, ITEMS + 2):  # one more answer than items: one item comes again
        item = _json(client, "GET", f"/sessions/{session['id']}/next", token)["item"]
        response = 0 if item["kind"] == "mcq" else "Both sides stay equal."
        key = f"answer-{number}"
        body = {"item_id": item["id"], "response": response}
        first = client.post(
            f"/sessions/{session['id']}/attempts",
            json=body,
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key},
        )
        assert first.status_code == 201, first.get_json()
        assert first.get_json()["estimate"]["attempts"] == number
        replay = client.post(
            f"/sessions/{session['id']}/attempts",
            json=body,
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key},
        )
        assert replay.status_code == 200
        assert replay.get_json() == first.get_json()
        answered.append(item["id"])

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            attempts = connection.execute(text("SELECT count(*) FROM attempts")).scalar_one()
            state = connection.execute(text("SELECT attempts FROM skill_states")).scalar_one()
            pending = connection.execute(
                text("SELECT pending_item_id FROM practice_sessions")
            ).scalar_one()
            calibrated = connection.execute(
                text("SELECT count(*) FROM items WHERE calibration_attempts > 0")
            ).scalar_one()
    finally:
        engine.dispose()
    assert attempts == state == ITEMS + 1
    assert pending is None
    # Only a learner's first answer to an item calibrates it.
    assert calibrated == len(set(answered))
