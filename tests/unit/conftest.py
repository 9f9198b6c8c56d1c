"""Unit-tier fixtures: an application on in-memory SQLite that no test here ever queries."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from apiflask import APIFlask

from app import create_app
from app.config import Settings
from app.db import get_database


@pytest.fixture
def unit_settings() -> Settings:
    return Settings(_env_file=None, app_env="test", database_url="sqlite://")


@pytest.fixture
def bare_app(unit_settings: Settings) -> Iterator[APIFlask]:
    app = create_app(unit_settings)
    yield app
    get_database(app).engine.dispose()
