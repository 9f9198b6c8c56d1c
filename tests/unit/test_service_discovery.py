"""The order in which the test harness looks for Postgres and Redis (DESIGN.md; for Redis, a
throwaway server of the run's own before a shared one)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.plugins.redis_claims import server_url
from tests.plugins.services import Probes, Service, ServiceUnavailable, discover, redact


def never(*_args: object) -> bool:
    return False


def fail_if_called(*_args: object) -> Service:
    raise AssertionError("this source must not be tried")


def probes(**overrides: Any) -> Probes:
    base: dict[str, Any] = {  # each probe's own type: Probes checks none of them
        "env": {},
        "docker": never,
        "port_open": never,
        "start_postgres_container": fail_if_called,
        "start_redis_container": fail_if_called,
        "start_local_postgres": lambda: None,
        "start_local_redis": lambda: None,
    }
    base.update(overrides)
    return Probes(**base)


@pytest.mark.parametrize(
    ("name", "var"), [("postgres", "TEST_DATABASE_URL"), ("redis", "TEST_REDIS_URL")]
)
def test_the_environment_variable_wins_over_everything(name: str, var: str) -> None:
    service, _ = discover(name, probes(env={var: "scheme://elsewhere"}, docker=lambda: True))

    assert service.url == "scheme://elsewhere"
    assert service.source == f"${var}"


def test_docker_comes_second() -> None:
    container = Service("postgres", "postgresql+psycopg://c/postgres", "testcontainers")

    service, _ = discover(
        "postgres", probes(docker=lambda: True, start_postgres_container=lambda: container)
    )

    assert service is container


@pytest.mark.parametrize(("name", "port"), [("postgres", 5432), ("redis", 6379)])
def test_without_docker_a_listening_local_server_is_used_with_a_note(name: str, port: int) -> None:
    seen: list[tuple[str, int]] = []

    def listening(host: str, p: int) -> bool:
        seen.append((host, p))
        return True

    service, notes = discover(name, probes(port_open=listening))

    assert seen == [("127.0.0.1", port)]
    assert f"127.0.0.1:{port}" in service.url
    assert any("Docker" in note for note in notes)


def test_a_throwaway_server_comes_fourth() -> None:
    local = Service("postgres", "postgresql+psycopg://127.0.0.1:40000/postgres", "throwaway")

    service, notes = discover("postgres", probes(start_local_postgres=lambda: local))

    assert service is local
    assert "nothing listening on 127.0.0.1:5432" in notes


def test_redis_of_the_runs_own_comes_before_a_shared_server_on_6379() -> None:
    own = Service("redis", "redis://127.0.0.1:40001", "throwaway redis-server of this run")

    service, notes = discover(
        "redis", probes(port_open=lambda *_: True, start_local_redis=lambda: own)
    )

    assert service is own
    assert any("127.0.0.1:6379 is left alone" in note for note in notes)


def test_a_shared_redis_on_6379_is_used_only_without_redis_server() -> None:
    service, notes = discover("redis", probes(port_open=lambda *_: True))

    assert service.url == "redis://127.0.0.1:6379"
    assert "redis-server not installed: no throwaway Redis of this run's own" in notes


@pytest.mark.parametrize(
    ("url", "server"),
    [
        ("redis://127.0.0.1:6379/3", "redis://127.0.0.1:6379"),
        ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
        ("rediss://:pw@cache:6380/0", "rediss://:pw@cache:6380"),
    ],
)
def test_a_redis_url_without_its_database_is_the_server(url: str, server: str) -> None:
    assert server_url(url) == server


@pytest.mark.parametrize(
    ("name", "hint"), [("postgres", "TEST_DATABASE_URL"), ("redis", "TEST_REDIS_URL")]
)
def test_nothing_found_fails_with_instructions(name: str, hint: str) -> None:
    with pytest.raises(ServiceUnavailable, match=hint):
        discover(name, probes())


def test_redact_hides_passwords_only() -> None:
    assert redact("postgresql://u:secret@h:1/db") == "postgresql://u:***@h:1/db"
    assert redact("postgresql://u@h/db") == "postgresql://u@h/db"
    assert redact("redis://h:6379") == "redis://h:6379"
