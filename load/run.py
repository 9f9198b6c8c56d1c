"""The load run behind `nox -s load`: start a production-like stack, seed it, run the Locust
shapes headless, measure, print the tables, and fail on any violated threshold.

    python -m load.run                      # smoke (the gate): ~60 s of load
    python -m load.run --profile full       # steady, ramp, spike, soak
    python -m load.run --shape ramp         # one shape by name (repeat for several)
    python -m load.run --host https://...   # the scenarios against a running deployment
    python -m load.run --serve              # start the seeded stack and leave it up for Locust

The stack (all on loopback, in a temporary directory, torn down at the end; see
docs/load-testing.md): a scratch Postgres database (LOAD_DATABASE_URL's server, else
postgres@127.0.0.1:5432), a throwaway redis-server (broker and rate-limit counters), a Celery
worker, the platform under gunicorn with APP_ENV=production, and the benchmark-only baseline
app (load/baseline_app.py) under the same gunicorn configuration against the same database.

Measured per shape: requests/s, p50/p95/p99 per route and the error ratio (Locust's CSV), app
CPU-ms per request (CPU of the gunicorn workers ÷ requests, psutil), per route by the workers'
per-request thread CPU (gunicorn.conf.py), the ratio to the baseline's CPU-ms per request,
Postgres CPU (the backends of the scratch database only) and Locust's own CPU.

Every run writes reports/load/summary.md (each threshold, its limit, the measured value and
PASS/FAIL, then the verdict); a failed run also copies the logs of the stack and of Locust to
reports/load/logs/. `--serve` prints the stack's URL and the `locust` commands to load it by
hand, and keeps it up until SIGINT (Ctrl-C) or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import httpx
import psutil  # type: ignore[import-untyped]  # no stubs locked
import psycopg
from sqlalchemy.engine import make_url

from load import evaluate
from load.stages import FULL_PROFILE, STAGES, duration
from tools.processes import (
    ProcessGroup,
    celery_worker_command,
    free_port,
    scratch_database,
    wait_until,
)

ROOT = Path(__file__).resolve().parents[1]

REPORTS = ROOT / "reports" / "load"
LOGS = REPORTS / "logs"
SUMMARY = REPORTS / "summary.md"
THRESHOLDS = ROOT / "load" / "thresholds"
BASELINE_APP_NAME = "mastery-baseline"
BASELINE_PREFIX = ("/baseline",)
BASELINE_ROUTE = "GET /baseline"
# The hot routes, each with the baseline app's route that sends its round trips with no
# framework (load/baseline_app.py).
FLOOR_ROUTES = {
    "GET /sessions/{id}/next": "GET /baseline/next-round-trips",
    "POST /sessions/{id}/attempts": "GET /baseline/attempt-round-trips",
}
HOT_ROUTES = tuple(FLOOR_ROUTES)
PROFILES = {"smoke": ("smoke",), "full": FULL_PROFILE}
# The seeded accounts per role (app/ops/load_data.py), which Locust is told so that each of its
# processes takes a share of its own (load/accounts.py). Instructors: one per course, 20 courses.
# Admins: the seed's default of 2 is less than the spike's 3 admin users (150 users at weights
# 45:4:1) and leaves nothing to share between distributed workers; 20 is 2 per worker for 10.
STACK_INSTRUCTORS = 20
STACK_ADMINS = 20
RESET_STATS = ("smoke", "steady", "soak")
# Limits the load stack raises, and why (docs/load-testing.md "Rate limits"): every other
# limit keeps its production value, and each simulated user has its own account and address.
RAISED_LIMITS = {
    # An instructor simulated for minutes starts more jobs than a real one does in an hour.
    "RATELIMIT_GENERATION": "1000/minute",
}
INSTALL_HINT = "apt-get install redis-server"

_started = time.monotonic()


def say(message: str) -> None:
    print(f"[load {time.monotonic() - _started:6.1f}s] {message}", flush=True)


class LoadFailed(Exception):
    """The stack did not come up, or a step failed."""


# --- processes and the scratch database ------------------------------------------------------------


# --- CPU accounting --------------------------------------------------------------------------------


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


@dataclass
class CpuSnapshot:
    """CPU seconds so far of the app's and the baseline's gunicorn workers, of the Postgres
    backends of the scratch database (by application), and the per-route thread CPU."""

    app_workers: dict[int, float]
    baseline_workers: dict[int, float]
    postgres: dict[int, tuple[str, float]]
    routes: dict[str, tuple[int, float]]
    baseline_routes: dict[str, tuple[int, float]]


def worker_cpu(master: subprocess.Popen[bytes]) -> dict[int, float]:
    workers = {}
    for child in psutil.Process(master.pid).children():
        try:
            workers[child.pid] = cpu_seconds(child)
        except psutil.NoSuchProcess:
            continue
    return workers


def postgres_cpu(admin_dsn: str, database: str) -> dict[int, tuple[str, float]]:
    backends: dict[int, tuple[str, float]] = {}
    with psycopg.connect(admin_dsn, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT pid, application_name FROM pg_stat_activity WHERE datname = %s", (database,)
        ).fetchall()
    for pid, application in rows:
        try:
            backends[pid] = (application or "platform", cpu_seconds(psutil.Process(pid)))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return backends


def route_cpu(directory: Path) -> dict[str, tuple[int, float]]:
    totals: dict[str, tuple[int, float]] = {}
    for path in directory.glob("cpu-*.json"):
        for route, (count, seconds) in json.loads(path.read_text()).items():
            before = totals.get(route, (0, 0.0))
            totals[route] = (before[0] + int(count), before[1] + float(seconds))
    return totals


@dataclass
class Stack:
    app: subprocess.Popen[bytes]
    baseline: subprocess.Popen[bytes]
    admin_dsn: str
    database: str
    cpu_dir: Path
    baseline_cpu_dir: Path
    processes: ProcessGroup | None = None

    def wait_for_cpu_totals(self, since: float) -> None:
        """Until every live worker has written its per-route totals after `since` (each
        rewrites them every 0.5 s: gunicorn.conf.py, "Load-test CPU accounting")."""

        def written() -> bool:
            files = [self.cpu_dir / f"cpu-{pid}.json" for pid in worker_cpu(self.app)]
            files += [
                self.baseline_cpu_dir / f"cpu-{pid}.json" for pid in worker_cpu(self.baseline)
            ]
            return all(path.exists() and path.stat().st_mtime > since for path in files)

        wait_until("the workers' CPU totals", written, 10, failure=LoadFailed)

    def snapshot(self) -> CpuSnapshot:
        return CpuSnapshot(
            app_workers=worker_cpu(self.app),
            baseline_workers=worker_cpu(self.baseline),
            postgres=postgres_cpu(self.admin_dsn, self.database),
            routes=route_cpu(self.cpu_dir),
            baseline_routes=route_cpu(self.baseline_cpu_dir),
        )


def _delta(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(value - before.get(pid, 0.0) for pid, value in after.items())


@dataclass
class CpuReport:
    app_seconds: float
    baseline_seconds: float
    postgres_platform_seconds: float
    postgres_baseline_seconds: float
    locust_seconds: float
    wall_seconds: float
    route_ms: dict[str, float] = field(default_factory=dict)  # CPU-ms per request by route
    app_ms_per_request: float = 0.0
    app_requests: int = 0
    baseline_requests: int = 0  # of the one-query route
    baseline_app_requests: int = 0  # of all the baseline app's routes
    baseline_ms_per_request: float = 0.0
    ratios: dict[str, float] = field(default_factory=dict)
    # A hot route's round trips alone, as a multiple of the baseline (keyed by the hot route).
    floor_ratios: dict[str, float] = field(default_factory=dict)


def _thread_deltas(
    before: dict[str, tuple[int, float]], after: dict[str, tuple[int, float]]
) -> dict[str, tuple[int, float]]:
    """Requests and thread CPU seconds per route between two snapshots."""
    return {
        route: (count - before.get(route, (0, 0.0))[0], cpu - before.get(route, (0, 0.0))[1])
        for route, (count, cpu) in after.items()
    }


def _split(seconds: float, threads: dict[str, tuple[int, float]]) -> dict[str, float]:
    """CPU-ms per request by route: the workers' whole CPU split by each route's thread CPU."""
    thread_total = sum(cpu for _, cpu in threads.values())
    return {
        route: 1000 * seconds * (cpu / thread_total) / count
        for route, (count, cpu) in threads.items()
        if count > 0 and thread_total > 0
    }


def cpu_report(
    before: CpuSnapshot, after: CpuSnapshot, locust_seconds: float, wall_seconds: float
) -> CpuReport:
    """Whole-worker CPU per request, split between routes by their share of thread CPU."""
    app_seconds = _delta(before.app_workers, after.app_workers)
    baseline_seconds = _delta(before.baseline_workers, after.baseline_workers)
    pg_before = {pid: cpu for pid, (_, cpu) in before.postgres.items()}
    pg_platform = {pid: cpu for pid, (a, cpu) in after.postgres.items() if a != BASELINE_APP_NAME}
    pg_baseline = {pid: cpu for pid, (a, cpu) in after.postgres.items() if a == BASELINE_APP_NAME}
    report = CpuReport(
        app_seconds=app_seconds,
        baseline_seconds=baseline_seconds,
        postgres_platform_seconds=_delta(pg_before, pg_platform),
        postgres_baseline_seconds=_delta(pg_before, pg_baseline),
        locust_seconds=locust_seconds,
        wall_seconds=wall_seconds,
    )
    threads = _thread_deltas(before.routes, after.routes)
    # Requests as the workers counted them, over the same window as the CPU: Locust's
    # statistics may start later (--reset-stats).
    served = sum(count for count, _ in threads.values())
    if served:
        report.app_ms_per_request = 1000 * app_seconds / served
    report.app_requests = served
    report.route_ms = _split(app_seconds, threads)
    # The baseline app serves the one-query baseline and the round-trip floors: the same split.
    baseline_threads = _thread_deltas(before.baseline_routes, after.baseline_routes)
    baseline_ms = _split(baseline_seconds, baseline_threads)
    report.baseline_requests = baseline_threads.get(BASELINE_ROUTE, (0, 0.0))[0]
    report.baseline_app_requests = sum(count for count, _ in baseline_threads.values())
    report.baseline_ms_per_request = baseline_ms.get(BASELINE_ROUTE, 0.0)
    if report.baseline_ms_per_request > 0:
        for route, ms in report.route_ms.items():
            report.ratios[route] = ms / report.baseline_ms_per_request
        for route, floor in FLOOR_ROUTES.items():
            if floor in baseline_ms:
                report.floor_ratios[route] = baseline_ms[floor] / report.baseline_ms_per_request
    return report


# --- the stack -------------------------------------------------------------------------------------


def production_env(
    tmp: Path, database_url: str, redis_port: int, args: argparse.Namespace
) -> dict[str, str]:
    """APP_ENV=production with every setting it requires; see docs/load-testing.md."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp),
        "APP_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "METRICS_TOKEN": secrets.token_urlsafe(32),
        "CORS_ORIGINS": "https://load.mastery.test",
        "DATABASE_URL": database_url,
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "STORAGE_URL": f"file://{tmp / 'storage'}",
        "AI_PROVIDER": "offline",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp / "metrics"),
        "LOG_LEVEL": "INFO",
        "GUNICORN_WORKERS": str(args.workers),
        "GUNICORN_THREADS": str(args.threads),
        **RAISED_LIMITS,
    }
    for passthrough in ("LANG", "LC_ALL", "PYTHONPATH"):
        if passthrough in os.environ:
            env[passthrough] = os.environ[passthrough]
    return env


def gunicorn(target: str, port: int) -> list[str]:
    # --keep-alive 75: as behind a load balancer, which holds its upstream connections open.
    # With gunicorn's default (2 s), a client that pauses ~2 s races the server closing the
    # idle connection, and a POST sent into a closing connection fails (seen in the steady
    # shape: HTTPConnectionClosed on POST /skills/{id}/items).
    return [
        sys.executable,
        *("-m", "gunicorn", target, "-c", "gunicorn.conf.py"),
        *("--bind", f"127.0.0.1:{port}", "--timeout", "60", "--keep-alive", "75"),
    ]


# Run as `python -c SHIM command...`: the command replaces the shim (same pid) in a process
# group of its own. Ctrl-C in a terminal signals the whole foreground process group; this way
# it reaches the runner alone, which stops each process of the stack with one SIGTERM, in order.
# Signalled by both at once (the terminal's SIGINT, then the teardown's SIGTERM), a gunicorn
# worker was once left deadlocked in its exit handler, orphaned, after the stack was gone.
_OWN_GROUP_SHIM = "import os, sys; os.setpgid(0, 0); os.execvp(sys.argv[1], sys.argv[1:])"


def own_process_group(command: list[str]) -> list[str]:
    return [sys.executable, "-c", _OWN_GROUP_SHIM, *command]


def run_cli(env: dict[str, str], *command: str) -> str:
    cli_env = {k: v for k, v in env.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    result = subprocess.run(  # noqa: S603 - our own fixed command
        [sys.executable, "-m", "flask", "--app", "app", *command],
        cwd=ROOT,
        env=cli_env,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise LoadFailed(f"flask {' '.join(command)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout.strip()


@contextmanager
def production_stack(
    tmp: Path, args: argparse.Namespace, check_at_end: bool = True
) -> Iterator[tuple[str, str, Stack]]:
    """(app URL, baseline URL, Stack) of a running, seeded production-like stack. Its
    processes log to `tmp/<name>.log`. `check_at_end`: fail when one of them died meanwhile
    (`--serve` watches them itself while it waits, and a stop signal is not a failure)."""
    if shutil.which("redis-server") is None:
        raise LoadFailed(f"redis-server is not installed: `{INSTALL_HINT}` (as root)")
    with ExitStack() as stack:
        database = stack.enter_context(
            scratch_database(os.environ.get("LOAD_DATABASE_URL"), "mastery_load", LoadFailed, say)
        )
        database_url = database.url
        processes = ProcessGroup(tmp, LoadFailed, cwd=ROOT)
        stack.callback(processes.stop_all)
        ports = {name: free_port() for name in ("app", "baseline", "redis")}
        env = production_env(tmp, database_url, ports["redis"], args)
        (tmp / "metrics").mkdir()
        (tmp / "cpu-app").mkdir()
        (tmp / "cpu-baseline").mkdir()
        try:
            started = time.monotonic()
            run_cli(env, "db", "upgrade")
            say(f"migrated in {time.monotonic() - started:.1f} s")
            say(run_cli(env, "seed", "load", "--confirm-load-environment", *args.seed_args))
            redis_command = ["redis-server", "--bind", "127.0.0.1", "--port", str(ports["redis"])]
            redis_command += ["--save", "", "--appendonly", "no"]
            processes.start("redis", own_process_group(redis_command), env)
            processes.start("worker", own_process_group(celery_worker_command("load")), env)
            app_target = "app:create_app()"
            app_env = {**env, "MASTERY_CPU_ACCOUNTING_DIR": str(tmp / "cpu-app")}
            if args.inject_delay_ms:
                app_target = "load.delayed_app:create()"
                app_env["LOAD_INJECT_DELAY_MS"] = str(args.inject_delay_ms)
                say(f"INJECTED DELAY: {args.inject_delay_ms} ms on GET /sessions/{{id}}/next")
            app = processes.start(
                "platform", own_process_group(gunicorn(app_target, ports["app"])), app_env
            )
            baseline_url = make_url(database_url).update_query_dict(
                {"application_name": BASELINE_APP_NAME}
            )
            baseline_env = {
                **env,
                "MASTERY_CPU_ACCOUNTING_DIR": str(tmp / "cpu-baseline"),
                "BASELINE_DATABASE_URL": baseline_url.render_as_string(hide_password=False),
            }
            baseline = processes.start(
                "baseline",
                own_process_group(gunicorn("load.baseline_app:app", ports["baseline"])),
                baseline_env,
            )
            app_url = f"http://127.0.0.1:{ports['app']}"
            base_url = f"http://127.0.0.1:{ports['baseline']}"
            for url in (app_url, base_url):
                # The default argument binds this iteration's URL (mypy: lambda defaults).
                wait_until(
                    f"{url}/healthz answers",
                    lambda url=url: httpx.get(f"{url}/healthz").status_code == 200,  # type: ignore[misc]
                    60,
                    processes.check_alive,
                    failure=LoadFailed,
                )
            say(
                f"platform on {app_url} (gunicorn {args.workers} workers x {args.threads} "
                f"threads, APP_ENV=production), baseline on {base_url}, Celery worker, redis"
            )
            yield app_url, base_url, Stack(
                app,
                baseline,
                database.admin_dsn,
                database.name,
                tmp / "cpu-app",
                tmp / "cpu-baseline",
                processes,
            )
            if check_at_end:
                processes.check_alive()
        except BaseException:
            processes.print_logs()
            raise


# --- Locust ----------------------------------------------------------------------------------------


def account_env(args: argparse.Namespace) -> dict[str, str]:
    """The seeded accounts per role, for Locust's account pools (load/accounts.py)."""
    return {
        "LOAD_LEARNERS": str(args.learners),
        "LOAD_INSTRUCTORS": str(STACK_INSTRUCTORS),
        "LOAD_ADMINS": str(args.admins),
    }


def run_locust(
    shape: str,
    host: str,
    baseline_host: str | None,
    extra: list[str],
    log: Path,
    accounts: dict[str, str],
) -> tuple[int, float]:
    """Run one shape headless in a subprocess, its output to the terminal and to `log`;
    (exit code, Locust's CPU seconds). `accounts`: LOAD_* pool sizes ({} against a host,
    where the caller's environment says what was seeded)."""
    REPORTS.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **accounts, "LOAD_SHAPE": shape, "PYTHONPATH": str(ROOT)}
    env.pop("LOAD_BASELINE_HOST", None)
    if baseline_host:
        env["LOAD_BASELINE_HOST"] = baseline_host
    command = [
        sys.executable,
        *("-m", "locust", "-f", str(ROOT / "load" / "locustfile.py"), "--headless"),
        *("--host", host, "--csv", str(REPORTS / shape), "--html", str(REPORTS / f"{shape}.html")),
        *("--only-summary", "--loglevel", "WARNING", "--stop-timeout", "10"),
        # Constant-load shapes: statistics from the moment every user is spawned; the log-in
        # storm of the ramp-up (Argon2id costs ~20 ms of CPU per log-in, on purpose) is not the
        # steady state. Locust resets at every completed spawn, so the ramp and the spike keep
        # their whole run.
        *(["--reset-stats"] if shape in RESET_STATS else []),
        *extra,
    ]
    say(f"locust: shape {shape} ({duration(shape):.0f} s) against {host}")
    child = subprocess.Popen(  # noqa: S603 - our own command
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    assert child.stdout is not None  # noqa: S101 - stdout=PIPE
    with child.stdout, log.open("wb") as sink:
        for line in child.stdout:  # until Locust exits and closes it
            sys.stdout.buffer.write(line)
            sys.stdout.flush()
            sink.write(line)
    # wait4 (not Popen.wait) to get the child's own resource usage: Locust's CPU.
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    return child.returncode, usage.ru_utime + usage.ru_stime


# --- reporting -------------------------------------------------------------------------------------


def route_table(measured: evaluate.Measurements, cpu: CpuReport | None) -> str:
    lines = [
        f"{'route':<38} {'reqs':>6} {'fail':>4} {'req/s':>6} {'p50':>5} {'p95':>5} {'p99':>5}"
        f" {'CPU-ms':>7} {'x base':>6}"
    ]
    for route in sorted(measured.routes):
        s = measured.routes[route]
        ms = cpu.route_ms.get(route) if cpu else None
        ratio = cpu.ratios.get(route) if cpu else None
        lines.append(
            f"{route:<38} {s.requests:>6} {s.failures:>4} {s.rps:>6.1f} {s.p50_ms:>5.0f}"
            f" {s.p95_ms:>5.0f} {s.p99_ms:>5.0f} {_opt(ms, '.2f'):>7} {_opt(ratio, '.2f'):>6}"
        )
    t = measured.total
    lines.append(
        f"{'all platform requests':<38} {t.requests:>6} {t.failures:>4} {t.rps:>6.1f}"
        f" {'':>5} {'':>5} {'':>5} {_opt(cpu.app_ms_per_request if cpu else None, '.2f'):>7}"
    )
    return "\n".join(lines)


def _opt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def cpu_lines(cpu: CpuReport) -> str:
    wall = max(cpu.wall_seconds, 1e-9)
    baseline_requests = cpu.baseline_requests
    pg_ms = 1000 * cpu.postgres_platform_seconds / max(cpu.app_requests, 1)
    pg_base_ms = 1000 * cpu.postgres_baseline_seconds / max(cpu.baseline_app_requests, 1)
    ratios = ", ".join(f"{r} {cpu.ratios.get(r, float('nan')):.2f}x" for r in HOT_ROUTES)
    floors = ", ".join(f"{r} {cpu.floor_ratios.get(r, float('nan')):.2f}x" for r in HOT_ROUTES)
    return "\n".join(
        [
            f"app CPU: {cpu.app_seconds:.1f} s over {wall:.0f} s ({cpu.app_seconds / wall:.2f} cores)"
            f" = {cpu.app_ms_per_request:.2f} CPU-ms per request ({cpu.app_requests} requests"
            " served, log-ins included)",
            f"baseline (one PK SELECT, same gunicorn config): {cpu.baseline_ms_per_request:.2f}"
            f" CPU-ms per request ({baseline_requests} requests; the baseline app's workers used"
            f" {cpu.baseline_seconds:.1f} s over all its routes)",
            f"ratio to baseline: {ratios}",
            f"the same routes' round trips alone (Redis calls + one transaction of their"
            f" statements, no framework; load/baseline_app.py): {floors}",
            f"Postgres CPU (scratch database's backends): platform {cpu.postgres_platform_seconds:.1f} s"
            f" = {pg_ms:.2f} ms per request; baseline app {pg_base_ms:.2f} ms per request (all"
            " its routes)",
            f"load generator (Locust) CPU: {cpu.locust_seconds:.1f} s"
            f" ({cpu.locust_seconds / wall:.2f} cores)",
        ]
    )


@dataclass
class ShapeResult:
    """One shape's verdict: its checks (none when Locust did not finish) and every problem."""

    shape: str
    thresholds: Path | None
    checks: list[evaluate.Check] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def shown(path: Path) -> str:
    """`path` relative to the repository when it is inside it."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def evaluate_shape(
    shape: str, thresholds_path: Path, cpu: CpuReport | None, measured: evaluate.Measurements
) -> ShapeResult:
    thresholds = evaluate.load_thresholds(thresholds_path)
    measured = replace(measured, cpu_ratio=cpu.ratios if cpu else {})
    checks = evaluate.evaluate(thresholds, measured, with_cpu=cpu is not None)
    print(f"\nThresholds ({shown(thresholds_path)}):\n{evaluate.table(checks)}", flush=True)
    for line in evaluate.exception_lines(measured):
        print(f"exception in a user: {line}", flush=True)
    problems = [f"{shape}: {problem}" for problem in evaluate.failures(checks)]
    return ShapeResult(shape, thresholds_path, checks, problems)


def run_shape(
    shape: str,
    args: argparse.Namespace,
    host: str,
    baseline_host: str | None,
    stack: Stack | None,
    logs: Path,
) -> ShapeResult:
    before = stack.snapshot() if stack else None
    started = time.monotonic()
    code, locust_cpu = run_locust(
        shape,
        host,
        baseline_host,
        args.locust_args,
        logs / f"locust-{shape}.log",
        account_env(args) if stack else {},
    )
    wall = time.monotonic() - started
    if code not in (0, 1):  # 1: a request failed or a user raised, which thresholds report
        return ShapeResult(shape, None, problems=[f"{shape}: locust exited with {code}"])
    measured = evaluate.read_locust_csv(REPORTS / shape, exclude=BASELINE_PREFIX)
    cpu = None
    if stack is not None and before is not None:
        stack.wait_for_cpu_totals(since=time.time())
        cpu = cpu_report(before, stack.snapshot(), locust_cpu, wall)
    print(f"\n=== {shape}: {wall:.0f} s against {host} ===\n{route_table(measured, cpu)}")
    print(
        f"requests/s {measured.total.rps:.1f}; error ratio {measured.total.error_ratio:.4f}"
        f" ({measured.total.failures} of {measured.total.requests})"
    )
    if cpu is not None:
        print(cpu_lines(cpu))
        summary = {
            "shape": shape,
            "cpu": asdict(cpu),
            "routes": {r: asdict(s) for r, s in measured.routes.items()},
        }
        (REPORTS / f"{shape}-summary.json").write_text(json.dumps(summary, indent=2))
    else:
        print(f"load generator (Locust) CPU: {locust_cpu:.1f} s (no server CPU: remote host)")
    thresholds = args.thresholds or THRESHOLDS / f"{shape}.toml"
    result = evaluate_shape(shape, thresholds, cpu, measured)
    result.problems += baseline_problems(shape)
    return result


def baseline_problems(shape: str) -> list[str]:
    """The ratios are only as good as the baseline: a failed baseline request (a missing Redis,
    a refused connection) would make its routes look cheap, so it fails the run."""
    everything = evaluate.read_locust_csv(REPORTS / shape)
    failed = {
        route: stats
        for route, stats in everything.routes.items()
        if route.split(" ", 1)[-1].startswith(BASELINE_PREFIX) and stats.failures
    }
    return [
        f"{shape}: baseline {route}: {stats.failures} of {stats.requests} requests failed,"
        " so the CPU ratios compare against a broken baseline"
        for route, stats in sorted(failed.items())
    ]


# --- what a run leaves behind: the summary for CI and, when it failed, the logs -------------------


def verdict_line(shapes: list[str], problems: list[str], failure: str | None) -> str:
    if failure is not None:
        return f"LOAD RUN FAILED: {failure}"
    if problems:
        return f"LOAD GATE FAILED: {len(problems)} problem(s) ({', '.join(shapes)})"
    return f"LOAD GATE PASSED: every threshold held ({', '.join(shapes)})"


def summary_markdown(
    shapes: list[str], results: list[ShapeResult], failure: str | None, target: str
) -> str:
    """reports/load/summary.md: per shape, each threshold, its limit, the measured value and
    PASS/FAIL; then every problem and the verdict line (CI appends it to the step summary)."""
    problems = [problem for result in results for problem in result.problems]
    lines = [f"## Load test ({', '.join(shapes)}) against {target}", ""]
    for result in results:
        source = f" (`{shown(result.thresholds)}`)" if result.thresholds else ""
        lines += [f"### {result.shape}{source}", ""]
        if result.checks:
            lines += [evaluate.markdown(result.checks), ""]
        else:
            lines += ["No measurements: Locust did not finish the shape.", ""]
    if failure is None and not results:
        lines += ["No shape ran.", ""]
    if problems:
        lines += ["Problems:", "", *(f"- {problem}" for problem in problems), ""]
    verdict = verdict_line(shapes, problems, failure)
    lines.append(f"**{verdict.split(':', 1)[0]}**:{verdict.split(':', 1)[1]}")
    return "\n".join(lines) + "\n"


def keep_logs(directory: Path) -> list[Path]:
    """Copy every `*.log` of a run (gunicorn's platform and baseline, the Celery worker, redis,
    Locust) to reports/load/logs/, where CI uploads them from."""
    LOGS.mkdir(parents=True, exist_ok=True)
    kept = []
    for log in sorted(directory.glob("*.log")):
        shutil.copy2(log, LOGS / log.name)
        kept.append(LOGS / log.name)
    return kept


def clear_previous_outcome() -> None:
    """A run's summary and logs are its own: never a previous run's left in place."""
    shutil.rmtree(LOGS, ignore_errors=True)
    SUMMARY.unlink(missing_ok=True)


# --- serving the stack for Locust by hand -----------------------------------------------------------

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def wait_for_signal(check_alive: Callable[[], None]) -> str:
    """Block until SIGINT or SIGTERM arrives and return its name; a SIGCHLD means one of the
    stack's processes exited, and `check_alive` raises. The signals stay blocked afterwards,
    so a second Ctrl-C cannot cut the teardown short (drop the database, stop the processes)."""
    watched = {*STOP_SIGNALS, signal.SIGCHLD}
    signal.pthread_sigmask(signal.SIG_BLOCK, watched)
    while True:
        check_alive()  # also covers a child that died before the signals were blocked
        received = signal.sigwait(watched)
        if received != signal.SIGCHLD:
            return signal.Signals(received).name


def locust_command() -> str:
    """The `locust` next to this interpreter (nox's venv), as the user can type it."""
    program = Path(sys.executable).with_name("locust")
    if not program.exists():
        return "locust"
    return shown(program) if program.is_relative_to(ROOT) else str(program)


def serve_instructions(app_url: str, args: argparse.Namespace, logs: Path) -> str:
    locust = f"{locust_command()} -f load/locustfile.py --host {app_url}"
    accounts = " ".join(f"{name}={value}" for name, value in account_env(args).items())
    python = Path(sys.executable)
    python_shown = shown(python) if python.is_relative_to(ROOT) else "python"
    return "\n".join(
        [
            "",
            f"The seeded stack is up: {app_url} (APP_ENV=production, gunicorn {args.workers}"
            f" workers x {args.threads} threads, Celery worker, redis; logs in {logs}).",
            "Load it from another terminal, in the repository root:",
            "",
            f"  export {accounts}",
            "  # web UI on http://127.0.0.1:8089: set users and spawn rate, or pick a shape",
            f"  {locust} --web-host 127.0.0.1 --class-picker",
            "  # headless: 10 users, 5 started per second, for 60 s, with CSV and HTML reports",
            f"  {locust} --headless -u 10 -r 5 -t 60s \\",
            "      --csv reports/load/manual --html reports/load/manual.html",
            "  # one of the shapes (smoke, steady, ramp, spike, soak), then its verdict",
            f"  {locust} --headless --shape steady --reset-stats --csv reports/load/steady",
            f"  {python_shown} -m load.evaluate --csv reports/load/steady"
            " --thresholds load/thresholds/steady.toml",
            "  # distributed: add --processes -1 (a worker per core), or --master / --worker",
            "",
            "Ctrl-C (SIGINT) or SIGTERM stops the stack and removes it.",
            "",
        ]
    )


def serve(args: argparse.Namespace) -> int:
    """Start the seeded stack, print how to load it, and keep it up until a stop signal."""
    tmp = Path(tempfile.mkdtemp(prefix="mastery-load-"))
    try:
        with production_stack(tmp, args, check_at_end=False) as (app_url, _baseline, stack):
            print(serve_instructions(app_url, args, tmp), flush=True)
            assert stack.processes is not None  # noqa: S101 - production_stack sets it
            received = wait_for_signal(stack.processes.check_alive)
            say(f"{received}: stopping the stack")
    except LoadFailed as failure:
        say(f"LOAD STACK FAILED: {failure}")
        say(f"logs kept in {shown(LOGS)}/: {', '.join(p.name for p in keep_logs(tmp))}")
        return 2
    finally:
        if args.keep:
            say(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    say("stack stopped, scratch database dropped")
    return 0


# --- the command ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m load.run", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="smoke")
    parser.add_argument(
        "--shape",
        choices=sorted(STAGES),
        action="append",
        help="run these shapes instead of the profile's",
    )
    parser.add_argument("--host", help="run against this deployment; start nothing")
    parser.add_argument(
        "--serve",
        action="store_true",
        help="start the seeded stack, print how to point Locust at it, keep it up until Ctrl-C",
    )
    parser.add_argument("--thresholds", type=Path, help="one thresholds file for every shape")
    parser.add_argument("--workers", type=int, default=int(os.environ.get("GUNICORN_WORKERS", 2)))
    parser.add_argument("--threads", type=int, default=int(os.environ.get("GUNICORN_THREADS", 4)))
    parser.add_argument("--inject-delay-ms", type=int, default=0, help="slow down /next on purpose")
    parser.add_argument(
        "--learners",
        type=int,
        help="seeded learners (smoke and --serve: 1000, to stay fast; otherwise 5000)",
    )
    parser.add_argument(
        "--admins", type=int, default=STACK_ADMINS, help="seeded admins (default %(default)s)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the stack's logs directory")
    args, locust_args = parser.parse_known_args(argv)
    if args.serve and args.host:
        parser.error("--serve starts the local stack; --host loads a running one: choose one")
    if args.serve and locust_args:
        parser.error(f"--serve runs no Locust; unknown arguments: {' '.join(locust_args)}")
    args.locust_args = locust_args
    smoke_only = args.profile == "smoke" and not args.shape
    args.learners = args.learners or (1000 if smoke_only or args.serve else 5000)
    args.seed_args = ["--learners", str(args.learners), "--admins", str(args.admins)]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve:
        return serve(args)
    shapes = args.shape or list(PROFILES[args.profile])
    clear_previous_outcome()
    tmp = Path(tempfile.mkdtemp(prefix="mastery-load-"))
    results: list[ShapeResult] = []
    failure: str | None = None
    try:
        if args.host:
            for shape in shapes:
                results.append(run_shape(shape, args, args.host, None, None, tmp))
        else:
            with production_stack(tmp, args) as (app_url, baseline_url, stack):
                for shape in shapes:
                    results.append(run_shape(shape, args, app_url, baseline_url, stack, tmp))
    except LoadFailed as error:
        failure = str(error)
        say(f"LOAD RUN FAILED: {failure}")
    except BaseException as error:  # a bug or an interrupt: still leave the summary and logs
        failure = f"interrupted by {type(error).__name__}: {error}"
        raise
    finally:
        problems = [problem for result in results for problem in result.problems]
        target = args.host or "the local production-like stack"
        REPORTS.mkdir(parents=True, exist_ok=True)
        SUMMARY.write_text(summary_markdown(shapes, results, failure, target))
        if failure or problems:
            kept = keep_logs(tmp)
            say(f"logs kept in {shown(LOGS)}/: {', '.join(p.name for p in kept) or 'none'}")
        if args.keep:
            say(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nreports: {shown(REPORTS)}/<shape>.html, <shape>_stats.csv and summary.md")
    if failure:
        return 2
    if problems:
        print("\nLOAD GATE FAILED:", *(f"  - {p}" for p in problems), sep="\n", flush=True)
        return 1
    print(f"\n{verdict_line(shapes, problems, None)}", flush=True)
    return 0


def _exit_on_sigterm(_signal: int, _frame: object) -> None:
    # As Ctrl-C does: unwind, so the stack is stopped and the scratch database dropped.
    raise SystemExit(128 + signal.SIGTERM)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    sys.exit(main())
