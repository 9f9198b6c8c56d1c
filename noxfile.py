"""Nox sessions: Mastery's merge gate and developer tasks.

Plain `nox` (or `./noxw`, which brings its own pinned nox) runs the merge gate: lint,
typecheck, security, unit, integration, contracts, fuzz, alerts, load (the smoke profile),
migrations, coverage. `fmt`, `serve`, `staging`, `alert-drill`, `openapi` and `lock` run only
when named: `nox -s serve -- --port 8080`. Arguments after `--` go to the session's tool.

Every session installs exactly what is locked, with hashes, in requirements-dev.txt (runtime
plus the `dev` dependency group), then the project itself without dependencies, so nox,
pre-commit and CI run the same versions. `nox -s lock` regenerates the lock files.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
# nox runs from its own venv's bin/, so the repository is not on sys.path by default.
sys.path.insert(0, str(ROOT))

from tools.audit_status import classify_audit, offline_audit_allowed  # noqa: E402
from tools.pytest_runs import is_whole_tier  # noqa: E402 - after the sys.path line above

nox.needs_version = ">=2025.2.9"
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_venv = "yes"
nox.options.error_on_external_run = True
nox.options.sessions = [
    "lint",
    "typecheck",
    "security",
    "unit",
    "integration",
    "contracts",
    "fuzz",
    "alerts",
    "load",
    "migrations",
    "coverage",
]

PYTHON = "3.11"
COVERAGE_DIR = Path("reports/coverage")
# Data of runs that selected part of a tier (one file, `-k`, `--lf`, `-x`): kept apart so they
# never replace the whole tier's data that `coverage` combines (tools/pytest_runs.py).
PARTIAL_COVERAGE_DIR = COVERAGE_DIR / "partial"
JUNIT_DIR = Path("reports/junit")
COVERED_TIERS = ("unit", "integration", "contracts")
# `./noxw -t quick`: the checks that need no service, for the loop before a push.
QUICK = ["quick"]
LOCK_COMMAND = "./noxw -s lock"
FORMATTED = ("app", "tests", "contracts", "tools", "noxfile.py")


def install_locked(session: nox.Session) -> None:
    """Install the hash-locked dev requirements, then the project without re-resolving."""
    session.install("-r", "requirements-dev.txt")
    session.install("--no-deps", "-e", ".")


def tests_to_run(session: nox.Session, test_dir: str) -> list[str]:
    """`[test_dir]`, or nothing when the posargs already name tests (under tests/ or test_dir)."""
    prefixes = ("tests/", test_dir.rstrip("/") + "/")
    names_tests = any(arg.replace(os.sep, "/").startswith(prefixes) for arg in session.posargs)
    return [] if names_tests else [test_dir]


@nox.session(python=PYTHON, tags=QUICK)
def lint(session: nox.Session) -> None:
    """Run all pre-commit hooks of both stages (commit and push) on every tracked file.

    The hooks that `pre-commit install` puts on `git commit` (the fast ones) and on `git push`
    (mypy, bandit), so a commit or push does not fail on what the gate passed. Arguments go to
    `pre-commit run`; naming a stage runs only it: `nox -s lint -- --hook-stage pre-push mypy`.
    """
    install_locked(session)
    # `-- --files a.py b.py` checks just those files; pre-commit refuses it beside --all-files.
    scope = [] if "--files" in session.posargs else ["--all-files"]
    run = ("pre-commit", "run", *scope, "--show-diff-on-failure")
    if "--hook-stage" in session.posargs:  # `pre-commit run` takes a single stage
        session.run(*run, *session.posargs)
        return
    for stage in ("pre-commit", "pre-push"):
        session.run(*run, "--hook-stage", stage, *session.posargs)


@nox.session(python=PYTHON, default=False)
def fmt(session: nox.Session) -> None:
    """Rewrite the code with isort, then black (not part of the gate)."""
    install_locked(session)
    targets = session.posargs or FORMATTED
    session.run("isort", *targets)
    session.run("black", *targets)


@nox.session(python=PYTHON, tags=QUICK)
def typecheck(session: nox.Session) -> None:
    """Type-check with mypy, strict on app/ and the harness (configured in pyproject.toml)."""
    install_locked(session)
    session.run("mypy", *session.posargs)


@nox.session(python=PYTHON)
def security(session: nox.Session) -> None:
    """Scan app/ with bandit, then audit the locked runtime requirements with pip-audit.

    When pip-audit cannot reach its vulnerability service the session prints a line starting
    `DEPENDENCY AUDIT NOT PERFORMED:` and fails, unless ALLOW_OFFLINE_AUDIT=1 is set, in which
    case it prints the same line and passes. Vulnerabilities always fail.
    """
    install_locked(session)
    session.run(
        "bandit",
        "-c",
        "pyproject.toml",
        "-r",
        "app",
        "--severity-level",
        "medium",
        "--confidence-level",
        "medium",
    )
    # pip-audit exits 1 for vulnerabilities and for an unreachable service alike; the output
    # tells them apart. Other exit codes (usage errors) fail here directly.
    output = session.run(
        "pip-audit",
        "--strict",
        "-r",
        "requirements.txt",
        "--require-hashes",
        "--disable-pip",
        "--progress-spinner",
        "off",
        *session.posargs,
        silent=True,
        success_codes=[0, 1],
    )
    output = output or ""
    print(output, end="" if output.endswith("\n") else "\n", flush=True)
    decision = classify_audit(output, allow_offline=offline_audit_allowed(os.environ))
    if decision.banner:
        rule = "!" * 100
        print(f"\n{rule}\n{decision.banner}\n{rule}\n", file=sys.stderr, flush=True)
        if not decision.failed:
            session.warn("ALLOW_OFFLINE_AUDIT is set: passing without a dependency audit.")
    if decision.failed:
        hint = " (set ALLOW_OFFLINE_AUDIT=1 to accept)" if decision.banner else ""
        session.error(f"Dependency audit failed: {decision.reason}{hint}")
    session.log(f"Dependency audit: {decision.reason}")


@nox.session(python=PYTHON, tags=QUICK)
def unit(session: nox.Session) -> None:
    """Run tests/unit (no I/O) with branch coverage of app/.

    Serial: the tier takes ~3 s, less than starting xdist workers (docs/benchmarks.md).
    """
    install_locked(session)
    run_pytest_with_coverage(session, "tests/unit", "unit", workers="0")


@nox.session(python=PYTHON)
def integration(session: nox.Session) -> None:
    """Run tests/integration against real Postgres and Redis, with branch coverage of app/.

    One xdist worker per core, each on its own database cloned from the migrated template.
    """
    install_locked(session)
    run_pytest_with_coverage(session, "tests/integration", "integration", workers="auto")


@nox.session(python=PYTHON, tags=QUICK)
def contracts(session: nox.Session) -> None:
    """Run the I/O-free contracts (prompts, AI provider, OpenAPI document) with coverage.

    Prompt snapshots, respx-driven provider behaviour, and the committed OpenAPI document
    (drift, validity, error documentation).

    Serial, so syrupy's unused-snapshot check sees every test in one process. The fuzzer in
    contracts/fuzz has its own session.
    """
    install_locked(session)
    run_pytest_with_coverage(
        session, "contracts", "contracts", workers="0", extra=["--ignore=contracts/fuzz"]
    )


@nox.session(python=PYTHON)
def fuzz(session: nox.Session) -> None:
    """Fuzz every operation as every role with schemathesis, on real Postgres and Redis.

    `-- --profile full` runs >= 200 examples per operation, `-- --seed N` replays a run,
    `-- --url https://host` fuzzes a live deployment instead of the in-process app. Other
    arguments go to pytest.
    """
    parser = argparse.ArgumentParser(prog="nox -s fuzz --", description=fuzz.__doc__)
    parser.add_argument("--profile", choices=("gate", "full"), default="gate")
    parser.add_argument("--seed", type=int, default=None, help="replay a seed")
    parser.add_argument("--url", default=None, help="base URL of a live deployment")
    try:
        args, pytest_args = parser.parse_known_args(session.posargs)
    except SystemExit as exc:
        if exc.code:
            session.error("invalid arguments for fuzz; see the usage above")
        session.skip("printed help")
    install_locked(session)
    env = {"FUZZ_PROFILE": args.profile}
    if args.seed is not None:
        env["FUZZ_SEED"] = str(args.seed)
    if args.url:
        env["FUZZ_BASE_URL"] = args.url
    session.run(
        "python",
        "-m",
        "pytest",
        *("-p", "tests.plugins.services", "-p", "tests.plugins.database"),
        "contracts/fuzz",
        *("-n", "auto", "-p", "no:randomly"),
        junit_option("fuzz"),
        *pytest_args,
        env=env,
    )


ALERTING_INSTALL = "apt-get install prometheus prometheus-alertmanager"
PROMETHEUS_DIR = Path("ops/prometheus")
ALERTMANAGER_CONFIG = Path("ops/alertmanager/alertmanager.yml")


def prometheus_files(pattern: str) -> list[str]:
    """The files under ops/prometheus matching `pattern`; an empty match is an error."""
    files = sorted(str(path) for path in PROMETHEUS_DIR.glob(pattern))
    if not files:
        raise FileNotFoundError(f"no files match {PROMETHEUS_DIR / pattern}")
    return files


@nox.session(python=False)
def alerts(session: nox.Session) -> None:
    """Check the Prometheus and Alertmanager configs and run every alert's promtool tests.

    `promtool check config` and `check rules` on ops/prometheus, `promtool test rules` (a
    firing and a not-firing case per alert), and `amtool check-config` when amtool is installed.

    Needs promtool (Debian: `apt-get install prometheus prometheus-alertmanager`; .ci/run
    installs them). Without promtool the session fails: it never skips.
    """
    if shutil.which("promtool") is None:
        session.error(
            "promtool is not installed, so the alert rules cannot be checked. "
            f"Install it with `{ALERTING_INSTALL}` (Debian/Ubuntu, as root) or put a Prometheus "
            "release's promtool on PATH"
        )
    session.run("promtool", "--version", external=True)
    session.run(
        "promtool", "check", "config", str(PROMETHEUS_DIR / "prometheus.yml"), external=True
    )
    session.run("promtool", "check", "rules", *prometheus_files("rules/*.yml"), external=True)
    session.run("promtool", "test", "rules", *prometheus_files("tests/*.yml"), external=True)
    if shutil.which("amtool") is None:
        session.warn(
            f"amtool is not installed: {ALERTMANAGER_CONFIG} was not checked "
            f"(`{ALERTING_INSTALL}` provides it)"
        )
        return
    session.run("amtool", "check-config", str(ALERTMANAGER_CONFIG), external=True)


@nox.session(name="alert-drill", python=PYTHON, default=False)
def alert_drill(session: nox.Session) -> None:
    """Drill the whole alert path live: a failing platform must page a webhook, then resolve.

    On loopback: the platform (gunicorn, 2 workers, a scratch Postgres database, DRILL_TOKEN
    set), Prometheus and Alertmanager from the Debian packages, and a webhook receiver. Fails
    the platform on purpose until High5xxRatio reaches the receiver (within 120 s), checks that
    it resolves, then runs every dashboard query and requires data.

    Needs `prometheus`, `prometheus-alertmanager` and `redis-server` on PATH and a Postgres
    server (DRILL_DATABASE_URL, else TEST_DATABASE_URL, else postgres@127.0.0.1:5432). The
    drill's copy of the rules has every `for:` cut to 10 s; see ops/drill/alert_drill.py.
    `-- --keep` keeps the working directory (configs, logs) for a look afterwards.
    """
    missing = [
        binary
        for binary in ("prometheus", "prometheus-alertmanager", "redis-server")
        if shutil.which(binary) is None
    ]
    if missing:
        session.error(
            f"{', '.join(missing)} not installed: `{ALERTING_INSTALL} redis-server` (as root)"
        )
    install_locked(session)
    session.run("python", "-m", "ops.drill.alert_drill", *session.posargs)


@nox.session(python=PYTHON)
def load(session: nox.Session) -> None:
    """Run the Locust load shapes against a seeded production-like stack; fail on any threshold.

    The stack (docs/load-testing.md), on loopback: gunicorn with APP_ENV=production, a scratch
    Postgres database, a throwaway redis-server, a Celery worker, and the benchmark-only
    baseline app. It seeds it, runs the shapes headless, tears everything down, and prints
    requests/s, p50/p95/p99 per route, the error ratio, app CPU-ms per request and its ratio to
    the baseline, Postgres CPU and Locust's CPU, then each threshold against its measured value.

    `-- --profile full` runs steady, ramp, spike and soak (~12 min); `-- --shape NAME` one shape;
    `-- --host URL` runs the scenarios against a running deployment and starts nothing;
    `-- --serve` starts the seeded stack, prints its URL and the `locust` commands to load it by
    hand, and keeps it up until Ctrl-C. Other arguments go to `python -m load.run`
    (`--inject-delay-ms 2000` fails the gate on purpose) and then to Locust. Reports:
    reports/load/ (summary.md always; logs/ when the run failed). Needs `redis-server` (Debian:
    `apt-get install -y redis-server`) unless `--host` is given, and a Postgres server
    (LOAD_DATABASE_URL, else postgres@127.0.0.1:5432).
    """
    parser = argparse.ArgumentParser(prog="nox -s load --", description=load.__doc__)
    parser.add_argument("--profile", choices=("smoke", "full"), default="smoke")
    parser.add_argument("--host", default=None, help="base URL of a running deployment")
    try:
        args, passthrough = parser.parse_known_args(session.posargs)
    except SystemExit as exc:
        if exc.code:
            session.error("invalid arguments for load; see the usage above")
        session.skip("printed help")
    if args.host is None and shutil.which("redis-server") is None:
        session.error("redis-server not installed: `apt-get install -y redis-server` (as root)")
    install_locked(session)
    host = ["--host", args.host] if args.host else []
    # Ctrl-C reaches the runner too; nox's default 0.3 s before SIGTERM (and 0.2 s more before
    # SIGKILL) would cut its teardown short and leave the scratch database and processes behind.
    session.run(
        *("python", "-m", "load.run", "--profile", args.profile, *host, *passthrough),
        interrupt_timeout=60,
        terminate_timeout=30,
    )


@nox.session(python=PYTHON, default=False)
def cost(session: nox.Session) -> None:
    """Count the instructions per request of each hot route (callgrind); fail over a budget.

    Not in plain `./noxw`: under callgrind it takes minutes (.ci/run runs it after the gate, and
    a GitHub job of its own on every pull request). Measures twice in-process against a scratch Postgres database and a throwaway
    redis-server, prints the table with each route's ratio to the one-query baseline and the two
    runs' spread, writes reports/cost/cost.json, and fails when a route is 5 % above its budget
    in load/cost-budgets.toml (from +4.5 %, allowing for measurement noise). `-- --update-budgets` rewrites the budgets from the
    measurement; `-- --inject-slowdown 'GET /sessions/{id}/next=5'` shows the gate failing;
    `-- --profile` writes the per-route top-20 profile (`--clock bytecodes` weighs it by
    bytecodes executed, with each function's own cost); `-- --only next --runs 1` measures one
    route once (about a minute), for work on it. Needs valgrind and redis-server
    (`apt-get install -y valgrind redis-server`) and a Postgres server (COST_DATABASE_URL, else
    postgres@127.0.0.1:5432). See docs/benchmarks.md, "Serving cost".
    """
    for tool in ("valgrind", "redis-server"):
        if shutil.which(tool) is None:
            session.error(f"{tool} not installed: `apt-get install -y valgrind redis-server`")
    install_locked(session)
    session.run(
        "python",
        "-m",
        "load.cost",
        *session.posargs,
        interrupt_timeout=60,
        terminate_timeout=30,
    )


STAGING_INSTALL = "apt-get install -y nginx redis-server"


@nox.session(python=PYTHON, default=False)
def staging(session: nox.Session) -> None:
    """Run the smoke suite against a local production-parity stack, then tear it down.

    APP_ENV=production, nginx terminating TLS with a self-signed certificate made for the run,
    gunicorn (2 workers), a Celery worker, a scratch Postgres database and a throwaway
    redis-server, all on loopback. Prints which smoke checks ran (docs/staging.md).

    Needs `nginx` and `redis-server` (Debian: `apt-get install -y nginx redis-server`) and a
    Postgres server (STAGING_DATABASE_URL, else postgres@127.0.0.1:5432). Arguments after `--`
    go to the smoke suite's pytest (`-- -k health`); `-- --keep` keeps the working directory.
    """
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    missing = [
        name
        for name, path in (("nginx", nginx), ("redis-server", shutil.which("redis-server")))
        if path is None
    ]
    if missing:
        session.error(f"{', '.join(missing)} not installed: `{STAGING_INSTALL}` (as root)")
    install_locked(session)
    session.run("python", "-m", "ops.staging.staging", *session.posargs)


def junit_option(name: str) -> str:
    """pytest's option that writes the tier's JUnit XML to reports/junit/<name>.xml (for CI)."""
    JUNIT_DIR.mkdir(parents=True, exist_ok=True)
    return f"--junitxml={JUNIT_DIR / f'{name}.xml'}"


def run_pytest_with_coverage(
    session: nox.Session, test_dir: str, name: str, workers: str, extra: list[str] | None = None
) -> None:
    """Run pytest under coverage; pytest-cov combines the workers into COVERAGE_FILE.

    A run of the whole tier writes reports/coverage/.coverage.<name>, which `coverage` combines;
    a partial one (posargs that select or stop early) writes under reports/coverage/partial/.
    """
    whole = is_whole_tier(session.posargs)
    data_dir = COVERAGE_DIR if whole else PARTIAL_COVERAGE_DIR
    data_dir.mkdir(parents=True, exist_ok=True)
    data_file = data_dir / f".coverage.{name}"
    env = {"COVERAGE_FILE": str(data_file)}
    session.run(
        "pytest",
        *tests_to_run(session, test_dir),
        "-n",
        workers,
        "--cov=app",
        "--cov-branch",
        "--cov-report=",
        junit_option(name),
        *(extra or []),
        *session.posargs,  # last, so `-- -n 0` or `-- -p no:randomly` override the defaults
        env=env,
    )
    if not whole:
        session.log(
            f"partial run: its coverage data is in {data_file}; `coverage` keeps combining the "
            f"last whole run's {COVERAGE_DIR / f'.coverage.{name}'}"
        )


@nox.session(python=PYTHON)
def migrations(session: nox.Session) -> None:
    """Run the migration round trip and drift checks on real Postgres (no coverage)."""
    install_locked(session)
    session.run(
        "pytest",
        *tests_to_run(session, "tests/migrations"),
        "-p",
        "no:randomly",
        junit_option("migrations"),
        *session.posargs,
    )


@nox.session(python=PYTHON)
def coverage(session: nox.Session) -> None:
    """Combine unit, integration and contracts coverage; fail under 95 % branch coverage.

    Uses each tier's last whole run (a partial run's data is kept apart), says how old each
    part is, and writes html/, coverage.xml and summary.md (Markdown, for CI's job summary).
    """
    parts = [COVERAGE_DIR / f".coverage.{name}" for name in COVERED_TIERS]
    missing = [str(part) for part in parts if not part.is_file()]
    if missing:
        session.error(
            f"Missing coverage data from a whole run: {', '.join(missing)}. "
            "Run `./noxw -s unit integration contracts` first (a run that selects tests, "
            "e.g. `-- -k name` or `--lf`, keeps its data under "
            f"{PARTIAL_COVERAGE_DIR} and does not count)"
        )
    for part in parts:
        age = datetime.now(UTC) - datetime.fromtimestamp(part.stat().st_mtime, UTC)
        session.log(f"{part}: from a whole run {age.total_seconds() / 60:.0f} min ago")
    install_locked(session)
    # Not `.coverage`: coverage's reporting commands would take `.coverage.unit`,
    # `.coverage.integration` and `.coverage.contracts` for parallel pieces of it, combine them
    # again and delete them.
    env = {"COVERAGE_FILE": str(COVERAGE_DIR / ".coverage.combined")}
    session.run("coverage", "combine", "--keep", *map(str, parts), env=env)
    # Reports first, so they exist to look at when the threshold below fails.
    session.run("coverage", "html", "-d", str(COVERAGE_DIR / "html"), env=env)
    session.run("coverage", "xml", "-o", str(COVERAGE_DIR / "coverage.xml"), env=env)
    markdown = session.run(
        "coverage", "report", "--format=markdown", "--skip-covered", silent=True, env=env
    )
    (COVERAGE_DIR / "summary.md").write_text(markdown or "", encoding="utf-8")
    session.run("coverage", "report", "--fail-under=95", *session.posargs, env=env)


@nox.session(python=PYTHON, default=False)
def mutants(session: nox.Session) -> None:
    """Mutation-test auth, security, adaptive, scoring, generation and AI resilience (mutmut).

    Not in the gate (docs/decisions/0005-mutation-testing.md): a weekly CI job runs it all, and
    pull requests run `-- --changed origin/main`, only the functions the change touched, which
    fails under 90 % killed. Writes reports/mutation/summary.json and survivors.md. Needs
    Postgres and Redis (found as the test tiers find them). `-- app.adaptive.irt` runs one
    module, `-- --rerun-survivors` re-tests the last survivors; see `python -m tools.mutation`.
    """
    install_locked(session)
    args = list(session.posargs)
    if not args or args[0] not in ("run", "summarise", "-h", "--help"):
        args = ["run", *args]
    session.run("python", "-m", "tools.mutation", *args)


@nox.session(python=PYTHON, default=False)
def flakes(session: nox.Session) -> None:
    """Run unit, integration and contracts N times in new orders and layouts; list flaky tests.

    Not in the gate (it runs every tier N times). `-- --runs N` (3): each run of a tier gets
    its own pytest-randomly seed and xdist layout (serial; 2 workers, loadgroup; 3 workers,
    loadfile; contracts always serial), without coverage and without reruns. Outcomes come
    from each run's JUnit XML; every test whose outcome changed is listed with each run's seed,
    layout and the command that replays it, in reports/flakes/report.json and summary.md.
    Fails when a test flaked. `-- --tiers unit` runs one tier, `-- --seed N` replays a plan.
    """
    install_locked(session)
    session.run("python", "-m", "tools.flakes", *session.posargs)


@nox.session(python=PYTHON, default=False)
def containers(session: nox.Session) -> None:
    """Build the image, bring docker-compose.yml up, smoke-test it, then `down -v` (no leftovers).

    Needs a Docker engine and compose (`docker compose` or Debian's `docker-compose`). Without a
    registry, export the local image names first (`eval "$(python3 -m tools.container_images
    env)"`, as .ci/run does): the base images and the app image are then built here, cached.
    `-- --no-build` reuses mastery:local; other arguments go to the smoke suite's pytest.
    """
    if shutil.which("docker") is None:
        session.error("no docker client: see docs/developer-guide.md, 'A Docker engine'")
    install_locked(session)
    session.run("python", "-m", "ops.containers.containers", *session.posargs)


@nox.session(python=PYTHON, default=False)
def serve(session: nox.Session) -> None:
    """Serve the platform on http://127.0.0.1:5000 with demo data (`-- --port N` to change)."""
    parser = argparse.ArgumentParser(prog="nox -s serve --", description=serve.__doc__)
    parser.add_argument("--port", type=int, default=5000, help="port on 127.0.0.1 (5000)")
    try:
        args = parser.parse_args(session.posargs)
    except SystemExit as exc:  # argparse exits on --help and on bad arguments
        if exc.code:
            session.error("invalid arguments for serve; see the usage above")
        session.skip("printed help")
    install_locked(session)
    # Embedded development defaults: SQLite under instance/, offline AI, eager jobs.
    Path("instance").mkdir(exist_ok=True)
    env = {"APP_ENV": "development"}
    session.run("flask", "--app", "app", "db", "upgrade", env=env)
    session.run("flask", "--app", "app", "seed", "demo", env=env)
    session.run(
        "flask",
        "--app",
        "app",
        "run",
        "--host",
        "127.0.0.1",
        "--port",
        str(args.port),
        "--no-reload",
        env=env,
    )


DEV_VENV = Path(".venv")


@nox.session(python=PYTHON, default=False)
def dev(session: nox.Session) -> None:
    """Build the project's own .venv from the lock, for an editor and for running tools directly.

    `.venv` gets exactly what requirements-dev.txt locks (with hashes) and the project in
    editable mode, so `.venv/bin/pytest tests/unit -x` and the editor's type checker see what
    the gate sees. Re-run after `./noxw -s lock` changes the lock; `-- --path DIR` builds
    elsewhere.
    """
    parser = argparse.ArgumentParser(prog="nox -s dev --", description=dev.__doc__)
    parser.add_argument("--path", type=Path, default=DEV_VENV, help="where (.venv)")
    try:
        args = parser.parse_args(session.posargs)
    except SystemExit as exc:
        if exc.code:
            session.error("invalid arguments for dev; see the usage above")
        session.skip("printed help")
    target = args.path.resolve()
    # The session's own interpreter, so .venv has the Python the gate uses.
    python = session.run("python", "-c", "import sys; print(sys.executable)", silent=True)
    python = (python or "").strip()
    uv = shutil.which("uv")  # ./noxw puts the pinned uv first on PATH
    if uv:
        session.run(uv, "venv", "--allow-existing", "--python", python, str(target), external=True)
        pip = [uv, "pip", "install", "--python", str(target / "bin" / "python")]
    else:
        session.run(python, "-m", "venv", str(target), external=True)
        pip = [str(target / "bin" / "python"), "-m", "pip", "install"]
    session.run(*pip, "--require-hashes", "-r", "requirements-dev.txt", external=True)
    session.run(*pip, "--no-deps", "-e", ".", external=True)
    session.log(f"{target} is ready: `source {args.path}/bin/activate`, or point your editor at it")


@nox.session(python=PYTHON, default=False)
def openapi(session: nox.Session) -> None:
    """Regenerate contracts/openapi/openapi.json, the committed OpenAPI document."""
    install_locked(session)
    target = Path("contracts/openapi/openapi.json")
    session.run(
        "flask", "--app", "app", "spec", "--output", str(target), env={"APP_ENV": "development"}
    )
    target.write_text(target.read_text().rstrip("\n") + "\n")
    session.log(f"wrote {target}; commit it with the change that moved the API")


@nox.session(python=PYTHON, default=False)
def lock(session: nox.Session) -> None:
    """Regenerate requirements-nox.txt, requirements.txt and requirements-dev.txt with hashes.

    Pins already in the files are kept; `-- --upgrade` or `-- --upgrade-package NAME` moves them.
    Each file is constrained by the one before (requirements.txt, then requirements-dev.txt,
    then requirements-nox.txt), so a package pinned in two of them has one version.
    """
    session.install("-r", "requirements-nox.txt")  # the pinned uv
    compile_ = (
        "uv",
        "pip",
        "compile",
        "--quiet",
        "--universal",
        "--generate-hashes",
        "--python-version",
        PYTHON,
        "--custom-compile-command",
        LOCK_COMMAND,
        *session.posargs,
    )
    session.run(*compile_, "pyproject.toml", "-o", "requirements.txt")
    session.run(
        *compile_,
        "pyproject.toml",
        "--group",
        "dev",
        "-c",
        "requirements.txt",
        "-o",
        "requirements-dev.txt",
    )
    session.run(
        *compile_, "requirements-nox.in", "-c", "requirements-dev.txt", "-o", "requirements-nox.txt"
    )
