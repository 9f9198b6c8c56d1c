"""The local image builder (tools/container_images.py): what a build hashes, when an image is
stale, what an engine set-up installs, and the images the shell is told about."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tools import container_images as ci
from tools.container_images import Image, RootFs

ROOT = Path(__file__).resolve().parents[2]


def rootfs(tmp_path: Path, **overrides: object) -> RootFs:
    entry = tmp_path / "entry.sh"
    if not entry.exists():
        entry.write_text('#!/bin/sh\nexec "$@"\n')
    fields: dict[str, object] = {
        "key": "demo",
        "packages": ("redis-server",),
        "images": (Image("local/demo:1", "DEMO_IMAGE", "demo:1", ('CMD ["demo"]',)),),
        "files": (("entry.sh", "/usr/local/bin/entry"),),
        "setup": ("mkdir -p /data",),
    }
    fields.update(overrides)
    return RootFs(**fields)  # type: ignore[arg-type]  # the fields of the dataclass, by name


def test_a_rootfs_hash_is_stable_and_changes_with_every_input(tmp_path: Path) -> None:
    original = ci.rootfs_hash(rootfs(tmp_path), tmp_path)
    assert ci.rootfs_hash(rootfs(tmp_path), tmp_path) == original

    changed = [
        rootfs(tmp_path, packages=("redis-server", "redis-tools")),
        rootfs(tmp_path, setup=("mkdir -p /other",)),
        rootfs(tmp_path, images=(Image("local/demo:1", "DEMO_IMAGE", "demo:1", ('CMD ["x"]',)),)),
        rootfs(tmp_path, files=(("entry.sh", "/elsewhere"),)),
    ]
    assert len({ci.rootfs_hash(r, tmp_path) for r in changed} | {original}) == 5

    (tmp_path / "entry.sh").write_text("#!/bin/sh\necho changed\n")
    assert ci.rootfs_hash(rootfs(tmp_path), tmp_path) != original


def test_the_package_order_does_not_change_the_hash(tmp_path: Path) -> None:
    one = rootfs(tmp_path, packages=("a", "b"))
    other = rootfs(tmp_path, packages=("b", "a"))

    assert ci.rootfs_hash(one, tmp_path) == ci.rootfs_hash(other, tmp_path)


def test_an_image_is_stale_unless_its_label_is_the_hash_of_its_inputs() -> None:
    spec = next(r for r in ci.ROOTFS if r.key == "monitoring")
    wanted = ci.rootfs_hash(spec)
    labels = {"mastery-local/prometheus:2": wanted, "mastery-local/alertmanager:0": "old"}

    assert ci.stale(spec, labels.get) == [spec.images[1]]
    assert ci.stale(spec, lambda _name: wanted) == []
    assert ci.stale(spec, lambda _name: None) == list(spec.images)


def make_context(root: Path) -> None:
    for name in ci.APP_INPUTS:
        if name == "app":
            (root / "app" / "__pycache__").mkdir(parents=True)
            (root / "app" / "__init__.py").write_text("x = 1\n")
            (root / "app" / "__pycache__" / "__init__.cpython-311.pyc").write_bytes(b"1")
        else:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(name)


def test_the_app_hash_follows_the_build_context_and_the_base_but_not_bytecode(
    tmp_path: Path,
) -> None:
    make_context(tmp_path)
    original = ci.app_hash(tmp_path, "sha256:base")

    (tmp_path / "app" / "__pycache__" / "__init__.cpython-311.pyc").write_bytes(b"2")
    assert ci.app_hash(tmp_path, "sha256:base") == original
    assert ci.app_hash(tmp_path, "sha256:other-base") != original
    (tmp_path / "app" / "__init__.py").write_text("x = 2\n")
    assert ci.app_hash(tmp_path, "sha256:base") != original


def test_the_app_inputs_are_what_the_dockerignore_admits() -> None:
    admitted = {
        line.lstrip("!").rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    # build/wheels is downloaded from requirements.txt, which is hashed already
    assert admitted - {"build/wheels"} <= set(ci.APP_INPUTS)


def test_the_install_script_keeps_images_small_and_starts_no_daemon() -> None:
    spec = next(r for r in ci.ROOTFS if r.key == "postgres")
    script = ci.install_script(spec)

    assert "--no-install-recommends postgresql-15" in script
    assert "rm -f /usr/sbin/policy-rc.d" in script
    assert "/var/lib/apt/lists/*" in script
    assert script.index("pg_dropcluster") < script.index("apt-get clean")


def test_no_base_image_carries_a_compiler() -> None:
    packages = {p for r in ci.ROOTFS for p in r.packages}

    assert not packages & {"gcc", "build-essential", "clang", "cpp", "python3-dev"}


@pytest.mark.parametrize(
    ("tools", "compose", "expected"),
    [
        ({"dockerd", "debootstrap"}, True, []),
        (set(), True, ["docker.io", "debootstrap"]),
        ({"dockerd"}, False, ["debootstrap", "docker-compose"]),
    ],
)
def test_the_engine_set_up_installs_only_what_is_missing(
    tools: set[str], compose: bool, expected: list[str]
) -> None:
    which = lambda tool: f"/usr/bin/{tool}" if tool in tools else None  # noqa: E731 - a stand-in
    assert ci.missing_packages(which, lambda: compose) == expected


def test_the_env_lines_name_every_local_image_for_the_compose_files_and_the_harness() -> None:
    exported = {}
    for line in ci.env_lines():
        match = re.fullmatch(r"export (\w+)=(\S+)", line)
        assert match is not None, line
        exported[match[1]] = match[2]

    assert exported["MASTERY_POSTGRES_IMAGE"] == "mastery-local/postgres:15"
    assert exported["MASTERY_REDIS_IMAGE"] == "mastery-local/redis:7"
    compose = (ROOT / "docker-compose.yml").read_text()
    for variable in exported:
        if variable != "MASTERY_PYTHON_BASE_IMAGE":
            assert f"${{{variable}:-" in compose, variable


def test_the_dockerfile_default_base_is_the_pinned_official_image() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    default = re.search(r"^ARG BASE_IMAGE=(\S+)$", dockerfile, re.MULTILINE)

    assert default is not None
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", default.group(1))
    assert re.findall(r"^FROM (\S+) AS", dockerfile, re.MULTILINE) == ["${BASE_IMAGE}"] * 2


def test_a_pid_file_naming_no_running_dockerd_is_stale(tmp_path: Path) -> None:
    pid_file, proc = tmp_path / "docker.pid", tmp_path / "proc"
    assert not ci.stale_pid_file(pid_file, proc)  # no file: nothing to remove

    def process(pid: str, stat: str) -> None:
        (proc / pid).mkdir(parents=True)
        (proc / pid / "stat").write_text(stat)

    process("100", "100 (dockerd) S 1 100 100 0")
    process("200", "200 (python3) S 1 200 200 0")
    process("300", "300 (dockerd) Z 1 300 300 0")
    verdicts = {}
    for pid in ("100", "200", "300", "400"):
        pid_file.write_text(f"{pid}\n")
        verdicts[pid] = ci.stale_pid_file(pid_file, proc)

    # a live dockerd keeps its file; a reused pid, a zombie or a gone process does not
    assert verdicts == {"100": False, "200": True, "300": True, "400": True}
