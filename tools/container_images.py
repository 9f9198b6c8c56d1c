"""Build the container images this project needs on a machine that reaches no image registry.

    python3 -m tools.container_images setup     # engine + base images, as .ci/run does (root)
    python3 -m tools.container_images engine    # apt-get install docker.io debootstrap
                                                 # docker-compose when missing; start dockerd
    python3 -m tools.container_images build     # the base images (cached): Python, Postgres,
                                                 # Redis, Prometheus, Alertmanager
    python3 -m tools.container_images app       # wheels from the lock, then mastery:local
    python3 -m tools.container_images status    # which images are up to date
    python3 -m tools.container_images env       # `export NAME=image` lines for the shell

Where a registry answers (Docker Desktop, GitHub Actions) none of this is needed: the compose
files and the test harness name the official images (postgres:15-alpine, redis:7-alpine, the
pinned python base of the Dockerfile) and Docker pulls them.

Here (docs/deployment.md, "Images without a registry") each base image is a Debian bookworm
root filesystem made on the host: `debootstrap --variant=minbase`, packages installed with
`chroot DIR apt-get install --no-install-recommends` over the host's network, apt lists and
docs removed, then `tar -C DIR -c . | docker import` with the image's entrypoint and command.
Each image carries the label io.mastery.inputs = a hash of everything that went into it (the
suite, the package list, the set-up commands, the files copied in, its import changes), so a
build is skipped when an image with that label exists and redone only when an input changes.

The application image builds on the local Python base with the Dockerfile as it is
(`--build-arg BASE_IMAGE=...`): the wheels are downloaded on the host with pip from
requirements.txt (hashes checked) into build/wheels/ (git-ignored), which the Dockerfile
installs from with PIP_NO_INDEX, so no build step needs the network. Its label hashes the
build context's files and the base image's id.

Stdlib only: .ci/run calls it with the system python3 before any nox venv exists.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]
LABEL = "io.mastery.inputs"
# Bump to rebuild every image when the way they are made changes (not their inputs).
FORMAT = 1
SUITE = "bookworm"
MIRROR = os.environ.get("MASTERY_DEBIAN_MIRROR", "http://deb.debian.org/debian")
SECURITY_MIRROR = os.environ.get(
    "MASTERY_DEBIAN_SECURITY_MIRROR", "http://deb.debian.org/debian-security"
)
WHEELS_DIR = ROOT / "build" / "wheels"
APP_IMAGE = "mastery:local"
# What the Dockerfile copies: the application image's inputs besides the base image.
APP_INPUTS = (
    "Dockerfile",
    ".dockerignore",
    "requirements.txt",
    "gunicorn.conf.py",
    "app",
    "deploy/docker/entrypoint.sh",
)


@dataclass(frozen=True)
class Image:
    """One image imported from a root filesystem, and how the project refers to it."""

    name: str  # the local tag, e.g. mastery-local/postgres:15
    variable: str  # the environment variable that names the image to use
    official: str  # what the variable defaults to where a registry answers
    changes: tuple[str, ...]  # Dockerfile instructions for `docker import --change`


@dataclass(frozen=True)
class RootFs:
    """A Debian root filesystem: packages, files copied in, set-up commands, its images."""

    key: str
    packages: tuple[str, ...]
    images: tuple[Image, ...]
    files: tuple[tuple[str, str], ...] = ()  # (path in the repository, path in the image)
    setup: tuple[str, ...] = ()  # shell commands run in the chroot after the packages


SETPRIV_ENTRY = "/usr/local/bin/docker-entrypoint"
ROOTFS: tuple[RootFs, ...] = (
    RootFs(
        key="python",
        # python-is-python3: the Dockerfile says `python`; postgresql-client-15 for
        # `flask backup` (the Dockerfile installs it only where the base lacks pg_dump)
        packages=(
            "python3",
            "python3-venv",
            "python-is-python3",
            "postgresql-client-15",
            "ca-certificates",
        ),
        images=(
            Image(
                "mastery-local/python:3.11-bookworm",
                "MASTERY_PYTHON_BASE_IMAGE",
                "python:3.11.14-slim-bookworm (pinned by digest in the Dockerfile)",
                ("ENV LANG=C.UTF-8", 'CMD ["python3"]'),
            ),
        ),
    ),
    RootFs(
        key="postgres",
        packages=("postgresql-15",),
        files=(("deploy/docker/local/postgres-entrypoint.sh", SETPRIV_ENTRY),),
        # no cluster from the package: the entrypoint initialises PGDATA on first start
        setup=("pg_dropcluster 15 main", "mkdir -p /var/lib/postgresql/data"),
        images=(
            Image(
                "mastery-local/postgres:15",
                "MASTERY_POSTGRES_IMAGE",
                "postgres:15-alpine",
                (
                    "ENV LANG=C.UTF-8",
                    "ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:"
                    "/usr/sbin:/usr/bin:/sbin:/bin",
                    "ENV PGDATA=/var/lib/postgresql/data",
                    "EXPOSE 5432",
                    f'ENTRYPOINT ["{SETPRIV_ENTRY}"]',
                    'CMD ["postgres"]',
                ),
            ),
        ),
    ),
    RootFs(
        key="redis",
        packages=("redis-server", "redis-tools"),
        files=(("deploy/docker/local/redis-entrypoint.sh", SETPRIV_ENTRY),),
        setup=("mkdir -p /data",),
        images=(
            Image(
                "mastery-local/redis:7",
                "MASTERY_REDIS_IMAGE",
                "redis:7-alpine",
                (
                    "WORKDIR /data",
                    "EXPOSE 6379",
                    f'ENTRYPOINT ["{SETPRIV_ENTRY}"]',
                    'CMD ["redis-server"]',
                ),
            ),
        ),
    ),
    RootFs(
        key="monitoring",
        # Debian's builds (Prometheus 2.42, Alertmanager 0.25); wget for compose's health checks
        packages=("prometheus", "prometheus-alertmanager", "wget"),
        setup=(
            "mkdir -p /prometheus /alertmanager",
            "chown nobody:nogroup /prometheus /alertmanager",
        ),
        images=(
            Image(
                "mastery-local/prometheus:2",
                "MASTERY_PROMETHEUS_IMAGE",
                "prom/prometheus:v2.55.1",
                (
                    "USER nobody",
                    "WORKDIR /prometheus",
                    "EXPOSE 9090",
                    'ENTRYPOINT ["/usr/bin/prometheus"]',
                    'CMD ["--config.file=/etc/prometheus/prometheus.yml", '
                    '"--storage.tsdb.path=/prometheus"]',
                ),
            ),
            Image(
                "mastery-local/alertmanager:0",
                "MASTERY_ALERTMANAGER_IMAGE",
                "prom/alertmanager:v0.27.0",
                (
                    "USER nobody",
                    "WORKDIR /alertmanager",
                    "EXPOSE 9093",
                    'ENTRYPOINT ["/usr/bin/prometheus-alertmanager"]',
                    'CMD ["--config.file=/etc/alertmanager/alertmanager.yml", '
                    '"--storage.path=/alertmanager"]',
                ),
            ),
        ),
    ),
)
# Removed from every root filesystem before import: nothing at run time reads them.
PRUNE = (
    "/var/lib/apt/lists/*",
    "/var/cache/apt/*",
    "/var/cache/debconf/*-old",
    "/var/log/*",
    "/usr/share/doc/*",
    "/usr/share/man/*",
    "/usr/share/info/*",
    "/usr/share/locale/*",
    "/tmp/*",  # noqa: S108 - the image's /tmp, emptied before import, not a file of ours
)


# --- hashes --------------------------------------------------------------------------------


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def rootfs_hash(rootfs: RootFs, root: Path = ROOT) -> str:
    """The hash of everything that goes into the images of `rootfs`."""
    inputs = {
        "format": FORMAT,
        "suite": SUITE,
        "variant": "minbase",
        "packages": sorted(rootfs.packages),
        "setup": list(rootfs.setup),
        "files": [[dest, file_digest(root / source)] for source, dest in rootfs.files],
        "images": [[image.name, list(image.changes)] for image in rootfs.images],
        "prune": list(PRUNE),
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def context_files(root: Path, inputs: Iterable[str] = APP_INPUTS) -> list[Path]:
    """The files of the application image's build context, sorted (no bytecode)."""
    files: list[Path] = []
    for name in inputs:
        path = root / name
        if path.is_dir():
            files.extend(
                p
                for p in path.rglob("*")
                if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
            )
        else:
            files.append(path)
    return sorted(files)


def app_hash(root: Path, base_id: str) -> str:
    """The hash of the application image's inputs: its build context and its base image."""
    digest = hashlib.sha256(f"{FORMAT}\n{base_id}\n".encode())
    for path in context_files(root):
        digest.update(f"{path.relative_to(root).as_posix()}\0{file_digest(path)}\n".encode())
    return digest.hexdigest()


# --- docker --------------------------------------------------------------------------------


def run(
    command: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    stdin: IO[bytes] | None = None,
    stdout: int | None = None,
    capture_output: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run a step of a build, printed first; a failure stops the build (CalledProcessError)."""
    print("+ " + shlex.join(command), flush=True)
    return subprocess.run(  # noqa: S603 - this module's own command lines, never outside input
        command,
        check=True,
        text=True,
        env=env,
        stdin=stdin,
        stdout=stdout,
        capture_output=capture_output,
    )


def probe(command: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """Ask a question by running a command: its exit status and output are the answer."""
    return subprocess.run(  # noqa: S603 - this module's own command lines, never outside input
        command, capture_output=True, text=True, check=False
    )


def image_label(name: str) -> str | None:
    """The io.mastery.inputs label of a local image; None when there is no such image."""
    label = f'{{{{index .Config.Labels "{LABEL}"}}}}'
    result = probe(["docker", "image", "inspect", "--format", label, name])
    return result.stdout.strip() if result.returncode == 0 else None


def image_id(name: str) -> str:
    return run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", name], capture_output=True
    ).stdout.strip()


def current_id(name: str) -> str | None:
    """The id of the image tagged `name`; None when there is none."""
    result = probe(["docker", "image", "inspect", "--format", "{{.Id}}", name])
    return result.stdout.strip() if result.returncode == 0 else None


def remove_replaced(name: str, previous: str | None) -> None:
    """Remove the image `name` pointed to before a rebuild: on vfs each is a full copy of its
    file system, hundreds of MB. Only that image: the layers the new one shares stay, and so
    does the build cache (a prune by label would take the builder stage's cache with it)."""
    if previous is not None and previous != current_id(name):
        probe(["docker", "image", "rm", previous])  # still used by a container: kept, harmless


def stale(rootfs: RootFs, label_of: Callable[[str], str | None] = image_label) -> list[Image]:
    """The images of `rootfs` that are missing or were built from other inputs."""
    wanted = rootfs_hash(rootfs)
    return [image for image in rootfs.images if label_of(image.name) != wanted]


# --- building root filesystems -------------------------------------------------------------


def debootstrap(target: Path) -> None:
    run(["debootstrap", "--variant=minbase", SUITE, str(target), MIRROR])
    (target / "etc/apt/sources.list").write_text(
        f"deb {MIRROR} {SUITE} main\n"
        f"deb {MIRROR} {SUITE}-updates main\n"
        f"deb {SECURITY_MIRROR} {SUITE}-security main\n"
    )
    # the packages' maintainer scripts must not start daemons inside the chroot
    policy = target / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    # no `apt-get update` here: each tree runs its own (lists are pruned before import)


def chroot(tree: Path, script: str) -> None:
    run(["chroot", str(tree), "/bin/sh", "-euc", script], env=chroot_env())


def chroot_env() -> dict[str, str]:
    return {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "DEBIAN_FRONTEND": "noninteractive",
        "LANG": "C.UTF-8",
        "HOME": "/root",
    }


def install_script(rootfs: RootFs) -> str:
    """The shell run in the chroot: update, install, set up, prune."""
    lines = [
        "apt-get update -qq",
        "apt-get upgrade -y -qq",
        "apt-get install -y -qq --no-install-recommends " + " ".join(rootfs.packages),
        *rootfs.setup,
        "apt-get clean",
        "rm -f /usr/sbin/policy-rc.d /etc/resolv.conf",
        "rm -rf " + " ".join(PRUNE),
    ]
    return "\n".join(lines)


def build_rootfs(rootfs: RootFs, base_tree: Path, workdir: Path) -> None:
    """Copy the debootstrap tree, install into it, import it as each of its images."""
    tree = workdir / rootfs.key
    run(["cp", "-a", str(base_tree), str(tree)])
    shutil.copy("/etc/resolv.conf", tree / "etc/resolv.conf")
    for source, dest in rootfs.files:
        target = tree / dest.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / source, target)
        target.chmod(0o755)
    proc = tree / "proc"
    run(["mount", "-t", "proc", "proc", str(proc)])
    try:
        chroot(tree, install_script(rootfs))
    finally:
        run(["umount", str(proc)])
    label = rootfs_hash(rootfs)
    for image in rootfs.images:
        previous = current_id(image.name)
        changes = [*image.changes, f"LABEL {LABEL}={label}"]
        tar = subprocess.Popen(  # noqa: S603 - a fixed command line over our own directory
            ["tar", "-C", str(tree), "--numeric-owner", "-c", "."],  # noqa: S607 - tar from PATH
            stdout=subprocess.PIPE,
        )
        try:
            run(
                ["docker", "import", *[f"--change={c}" for c in changes], "-", image.name],
                stdin=tar.stdout,
                stdout=subprocess.DEVNULL,
            )
        finally:
            if tar.stdout is not None:
                tar.stdout.close()
            if tar.wait() != 0:
                raise RuntimeError(f"tar of {tree} failed")
        remove_replaced(image.name, previous)
    shutil.rmtree(tree)


def build_bases(selected: Sequence[str] = ()) -> dict[str, float]:
    """Build the stale base images (all, or those of the named root filesystems); seconds each."""
    todo = [r for r in ROOTFS if (not selected or r.key in selected) and stale(r)]
    timings: dict[str, float] = {}
    for rootfs in ROOTFS:
        if rootfs not in todo and (not selected or rootfs.key in selected):
            print(f"up to date: {', '.join(i.name for i in rootfs.images)}", flush=True)
    if not todo:
        return timings
    missing = [tool for tool in ("debootstrap", "docker") if shutil.which(tool) is None]
    if missing:
        raise SystemExit(f"missing {', '.join(missing)}: apt-get install debootstrap docker.io")
    workdir = Path(tempfile.mkdtemp(prefix="mastery-images-", dir="/var/tmp"))
    try:
        started = time.monotonic()
        base = workdir / "base"
        debootstrap(base)
        timings["debootstrap"] = time.monotonic() - started
        for rootfs in todo:
            started = time.monotonic()
            build_rootfs(rootfs, base, workdir)
            timings[rootfs.key] = time.monotonic() - started
    finally:
        with_proc = [p for p in workdir.glob("*/proc") if os.path.ismount(p)]
        for proc in with_proc:
            probe(["umount", "-l", str(proc)])  # lazily: the tree is removed next anyway
        shutil.rmtree(workdir, ignore_errors=True)
    return timings


# --- the application image -----------------------------------------------------------------


# Printed by the base image's own Python: the values its pip would evaluate markers with, and
# its glibc (the manylinux tags its pip accepts).
TARGET_PROBE = """
import json, os, platform, sys
print(json.dumps({
    "implementation_name": sys.implementation.name,
    "implementation_version": platform.python_version(),
    "os_name": os.name,
    "platform_machine": platform.machine(),
    "platform_python_implementation": platform.python_implementation(),
    "platform_release": platform.release(),
    "platform_system": platform.system(),
    "platform_version": platform.version(),
    "python_full_version": platform.python_version(),
    "python_version": ".".join(platform.python_version_tuple()[:2]),
    "sys_platform": sys.platform,
    "glibc": os.confstr("CS_GNU_LIBC_VERSION").split()[-1],
}))
"""


def lock_entries(text: str) -> list[str]:
    """requirements.txt as one string per requirement (continuation lines joined, no comments)."""
    entries: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line.strip():
            continue
        current += " " + line.strip().rstrip("\\").strip() if current else line.rstrip("\\").strip()
        if not line.endswith("\\"):
            entries.append(current)
            current = ""
    if current:
        entries.append(current)
    return entries


def for_target(text: str, evaluate: Callable[[str], bool]) -> str:
    """The lock for the image's interpreter: entries whose marker holds there, markers removed.

    The host's pip would evaluate `; python_full_version < '3.11.3'` against the host's Python,
    not the image's (Debian's 3.11.2), and leave out a wheel the image needs.
    """
    kept = []
    for entry in lock_entries(text):
        requirement, _, rest = entry.partition(" --hash")
        name, semicolon, marker = requirement.partition(";")
        if semicolon and not evaluate(marker.strip()):
            continue
        kept.append(f"{name.strip()} --hash{rest}" if rest else name.strip())
    return "\n".join(kept) + "\n"


def target_tags(environment: dict[str, str]) -> list[str]:
    """pip download options for the image's interpreter and glibc."""
    major, minor = (int(part) for part in environment["glibc"].split(".")[:2])
    version = environment["python_version"]
    abi = "cp" + version.replace(".", "")
    platforms = [
        f"manylinux_{major}_{m}_{environment['platform_machine']}" for m in range(minor, 4, -1)
    ]
    platforms += [f"linux_{environment['platform_machine']}"]
    options = ["--python-version", version, "--implementation", "cp"]
    for tag in (abi, "abi3", "none"):
        options += ["--abi", tag]
    for platform_tag in platforms:
        options += ["--platform", platform_tag]
    return options


def marker_evaluator(environment: dict[str, str]) -> Callable[[str], bool]:
    try:
        from packaging.markers import Marker
    except ImportError:  # pip vendors it; the system python3 of .ci/run may lack the package
        from pip._vendor.packaging.markers import Marker  # type: ignore[assignment]  # same API

    return lambda marker: bool(Marker(marker).evaluate(environment))


def download_wheels(base: str, root: Path = ROOT, python: str = sys.executable) -> None:
    """pip download the locked wheels for `base`'s interpreter (hashes checked) to build/wheels/."""
    wheels = root / "build" / "wheels"
    shutil.rmtree(wheels, ignore_errors=True)
    wheels.mkdir(parents=True)
    probe = run(["docker", "run", "--rm", base, "python3", "-c", TARGET_PROBE], capture_output=True)
    environment = json.loads(probe.stdout)
    lock = wheels.parent / "requirements.target.txt"
    lock.write_text(
        for_target((root / "requirements.txt").read_text(), marker_evaluator(environment))
    )
    run(
        [
            python,
            *("-m", "pip", "download", "--quiet", "--require-hashes", "--only-binary=:all:"),
            *("--no-deps", *target_tags(environment), "-r", str(lock), "-d", str(wheels)),
        ],
        # the host's pip configuration must not add constraints the lock does not have
        env={**os.environ, "PIP_CONSTRAINT": ""},
    )


def python_base() -> Image:
    return next(r for r in ROOTFS if r.key == "python").images[0]


def build_app(tag: str = APP_IMAGE, base: str | None = None) -> float | None:
    """Build the application image on the local base unless its inputs are unchanged."""
    base = base or os.environ.get(python_base().variable) or python_base().name
    wanted = app_hash(ROOT, image_id(base))
    if image_label(tag) == wanted:
        print(f"up to date: {tag}", flush=True)
        return None
    started = time.monotonic()
    previous = current_id(tag)
    download_wheels(base)
    run(
        [
            *("docker", "build", "--tag", tag, "--label", f"{LABEL}={wanted}"),
            *("--build-arg", f"BASE_IMAGE={base}", "--build-arg", "PIP_NO_INDEX=1"),
            *("--build-arg", "PIP_FIND_LINKS=/tmp/wheels", str(ROOT)),
        ],
        # the classic builder: BuildKit would fetch the `# syntax=` frontend from a registry
        env={**os.environ, "DOCKER_BUILDKIT": "0"},
    )
    remove_replaced(tag, previous)
    return time.monotonic() - started


# --- the engine ----------------------------------------------------------------------------

DOCKERD_LOG = Path("/var/log/mastery-dockerd.log")
# tool -> the Debian package that brings it
ENGINE_PACKAGES = (("dockerd", "docker.io"), ("debootstrap", "debootstrap"))


def compose_available() -> bool:
    """`docker compose` (the plugin) or `docker-compose` answers."""
    if shutil.which("docker-compose"):
        return True
    if shutil.which("docker") is None:
        return False
    return probe(["docker", "compose", "version"]).returncode == 0


def missing_packages(
    which: Callable[[str], str | None] = shutil.which,
    compose: Callable[[], bool] = compose_available,
) -> list[str]:
    """The Debian packages to install for an engine, image builds and compose."""
    missing = [package for tool, package in ENGINE_PACKAGES if which(tool) is None]
    if not compose():
        missing.append("docker-compose")
    return missing


def engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    return probe(["docker", "info"]).returncode == 0


DOCKERD_PID_FILE = Path("/var/run/docker.pid")


def stale_pid_file(pid_file: Path, proc: Path = Path("/proc")) -> bool:
    """True when `pid_file` names no running dockerd (a killed daemon's, its pid maybe reused).

    dockerd refuses to start while its pid file names any live process.
    """
    try:
        pid = pid_file.read_text().strip()
    except FileNotFoundError:
        return False
    try:
        stat = (proc / pid / "stat").read_text()
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return True
    # "PID (COMM) STATE ...": a zombie (Z) or another program does not count
    command, _, rest = stat.partition(") ")
    return command.split("(", 1)[-1] != "dockerd" or rest.startswith("Z")


def remove_stale_pid_file() -> None:
    if stale_pid_file(DOCKERD_PID_FILE):
        print(f"removing {DOCKERD_PID_FILE}: it names no running dockerd", flush=True)
        DOCKERD_PID_FILE.unlink(missing_ok=True)


def ensure_engine(timeout: float = 60.0) -> float | None:
    """Install what is missing, start dockerd (vfs) unless one answers; seconds to answer.

    None when an engine already answered. Fails loudly (SystemExit) when it cannot start.
    """
    packages = missing_packages()
    if packages:
        if os.geteuid() != 0:
            raise SystemExit(f"missing {', '.join(packages)}: run as root to install them")
        run(["apt-get", "update", "-qq"])
        run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
    if engine_answers():
        return None
    if os.geteuid() != 0:
        raise SystemExit("no Docker engine answers and only root can start dockerd here")
    remove_stale_pid_file()
    started = time.monotonic()
    with DOCKERD_LOG.open("ab") as log:
        # vfs: the one storage driver that works on every file system (overlay may not nest)
        daemon = subprocess.Popen(
            ["dockerd", "--storage-driver", "vfs"],  # noqa: S607 - the one apt-get installed
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    while not engine_answers():
        if daemon.poll() is not None or time.monotonic() - started > timeout:
            tail = DOCKERD_LOG.read_text(errors="replace").splitlines()[-20:]
            raise SystemExit(
                f"dockerd did not answer (exit {daemon.poll()}); {DOCKERD_LOG}:\n" + "\n".join(tail)
            )
        time.sleep(0.2)  # polling `docker info`, the positive signal; not a fixed wait
    return time.monotonic() - started


# --- command line --------------------------------------------------------------------------


def all_images() -> list[Image]:
    return [image for rootfs in ROOTFS for image in rootfs.images]


def env_lines() -> list[str]:
    return [f"export {image.variable}={image.name}" for image in all_images()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m tools.container_images", description=__doc__.split("\n\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build the stale base images")
    keys = [rootfs.key for rootfs in ROOTFS]
    build.add_argument("only", nargs="*", metavar="ROOTFS", help=f"any of {', '.join(keys)}")
    commands.add_parser("engine", help="install docker.io, debootstrap, compose; start dockerd")
    commands.add_parser("setup", help="engine, then build the stale base images")
    commands.add_parser("app", help=f"build {APP_IMAGE} on the local Python base")
    commands.add_parser("status", help="which images are up to date")
    commands.add_parser("env", help="export lines naming the local images")
    args = parser.parse_args(argv)
    if args.command == "build" and set(args.only) - set(keys):
        parser.error(f"unknown root filesystem: {', '.join(sorted(set(args.only) - set(keys)))}")
    if args.command == "env":
        print("\n".join(env_lines()))
    elif args.command == "status":
        for rootfs in ROOTFS:
            old = stale(rootfs)
            for image in rootfs.images:
                print(f"{'stale' if image in old else 'ok   '} {image.name}")
    elif args.command in ("engine", "setup"):
        seconds = ensure_engine()
        print(
            "engine: " + ("already answering" if seconds is None else f"started in {seconds:.1f} s")
        )
        if args.command == "setup":
            for name, took in build_bases().items():
                print(f"built {name} in {took:.0f} s", flush=True)
    elif args.command == "build":
        for name, seconds in build_bases(args.only).items():
            print(f"built {name} in {seconds:.0f} s", flush=True)
    else:
        seconds = build_app()
        if seconds is not None:
            print(f"built {APP_IMAGE} in {seconds:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
