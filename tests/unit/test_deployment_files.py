"""The deployment files agree with the code and with each other: every setting is documented
in every environment template, the templates pass the hardened checks once their secrets are
filled in, the image and compose files keep their promises, and CI maps one job to one nox
session. (Their syntax and schemas are checked by the lint hooks; these are the cross-file
rules no linter knows.)"""

from __future__ import annotations

import ast
import re
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
    assert len(bases) == 1, "both stages must start from the same base"
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", bases.pop())
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

    assert services["postgres"]["ports"] == ["127.0.0.1:5432:5432"]
    assert services["redis"]["ports"] == ["127.0.0.1:6379:6379"]
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
    # the gate (which includes the load smoke profile), plus local production parity
    sessions = [*gate_sessions(), "staging"]

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
        assert "deploy/fly/release.sh smoke" in runs
        rollback = [step for step in job["steps"] if "release.sh rollback" in step.get("run", "")]
        assert rollback, f"{environment} has no rollback step"
        assert rollback[0]["if"].startswith("failure()")


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
