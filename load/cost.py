"""The serving-cost benchmark behind `nox -s cost`: instructions executed per request for each
hot route, counted by valgrind's callgrind, compared with committed budgets.

    python -m load.cost                          # measure twice, print the table, gate
    python -m load.cost --runs 1                 # one run (no spread)
    python -m load.cost --update-budgets         # measure, then write load/cost-budgets.toml
    python -m load.cost --inject-slowdown 'GET /sessions/{id}/next=5'   # the gate failing
    python -m load.cost --profile                # deterministic per-route Python profile

Each run builds its own fixed world: a scratch Postgres database migrated and seeded by
`flask seed load` with a fixed seed and small sizes, a throwaway redis-server, and the platform
created in-process with the load stack's production settings (load/run.py `production_env`:
APP_ENV=production, rate limits in Redis, multiprocess metrics, JSON access log). A child
process under `valgrind --tool=callgrind` logs the learners in, starts their practice
sessions, warms every route up, then sends the measured requests straight into the WSGI
callable (no HTTP server, no test client in the count). Each measured request runs inside a
ctypes callback: callgrind collects only inside libffi's `ffi_call`
(`--collect-atstart=no --toggle-collect=ffi_call`) and writes one profile dump as it returns
(`--dump-after=ffi_call`), so every dump holds exactly one request's instructions.

What is counted: the instructions this Python process executes for the request, Flask to
response bytes, including the client side of its Postgres and Redis round trips (psycopg,
libpq, redis-py, the socket calls). What is not: the Postgres server's and Redis server's own
work (other processes), and the kernel's.

The baseline is load/baseline_app.py's `GET /baseline` (one primary-key SELECT, JSON out),
called in the same process against the same database. Results go to reports/cost/cost.json and
a table; a route more than 5 % above its budget (load/cost-budgets.toml) fails the run.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.processes import wait_until

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "reports" / "cost"
COST_JSON = REPORTS / "cost.json"
PROFILE_MD = REPORTS / "profile.md"
BUDGETS = ROOT / "load" / "cost-budgets.toml"
UPDATE_COMMAND = "./noxw -s cost -- --update-budgets"
# A route fails when its instructions per request are more than this far above its budget.
TOLERANCE = 0.05
# Two runs of the same tree should agree within this (reported, not enforced).
SPREAD_TARGET = 0.01
VALGRIND_INSTALL = "apt-get install -y valgrind"

NEXT = "GET /sessions/{id}/next"
ATTEMPT = "POST /sessions/{id}/attempts"
COURSES = "GET /courses"
PROGRESS = "GET /me/progress"
LOGIN = "POST /auth/login"
REFRESH = "POST /auth/refresh"
BASELINE = "GET /baseline"
ROUTES = (NEXT, ATTEMPT, COURSES, PROGRESS, LOGIN, REFRESH, BASELINE)
# The platform's endpoint (Flask's view name) behind each route, for --inject-slowdown.
ENDPOINTS = {
    NEXT: "learning.next_item",
    ATTEMPT: "learning.submit_attempt",
    COURSES: "content.list_courses",
    PROGRESS: "learning.progress",
    LOGIN: "auth.login",
    REFRESH: "auth.refresh",
}

# The fixed world. Small enough to seed in seconds; GET /courses returns a full page of 20.
SEED_ARGS = (
    *("--courses", "20", "--skills-per-course", "2", "--items-per-skill", "60"),
    *("--learners", "40", "--admins", "2", "--attempts-per-learner", "10", "--seed", "7"),
)
PRACTISING_LEARNERS = 4  # learners 0..3 practise (next/attempts/progress/courses)
WARMUP = 4  # requests of each route before the measured ones
MEASURED = 16  # measured requests of each cheap route
AUTH_WARMUP = 1  # a log-in costs ~15x a next (Argon2id, on purpose): fewer of them
AUTH_MEASURED = 3
LOGIN_LEARNERS = range(10, 10 + AUTH_WARMUP + AUTH_MEASURED)
PASSWORD = "mastery-load-shared-password"  # noqa: S105  # pragma: allowlist secret (load accounts)
LOAD_DOMAIN = "load.mastery.test"
SLOWDOWN_LOOP = 200_000  # iterations of the busy loop measured to calibrate --inject-slowdown


def say(message: str) -> None:
    print(f"[cost] {message}", flush=True)


class CostFailed(Exception):
    """The harness could not measure (a service or tool is missing, a request failed)."""


# --- pure logic: parsing, figures, budgets, the gate ----------------------------------------------


def callgrind_total(text: str) -> int:
    """The instruction count of one callgrind dump (its `totals:` line, else `summary:`)."""
    found: dict[str, int] = {}
    for line in text.splitlines():
        for key in ("totals:", "summary:"):
            if line.startswith(key):
                found[key] = int(line.split()[1])
    if not found:
        raise ValueError("no totals: or summary: line in the callgrind dump")
    return found.get("totals:", found.get("summary:", 0))


def per_request(samples: Mapping[str, Sequence[int]]) -> dict[str, float]:
    """Mean instructions per request of each route over its measured requests."""
    return {route: sum(counts) / len(counts) for route, counts in samples.items() if counts}


def combine_runs(runs: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """The figure of each route over several runs: their mean."""
    routes = [route for route in ROUTES if all(route in run for run in runs)]
    return {route: sum(run[route] for run in runs) / len(runs) for route in routes}


def spread(runs: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """(max - min) / min of each route over the runs: 0.004 is 0.4 %."""
    result = {}
    for route in ROUTES:
        values = [run[route] for run in runs if route in run]
        if len(values) >= 2 and min(values) > 0:
            result[route] = (max(values) - min(values)) / min(values)
    return result


@dataclass(frozen=True)
class Row:
    route: str
    instructions: float
    ratio: float | None  # to the baseline's instructions per request
    budget: int | None
    delta: float | None  # (instructions - budget) / budget
    spread: float | None

    @property
    def failed(self) -> bool:
        return self.delta is not None and self.delta > TOLERANCE


def compare(
    figures: Mapping[str, float],
    budgets: Mapping[str, int],
    spreads: Mapping[str, float] | None = None,
) -> list[Row]:
    """One row per measured route, in ROUTES order, against its budget."""
    baseline = figures.get(BASELINE)
    rows = []
    for route in ROUTES:
        if route not in figures:
            continue
        value = figures[route]
        budget = budgets.get(route)
        rows.append(
            Row(
                route=route,
                instructions=value,
                ratio=value / baseline if baseline else None,
                budget=budget,
                delta=(value - budget) / budget if budget else None,
                spread=(spreads or {}).get(route),
            )
        )
    return rows


def failures(rows: Iterable[Row]) -> list[Row]:
    return [row for row in rows if row.failed]


def missing_budgets(rows: Iterable[Row]) -> list[str]:
    return [row.route for row in rows if row.budget is None]


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "-" if value is None else f"{format(value, spec)}{suffix}"


def table(rows: Sequence[Row]) -> str:
    """The printed table: route, instructions/request, x baseline, budget, delta %, verdict."""
    header = (
        f"{'route':<30} {'instr/request':>14} {'x base':>7} {'budget':>14} {'delta':>8}"
        f" {'spread':>7}  verdict"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        verdict = "FAIL" if row.failed else ("no budget" if row.budget is None else "ok")
        delta = None if row.delta is None else 100 * row.delta
        spread_pct = None if row.spread is None else 100 * row.spread
        lines.append(
            f"{row.route:<30} {row.instructions:>14,.0f} {_fmt(row.ratio, '.2f', 'x'):>7}"
            f" {_fmt(row.budget, ',d'):>14} {_fmt(delta, '+.1f', ' %'):>8}"
            f" {_fmt(spread_pct, '.2f', ' %'):>7}  {verdict}"
        )
    return "\n".join(lines)


def read_budgets(path: Path) -> dict[str, int]:
    """The committed budgets: `[budgets]` route = instructions per request."""
    if not path.exists():
        return {}
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    budgets = data.get("budgets", {})
    unknown = sorted(set(budgets) - set(ROUTES))
    if unknown:
        raise ValueError(f"{path.name}: unknown routes {unknown}; known: {list(ROUTES)}")
    return {route: int(value) for route, value in budgets.items()}


BUDGETS_HEADER = """\
# Instructions per request of each hot route, the budget `nox -s cost` holds them to
# (docs/benchmarks.md "Serving cost (instructions per request)"). A route more than 5 % above
# its budget fails the gate. After a change that makes a route cheaper (or a justified one
# that makes it dearer), rewrite these figures from a measurement with one command:
#
#     ./noxw -s cost -- --update-budgets
#
# Counted by callgrind in the platform's own process: Postgres and Redis server work is not in
# these figures.
"""


def render_budgets(figures: Mapping[str, float]) -> str:
    lines = [BUDGETS_HEADER, "[budgets]"]
    for route in ROUTES:
        if route in figures:
            lines.append(f'"{route}" = {round(figures[route])}')
    return "\n".join(lines) + "\n"


def parse_slowdown(text: str) -> tuple[str, float]:
    """`ROUTE=PERCENT` (e.g. `GET /sessions/{id}/next=5`) -> (route, 0.05)."""
    route, sep, percent = text.rpartition("=")
    if not sep or route not in ENDPOINTS:
        raise argparse.ArgumentTypeError(
            f"expected ROUTE=PERCENT with ROUTE one of {sorted(ENDPOINTS)}, got {text!r}"
        )
    try:
        share = float(percent) / 100
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not a percentage: {percent!r}") from error
    if share <= 0:
        raise argparse.ArgumentTypeError("the slowdown must be above 0 %")
    return route, share


def report(
    runs: Sequence[Mapping[str, float]],
    samples: Sequence[Mapping[str, Sequence[int]]],
    budgets: Mapping[str, int],
    injected: tuple[str, float] | None,
) -> dict[str, Any]:
    """The cost.json document."""
    figures = combine_runs(runs)
    rows = compare(figures, budgets, spread(runs))
    return {
        "unit": "instructions per request (callgrind Ir, the platform's process only)",
        "not_counted": "Postgres and Redis server work (other processes), kernel work",
        "tolerance": TOLERANCE,
        "injected_slowdown": None if injected is None else {injected[0]: injected[1]},
        "routes": {
            row.route: {
                "instructions_per_request": round(row.instructions),
                "ratio_to_baseline": None if row.ratio is None else round(row.ratio, 3),
                "budget": row.budget,
                "delta": None if row.delta is None else round(row.delta, 4),
                "spread": None if row.spread is None else round(row.spread, 5),
                "failed": row.failed,
            }
            for row in rows
        },
        "runs": [
            {
                route: {
                    "instructions_per_request": round(run[route]),
                    "requests": len(sample.get(route, ())),
                    "min": min(sample.get(route, (0,))),
                    "max": max(sample.get(route, (0,))),
                    "samples": list(sample.get(route, ())),
                }
                for route in ROUTES
                if route in run
            }
            for run, sample in zip(runs, samples, strict=True)
        ],
    }


# --- the deterministic profile --------------------------------------------------------------------


class TickTimer:
    """A profiler clock that advances one tick per profiler event: "time" is then the number
    of calls and returns below a function, the same on every run (wall time is not)."""

    def __init__(self) -> None:
        self.ticks = 0

    def __call__(self) -> int:
        self.ticks += 1
        return self.ticks


def top_inclusive(stats: Any, limit: int = 20) -> list[tuple[str, int, float]]:
    """(function, calls, inclusive ticks) of the `limit` heaviest functions of a pstats.Stats."""
    rows = []
    for (filename, line, name), (_cc, calls, _tt, ct, _callers) in stats.stats.items():
        where = _short_path(filename)
        label = f"{name}" if filename == "~" else f"{where}:{line} {name}"
        rows.append((label, int(calls), float(ct)))
    rows.sort(key=lambda row: (-row[2], row[0]))
    return rows[:limit]


def _short_path(filename: str) -> str:
    path = filename.replace(os.sep, "/")
    for marker in ("/site-packages/", "/lib/python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    root = str(ROOT).replace(os.sep, "/") + "/"
    return path[len(root) :] if path.startswith(root) else path


def profile_markdown(profiles: Mapping[str, tuple[int, list[tuple[str, int, float]]]]) -> str:
    lines = []
    for route, (requests, rows) in profiles.items():
        total = rows[0][2] if rows else 1.0
        lines.append(f"#### {route} ({requests} requests profiled)\n")
        lines.append("| # | function | calls/request | inclusive events/request | share |")
        lines.append("|---|---|---:|---:|---:|")
        for number, (label, calls, ticks) in enumerate(rows, 1):
            lines.append(
                f"| {number} | `{label}` | {calls / requests:.1f} | {ticks / requests:,.0f}"
                f" | {100 * ticks / total:.0f} % |"
            )
        lines.append("")
    return "\n".join(lines)


# --- the child: the platform in-process, its requests measured -----------------------------------

StartResponse = Callable[..., Any]
WSGI = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def _email(number: int) -> str:
    return f"learner-{number:05d}@{LOAD_DOMAIN}"


def _address(number: int) -> str:
    return f"10.0.{number // 256 % 256}.{number % 256}"


class Driver:
    """Builds each request's WSGI environ outside the measurement and calls the app with it."""

    def __init__(self, platform: Any, baseline: WSGI) -> None:
        from werkzeug.test import EnvironBuilder

        self._builder = EnvironBuilder
        self.platform = platform
        self.wsgi: WSGI = platform
        self.baseline = baseline

    def environ(
        self,
        method: str,
        path: str,
        learner: int,
        token: str | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        sent = {"X-Forwarded-For": _address(learner), "X-Forwarded-Proto": "https"}
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        sent.update(headers or {})
        builder = self._builder(
            path=path,
            method=method,
            base_url="http://localhost",
            headers=sent,
            json=body,
            environ_base={"REMOTE_ADDR": "127.0.0.1"},
        )
        try:
            environ: dict[str, Any] = builder.get_environ()
        finally:
            builder.close()
        return environ

    @staticmethod
    def call(app: WSGI, environ: dict[str, Any]) -> tuple[int, bytes]:
        status: list[str] = []

        def start_response(line: str, _headers: Any, _exc: Any = None) -> Any:
            status.append(line)
            return lambda _data: None

        result = app(environ, start_response)
        try:
            body = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        return int(status[-1].split()[0]), body


class Measurer:
    """Runs callables inside `ffi_call` (the span callgrind collects) and reads each dump."""

    def __init__(self, dump_dir: Path | None) -> None:
        self.dump_dir = dump_dir
        self._proto = ctypes.CFUNCTYPE(None)

    def _dumps(self) -> set[Path]:
        assert self.dump_dir is not None  # noqa: S101 - only called when measuring
        return set(self.dump_dir.glob("callgrind.out.*.*"))

    def measure(self, work: Callable[[], Any]) -> tuple[Any, int]:
        """(work's result, its instructions; 0 when not under callgrind)."""
        outcome: list[Any] = []
        errors: list[BaseException] = []

        def run() -> None:
            try:
                outcome.append(work())
            except BaseException as error:  # a ctypes callback cannot raise; re-raised below
                errors.append(error)

        callback = self._proto(run)
        before = self._dumps() if self.dump_dir is not None else set()
        callback()
        if errors:
            raise errors[0]
        if self.dump_dir is None:
            return outcome[0], 0
        new = self._dumps() - before
        if not new:
            raise CostFailed("no callgrind dump after a measured call: not run under callgrind?")
        total = 0
        for dump in new:
            total += callgrind_total(dump.read_text(encoding="utf-8", errors="replace"))
            dump.unlink()
        return outcome[0], total


def _deterministic_uuid4(seed: int) -> None:
    """uuid4 from a seeded generator, installed before the platform is imported: the practice
    sessions' ids seed the engine's choices, so with random ids every run would serve other
    items (an mcq or a short answer) and count other work. Measurement only."""
    import random
    import uuid

    generator = random.Random(seed)  # noqa: S311 - ids for a benchmark, not secrets

    def uuid4() -> uuid.UUID:
        return uuid.UUID(int=generator.getrandbits(128), version=4)

    uuid.uuid4 = uuid4


def busy_loop(iterations: int) -> int:
    """The injected slowdown: plain interpreter work, a fixed number of iterations."""
    total = 0
    for value in range(iterations):
        total += value & 7
    return total


def _inject(platform: Any, endpoint: str, iterations: int) -> None:
    view = platform.view_functions[endpoint]

    def slowed(*args: Any, **kwargs: Any) -> Any:
        busy_loop(iterations)
        return view(*args, **kwargs)

    platform.view_functions[endpoint] = slowed


class Workload:
    """The fixed sequence of requests of one run, each measured or not."""

    def __init__(self, driver: Driver, measurer: Measurer) -> None:
        self.driver = driver
        self.measurer = measurer
        self.samples: dict[str, list[int]] = {route: [] for route in ROUTES}
        self.tokens: dict[int, dict[str, str]] = {}
        self.sessions: dict[int, str] = {}
        self.pending: dict[int, dict[str, Any]] = {}

    def send(
        self, route: str | None, app: WSGI, environ: dict[str, Any], expect: tuple[int, ...]
    ) -> Any:
        """Send one request; measured (into `route`'s samples) when `route` is given."""
        if route is None:
            status, body = Driver.call(app, environ)
        else:
            (status, body), instructions = self.measurer.measure(
                lambda: Driver.call(app, environ)
            )
            self.samples[route].append(instructions)
        if status not in expect:
            raise CostFailed(
                f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']} answered {status}: "
                f"{body[:300]!r}"
            )
        return json.loads(body) if body else None

    def _platform(
        self, route: str | None, method: str, path: str, learner: int, **kwargs: Any
    ) -> Any:
        expect = kwargs.pop("expect", (200,))
        environ = self.driver.environ(method, path, learner, **kwargs)
        return self.send(route, self.driver.wsgi, environ, expect)

    def log_in(self, learner: int, measured: bool) -> None:
        body = {"email": _email(learner), "password": PASSWORD}
        pair = self._platform(LOGIN if measured else None, "POST", "/auth/login", learner, body=body)
        self.tokens[learner] = pair

    def refresh(self, learner: int, measured: bool) -> None:
        body = {"refresh_token": self.tokens[learner]["refresh_token"]}
        route = REFRESH if measured else None
        self.tokens[learner] = self._platform(route, "POST", "/auth/refresh", learner, body=body)

    def start_practice(self, learner: int) -> None:
        token = self.tokens[learner]["access_token"]
        courses = self._platform(None, "GET", "/courses?limit=20", learner, token=token)
        course = courses["items"][learner % len(courses["items"])]
        self._platform(
            None,
            "POST",
            f"/courses/{course['id']}/enrollments",
            learner,
            token=token,
            expect=(200, 201),
        )
        skills = self._platform(None, "GET", f"/courses/{course['id']}/skills", learner, token=token)
        skill = skills["items"][0]["id"]
        created = self._platform(
            None, "POST", "/sessions", learner, token=token, body={"skill_id": skill}, expect=(201,)
        )
        self.sessions[learner] = created["id"]

    def next_item(self, learner: int, measured: bool) -> None:
        token = self.tokens[learner]["access_token"]
        path = f"/sessions/{self.sessions[learner]}/next"
        answer = self._platform(NEXT if measured else None, "GET", path, learner, token=token)
        self.pending[learner] = answer["item"]

    def attempt(self, learner: int, number: int, measured: bool) -> None:
        token = self.tokens[learner]["access_token"]
        item = self.pending.pop(learner)
        if item["kind"] == "mcq":
            response: int | str = number % len(item["choices"])
        else:
            response = "Both sides stay equal." if number % 2 else "I am not sure."
        self._platform(
            ATTEMPT if measured else None,
            "POST",
            f"/sessions/{self.sessions[learner]}/attempts",
            learner,
            token=token,
            body={"item_id": item["id"], "response": response},
            headers={"Idempotency-Key": f"cost-{learner}-{number}"},
            expect=(201,),
        )

    def courses(self, learner: int, measured: bool) -> None:
        token = self.tokens[learner]["access_token"]
        self._platform(COURSES if measured else None, "GET", "/courses?limit=20", learner, token=token)

    def progress(self, learner: int, measured: bool) -> None:
        token = self.tokens[learner]["access_token"]
        self._platform(PROGRESS if measured else None, "GET", "/me/progress", learner, token=token)

    def baseline(self, measured: bool) -> None:
        environ = self.driver.environ("GET", "/baseline", 0)
        self.send(BASELINE if measured else None, self.driver.baseline, environ, (200,))

    def setup(self) -> None:
        """Log the practising learners in and start their sessions (never measured)."""
        for learner in range(PRACTISING_LEARNERS):
            self.log_in(learner, measured=False)
            self.start_practice(learner)

    def run(self) -> None:
        """Warm each route up, then send its measured requests."""
        practising = range(PRACTISING_LEARNERS)
        for number in range(WARMUP + MEASURED):
            measured = number >= WARMUP
            learner = practising[number % len(practising)]
            self.next_item(learner, measured)
            self.attempt(learner, number, measured)
            self.courses(learner, measured)
            self.progress(learner, measured)
            self.baseline(measured)
        for number, learner in enumerate(LOGIN_LEARNERS):
            self.log_in(learner, measured=number >= AUTH_WARMUP)
        for number, learner in enumerate(LOGIN_LEARNERS):
            self.refresh(learner, measured=number >= AUTH_WARMUP)


def child_main(config_path: Path) -> None:
    """Inside the measured process: build the apps, run the workload, write the samples."""
    config = json.loads(config_path.read_text(encoding="utf-8"))
    started = time.monotonic()
    _deterministic_uuid4(int(config.get("seed", 7)))
    from app import create_app
    from load import baseline_app

    platform = create_app()
    dump_dir = Path(config["dump_dir"]) if config.get("dump_dir") else None
    measurer = Measurer(dump_dir)
    driver = Driver(platform, baseline_app.app)
    workload = Workload(driver, measurer)
    workload.setup()
    # As a gunicorn worker does once it has booted (gunicorn.conf.py): the start-up heap moves
    # to the permanent generation, so no request pays for a full collection walking it.
    gc.collect()
    gc.freeze()
    if dump_dir is not None:
        # Until here callgrind ran without instrumentation (--instr-atstart=no: start-up and
        # set-up at a few times native speed); the parent turns it on, then says go.
        Path(config["ready"]).write_text(str(os.getpid()), encoding="utf-8")
        wait_until("the parent's go", Path(config["go"]).exists, 600, interval=0.05)
    print(f"[cost] child set up in {time.monotonic() - started:.0f} s", flush=True)
    injected = config.get("inject")
    if injected:
        if dump_dir is None:
            raise CostFailed("--inject-slowdown needs callgrind")
        _, loop_cost = measurer.measure(lambda: busy_loop(SLOWDOWN_LOOP))
        iterations = math.ceil(injected["instructions"] / (loop_cost / SLOWDOWN_LOOP))
        _inject(platform, ENDPOINTS[injected["route"]], iterations)
        print(f"[cost] injected {iterations} loop iterations into {injected['route']}", flush=True)
    if config.get("profile"):
        _profile_child(workload, Path(config["output"]))
        return
    measuring = time.monotonic()
    workload.run()
    print(f"[cost] measured requests in {time.monotonic() - measuring:.0f} s", flush=True)
    Path(config["output"]).write_text(json.dumps(workload.samples), encoding="utf-8")


def _profile_child(workload: Workload, output: Path) -> None:
    """Profile each route's measured requests with a tick clock; write the top-20 rows."""
    import cProfile
    import pstats

    profilers = {route: cProfile.Profile(TickTimer()) for route in ROUTES}
    counts = {route: 0 for route in ROUTES}
    original = workload.send

    def profiled(route: str | None, app: WSGI, environ: dict[str, Any], expect: Any) -> Any:
        if route is None:
            return original(None, app, environ, expect)
        profiler = profilers[route]
        counts[route] += 1
        profiler.enable()
        try:
            status, body = Driver.call(app, environ)
        finally:
            profiler.disable()
        if status not in expect:
            raise CostFailed(f"{environ['PATH_INFO']} answered {status}: {body[:300]!r}")
        return json.loads(body) if body else None

    workload.send = profiled  # type: ignore[method-assign]  # the profiled variant of send
    workload.run()
    result = {}
    for route, profiler in profilers.items():
        stats = pstats.Stats(profiler)
        result[route] = (counts[route], top_inclusive(stats))
    output.write_text(json.dumps(result), encoding="utf-8")


# --- the parent: the fixed world, the child under callgrind, the report ---------------------------


@contextmanager
def world(tmp: Path) -> Iterator[dict[str, str]]:
    """A migrated, seeded scratch database and a throwaway redis-server; the child's env."""
    from load.run import production_env, run_cli
    from tools.processes import ProcessGroup, free_port, scratch_database, wait_until

    with ExitStack() as stack:
        database = stack.enter_context(
            scratch_database(os.environ.get("COST_DATABASE_URL"), "mastery_cost", CostFailed)
        )
        processes = ProcessGroup(tmp, CostFailed, cwd=ROOT)
        stack.callback(processes.stop_all)
        port = free_port()
        settings = argparse.Namespace(workers=1, threads=1)
        env = production_env(tmp, database.url, port, settings)
        env.pop("GUNICORN_WORKERS")
        env.pop("GUNICORN_THREADS")
        (tmp / "metrics").mkdir()
        env["PYTHONHASHSEED"] = "0"
        env["BASELINE_DATABASE_URL"] = database.url
        env["PYTHONPATH"] = str(ROOT)
        redis = ["redis-server", "--bind", "127.0.0.1", "--port", str(port)]
        processes.start("redis", [*redis, "--save", "", "--appendonly", "no"], env)
        try:
            run_cli(env, "db", "upgrade")
            run_cli(env, "seed", "load", "--confirm-load-environment", *SEED_ARGS)
        except Exception as error:
            raise CostFailed(str(error)) from error
        from tools.processes import port_open

        wait_until("redis-server", lambda: port_open("127.0.0.1", port), 30, processes.check_alive)
        yield env


def valgrind_command(dump_dir: Path) -> list[str]:
    return [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        "--collect-atstart=no",
        "--toggle-collect=ffi_call",
        "--dump-after=ffi_call",
        "--dump-instr=no",
        "--dump-line=no",
        f"--callgrind-out-file={dump_dir / 'callgrind.out.%p'}",
    ]


def run_child(tmp: Path, env: dict[str, str], config: dict[str, Any], under_valgrind: bool) -> Any:
    config_path = tmp / "child.json"
    output = tmp / "child-output.json"
    config = {**config, "output": str(output)}
    command = [sys.executable, "-m", "load.cost", "--child", str(config_path)]
    if under_valgrind:
        dump_dir = tmp / "dumps"
        dump_dir.mkdir(exist_ok=True)
        config["dump_dir"] = str(dump_dir)
        command = [*valgrind_command(dump_dir), *command]
    ready, go = tmp / "ready", tmp / "go"
    config.update(ready=str(ready), go=str(go))
    config_path.write_text(json.dumps(config), encoding="utf-8")
    log = tmp / "child.log"
    with log.open("wb") as sink:
        child = subprocess.Popen(  # noqa: S603 - our own fixed command
            command, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT
        )
        try:
            if under_valgrind:

                def alive() -> None:
                    if child.poll() is not None:
                        raise CostFailed(_tail(log, f"the child exited with {child.returncode}"))

                wait_until("the child's set-up", ready.exists, 900, alive, failure=CostFailed)
                subprocess.run(  # noqa: S603 - our own fixed command
                    ["callgrind_control", "--instr=on", str(child.pid)],  # noqa: S607 - on PATH
                    check=True,
                    capture_output=True,
                )
                go.touch()
            returncode = child.wait()
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
    if returncode != 0 or not output.exists():
        raise CostFailed(_tail(log, f"the measured child failed ({returncode})"))
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("[cost]"):
            print(line, flush=True)
    return json.loads(output.read_text(encoding="utf-8"))


def _tail(log: Path, message: str) -> str:
    lines = log.read_text(errors="replace").splitlines()[-40:]
    return "\n".join([message, *lines])


def measure_once(inject: dict[str, Any] | None) -> dict[str, list[int]]:
    with tempfile.TemporaryDirectory(prefix="mastery-cost-") as name:
        tmp = Path(name)
        with world(tmp) as env:
            started = time.monotonic()
            samples: dict[str, list[int]] = run_child(tmp, env, {"inject": inject}, True)
            say(f"measured under callgrind in {time.monotonic() - started:.0f} s")
            return samples


def profile_once() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="mastery-cost-") as name:
        tmp = Path(name)
        with world(tmp) as env:
            result: dict[str, Any] = run_child(tmp, env, {"profile": True}, False)
            return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m load.cost", description=__doc__)
    parser.add_argument("--runs", type=int, default=2, help="measurements to average (2)")
    parser.add_argument(
        "--update-budgets", action="store_true", help=f"write the figures to {BUDGETS.name}"
    )
    parser.add_argument(
        "--inject-slowdown",
        type=parse_slowdown,
        metavar="ROUTE=PERCENT",
        help="add work worth PERCENT %% of ROUTE's budget to its view (shows the gate failing)",
    )
    parser.add_argument("--profile", action="store_true", help="write reports/cost/profile.md")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child_main(args.child)
        return 0
    REPORTS.mkdir(parents=True, exist_ok=True)
    if args.profile:
        profiles = profile_once()
        PROFILE_MD.write_text(profile_markdown(profiles), encoding="utf-8")
        say(f"wrote {PROFILE_MD.relative_to(ROOT)}")
        return 0
    if shutil.which("valgrind") is None:
        raise CostFailed(f"valgrind is not installed: `{VALGRIND_INSTALL}` (as root)")
    if shutil.which("redis-server") is None:
        raise CostFailed("redis-server is not installed: `apt-get install -y redis-server`")
    budgets = read_budgets(BUDGETS)
    inject = None
    if args.inject_slowdown:
        route, share = args.inject_slowdown
        if route not in budgets:
            raise CostFailed(f"--inject-slowdown: {route} has no budget in {BUDGETS.name}")
        inject = {"route": route, "instructions": budgets[route] * share}
        say(f"INJECTED SLOWDOWN: {100 * share:g} % of {route}'s budget")
    samples = []
    for number in range(args.runs):
        say(f"run {number + 1} of {args.runs}")
        samples.append(measure_once(inject))
    runs = [per_request(sample) for sample in samples]
    document = report(runs, samples, budgets, args.inject_slowdown)
    COST_JSON.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    rows = compare(combine_runs(runs), budgets, spread(runs))
    print(table(rows), flush=True)
    say(
        "instructions executed by the platform's process per request (callgrind); Postgres and "
        f"Redis server work is not counted. Wrote {COST_JSON.relative_to(ROOT)}"
    )
    if args.update_budgets:
        BUDGETS.write_text(render_budgets(combine_runs(runs)), encoding="utf-8")
        say(f"wrote {BUDGETS.relative_to(ROOT)}: commit it with the change that earned it")
        return 0
    wide = [route for route, value in spread(runs).items() if value > SPREAD_TARGET]
    if wide:
        say(f"note: runs differ by more than {100 * SPREAD_TARGET:g} % on {', '.join(wide)}")
    failed = failures(rows)
    if failed:
        for row in failed:
            say(
                f"FAIL {row.route}: {row.instructions:,.0f} instructions per request, "
                f"{100 * (row.delta or 0):+.1f} % over its budget of {row.budget:,}"
            )
        say(f"if the rise is intended, lower or raise the budgets with `{UPDATE_COMMAND}`")
        return 1
    absent = missing_budgets(rows)
    if absent:
        say(f"FAIL: no budget for {', '.join(absent)} in {BUDGETS.name}: `{UPDATE_COMMAND}`")
        return 1
    say("PASS: every route within 5 % of its budget")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except CostFailed as failure:
        print(f"[cost] ERROR: {failure}", file=sys.stderr, flush=True)
        sys.exit(2)
