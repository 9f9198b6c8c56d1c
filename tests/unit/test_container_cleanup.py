"""testcontainers without Ryuk (tests/plugins/services.py): which images it starts, which
left-over containers a run's start-up sweep may remove, and when it connects on loopback."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

from tests.plugins.services import (
    POSTGRES_IMAGE,
    POSTGRES_IMAGE_VARIABLE,
    container_failed,
    daemon_beside_us,
    image_name,
    owner_is_gone,
    owner_label,
)


def test_the_image_defaults_to_the_official_one_and_the_environment_overrides_it() -> None:
    assert image_name(POSTGRES_IMAGE_VARIABLE, POSTGRES_IMAGE, {}) == "postgres:15-alpine"
    assert image_name(POSTGRES_IMAGE_VARIABLE, POSTGRES_IMAGE, {POSTGRES_IMAGE_VARIABLE: ""}) == (
        "postgres:15-alpine"
    )
    local = {POSTGRES_IMAGE_VARIABLE: "mastery-local/postgres:15"}
    assert (
        image_name(POSTGRES_IMAGE_VARIABLE, POSTGRES_IMAGE, local) == local[POSTGRES_IMAGE_VARIABLE]
    )


def test_without_a_variable_the_local_build_stands_in_only_for_a_missing_official_image() -> None:
    local = "mastery-local/postgres:15"

    def held(*names: str) -> Callable[[str], bool]:
        return lambda name: name in names

    def pick(*names: str) -> str:
        return image_name(POSTGRES_IMAGE_VARIABLE, POSTGRES_IMAGE, {}, held(*names))

    assert pick(local) == local  # no registry: the image .ci/run built
    assert pick(POSTGRES_IMAGE, local) == POSTGRES_IMAGE  # the official one wins when present
    assert pick() == POSTGRES_IMAGE  # neither: the official one, pulled where a registry answers
    named = {POSTGRES_IMAGE_VARIABLE: "registry.internal/postgres:15"}
    assert image_name(POSTGRES_IMAGE_VARIABLE, POSTGRES_IMAGE, named, held(local)) == (
        "registry.internal/postgres:15"
    )


def test_a_container_that_cannot_start_says_how_to_go_on() -> None:
    message = str(container_failed("postgres:15-alpine", RuntimeError("no such host")))

    assert "postgres:15-alpine: no such host" in message
    assert "python3 -m tools.container_images setup" in message
    assert "TEST_DATABASE_URL" in message


def test_a_container_of_a_dead_process_on_this_host_is_swept() -> None:
    assert owner_is_gone("box:4242", host="box", alive=lambda pid: pid != 4242)


def test_a_container_of_a_live_run_is_kept() -> None:
    assert not owner_is_gone("box:4242", host="box", alive=lambda _pid: True)
    assert not owner_is_gone(owner_label())  # this very process


def test_another_hosts_or_an_unreadable_owner_is_never_swept() -> None:
    dead = lambda _pid: False  # noqa: E731 - a stand-in
    assert not owner_is_gone("elsewhere:4242", host="box", alive=dead)
    assert not owner_is_gone("box:not-a-pid", host="box", alive=dead)
    assert not owner_is_gone("", host="box", alive=dead)


def test_the_owner_label_names_this_host_and_process() -> None:
    assert owner_label() == f"{socket.gethostname()}:{os.getpid()}"


def test_a_daemon_beside_this_process_is_reached_on_loopback() -> None:
    assert daemon_beside_us({}, "vm", hostname="vm")
    assert daemon_beside_us({"DOCKER_HOST": "unix:///run/docker.sock"}, "vm", hostname="vm")


def test_a_host_daemon_or_a_remote_one_is_left_to_testcontainers_detection() -> None:
    assert not daemon_beside_us({}, "the-host", hostname="devcontainer")
    assert not daemon_beside_us({"DOCKER_HOST": "tcp://10.0.0.2:2375"}, "vm", hostname="vm")


def test_an_explicit_testcontainers_host_or_mode_wins() -> None:
    for env in (
        {"TESTCONTAINERS_HOST_OVERRIDE": "docker.internal"},
        {"TC_HOST": "docker.internal"},
        {"TESTCONTAINERS_CONNECTION_MODE": "bridge_ip"},
    ):
        assert not daemon_beside_us(env, "vm", hostname="vm")
