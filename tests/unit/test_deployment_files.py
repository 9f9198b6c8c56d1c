"""The deployment files agree with the code and with each other: every setting is documented
in every environment template, the templates pass the hardened checks once their secrets are
filled in, the image and compose files keep their promises, and CI maps one job to one nox
session. (Their syntax and schemas are checked by the lint hooks; these are the cross-file
rules no linter knows.)"""

from __future__ import annotations

import ast
import hashlib
import io
import os
import re

# subprocess: runs deploy/fly/release.sh in bash, with stand-ins for flyctl, gh, curl and docker.
import subprocess  # nosec B404 - runs the repository's own deploy script
import tarfile
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.config import SECRET_SETTINGS, Settings

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = {
    "development": ROOT / ".env.example",
    "staging": ROOT / "deploy" / "staging.env.example",
    "production": ROOT / "deploy" / "production.env.example",
}
HARDENED_TEMPLATES = ["staging", "production"]
SETTING_LINE = re.compile(r"^([A-Z][A-Z0-9_]*)=(.*)$")
PINNED_ACTION = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+(\.\d+)*$")


def env_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def env_values(path: Path) -> dict[str, str]:
    return {m[1]: m[2] for line in env_lines(path) if (m := SETTING_LINE.match(line))}


def setting_names() -> set[str]:
    return {name.upper() for name in Settings.model_fields}


def load_yaml(relative: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / relative).read_text(encoding="utf-8"))
    return data


def workflow_steps(relative: str) -> list[dict[str, Any]]:
    return [step for job in load_yaml(relative)["jobs"].values() for step in job.get("steps", [])]


def gate_sessions() -> list[str]:
    """nox.options.sessions from noxfile.py, read without importing nox."""
    tree = ast.parse((ROOT / "noxfile.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.targets[0], ast.Attribute)
            and ast.unparse(node.targets[0]) == "nox.options.sessions"
        ):
            value = ast.literal_eval(node.value)
            assert isinstance(value, list)
            return [str(name) for name in value]
    raise AssertionError("noxfile.py sets no nox.options.sessions")


# --- environment templates ---------------------------------------------------------------------


@pytest.mark.parametrize("environment", TEMPLATES)
def test_every_setting_appears_in_every_environment_template(environment: str) -> None:
    documented = set(env_values(TEMPLATES[environment]))

    missing = sorted(setting_names() - documented)

    assert not missing, f"{TEMPLATES[environment].relative_to(ROOT)} lacks {missing}"


def test_every_setting_in_the_development_template_is_explained_by_a_comment_above_it() -> None:
    lines = env_lines(TEMPLATES["development"])
    unexplained = []
    for index, line in enumerate(lines):
        match = SETTING_LINE.match(line)
        if not match or match[1] not in setting_names():
            continue
        above = index - 1
        while above >= 0 and SETTING_LINE.match(lines[above]):  # a group shares one comment
            above -= 1
        if above < 0 or not lines[above].startswith("#"):
            unexplained.append(match[1])

    assert not unexplained


@pytest.mark.parametrize("environment", HARDENED_TEMPLATES)
def test_hardened_templates_leave_every_secret_empty(environment: str) -> None:
    values = env_values(TEMPLATES[environment])

    filled = [
        name
        for secret in SECRET_SETTINGS
        for name in (secret.upper(), f"{secret.upper()}_FILE")
        if values.get(name)
    ]

    assert not filled, f"secrets must never be committed, even as examples: {filled}"


@pytest.mark.parametrize("environment", HARDENED_TEMPLATES)
def test_hardened_templates_pass_the_production_checks_once_their_secrets_are_set(
    environment: str, tmp_path: Path
) -> None:
    values = env_values(TEMPLATES[environment])
    values.update(
        SECRET_KEY="k" * 48,
        METRICS_TOKEN="m" * 48,
        DATABASE_URL="postgresql+psycopg://mastery:secret@db.internal:5432/mastery",  # pragma: allowlist secret
        REDIS_URL="rediss://:secret@redis.internal:6379/0",
    )
    dotenv = tmp_path / ".env"
    dotenv.write_text("".join(f"{name}={value}\n" for name, value in values.items()))

    settings = Settings(_env_file=dotenv)

    assert settings.app_env == environment
    assert settings.insecure_settings() == []


@pytest.mark.parametrize("environment", HARDENED_TEMPLATES)
def test_fly_configuration_matches_its_template_and_carries_no_secret(environment: str) -> None:
    fly = tomllib.loads((ROOT / "deploy" / "fly" / f"{environment}.toml").read_text())
    template = env_values(TEMPLATES[environment])
    secrets = {name.upper() for name in SECRET_SETTINGS}

    assert fly["env"]["APP_ENV"] == environment
    assert not secrets & set(fly["env"]), "secrets belong in `fly secrets`, not fly.toml"
    for name, value in fly["env"].items():
        if name in template:
            assert value == template[name], f"{name}: fly.toml {value!r} vs template"
    assert fly["deploy"]["release_command"].endswith(" migrate")
    assert fly["processes"] == {
        "web": "mastery-entrypoint web",
        "worker": "mastery-entrypoint worker",
    }
    assert fly["http_service"]["checks"][0]["path"] == "/readyz"


# --- the image -----------------------------------------------------------------------------------


def test_the_image_is_multi_stage_locked_non_root_and_health_checked() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+) AS (\w+)$", dockerfile, re.MULTILINE)

    assert [name for _, name in stages] == ["builder", "runtime"]
    bases = {base for base, _ in stages}
    assert bases == {"${BASE_IMAGE}"}, "both stages must start from the same base"
    # the default, for every registry build, is the official image pinned by digest
    default = re.search(r"^ARG BASE_IMAGE=(\S+)$", dockerfile, re.MULTILINE)
    assert default is not None
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", default.group(1))
    assert "--require-hashes" in dockerfile
    assert "--only-binary=:all:" in dockerfile
    users = re.findall(r"^USER (\S+)$", dockerfile, re.MULTILINE)
    assert users, "the image sets no USER"
    assert not users[-1].startswith(("root", "0")), "the final user must not be root"
    assert re.search(r"^HEALTHCHECK .*\n.*/healthz", dockerfile, re.MULTILINE)
    assert re.search(r'^CMD \["web"\]$', dockerfile, re.MULTILINE)


def test_the_entrypoint_starts_web_worker_and_migrations_as_the_docs_say() -> None:
    entrypoint = (ROOT / "deploy" / "docker" / "entrypoint.sh").read_text()

    assert "gunicorn 'app:create_app()' -c gunicorn.conf.py" in entrypoint
    assert "celery -A app.jobs.worker worker" in entrypoint
    assert "flask --app app db upgrade" in entrypoint


def test_the_build_context_admits_only_what_the_image_copies() -> None:
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    copied = re.findall(r"^COPY (?:--\S+ )*(\S+) ", (ROOT / "Dockerfile").read_text(), re.M)

    assert next(line for line in ignore if not line.startswith("#")) == "*"
    for source in copied:
        if not source.startswith("/"):  # a path of the build context, not of another stage
            assert f"!{source.rstrip('/')}" in {line.rstrip("/") for line in ignore}, source


# --- compose -------------------------------------------------------------------------------------


def test_compose_runs_the_whole_platform_with_health_gated_start_up() -> None:
    compose = load_yaml("docker-compose.yml")
    services = compose["services"]

    assert set(services) >= {
        "web",
        "worker",
        "migrate",
        "postgres",
        "redis",
        "prometheus",
        "alertmanager",
        "grafana",
    }
    for name, service in services.items():
        if name != "migrate":
            assert "healthcheck" in service, f"{name} has no health check"
        for dependency, rule in service.get("depends_on", {}).items():
            expected = (
                "service_completed_successfully" if dependency == "migrate" else "service_healthy"
            )
            assert rule == {"condition": expected}, f"{name} -> {dependency}"
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if not source.startswith("."):
                assert source in compose["volumes"], f"{name}: {source} is not a named volume"


def test_compose_passes_secrets_as_files_and_never_inline() -> None:
    compose = load_yaml("docker-compose.yml")
    environment = compose["services"]["web"]["environment"]

    for secret in SECRET_SETTINGS:
        name = secret.upper()
        if name.endswith("_URL"):  # a URL is a secret only when it carries credentials
            assert "@" not in environment.get(name, ""), f"{name} with credentials inline"
        else:
            assert name not in environment, f"{name} inline in compose"
    for name in ("SECRET_KEY_FILE", "DATABASE_URL_FILE", "METRICS_TOKEN_FILE"):
        assert environment[name].startswith("/run/secrets/")
    for secret in compose["secrets"].values():
        assert secret["file"].startswith("./deploy/compose/secrets/")
    ignored = (ROOT / "deploy" / "compose" / "secrets" / ".gitignore").read_text().splitlines()
    assert "*" in ignored


def test_the_test_compose_serves_the_ports_the_test_discovery_probes() -> None:
    services = load_yaml("docker-compose.test.yml")["services"]

    # TEST_POSTGRES_PORT / TEST_REDIS_PORT move them where a local server holds the default
    assert services["postgres"]["ports"] == ["127.0.0.1:${TEST_POSTGRES_PORT:-5432}:5432"]
    assert services["redis"]["ports"] == ["127.0.0.1:${TEST_REDIS_PORT:-6379}:6379"]
    assert "fsync=off" in services["postgres"]["command"]
    assert all(service.get("tmpfs") for service in services.values())


# --- GitHub Actions ------------------------------------------------------------------------------

WORKFLOWS = sorted(path.name for path in (ROOT / ".github" / "workflows").glob("*.yml"))


@pytest.mark.parametrize("workflow", WORKFLOWS)
def test_every_action_is_pinned_by_commit_sha_with_its_release_in_a_comment(
    workflow: str,
) -> None:
    text = (ROOT / ".github" / "workflows" / workflow).read_text()
    uses = [line.split("uses:", 1)[1].strip() for line in text.splitlines() if "uses:" in line]

    remote = [use for use in uses if not use.startswith("./")]
    assert remote, f"{workflow} uses no actions"
    assert [use for use in remote if not PINNED_ACTION.match(use)] == []


@pytest.mark.parametrize("workflow", WORKFLOWS)
def test_workflows_default_to_least_privilege_and_never_persist_credentials(
    workflow: str,
) -> None:
    relative = f".github/workflows/{workflow}"
    top = load_yaml(relative)["permissions"]

    assert top in ({}, {"contents": "read"})
    for step in workflow_steps(relative):
        if str(step.get("uses", "")).startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False


def test_ci_has_one_job_per_gate_session_each_running_it_through_noxw() -> None:
    jobs = load_yaml(".github/workflows/ci.yml")["jobs"]
    # the gate (which includes the load smoke profile), plus local production parity, the
    # container image with the compose stack, and the serving-cost budgets (minutes under
    # valgrind, so out of plain ./noxw)
    sessions = [*gate_sessions(), "staging", "containers", "cost"]

    for session in sessions:
        assert session in jobs, f"no CI job for nox session {session!r}"
        runs = [step.get("run", "") for step in jobs[session]["steps"]]
        assert f"./noxw -s {session}" in runs, f"job {session} does not run ./noxw -s {session}"
    assert set(jobs) == {*sessions, "actionlint", "gate"}


def test_the_gate_job_needs_every_other_job_and_runs_even_when_they_fail() -> None:
    jobs = load_yaml(".github/workflows/ci.yml")["jobs"]
    gate = jobs["gate"]

    assert set(gate["needs"]) == set(jobs) - {"gate"}
    assert gate["if"] == "always()"
    assert 'select(.value.result != "success")' in gate["steps"][0]["run"]


def test_deploy_smokes_each_environment_rolls_back_on_failure_and_gates_production() -> None:
    jobs = load_yaml(".github/workflows/deploy.yml")["jobs"]

    assert jobs["production"]["needs"] == "staging"
    for environment in ("staging", "production"):
        job = jobs[environment]
        assert job["environment"]["name"] == environment
        runs = [step.get("run", "") for step in job["steps"]]
        assert f'deploy/fly/release.sh deploy {environment} "$IMAGE"' in runs
        assert f"deploy/fly/release.sh smoke {environment}" in runs
        rollback = [step for step in job["steps"] if "release.sh rollback" in step.get("run", "")]
        assert rollback, f"{environment} has no rollback step"
        assert rollback[0]["if"].startswith("failure()")


# --- supply chain of the deploy (issue 17, finding 8; docs/security.md) ---------------------

RELEASE = ROOT / "deploy" / "fly" / "release.sh"
REPOSITORY = "Example-Org/Mastery"
DIGEST = "0123456789abcdef" * 4
OWN_IMAGE = f"ghcr.io/example-org/mastery@sha256:{DIGEST}"
MAIN_ONLY = "github.ref == 'refs/heads/main'"
# An installer fetched and handed to a shell in one go: nothing checks what runs.
PIPED_INSTALLER = re.compile(
    r"\b(?:curl|wget)\b[^\n|;]*\|\s*(?:sudo\s+)?(?:env\s+)?(?:ba|z|da|k)?sh\b"
)


def deployment_files() -> list[Path]:
    roots = [ROOT / "deploy", ROOT / ".github" / "workflows"]
    return sorted(p for root in roots for p in root.rglob("*") if p.is_file())


def stub(directory: Path, name: str, body: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(0o755)


def bash(
    script: str, *args: str, env: dict[str, str], cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    """`script` in bash with release.sh's functions defined (sourcing runs no subcommand)."""
    return subprocess.run(
        ["bash", "-c", f'source "{RELEASE}"\n{script}', "test", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def base_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "STUB_LOG": str(tmp_path / "log"),
        "GITHUB_REPOSITORY": REPOSITORY,
    }
    (tmp_path / "log").mkdir(exist_ok=True)
    env.update(extra)
    return env


@pytest.mark.parametrize("path", deployment_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_deployment_file_pipes_a_downloaded_installer_into_a_shell(path: Path) -> None:
    text = path.read_text(encoding="utf-8", errors="replace")

    assert not PIPED_INSTALLER.search(text), f"{path.relative_to(ROOT)}: download | sh"
    assert "fly.io/install.sh" not in text


def test_the_piped_installer_pattern_finds_what_it_is_meant_to() -> None:
    for line in (
        "curl -fsSL --retry 3 https://fly.io/install.sh | sh -s 0.3.1",
        "wget -qO- https://example.org/i.sh | sudo bash",
    ):
        assert PIPED_INSTALLER.search(line), line
    assert not PIPED_INSTALLER.search("curl -fsSL -o a.tgz https://x/a.tgz && tar -xzf a.tgz")


def test_the_deploy_pins_a_flyctl_release_by_version_and_sha256() -> None:
    env = load_yaml(".github/workflows/deploy.yml")["env"]
    script = RELEASE.read_text()

    assert re.fullmatch(r"\d+\.\d+\.\d+", env["FLYCTL_VERSION"])
    assert re.fullmatch(r"[0-9a-f]{64}", env["FLYCTL_SHA256"])
    assert "sha256sum --check --strict" in script
    assert "https://github.com/superfly/flyctl/releases/download/v${version}/" in script


def _flyctl_release(tmp_path: Path) -> tuple[Path, str]:
    """A stand-in release archive holding a `flyctl` that prints a version, and its sha256."""
    archive = tmp_path / "release.tar.gz"
    program = b'#!/bin/sh\necho "flyctl v0.0.1-stand-in"\n'
    with tarfile.open(archive, "w:gz") as tar:
        member = tarfile.TarInfo("flyctl")
        member.size, member.mode = len(program), 0o755
        tar.addfile(member, io.BytesIO(program))
    return archive, hashlib.sha256(archive.read_bytes()).hexdigest()


def _stub_curl(tmp_path: Path, archive: Path) -> None:
    stub(
        tmp_path / "bin",
        "curl",
        "while (($#)); do case $1 in -o) out=$2; shift 2 ;; *) url=$1; shift ;; esac; done\n"
        'echo "$url" >>"$STUB_LOG/curl"\n'
        f'cp "{archive}" "$out"\n',
    )


def test_flyctl_is_installed_only_when_its_download_matches_the_pinned_sha256(
    tmp_path: Path,
) -> None:
    archive, sha256 = _flyctl_release(tmp_path)
    _stub_curl(tmp_path, archive)
    github_path = tmp_path / "github_path"
    env = base_env(
        tmp_path,
        FLYCTL_VERSION="0.0.1",
        FLYCTL_SHA256=sha256,
        RUNNER_TEMP=str(tmp_path / "runner"),
        GITHUB_PATH=str(github_path),
    )

    installed = bash("install_flyctl", env=env)

    assert installed.returncode == 0, installed.stderr
    assert "flyctl v0.0.1-stand-in" in installed.stdout
    assert (tmp_path / "log" / "curl").read_text().strip() == (
        "https://github.com/superfly/flyctl/releases/download/v0.0.1/"
        "flyctl_0.0.1_Linux_x86_64.tar.gz"
    )
    assert github_path.read_text().strip() == str(tmp_path / "runner" / "flyctl-0.0.1")


@pytest.mark.parametrize(
    ("sha256", "message"),
    [
        ("f" * 64, "FAILED"),
        ("", "FLYCTL_SHA256 must be the SHA-256"),
        ("not-a-checksum", "FLYCTL_SHA256 must be the SHA-256"),
    ],
    ids=["mismatch", "missing", "malformed"],
)
def test_a_flyctl_download_that_does_not_match_is_never_extracted_or_run(
    tmp_path: Path, sha256: str, message: str
) -> None:
    archive, _ = _flyctl_release(tmp_path)
    _stub_curl(tmp_path, archive)
    github_path = tmp_path / "github_path"
    env = base_env(
        tmp_path,
        FLYCTL_VERSION="0.0.1",
        FLYCTL_SHA256=sha256,
        RUNNER_TEMP=str(tmp_path / "runner"),
        GITHUB_PATH=str(github_path),
    )

    refused = bash("install_flyctl", env=env)

    assert refused.returncode != 0
    assert message in refused.stdout + refused.stderr
    assert "stand-in" not in refused.stdout
    assert not (tmp_path / "runner" / "flyctl-0.0.1" / "flyctl").exists()
    assert not github_path.exists()


@pytest.mark.parametrize("image", [OWN_IMAGE, OWN_IMAGE.replace("0123", "fedc")])
def test_this_repositorys_image_by_digest_is_accepted(tmp_path: Path, image: str) -> None:
    checked = bash('require_own_image "$1"', image, env=base_env(tmp_path))

    assert checked.returncode == 0, checked.stderr


@pytest.mark.parametrize(
    ("image", "message"),
    [
        ("ghcr.io/example-org/mastery:main", "must be named by digest"),
        ("ghcr.io/example-org/mastery", "must be named by digest"),
        (f"docker.io/example-org/mastery@sha256:{DIGEST}", "only this repository's images"),
        (f"ghcr.io/someone-else/mastery@sha256:{DIGEST}", "only this repository's images"),
        (f"ghcr.io/example-org/mastery-fork@sha256:{DIGEST}", "only this repository's images"),
        (f"ghcr.io/example-org/mastery:main@sha256:{DIGEST}", "only this repository's images"),
        (f"ghcr.io/Example-Org/Mastery@sha256:{DIGEST}", "only this repository's images"),
        (f"registry.fly.io/mastery@sha256:{DIGEST}", "only this repository's images"),
        ("ghcr.io/example-org/mastery@sha256:abc", "not 64 lower-case hex digits"),
        (f"ghcr.io/example-org/mastery@sha256:{DIGEST.upper()}", "not 64 lower-case hex"),
        (f"ghcr.io/example-org/mastery@sha256:{DIGEST}\nrm -rf /", "not 64 lower-case hex"),
        ("", "must be named by digest"),
    ],
    ids=[
        "tag",
        "bare-name",
        "other-registry",
        "other-owner",
        "other-repository",
        "tag-and-digest",
        "not-lower-case",
        "fly-registry",
        "short-digest",
        "upper-case-digest",
        "trailing-command",
        "empty",
    ],
)
def test_any_other_image_reference_is_refused_with_a_clear_message(
    tmp_path: Path, image: str, message: str
) -> None:
    refused = bash('require_own_image "$1"', image, env=base_env(tmp_path))

    assert refused.returncode == 1
    assert refused.stderr.startswith("::error::")
    assert message in refused.stderr


def test_without_github_repository_no_image_is_accepted(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    del env["GITHUB_REPOSITORY"]

    refused = bash('require_own_image "$1"', OWN_IMAGE, env=env)

    assert refused.returncode == 1
    assert "GITHUB_REPOSITORY" in refused.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["verify", "docker.io/evil/mastery:latest"],
        ["deploy", "staging", f"ghcr.io/evil/mastery@sha256:{DIGEST}"],
        ["rollback", "production", "ghcr.io/example-org/mastery:production"],
        ["mark-good", "staging", f"docker.io/example-org/mastery@sha256:{DIGEST}"],
    ],
    ids=lambda args: args[0],
)
def test_every_subcommand_refuses_a_foreign_image_before_touching_a_registry_or_fly(
    tmp_path: Path, args: list[str]
) -> None:
    for tool in ("docker", "flyctl", "gh", "curl"):
        stub(tmp_path / "bin", tool, f'echo {tool} >>"$STUB_LOG/called"\n')
    env = base_env(tmp_path, GH_TOKEN="t", BASE_URL="https://x.example", IMAGE=OWN_IMAGE)

    refused = subprocess.run(
        ["bash", str(RELEASE), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert refused.returncode == 1
    assert "::error::" in refused.stderr
    assert not (tmp_path / "log" / "called").exists(), "a tool ran before the image was checked"


def test_provenance_is_verified_with_gh_for_this_repositorys_image_workflow(
    tmp_path: Path,
) -> None:
    stub(tmp_path / "bin", "gh", 'printf "%s\\n" "$@" >"$STUB_LOG/gh"\n')

    verified = bash('verify_provenance "$1"', OWN_IMAGE, env=base_env(tmp_path, GH_TOKEN="t"))

    assert verified.returncode == 0, verified.stderr
    assert (tmp_path / "log" / "gh").read_text().splitlines() == [
        "attestation",
        "verify",
        f"oci://{OWN_IMAGE}",
        "--repo",
        REPOSITORY,
        "--signer-workflow",
        f"{REPOSITORY}/.github/workflows/image.yml",
        "--source-ref",
        "refs/heads/main",
        "--deny-self-hosted-runners",
    ]


@pytest.mark.parametrize("workflow", ["deploy.yml", "image.yml"])
def test_deploying_and_building_images_run_from_main_only(workflow: str) -> None:
    jobs = load_yaml(f".github/workflows/{workflow}")["jobs"]

    for name, job in jobs.items():
        assert job.get("if") == MAIN_ONLY, f"{workflow} job {name} is not restricted to main"


def test_each_environment_verifies_the_images_provenance_before_deploying_it() -> None:
    jobs = load_yaml(".github/workflows/deploy.yml")["jobs"]

    for environment in ("staging", "production"):
        job = jobs[environment]
        runs = [step.get("run", "") for step in job["steps"]]
        verify = runs.index('deploy/fly/release.sh verify "$IMAGE"')
        assert verify < runs.index(f'deploy/fly/release.sh deploy {environment} "$IMAGE"')
        assert verify < runs.index("deploy/fly/release.sh setup") + 2  # before anything else
        assert job["steps"][verify]["env"] == {"GH_TOKEN": "${{ github.token }}"}
        assert job["permissions"]["attestations"] == "read"
        assert "id-token" not in job["permissions"]


def test_the_image_workflow_attests_build_provenance_with_narrowly_granted_permissions() -> None:
    workflow = load_yaml(".github/workflows/image.yml")
    build = workflow["jobs"]["build"]
    steps = build["steps"]
    uses = [str(step.get("uses", "")) for step in steps]
    attest = next(i for i, use in enumerate(uses) if use.startswith("actions/attest-build-prov"))
    pushed = next(i for i, use in enumerate(uses) if use.startswith("docker/build-push-action@"))

    assert attest > pushed
    assert steps[attest]["with"]["subject-digest"] == "${{ steps.build.outputs.digest }}"
    assert steps[attest]["with"]["push-to-registry"] is True
    assert build["permissions"] == {
        "contents": "read",
        "packages": "write",
        "id-token": "write",
        "attestations": "write",
    }
    assert workflow["permissions"] == {}
    assert "id-token" not in workflow["jobs"]["deploy"]["permissions"]
    assert workflow["jobs"]["deploy"]["permissions"]["attestations"] == "read"


def test_no_workflow_holds_a_standing_smoke_admin_password() -> None:
    for workflow in WORKFLOWS:
        text = (ROOT / ".github" / "workflows" / workflow).read_text()
        assert "SMOKE_ADMIN_PASSWORD" not in text, workflow
        assert "SMOKE_ADMIN_EMAIL" not in text, workflow


def _smoke_stubs(tmp_path: Path, smoke_status: int, fail_call: int = 0) -> dict[str, str]:
    stub(
        tmp_path / "bin",
        "flyctl",
        'n=$(($(cat "$STUB_LOG/count" 2>/dev/null || echo 0) + 1)); echo "$n" >"$STUB_LOG/count"\n'
        'printf "%s\\n" "$@" >"$STUB_LOG/args-$n"\n'
        'cat >"$STUB_LOG/stdin-$n"\n'
        f'[[ "$n" != "{fail_call}" ]]\n',
    )
    stub(
        tmp_path / "bin",
        "python",
        'printf "%s\\n" "$SMOKE_ADMIN_EMAIL" "$SMOKE_ADMIN_PASSWORD" >"$STUB_LOG/smoke-env"\n'
        'printf "%s\\n" "$@" >"$STUB_LOG/smoke-args"\n'
        f"exit {smoke_status}\n",
    )
    return base_env(
        tmp_path, SMOKE_BASE_URL="https://staging.example.org", SMOKE_EMAIL_DOMAIN="example.org"
    )


def _release(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(RELEASE), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("smoke_status", [0, 1], ids=["smoke-passes", "smoke-fails"])
def test_the_smoke_admin_gets_a_password_for_this_run_only_and_is_retired_after_it(
    tmp_path: Path, smoke_status: int
) -> None:
    env = _smoke_stubs(tmp_path, smoke_status)
    log = tmp_path / "log"

    ran = _release("smoke", "staging", env=env)

    assert ran.returncode == smoke_status, ran.stderr
    email, password = (log / "smoke-env").read_text().splitlines()
    assert email == "smoke-admin@example.org"
    assert len(password) >= 40
    assert (log / "count").read_text().strip() == "2"  # created before, retired after
    assert (log / "stdin-1").read_text() == f"{password}\n"
    retired = (log / "stdin-2").read_text().strip()
    assert len(retired) >= 40
    assert retired != password
    for call in (1, 2):
        args = (log / f"args-{call}").read_text()
        assert args.startswith("ssh\nconsole\n--app\nmastery-staging\n--command\n")
        assert "flask --app app users create-admin --reset" in args
        assert email in args
        assert password not in args  # never in an argument
        assert retired not in args
    assert (log / "smoke-args").read_text().split() == [
        "-m",
        "pytest",
        "tests/smoke",
        "--base-url",
        "https://staging.example.org",
    ]
    assert password not in ran.stdout + ran.stderr


def test_a_smoke_admin_that_cannot_be_retired_fails_the_run_loudly(tmp_path: Path) -> None:
    ran = _release("smoke", "staging", env=_smoke_stubs(tmp_path, 0, fail_call=2))

    assert ran.returncode == 1
    assert "::error::could not retire the smoke admin" in ran.stderr


@pytest.mark.parametrize("domain", ["example.org; id", "Example.ORG", "x", "a..b", "$(id).org"])
def test_a_smoke_email_domain_that_is_not_a_plain_domain_is_refused_before_ssh(
    tmp_path: Path, domain: str
) -> None:
    env = _smoke_stubs(tmp_path, 0)
    env["SMOKE_EMAIL_DOMAIN"] = domain

    ran = _release("smoke", "staging", env=env)

    assert ran.returncode == 1
    assert "SMOKE_EMAIL_DOMAIN must be a plain lower-case domain name" in ran.stderr
    assert not (tmp_path / "log" / "count").exists()


def test_dependabot_covers_pip_actions_and_docker() -> None:
    updates = load_yaml(".github/dependabot.yml")["updates"]

    assert {update["package-ecosystem"] for update in updates} == {
        "pip",
        "github-actions",
        "docker",
    }


def test_lint_runs_every_deployment_linter_as_a_hook() -> None:
    hooks = {
        hook["id"]: hook["entry"]
        for repo in load_yaml(".pre-commit-config.yaml")["repos"]
        for hook in repo["hooks"]
    }

    assert hooks["hadolint"].startswith("hadolint")
    assert "vendor.compose-spec" in hooks["compose-schema"]
    assert "vendor.github-workflows" in hooks["workflow-schema"]
    assert "vendor.dependabot" in hooks["dependabot-schema"]
    assert hooks["zizmor"].startswith("zizmor --offline")
