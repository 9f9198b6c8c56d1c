"""The measured process of the serving-cost benchmark (load/cost.py starts it under callgrind).

It builds the platform in-process, logs the learners in and starts their practice sessions,
warms every route up, then sends each measured request straight into the WSGI callable inside a
ctypes callback: callgrind collects only inside libffi's `ffi_call` and dumps as it returns, so
each dump holds one request's instructions. `--profile` runs the same requests under cProfile
with a tick clock instead (no callgrind).

    python -m load.cost_child CONFIG.json   # CONFIG written by load/cost.py
"""

from __future__ import annotations

import ctypes
import gc
import itertools
import json
import math
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from load.cost_gate import (
    ATTEMPT,
    BASELINE,
    COURSES,
    ENDPOINTS,
    LOGIN,
    NEXT,
    PROGRESS,
    REFRESH,
    ROUTES,
    BytecodeClock,
    CostFailed,
    TickTimer,
    callgrind_total,
    top_functions,
)
from tools.processes import wait_until

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
            headers=list(sent.items()),
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

    def __init__(self, dump_dir: Path | None, keep: Path | None = None) -> None:
        self.dump_dir = dump_dir
        self.keep = keep  # where each measured request's dump is kept (else deleted once read)
        self._proto = ctypes.CFUNCTYPE(None)

    def _dumps(self) -> set[Path]:
        assert self.dump_dir is not None  # noqa: S101 - only called when measuring
        return set(self.dump_dir.glob("callgrind.out.*.*"))

    def measure(self, work: Callable[[], Any], name: str = "") -> tuple[Any, int]:
        """(work's result, its instructions; 0 when not under callgrind). `name` names the
        kept dump (`--keep-dumps`)."""
        outcome: list[Any] = []
        errors: list[BaseException] = []

        def run() -> None:
            try:
                outcome.append(work())
            # A ctypes callback cannot raise into its caller: keep the error, re-raise below.
            except BaseException as error:  # noqa: BLE001 - re-raised after the callback
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
            if self.keep is not None and name:
                dump.replace(self.keep / f"{name}.callgrind")
            else:
                dump.unlink()
        return outcome[0], total


def _slug(route: str) -> str:
    """`GET /sessions/{id}/next` -> `get-sessions-id-next`, a file name."""
    return "-".join(part for part in re.split(r"[^a-z0-9]+", route.lower()) if part)


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
    """The injected slowdown: plain interpreter work, a fixed number of iterations.

    Every iteration costs the same, so the 200,000 of the calibration price the few hundred of
    a request exactly: the values stay below 256, Python's cached small ints (a loop over
    `range` allocated an int per value above 256, and priced the short loop 7 % too high)."""
    total = 0
    for _ in itertools.repeat(None, iterations):
        total = (total + 7) & 255
    return total


def _inject(platform: Any, endpoint: str, iterations: int) -> None:
    view = platform.view_functions[endpoint]

    def slowed(*args: Any, **kwargs: Any) -> Any:
        busy_loop(iterations)
        return view(*args, **kwargs)

    platform.view_functions[endpoint] = slowed


class Workload:
    """The fixed sequence of requests of one run, each measured or not."""

    def __init__(self, driver: Driver, measurer: Measurer, only: Iterable[str] = ROUTES) -> None:
        self.driver = driver
        self.measurer = measurer
        self.only = frozenset(only)  # the routes measured; the others are sent unmeasured
        self.samples: dict[str, list[int]] = {route: [] for route in ROUTES if route in self.only}
        self.tokens: dict[int, dict[str, str]] = {}
        self.sessions: dict[int, str] = {}
        self.pending: dict[int, dict[str, Any]] = {}

    def send(
        self, route: str | None, app: WSGI, environ: dict[str, Any], expect: tuple[int, ...]
    ) -> Any:
        """Send one request; measured (into `route`'s samples) when `route` is given."""
        if route is None or route not in self.only:
            status, body = Driver.call(app, environ)
        else:
            name = f"{_slug(route)}-{len(self.samples[route]) + 1:02d}"
            (status, body), instructions = self.measurer.measure(
                lambda: Driver.call(app, environ), name
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
        pair = self._platform(
            LOGIN if measured else None, "POST", "/auth/login", learner, body=body
        )
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
        skills = self._platform(
            None, "GET", f"/courses/{course['id']}/skills", learner, token=token
        )
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
        self._platform(
            COURSES if measured else None, "GET", "/courses?limit=20", learner, token=token
        )

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
            # next and attempts always run: each learner's practice moves on with them.
            self.next_item(learner, measured)
            self.attempt(learner, number, measured)
            if COURSES in self.only:
                self.courses(learner, measured)
            if PROGRESS in self.only:
                self.progress(learner, measured)
            if BASELINE in self.only:
                self.baseline(measured)
        if not {LOGIN, REFRESH} & self.only:
            return
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
    keep = Path(config["keep_dumps"]) if config.get("keep_dumps") else None
    measurer = Measurer(dump_dir, keep)
    driver = Driver(platform, baseline_app.app)
    workload = Workload(driver, measurer, config.get("only") or ROUTES)
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
        _profile_child(workload, Path(config["output"]), config.get("clock", "events"))
        return
    measuring = time.monotonic()
    workload.run()
    print(f"[cost] measured requests in {time.monotonic() - measuring:.0f} s", flush=True)
    Path(config["output"]).write_text(json.dumps(workload.samples), encoding="utf-8")


def _profile_child(workload: Workload, output: Path, clock_name: str) -> None:
    """Profile each route's measured requests with a deterministic clock (profiler events, or
    bytecodes executed); write each route's top functions, inclusive and own."""
    import cProfile
    import pstats

    clocks = {
        route: BytecodeClock() if clock_name == "bytecodes" else TickTimer() for route in ROUTES
    }
    profilers = {route: cProfile.Profile(clocks[route]) for route in ROUTES}
    counts = dict.fromkeys(ROUTES, 0)
    original = workload.send

    def profiled(route: str | None, app: WSGI, environ: dict[str, Any], expect: Any) -> Any:
        if route is None or route not in workload.only:
            return original(None, app, environ, expect)
        profiler, clock = profilers[route], clocks[route]
        counts[route] += 1
        if isinstance(clock, BytecodeClock):
            clock.start()
        profiler.enable()
        try:
            status, body = Driver.call(app, environ)
        finally:
            profiler.disable()
            if isinstance(clock, BytecodeClock):
                clock.stop()
        if status not in expect:
            raise CostFailed(f"{environ['PATH_INFO']} answered {status}: {body[:300]!r}")
        return json.loads(body) if body else None

    workload.send = profiled  # type: ignore[method-assign]  # the profiled variant of send
    workload.run()
    result = {}
    for route, profiler in profilers.items():
        if not counts[route]:
            continue
        stats = pstats.Stats(profiler)
        inclusive = top_functions(stats)
        result[route] = {
            "requests": counts[route],
            "clock": clock_name,
            "total": inclusive[0][2] if inclusive else 0.0,
            "inclusive": inclusive,
            "own": top_functions(stats, own=True),
        }
    output.write_text(json.dumps(result), encoding="utf-8")


if __name__ == "__main__":
    child_main(Path(sys.argv[1]))
