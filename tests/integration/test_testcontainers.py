"""Meta-tests of the testcontainers backend (tests/plugins/services.py), run when this run's
services are containers: they are this run's own, reachable on loopback only, and a killed
run's containers are removed by the next run, since Ryuk (testcontainers' reaper) is off.

On another backend these tests say so and skip: the discovery paths that do not use Docker
have their own meta-tests (tests/unit/test_service_discovery.py, tests/integration/
test_harness.py).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import docker
import pytest
from docker.errors import NotFound
from docker.models.containers import Container

from tests.plugins.services import (
    OWNER_LABEL,
    REDIS_IMAGE,
    REDIS_IMAGE_VARIABLE,
    REQUIRE_DOCKER_VARIABLE,
    Service,
    daemon_has_image,
    image_name,
    owner_is_gone,
    services_of,
    sweep_orphaned_containers,
)


@pytest.fixture(scope="module")
def containers(pytestconfig: pytest.Config) -> list[Service]:
    services = list(services_of(pytestconfig).values())
    if not all(s.source.startswith("testcontainers") for s in services):
        backends = ", ".join(f"{s.name}: {s.source}" for s in services)
        if os.environ.get(
            REQUIRE_DOCKER_VARIABLE
        ):  # CI promised testcontainers: a skip would hide it
            pytest.fail(f"{REQUIRE_DOCKER_VARIABLE} is set but the services are {backends}")
        # A developer without Docker: these check the testcontainers backend, which is not in use.
        pytest.skip(f"this run's services are not testcontainers ({backends})")
    return services


@pytest.fixture
def client() -> Iterator[docker.DockerClient]:
    client = docker.from_env(timeout=30)
    yield client
    client.close()


def container_publishing(client: docker.DockerClient, port: int) -> Container:
    for container in client.containers.list(filters={"label": OWNER_LABEL}):
        for bindings in (container.attrs["NetworkSettings"]["Ports"] or {}).values():
            if any(int(b["HostPort"]) == port for b in bindings or []):
                return container
    raise AssertionError(f"no labelled container publishes port {port}")


def test_this_runs_containers_are_its_own_and_published_on_loopback_only(
    containers: list[Service], client: docker.DockerClient
) -> None:
    for service in containers:
        address = urlsplit(service.url)
        assert address.hostname == "127.0.0.1", service.url
        assert address.port is not None
        container = container_publishing(client, address.port)
        owner = container.labels[OWNER_LABEL]
        # the controlling pytest process of this run, alive: never swept while the run lasts
        assert owner.startswith(f"{socket.gethostname()}:")
        assert not owner_is_gone(owner)
        bindings = [
            b for ports in container.attrs["NetworkSettings"]["Ports"].values() for b in ports
        ]
        assert {b["HostIp"] for b in bindings} == {"127.0.0.1"}


@pytest.mark.usefixtures("containers")
def test_a_killed_runs_container_is_swept_and_a_live_runs_is_kept(
    client: docker.DockerClient,
) -> None:
    exited = subprocess.Popen(["true"])  # a pid of this host that no longer runs
    exited.wait()
    image = image_name(REDIS_IMAGE_VARIABLE, REDIS_IMAGE, has_image=daemon_has_image)  # this run's
    host = socket.gethostname()
    suffix = uuid.uuid4().hex[:8]
    killed = client.containers.create(
        image, name=f"mastery-sweep-dead-{suffix}", labels={OWNER_LABEL: f"{host}:{exited.pid}"}
    )
    live = client.containers.create(
        # pid 1 runs as long as the machine does
        image,
        name=f"mastery-sweep-live-{suffix}",
        labels={OWNER_LABEL: f"{host}:1"},
    )
    try:
        sweep_orphaned_containers()

        with pytest.raises(NotFound):
            client.containers.get(str(killed.name))
        assert client.containers.get(str(live.name)).name == live.name
    finally:
        for container in (killed, live):
            with contextlib.suppress(NotFound):  # the swept one is gone already
                container.remove(force=True, v=True)
