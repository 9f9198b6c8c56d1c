"""Local staging: the platform as production runs it, on loopback, then the smoke suite against
it, then teardown. Run by `nox -s staging` (or directly with the project's Python, from the
repository root: `python -m ops.staging.staging [pytest arguments for the smoke suite]`);
docs/staging.md.

Everything runs on free loopback ports, in a temporary directory removed at the end:

1. a scratch Postgres database (created on STAGING_DATABASE_URL's server, else
   postgres@127.0.0.1:5432; dropped at the end) migrated with `flask --app app db upgrade`;
2. a throwaway redis-server (job broker and rate-limit counters; the shared one on 6379 is
   never touched);
3. the platform with APP_ENV=production and nothing insecure (fresh random SECRET_KEY and
   METRICS_TOKEN, a CORS allow-list, rate limits in Redis, HTTPS_MODE redirect, PROXY_HOPS=1),
   under gunicorn with the repository's gunicorn.conf.py and 2 workers, plus a Celery worker;
4. nginx terminating TLS with a self-signed certificate made for this run
   (ops/staging/nginx.conf.template), and forwarding plain HTTP so the redirect can be checked;
5. an admin account for the smoke suite (`flask --app app users create-admin`).

Then `pytest tests/smoke --require-all` against the https URL, with the CA file, the plain-HTTP
URL, the allowed origin and the metrics token, so every check runs (none may skip). Exit status:
the smoke suite's, or 1 when the stack did not come up, 2 when a binary is missing.

When the run fails, the stack's logs (gunicorn, the Celery worker, redis-server, nginx's error,
access and start-up logs) are copied to reports/staging/logs/ before the temporary directory
goes; CI uploads that directory as the `staging-logs` artifact. A passing run removes it.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from ops.staging.certs import self_signed
from tools.ci_artifacts import keep_logs
from tools.processes import (
    ProcessGroup,
    base_env,
    celery_worker_command,
    free_port,
    scratch_database,
    wait_until,
)

ROOT = Path(__file__).resolve().parents[2]

TEMPLATE = Path(__file__).with_name("nginx.conf.template")
INSTALL_HINT = "apt-get install -y nginx redis-server"
ALLOWED_ORIGIN = "https://app.staging.test"
ADMIN_EMAIL = "smoke-admin@staging.test"
START_TIMEOUT = 60.0
# Where a failed run's logs are kept (CI uploads them), and which files of the working
# directory: every process's output, nginx's own logs and its generated config.
KEPT_LOGS = ROOT / "reports" / "staging" / "logs"
LOG_PATTERNS = ("*.log", "nginx/*.log", "nginx/nginx.conf")

_started = time.monotonic()


def say(message: str) -> None:
    print(f"[staging {time.monotonic() - _started:5.1f}s] {message}", flush=True)


class StagingFailed(Exception):
    """The stack did not come up."""


def nginx_binary() -> str | None:
    # Debian installs it in /usr/sbin, which a non-root PATH often lacks.
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")


def missing_binaries() -> list[str]:
    missing = [] if nginx_binary() else ["nginx"]
    return missing + [name for name in ("redis-server",) if shutil.which(name) is None]


def nginx_config(tmp: Path, ports: dict[str, int], cert: Path, key: Path) -> Path:
    prefix = tmp / "nginx"
    prefix.mkdir()
    # As root, nginx drops its workers to an unprivileged user; they only write temp files.
    user = "user nobody nogroup;" if os.geteuid() == 0 else ""
    text = TEMPLATE.read_text()
    for name, value in {
        "PREFIX": str(prefix),
        "USER": user,
        "APP_PORT": str(ports["app"]),
        "HTTPS_PORT": str(ports["https"]),
        "HTTP_PORT": str(ports["http"]),
        "CERT": str(cert),
        "KEY": str(key),
    }.items():
        text = text.replace(f"@{name}@", value)
    path = prefix / "nginx.conf"
    path.write_text(text)
    return path


def run_cli(command: list[str], env: dict[str, str], cwd: Path) -> None:
    # S603: our own fixed command lines, never input.
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)  # noqa: S603
    if result.returncode != 0:
        raise StagingFailed(
            f"{' '.join(command)} exited with {result.returncode}:\n{result.stdout}{result.stderr}"
        )


def run(tmp: Path, smoke_args: list[str]) -> int:
    database = scratch_database(
        os.environ.get("STAGING_DATABASE_URL"), "mastery_staging", StagingFailed, say
    )
    with database as scratch:
        return run_with_database(tmp, scratch.url, smoke_args)


def run_with_database(tmp: Path, database_url: str, smoke_args: list[str]) -> int:
    ports = {name: free_port() for name in ("app", "https", "http", "redis")}
    cert, key = self_signed(tmp / "tls")
    admin_password = secrets.token_urlsafe(24)
    metrics_token = secrets.token_urlsafe(32)
    cli_env = base_env(
        tmp,
        APP_ENV="production",
        SECRET_KEY=secrets.token_urlsafe(48),
        DATABASE_URL=database_url,
        REDIS_URL=f"redis://127.0.0.1:{ports['redis']}/0",
        CORS_ORIGINS=ALLOWED_ORIGIN,
        METRICS_TOKEN=metrics_token,
        PROXY_HOPS="1",
        LOG_LEVEL="WARNING",
    )
    # The web workers share metric files; one-off CLI processes must not write into them.
    env = {**cli_env, "PROMETHEUS_MULTIPROC_DIR": str(tmp / "metrics")}
    (tmp / "metrics").mkdir()
    stack = ProcessGroup(tmp, StagingFailed, say)
    try:
        stack.start(
            "redis",
            [
                "redis-server",
                *("--bind", "127.0.0.1", "--port", str(ports["redis"])),
                *("--save", "", "--appendonly", "no", "--dir", str(tmp)),
            ],
            cli_env,
        )
        flask = [sys.executable, "-m", "flask", "--app", "app"]
        say("migrating: flask --app app db upgrade")
        run_cli([*flask, "db", "upgrade"], cli_env, tmp)
        # The password travels in the environment, never in argv (the process list).
        run_cli(
            [*flask, "users", "create-admin", ADMIN_EMAIL, "--name", "Smoke admin"],
            {**cli_env, "ADMIN_PASSWORD": admin_password},
            tmp,
        )
        say(f"admin account {ADMIN_EMAIL} created for the smoke suite")
        stack.start(
            "gunicorn",
            [
                *(sys.executable, "-m", "gunicorn", "app:create_app()"),
                *("-c", str(ROOT / "gunicorn.conf.py")),
                *("--bind", f"127.0.0.1:{ports['app']}", "--workers", "2"),
            ],
            env,
        )
        # INFO: the worker announces "celery@... ready." at that level, which the wait below reads.
        stack.start("worker", celery_worker_command("staging"), {**cli_env, "LOG_LEVEL": "INFO"})
        nginx = nginx_binary() or "nginx"  # main() checked that it is installed
        config = nginx_config(tmp, ports, cert, key)
        stack.start(
            "nginx",
            [
                nginx,
                "-p",
                str(config.parent),
                "-e",
                str(tmp / "nginx" / "startup.log"),
                "-c",
                str(config),
            ],
            cli_env,
        )
        base_url = f"https://127.0.0.1:{ports['https']}"
        with httpx.Client(verify=ssl.create_default_context(cafile=cert), timeout=5) as probe:
            wait_until(
                "the platform answers /readyz through the TLS proxy",
                lambda: probe.get(f"{base_url}/readyz").status_code == 200,
                START_TIMEOUT,
                stack.check_alive,
                failure=StagingFailed,
            )
        worker_log = tmp / "worker.log"
        wait_until(
            "the Celery worker is ready",
            lambda: any(
                "@" in line and "ready." in line
                for line in worker_log.read_text(errors="replace").splitlines()
            ),
            START_TIMEOUT,
            stack.check_alive,
            failure=StagingFailed,
        )
        say(f"stack up: {base_url} (TLS) -> gunicorn 127.0.0.1:{ports['app']}; Celery worker ready")

        command = [
            *(sys.executable, "-m", "pytest", "tests/smoke"),
            *("--base-url", base_url, "--http-url", f"http://127.0.0.1:{ports['http']}"),
            *("--ca-file", str(cert), "--cors-origin", ALLOWED_ORIGIN, "--require-all"),
            # a second client on loopback, for the account-lockout check (tests/smoke)
            *("--second-source-address", "127.0.0.2"),
            *smoke_args,
        ]
        say("running the smoke suite: " + " ".join(command[1:]))
        # The developer's own SMOKE_* settings (say SMOKE_INSECURE=1) must not weaken the run.
        smoke_env = {
            **{name: value for name, value in os.environ.items() if not name.startswith("SMOKE_")},
            "SMOKE_ADMIN_EMAIL": ADMIN_EMAIL,
            "SMOKE_ADMIN_PASSWORD": admin_password,
            "SMOKE_METRICS_TOKEN": metrics_token,
        }
        # S603: the smoke suite's fixed command line.
        status = subprocess.run(command, cwd=ROOT, env=smoke_env).returncode  # noqa: S603
        stack.check_alive()  # a crash during the run is a failure even if the checks passed
        if status != 0:
            stack.print_logs(patterns=("*.log", "nginx/*.log"))
        return status
    except Exception:
        stack.print_logs(patterns=("*.log", "nginx/*.log"))
        raise
    finally:
        stack.stop_all()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Other arguments go to pytest (e.g. -k health, -x).",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args, smoke_args = parser.parse_known_args()
    missing = missing_binaries()
    if missing:
        say(f"{', '.join(missing)} not installed: `{INSTALL_HINT}` (Debian/Ubuntu, as root)")
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="mastery-staging-"))
    tmp.chmod(0o755)  # nginx's unprivileged workers traverse it to their temp directories
    say(f"working directory {tmp}")
    shutil.rmtree(KEPT_LOGS, ignore_errors=True)  # only ever the latest failed run's
    status = 1  # until the smoke suite says otherwise: any exception is a failed run
    try:
        status = run(tmp, smoke_args)
    except StagingFailed as failure:
        say(f"STAGING FAILED: {failure}")
        return 1
    finally:
        if status != 0:
            kept = keep_logs(tmp, KEPT_LOGS, LOG_PATTERNS)
            say(f"kept {len(kept)} log files in {KEPT_LOGS.relative_to(ROOT)}/")
        if args.keep:
            say(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    say(
        "STAGING PASSED: the smoke suite passed"
        if status == 0
        else f"STAGING FAILED: smoke suite exited {status}"
    )
    return status


if __name__ == "__main__":
    sys.exit(main())
