"""Finding real Postgres and Redis servers for the test run.

Order, for each service (DESIGN.md, "Real services in tests"):

1. `TEST_DATABASE_URL` / `TEST_REDIS_URL`;
2. a testcontainers container, when a Docker daemon answers;
3. a server already listening on 127.0.0.1 (5432 / 6379);
4. a throwaway server started from local binaries (as the `postgres` user when run as root);
5. otherwise the run stops with instructions. Integration tests are never skipped quietly.

Redis takes 4 before 3: with `redis-server` installed each run starts its own, so a
developer's Redis on 6379 and a second run at the same time are never touched. On any server,
each test process then claims a logical database of its own (tests/plugins/redis_claims.py)
and only ever flushes that one.

Discovery happens once, in the controlling process; xdist workers receive the result through
`workerinput`. The pytest header names the backend that was chosen.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import glob
import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.plugins.redis_claims import CLAIM_KEY, TTL_SECONDS, Claim, claim_database
from tests.plugins.xdist_node import WorkerNode
from tools.container_images import all_images
from tools.processes import free_port, pid_alive, port_open, wait_until

# The images testcontainers starts: the official ones where a registry answers; on machines
# without one, .ci/run (and `python3 -m tools.container_images env`) names the local builds.
POSTGRES_IMAGE_VARIABLE, POSTGRES_IMAGE = "MASTERY_POSTGRES_IMAGE", "postgres:15-alpine"
REDIS_IMAGE_VARIABLE, REDIS_IMAGE = "MASTERY_REDIS_IMAGE", "redis:7-alpine"
# Local builds by variable (mastery-local/postgres:15, ...), for machines without a registry.
LOCAL_BUILDS = {image.variable: image.name for image in all_images()}
# Every container of a run carries these labels. Ryuk (testcontainers' reaper) is off, its image
# cannot be pulled everywhere: the run removes its containers itself (pytest_unconfigure, and
# atexit for an interrupted run), and the next run sweeps those of runs that were killed.
OWNER_LABEL = "io.mastery.tests.owner"
# Set by .ci/run: the run must use testcontainers, a missing daemon is an error, not a fallback.
REQUIRE_DOCKER_VARIABLE = "MASTERY_REQUIRE_DOCKER"
HOW_TO_PROVIDE = {
    "postgres": (
        "No PostgreSQL server for the integration tests. Provide one of: "
        "TEST_DATABASE_URL=postgresql+psycopg://user:pass@host:port/postgres; "
        "a running Docker daemon (testcontainers starts postgres:15); "
        "a server on 127.0.0.1:5432 accepting user 'postgres'; "
        "or PostgreSQL server binaries (initdb, pg_ctl) on PATH or in /usr/lib/postgresql/*/bin."
    ),
    "redis": (
        "No Redis server for the integration tests. Provide one of: "
        "TEST_REDIS_URL=redis://host:port; a running Docker daemon; "
        "a server on 127.0.0.1:6379; or redis-server on PATH."
    ),
}


class ServiceUnavailable(RuntimeError):
    pass


@dataclass
class Service:
    """A server the tests may use, and how it was found."""

    name: str
    url: str
    source: str
    stop: Callable[[], None] | None = field(default=None, repr=False, compare=False)

    def public(self) -> dict[str, str]:
        return {k: v for k, v in asdict(self).items() if k != "stop"}


# --- probes ---------------------------------------------------------------------------------------


def docker_answers() -> bool:
    """True when a Docker daemon responds to a ping (never raises)."""
    if not os.environ.get("DOCKER_HOST") and not Path("/var/run/docker.sock").exists():
        return False
    # docker-py leaks its socket when the daemon is absent; reap it here, not in a random test.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            import docker

            client = docker.from_env(timeout=3)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except Exception:  # noqa: BLE001 - any failure means "no usable daemon"
            return False
        finally:
            gc.collect()


# --- throwaway servers from local binaries -------------------------------------------------------


def _postgres_bindir() -> Path | None:
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4])
    )
    return Path(candidates[-1]).parent if candidates else None


def start_local_postgres() -> Service | None:
    """initdb + pg_ctl into a temporary directory on a free port; None without binaries."""
    bindir = _postgres_bindir()
    if bindir is None or not (bindir / "initdb").exists():
        return None
    run_as: list[str] = []
    workdir = Path(tempfile.mkdtemp(prefix="mastery-pg-"))
    if os.geteuid() == 0:  # pg_ctl refuses to run as root
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            return None
        os.chown(workdir, owner.pw_uid, owner.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    data, log, port = workdir / "data", workdir / "server.log", free_port()
    subprocess.run(
        [
            *run_as,
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        [
            *run_as,
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(log),
            "-w",
            "start",
        ],
        check=True,
        capture_output=True,
    )

    def stop() -> None:
        subprocess.run(
            [*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            check=False,
            capture_output=True,
        )
        shutil.rmtree(workdir, ignore_errors=True)

    return Service(
        "postgres",
        f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres",
        f"throwaway server from {bindir} on port {port}",
        stop,
    )


def start_local_redis() -> Service | None:
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_until(
        "redis-server to listen",
        lambda: port_open("127.0.0.1", port),
        10,
        failure=ServiceUnavailable,
        interval=0.02,
    )

    def stop() -> None:
        process.terminate()
        process.wait(timeout=10)

    return Service(
        "redis",
        f"redis://127.0.0.1:{port}",
        f"throwaway redis-server of this run on port {port}",
        stop,
    )


# --- containers ------------------------------------------------------------------------------


def image_name(
    variable: str,
    default: str,
    env: Mapping[str, str] | None = None,
    has_image: Callable[[str], bool] | None = None,
) -> str:
    """The image named by `variable`, else the official `default` — unless the daemon
    (`has_image`) lacks `default` but holds this project's local build of it: the image
    tools/container_images.py makes where no registry answers. A machine whose engine .ci/run
    started then needs no exported variable for a plain `./noxw`."""
    named = (os.environ if env is None else env).get(variable)
    if named:
        return named
    local = LOCAL_BUILDS.get(variable)
    if has_image is not None and local and not has_image(default) and has_image(local):
        return local
    return default


def daemon_has_image(name: str) -> bool:
    """True when the Docker daemon holds image `name` already (nothing is pulled)."""
    import docker

    client = docker.from_env(timeout=10)
    try:
        client.images.get(name)
        return True
    except docker.errors.ImageNotFound:
        return False
    finally:
        client.close()


def container_failed(image: str, error: Exception) -> ServiceUnavailable:
    """Why a container could not start, and the ways out (no traceback from docker-py)."""
    return ServiceUnavailable(
        f"testcontainers could not start {image}: {error}. A Docker daemon answers, so the "
        "integration tiers use testcontainers. Where no registry answers, build the local images "
        "(`python3 -m tools.container_images setup`, as root); otherwise name servers of your "
        "own with TEST_DATABASE_URL / TEST_REDIS_URL, or point DOCKER_HOST at nothing to use "
        "local servers"
    )


def owner_label() -> str:
    """This process as a container owner: host and pid, so a sweep can tell whether it lives."""
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_is_gone(
    owner: str, host: str | None = None, alive: Callable[[int], bool] | None = None
) -> bool:
    """True when `owner` (host:pid) is a process of this host that no longer runs."""
    owner_host, _, pid = owner.rpartition(":")
    if owner_host != (host or socket.gethostname()) or not pid.isdigit():
        return False  # another machine's container (a shared daemon): not ours to judge
    return not (alive or pid_alive)(int(pid))


def sweep_orphaned_containers() -> list[str]:
    """Remove the test containers of runs that were killed before cleaning up; their names."""
    import docker

    client = docker.from_env(timeout=10)
    removed = []
    try:
        for container in client.containers.list(all=True, filters={"label": OWNER_LABEL}):
            if owner_is_gone(container.labels.get(OWNER_LABEL, "")):
                container.remove(force=True, v=True)
                removed.append(str(container.name))
    finally:
        client.close()
    return removed


def daemon_beside_us(env: Mapping[str, str], daemon_name: str, hostname: str | None = None) -> bool:
    """True when the Docker daemon runs in this machine's own network namespace.

    Inside a container (/.dockerenv) testcontainers assumes Docker-in-Docker and connects to the
    bridge's gateway address. A daemon started beside this process (the CI machine: a sandbox
    with /.dockerenv whose own dockerd .ci/run starts) has our hostname and publishes its ports
    on our loopback; a host daemon reached through a mounted socket has another name, and is
    left to testcontainers' own detection. So is any daemon the user already pointed it at.
    """
    if any(env.get(v) for v in ("TESTCONTAINERS_HOST_OVERRIDE", "TC_HOST")):
        return False
    if env.get("TESTCONTAINERS_CONNECTION_MODE"):
        return False
    docker_host = env.get("DOCKER_HOST", "")
    if docker_host and not docker_host.startswith("unix://"):
        return False
    return daemon_name == (hostname or socket.gethostname())


def configure_testcontainers(env: Mapping[str, str]) -> None:
    """No Ryuk (this run removes its own containers), and loopback for a daemon beside us."""
    import docker
    from testcontainers.core.config import ConnectionMode
    from testcontainers.core.config import testcontainers_config as config

    config.ryuk_disabled = True  # its image cannot be pulled everywhere (see OWNER_LABEL)
    client = docker.from_env(timeout=10)
    try:
        name = str(client.info().get("Name", ""))
    finally:
        client.close()
    if daemon_beside_us(env, name):
        config.tc_host_override = "127.0.0.1"
        config.connection_mode_override = ConnectionMode.docker_host


def _container_service(name: str, image: str, container: Any, url: str, seconds: float) -> Service:
    stopped = threading.Event()

    def stop() -> None:
        if not stopped.is_set():
            stopped.set()
            with contextlib.suppress(Exception):  # already gone: nothing to remove
                container.stop()

    atexit.register(stop)  # an interrupted run still removes it; unconfigure usually did
    return Service(name, url, f"testcontainers {image}, ready in {seconds:.1f} s", stop)


def _prepared(container: Any, port: int, data_dir: str) -> Any:
    """Label the container with its owner, keep its data in memory, publish on loopback only."""
    # random host port on 127.0.0.1: nothing outside this machine reaches the test servers
    container.ports[str(port)] = ("127.0.0.1", None)
    return container.with_tmpfs_mount(data_dir).with_kwargs(labels={OWNER_LABEL: owner_label()})


def _loopback(host: str) -> str:
    # "localhost" may resolve to ::1 first; the published ports answer on 127.0.0.1 for sure
    return "127.0.0.1" if host == "localhost" else host


# The throwaway local server's durability trade-offs (start_local_postgres), and room for
# every xdist worker's pool.
POSTGRES_TEST_COMMAND = (
    "postgres -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    " -c max_connections=200"
)


def start_postgres_container() -> Service:
    import docker
    from testcontainers.community.postgres import PostgresContainer

    image = image_name(POSTGRES_IMAGE_VARIABLE, POSTGRES_IMAGE, has_image=daemon_has_image)
    started = time.monotonic()
    container = PostgresContainer(image, driver="psycopg").with_command(POSTGRES_TEST_COMMAND)
    # ready when psql answers over TCP inside the container (the module's own wait strategy),
    # not when the port is merely open: the image's first-start initdb server listens on the
    # socket only
    try:
        container = _prepared(container, 5432, "/var/lib/postgresql/data").start()
    except docker.errors.DockerException as error:
        raise container_failed(image, error) from error
    url = container.get_connection_url(host=_loopback(container.get_container_host_ip()))
    url = url.rsplit("/", 1)[0] + "/postgres"
    return _container_service("postgres", image, container, url, time.monotonic() - started)


def start_redis_container() -> Service:
    import docker
    from testcontainers.community.redis import RedisContainer

    image = image_name(REDIS_IMAGE_VARIABLE, REDIS_IMAGE, has_image=daemon_has_image)
    started = time.monotonic()
    container = RedisContainer(image).with_command("redis-server --save '' --appendonly no")
    try:
        container = _prepared(container, 6379, "/data").start()  # ready when PING answers
    except docker.errors.DockerException as error:
        raise container_failed(image, error) from error
    host = _loopback(container.get_container_host_ip())
    url = f"redis://{host}:{container.get_exposed_port(6379)}"
    return _container_service("redis", image, container, url, time.monotonic() - started)


# --- discovery -------------------------------------------------------------------------------


@dataclass
class Probes:
    """The outside world discovery looks at; tests substitute their own."""

    env: dict[str, str]
    docker: Callable[[], bool] = docker_answers
    port_open: Callable[[str, int], bool] = port_open
    start_postgres_container: Callable[[], Service] = start_postgres_container
    start_redis_container: Callable[[], Service] = start_redis_container
    start_local_postgres: Callable[[], Service | None] = start_local_postgres
    start_local_redis: Callable[[], Service | None] = start_local_redis


def discover(name: str, probes: Probes) -> tuple[Service, list[str]]:
    """Find `name` ("postgres" or "redis") in the documented order; return it and the notes."""
    env_var, port = {"postgres": ("TEST_DATABASE_URL", 5432), "redis": ("TEST_REDIS_URL", 6379)}[
        name
    ]
    notes: list[str] = []
    if probes.env.get(env_var):
        return Service(name, probes.env[env_var], f"${env_var}"), notes
    if probes.docker():
        start = (
            probes.start_postgres_container if name == "postgres" else probes.start_redis_container
        )
        return start(), notes
    notes.append("Docker daemon not answering; passing over testcontainers")
    if name == "redis":  # a server of this run's own beats a shared one (module docstring)
        own = probes.start_local_redis()
        if own is not None:
            if probes.port_open("127.0.0.1", port):
                notes.append(f"the Redis on 127.0.0.1:{port} is left alone: this run has its own")
            return own, notes
        notes.append("redis-server not installed: no throwaway Redis of this run's own")
    if probes.port_open("127.0.0.1", port):
        url = (
            f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
            if name == "postgres"
            else f"redis://127.0.0.1:{port}"
        )
        return Service(name, url, f"server already listening on 127.0.0.1:{port}"), notes
    notes.append(f"nothing listening on 127.0.0.1:{port}")
    local = probes.start_local_postgres() if name == "postgres" else None
    if local is not None:
        return local, notes
    raise ServiceUnavailable(HOW_TO_PROVIDE[name])


def redact(url: str) -> str:
    """Hide a password in a URL before printing it."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    credentials, _, location = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}{sep}{user}{':***' if ':' in credentials else ''}@{location}"


# --- pytest wiring ---------------------------------------------------------------------------

SERVICES_KEY = pytest.StashKey[dict[str, Service]]()
NOTES_KEY = pytest.StashKey[list[str]]()
WORKERINPUT_KEY = "mastery_services"


def services_needed(config: pytest.Config) -> bool:
    """Runs whose every path argument is under tests/unit or an I/O-free contracts/ directory
    (prompts, openapi) need no servers; contracts/fuzz drives the API on real ones."""
    root = Path(str(config.rootpath))
    io_free = [
        (root / "tests" / "unit").resolve(),
        (root / "contracts" / "prompts").resolve(),
        (root / "contracts" / "openapi").resolve(),
    ]
    args = [arg.split("::", 1)[0] for arg in config.args]
    if not args:
        return True
    return not all(
        any(Path(arg).resolve().is_relative_to(directory) for directory in io_free) for arg in args
    )


def pytest_configure(config: pytest.Config) -> None:
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        raw = json.loads(workerinput.get(WORKERINPUT_KEY, "{}"))
        config.stash[SERVICES_KEY] = {name: Service(**data) for name, data in raw.items()}
        config.stash[NOTES_KEY] = []
        return
    services: dict[str, Service] = {}
    notes: list[str] = []
    config.stash[SERVICES_KEY] = services
    config.stash[NOTES_KEY] = notes
    if not services_needed(config):
        return
    probes = Probes(env=dict(os.environ))
    docker = probes.docker()
    probes.docker = lambda: docker  # ask the daemon once, not once per service
    wanted = not all(probes.env.get(v) for v in ("TEST_DATABASE_URL", "TEST_REDIS_URL"))
    if wanted and not docker and probes.env.get(REQUIRE_DOCKER_VARIABLE):
        raise pytest.UsageError(
            f"{REQUIRE_DOCKER_VARIABLE} is set (CI: .ci/run starts dockerd) but no Docker daemon "
            "answers: refusing to fall back to local servers"
        )
    if docker and wanted:
        configure_testcontainers(probes.env)
        for orphan in sweep_orphaned_containers():
            notes.append(f"removed container {orphan} left by a killed run")
    try:
        for name in ("postgres", "redis"):
            service, found_notes = discover(name, probes)
            services[name] = service
            notes.extend(n for n in found_notes if n not in notes)
    except (ServiceUnavailable, subprocess.CalledProcessError) as error:
        _stop_all(services)
        raise pytest.UsageError(f"{error}") from error


def _stop_all(services: dict[str, Service]) -> None:
    for service in services.values():
        if service.stop is not None:
            with contextlib.suppress(Exception):
                service.stop()


@pytest.hookimpl(trylast=True)  # after tests.plugins.database lets go of the template
def pytest_unconfigure(config: pytest.Config) -> None:
    if getattr(config, "workerinput", None) is None:
        _stop_all(config.stash.get(SERVICES_KEY, {}))


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: WorkerNode) -> None:
    """xdist: hand the discovered services to each worker."""
    config: pytest.Config = node.config
    services = config.stash.get(SERVICES_KEY, {})
    node.workerinput[WORKERINPUT_KEY] = json.dumps(
        {name: service.public() for name, service in services.items()}
    )


def pytest_report_header(config: pytest.Config) -> list[str]:
    services = config.stash.get(SERVICES_KEY, {})
    if not services:
        return ["services: none (unit tests only)"]
    lines = [f"{s.name}: {redact(s.url)} ({s.source})" for s in services.values()]
    if "redis" in services:
        lines.append(
            "redis isolation: each test process claims an empty database (1-15) of its own "
            f"(key {CLAIM_KEY}, {TTL_SECONDS} s TTL, refreshed) and flushes only that one"
        )
    lines.extend(f"services note: {note}" for note in config.stash.get(NOTES_KEY, []))
    return lines


def services_of(config: pytest.Config) -> dict[str, Service]:
    return config.stash.get(SERVICES_KEY, {})


@pytest.fixture(scope="session")
def redis_claim(pytestconfig: pytest.Config) -> Iterator[Claim]:
    """This test process's own Redis database on the run's server (tests/plugins/redis_claims.py)."""
    service = services_of(pytestconfig).get("redis")
    if service is None:
        raise RuntimeError("integration tests need Redis but discovery did not run")
    claim = claim_database(service.url)
    claim.keep_alive()
    yield claim
    claim.release()


@pytest.fixture(scope="session")
def redis_url(redis_claim: Claim) -> str:
    """The URL of this test process's own Redis database."""
    return redis_claim.url


@pytest.fixture(autouse=True)
def _flush_redis_for_marked_tests(request: pytest.FixtureRequest) -> None:
    """`@pytest.mark.redis`: the test starts on an empty database of its process's own."""
    if request.node.get_closest_marker("redis") is not None:
        claim: Claim = request.getfixturevalue("redis_claim")
        claim.flush()


@pytest.fixture
def redis_client(redis_claim: Claim) -> Iterator[redis.Redis]:
    """A client of this test process's own database, emptied before and after the test."""
    client = redis.Redis.from_url(redis_claim.url)
    redis_claim.flush()
    yield client
    redis_claim.flush()
    client.close()
