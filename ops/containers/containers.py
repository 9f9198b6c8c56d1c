"""`nox -s containers`: the image built and run, the compose stack brought up and smoke-tested,
then nothing left behind (run from the repository root: `python -m ops.containers.containers`).

1. The image: `tools/container_images.py app` on the local Python base when
   MASTERY_PYTHON_BASE_IMAGE names one (machines without a registry: .ci/run exports it, and
   the base images are built first, cached), else `docker build` from the Dockerfile's pinned
   default base (Docker Desktop, GitHub Actions).
2. `docker run IMAGE web`: answers /healthz, runs as uid 10001, has no compiler (gcc, cc).
3. docker-compose.yml under the project name `mastery-containers` (never a developer's own
   `mastery` stack): migrate must exit 0, every other service must turn healthy. Services
   whose image is neither local nor pullable are left out and named (here: Grafana, which
   Debian does not package). Then an admin account inside the web container, and
   `pytest tests/smoke` against http://127.0.0.1:8000.
4. `down -v --remove-orphans`, then a check that no container, network or volume of the
   project remains (a leak fails the run).

Compose: the `docker compose` plugin when the client has it, else Debian's `docker-compose`
(v1.29), which rejects the top-level `name:` key; it gets a copy of the file without it and
the same project directory. Exit status: the smoke suite's, or 1 when a step failed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import httpx
import yaml

from tools import container_images
from tools.container_images import probe
from tools.processes import free_port, port_open, wait_until

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "mastery-containers"
COMPOSE_FILE = ROOT / "docker-compose.yml"
IMAGE = container_images.APP_IMAGE
ADMIN_EMAIL = "smoke-admin@containers.test"
APP_UID = "10001"
START_TIMEOUT = 300.0  # vfs copies each image for every container: slow on a loaded machine
PUBLISHED = {8000: "web", 9090: "prometheus", 9093: "alertmanager", 3000: "grafana"}


class StackFailed(RuntimeError):
    pass


def say(message: str) -> None:
    print(f"[containers] {message}", flush=True)


def run(
    command: Sequence[str], *, env: Mapping[str, str] | None = None, stdout: int | None = None
) -> subprocess.CompletedProcess[str]:
    """A step: printed, then run; a failure stops the session (CalledProcessError)."""
    say("+ " + " ".join(command))
    return subprocess.run(  # noqa: S603 - docker and compose command lines built here
        command, check=True, text=True, env=env, stdout=stdout
    )


def output(command: Sequence[str]) -> str:
    """What a docker query prints; a failure stops the session."""
    return subprocess.run(  # noqa: S603 - docker command lines built here
        command, check=True, capture_output=True, text=True
    ).stdout


def show(command: Sequence[str]) -> None:
    """Print what a diagnostic command prints (logs), whatever its exit status."""
    subprocess.run(command, check=False)  # noqa: S603 - compose command lines built here


# --- compose ---------------------------------------------------------------------------------


def compose_base(has_plugin: Callable[[], bool] | None = None) -> list[str]:
    """`docker compose` when the plugin answers, else `docker-compose` (v1)."""
    has = has_plugin or (lambda: probe(["docker", "compose", "version"]).returncode == 0)
    if has():
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise StackFailed(
        "no compose: install the docker compose plugin or `apt-get install docker-compose`"
    )


def without_name(text: str) -> str:
    """The compose file for compose v1: the top-level `name:` key removed (-p names it)."""
    return re.sub(r"^name:.*\n", "", text, flags=re.MULTILINE)


def compose_command(base: list[str], file: Path) -> list[str]:
    return [*base, "-p", PROJECT, "--project-directory", str(ROOT), "-f", str(file)]


def service_images(compose: Mapping[str, object], env: Mapping[str, str]) -> dict[str, str]:
    """Each service's image with `${VAR:-default}` resolved from `env`."""
    services = compose["services"]
    if not isinstance(services, dict):
        raise StackFailed("the compose file has no services mapping")
    resolved = {}
    for name, service in services.items():
        image = str(service.get("image", ""))
        resolved[name] = re.sub(
            r"\$\{(\w+):-([^}]*)\}", lambda m: env.get(m.group(1)) or m.group(2), image
        )
    return resolved


def services_to_start(
    images: Mapping[str, str], built: str, available: Callable[[str], bool], local_only: bool
) -> tuple[list[str], list[str]]:
    """(services to start, services left out): without a registry, those without a local image."""
    start, left_out = [], []
    for name, image in images.items():
        if image == built or not local_only or available(image):
            start.append(name)
        else:
            left_out.append(name)
    return start, left_out


def leftovers(listing: Callable[[list[str]], str] = output) -> dict[str, list[str]]:
    """The project's containers, networks and volumes still present (empty lists: clean)."""
    label = f"label=com.docker.compose.project={PROJECT}"
    kinds = {
        "containers": ["docker", "ps", "-a", "--filter", label, "--format", "{{.Names}}"],
        "networks": ["docker", "network", "ls", "--filter", label, "--format", "{{.Name}}"],
        "volumes": ["docker", "volume", "ls", "--filter", label, "--format", "{{.Name}}"],
    }
    return {kind: listing(command).split() for kind, command in kinds.items()}


def health(container: str) -> tuple[str, str, int]:
    """(status, health or "", exit code) of a container."""
    raw = output(["docker", "inspect", "--format", "{{json .State}}", container])
    state = json.loads(raw)
    return state["Status"], (state.get("Health") or {}).get("Status", ""), state["ExitCode"]


def stack_ready(containers: Mapping[str, str]) -> bool:
    """Migrate exited 0 and every other service is healthy; a crash raises at once."""
    for service, container in containers.items():
        status, healthy, code = health(container)
        if service == "migrate":
            if status == "exited" and code != 0:
                raise StackFailed(f"migrate exited {code}")
            if status != "exited":
                return False
        elif status in ("exited", "dead"):
            raise StackFailed(f"{service} stopped (exit code {code})")
        elif healthy != "healthy":
            return False
    return True


def project_containers(services: Iterable[str]) -> dict[str, str]:
    label = f"label=com.docker.compose.project={PROJECT}"
    names = output(
        [
            "docker",
            "ps",
            "-a",
            "--filter",
            label,
            "--format",
            '{{.Label "com.docker.compose.service"}} {{.Names}}',
        ]
    ).split("\n")
    found = dict(line.split(" ", 1) for line in names if line.strip())
    missing = set(services) - set(found)
    if missing:
        raise StackFailed(f"no container for {', '.join(sorted(missing))}")
    return found


# --- the steps -------------------------------------------------------------------------------


def build_image() -> None:
    base = os.environ.get(container_images.python_base().variable)
    if base:
        say(f"no registry mode: base images (cached) and {IMAGE} on {base}")
        container_images.build_bases()
        container_images.build_app(IMAGE, base)
    else:
        run(["docker", "build", "--tag", IMAGE, str(ROOT)])


def check_image() -> None:
    """`docker run IMAGE web`: /healthz, uid 10001, no compiler; removed afterwards."""
    port = free_port()
    name = f"{PROJECT}-image-check-{secrets.token_hex(3)}"
    run(
        [
            *("docker", "run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8000"),
            # /healthz touches neither database nor Redis: the production profile with
            # throwaway secrets, and addresses nothing listens on
            *("-e", "SECRET_KEY", "-e", "METRICS_TOKEN"),
            *("-e", "DATABASE_URL=postgresql+psycopg://nobody@127.0.0.1:1/none"),
            *("-e", "REDIS_URL=redis://127.0.0.1:1/0"),
            *(IMAGE, "web"),
        ],
        env={
            **os.environ,
            "SECRET_KEY": secrets.token_urlsafe(48),
            "METRICS_TOKEN": secrets.token_urlsafe(32),
        },
        stdout=subprocess.DEVNULL,
    )
    try:

        def healthz() -> bool:
            if health(name)[0] != "running":
                raise StackFailed("the web container stopped: " + docker_logs(name))
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(
            "docker run IMAGE web to answer /healthz", healthz, START_TIMEOUT, failure=StackFailed
        )
        uid = output(["docker", "exec", name, "id", "-u"]).strip()
        if uid != APP_UID:
            raise StackFailed(f"the web process runs as uid {uid}, not {APP_UID}")
        # one name per `command -v`: dash stops at the first missing one
        find = "for c in gcc cc c99 clang; do command -v $c; done; true"
        compilers = probe(["docker", "exec", name, "sh", "-c", find]).stdout.split()
        if compilers:
            raise StackFailed(f"the image has a compiler: {', '.join(compilers)}")
        say(f"image check passed: /healthz 200, uid {uid}, no gcc/cc")
    finally:
        probe(["docker", "rm", "-f", "-v", name])  # gone already is fine


def docker_logs(container: str) -> str:
    return probe(["docker", "logs", "--tail", "60", container]).stdout


def image_available(image: str) -> bool:
    return probe(["docker", "image", "inspect", image]).returncode == 0


def stack(smoke_args: list[str], workdir: Path) -> int:
    for port, service in PUBLISHED.items():
        if port_open("127.0.0.1", port):
            raise StackFailed(f"127.0.0.1:{port} ({service}) is taken: stop what listens there")
    run(["bash", str(ROOT / "deploy" / "compose" / "make-secrets.sh")], stdout=subprocess.DEVNULL)
    base = compose_base()
    file = COMPOSE_FILE
    if base == ["docker-compose"]:
        file = workdir / "docker-compose.v1.yml"
        file.write_text(without_name(COMPOSE_FILE.read_text()))
    compose = compose_command(base, file)
    definition = yaml.safe_load(COMPOSE_FILE.read_text())
    images = service_images(definition, os.environ)
    local_only = bool(os.environ.get(container_images.python_base().variable))
    services, left_out = services_to_start(images, IMAGE, image_available, local_only)
    for name in left_out:
        say(f"not started: {name} (no local image {images[name]} and no registry)")
    try:
        up_started = time.monotonic()
        run([*compose, "up", "-d", "--no-build", *services])
        containers = project_containers(services)
        wait_until(
            f"{', '.join(services)}: migrate done, the rest healthy",
            lambda: stack_ready(containers),
            START_TIMEOUT,
            failure=StackFailed,
            interval=2,
        )
        healthy = ", ".join(name for name in services if name != "migrate")
        say(
            f"stack up in {time.monotonic() - up_started:.0f} s: migrate exited 0; healthy: "
            + healthy
        )
        password = secrets.token_urlsafe(24)
        # the password travels in the environment (docker exec -e NAME), never in argv
        run(
            [
                *("docker", "exec", "-e", "ADMIN_PASSWORD", containers["web"]),
                *("flask", "--app", "app", "users", "create-admin", ADMIN_EMAIL),
                *("--name", "Smoke admin"),
            ],
            env={**os.environ, "ADMIN_PASSWORD": password},
        )
        token = (ROOT / "deploy" / "compose" / "secrets" / "metrics_token").read_text().strip()
        smoke_env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("SMOKE_")},
            "SMOKE_ADMIN_EMAIL": ADMIN_EMAIL,
            "SMOKE_ADMIN_PASSWORD": password,
            "SMOKE_METRICS_TOKEN": token,
        }
        command = [
            *(sys.executable, "-m", "pytest", "tests/smoke"),
            *("--base-url", "http://127.0.0.1:8000", *smoke_args),
        ]
        say("running the smoke suite: " + " ".join(command[1:]))
        smoke_started = time.monotonic()
        status = subprocess.run(  # noqa: S603 - the smoke suite's command line, built here
            command, cwd=ROOT, env=smoke_env, check=False
        ).returncode
        say(f"smoke suite exited {status} after {time.monotonic() - smoke_started:.0f} s")
        stack_ready(containers)  # a crash during the run fails it even if the checks passed
        if status != 0:
            show([*compose, "logs", "--tail", "80"])
        return status
    except Exception:
        show([*compose, "logs", "--tail", "80"])
        raise
    finally:
        run([*compose, "down", "-v", "--remove-orphans"])
        left = leftovers()
        if any(left.values()):
            raise StackFailed(f"`down -v` left {left}")
        say("down -v: no container, network or volume of the project remains")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ops.containers.containers",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="Other arguments go to the smoke suite's pytest (e.g. -k health, -x).",
    )
    parser.add_argument("--no-build", action="store_true", help=f"use the existing {IMAGE}")
    args, smoke_args = parser.parse_known_args(argv)
    started = time.monotonic()
    status = 1
    with tempfile.TemporaryDirectory(prefix="mastery-containers-") as tmp:
        try:
            if not args.no_build:
                build_started = time.monotonic()
                build_image()
                say(f"images ready in {time.monotonic() - build_started:.0f} s")
            check_image()
            status = stack(smoke_args, Path(tmp))
        except (StackFailed, subprocess.CalledProcessError) as error:
            say(f"FAILED: {error}")
            status = status or 1
    say(f"CONTAINERS {'PASSED' if status == 0 else 'FAILED'} in {time.monotonic() - started:.0f} s")
    return status


if __name__ == "__main__":
    sys.exit(main())
