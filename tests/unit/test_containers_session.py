"""`nox -s containers` (ops/containers/containers.py): the compose file for compose v1, image
names resolved as compose does, which services start without a registry, and the leak check
after `down -v`."""

from __future__ import annotations

from pathlib import Path

import yaml

from ops.containers import containers as stack

ROOT = Path(__file__).resolve().parents[2]


def test_compose_v1_gets_the_file_without_its_top_level_name_only() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    converted = stack.without_name(text)

    assert "name" in yaml.safe_load(text)
    loaded = yaml.safe_load(converted)
    assert "name" not in loaded
    assert loaded["services"] == yaml.safe_load(text)["services"]


def test_image_variables_resolve_like_compose() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())

    official = stack.service_images(compose, {})
    local = stack.service_images(compose, {"MASTERY_POSTGRES_IMAGE": "mastery-local/postgres:15"})

    assert official["postgres"] == "postgres:15-alpine"
    assert official["web"] == official["worker"] == stack.IMAGE
    assert local["postgres"] == "mastery-local/postgres:15"
    assert local["redis"] == "redis:7-alpine"


def test_without_a_registry_services_without_a_local_image_are_left_out() -> None:
    images = {"web": stack.IMAGE, "postgres": "local/pg", "grafana": "grafana/grafana:11.3.0"}
    present = {"local/pg"}.__contains__

    assert stack.services_to_start(images, stack.IMAGE, present, local_only=True) == (
        ["web", "postgres"],
        ["grafana"],
    )
    assert stack.services_to_start(images, stack.IMAGE, present, local_only=False) == (
        ["web", "postgres", "grafana"],
        [],
    )


def test_the_leak_check_lists_what_down_left_of_the_project_only() -> None:
    seen: list[list[str]] = []

    def listing(command: list[str]) -> str:
        seen.append(command)
        return "mastery-containers_default\n" if command[1] == "network" else ""

    left = stack.leftovers(listing)

    assert left == {"containers": [], "networks": ["mastery-containers_default"], "volumes": []}
    assert all(f"label=com.docker.compose.project={stack.PROJECT}" in c for c in seen)
