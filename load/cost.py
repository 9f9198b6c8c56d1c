"""The serving-cost benchmark behind `nox -s cost`: instructions executed per request for each
hot route, counted by valgrind's callgrind, compared with committed budgets.

    python -m load.cost                          # measure twice, print the table, gate
    python -m load.cost --runs 1                 # one run (no spread)
    python -m load.cost --update-budgets         # measure, then write load/cost-budgets.toml
    python -m load.cost --inject-slowdown 'GET /sessions/{id}/next=5'   # the gate failing
    python -m load.cost --profile                # deterministic per-route Python profile
    python -m load.cost --only next --only attempts --runs 1   # quick check of two routes
    python -m load.cost --only next --keep-dumps   # + each request's dump in reports/cost/dumps

Each run builds its own fixed world: a scratch Postgres database migrated and seeded by
`flask seed load` with a fixed seed and small sizes, a throwaway redis-server, and the platform
created in-process with the load stack's production settings (load/run.py `production_env`:
APP_ENV=production, rate limits in Redis, multiprocess metrics, JSON access log). A child
process under `valgrind --tool=callgrind` logs the learners in, starts their practice
sessions, warms every route up, then sends the measured requests straight into the WSGI
callable (no HTTP server, no test client in the count). Each measured request runs inside a
ctypes callback: callgrind collects only inside libffi's `ffi_call`
(`--collect-atstart=no --toggle-collect=ffi_call`) and writes one profile dump as it returns
(`--dump-after=ffi_call`), so every dump holds exactly one request's instructions. That
child is load/cost_child.py; the figures, budgets, gate and report are load/cost_gate.py.

What is counted: the instructions this Python process executes for the request, Flask to
response bytes, including the client side of its Postgres and Redis round trips (psycopg,
libpq, redis-py, the socket calls). What is not: the Postgres server's and Redis server's own
work (other processes), and the kernel's.

The baseline is load/baseline_app.py's `GET /baseline` (one primary-key SELECT, JSON out),
called in the same process against the same database. Results go to reports/cost/cost.json and
a table; a route 5 % above its budget (load/cost-budgets.toml) fails the run (from +4.5 %:
load/cost_gate.py, NOISE).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from load.cost_child import SEED_ARGS
from load.cost_gate import (
    BUDGETS,
    COST_JSON,
    DUMPS,
    PROFILE_MD,
    REPORTS,
    ROOT,
    ROUTES,
    SUMMARY_MD,
    CostFailed,
    combine_runs,
    compare,
    parse_slowdown,
    per_request,
    profile_markdown,
    read_budgets,
    render_budgets,
    report,
    say,
    select_routes,
    spread,
    summary_markdown,
    table,
    verdict,
)
from load.run import LoadFailed, production_env, run_cli
from tools.processes import ProcessGroup, free_port, port_open, scratch_database, wait_until

VALGRIND_INSTALL = "apt-get install -y valgrind"

# --- the parent: the fixed world, the child under callgrind, the report ---------------------------


@contextmanager
def world(tmp: Path) -> Iterator[dict[str, str]]:
    """A migrated, seeded scratch database and a throwaway redis-server; the child's env."""
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
        except LoadFailed as error:
            raise CostFailed(str(error)) from error
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
    command = [sys.executable, "-m", "load.cost_child", str(config_path)]
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


def measure_once(options: dict[str, Any]) -> dict[str, list[int]]:
    """One run: a fresh world, the child under callgrind; `options` go to the child
    (`inject`, `only`, `keep_dumps`)."""
    with tempfile.TemporaryDirectory(prefix="mastery-cost-") as name:
        tmp = Path(name)
        with world(tmp) as env:
            started = time.monotonic()
            samples: dict[str, list[int]] = run_child(tmp, env, options, True)
            say(f"measured under callgrind in {time.monotonic() - started:.0f} s")
            return samples


def profile_once(only: Sequence[str], clock: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="mastery-cost-") as name:
        tmp = Path(name)
        with world(tmp) as env:
            config = {"profile": True, "only": list(only), "clock": clock}
            result: dict[str, Any] = run_child(tmp, env, config, False)
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
    parser.add_argument(
        "--clock",
        choices=("events", "bytecodes"),
        default="events",
        help="the profile's clock: profiler events (seconds), or bytecodes executed (minutes; "
        "weighs functions by the work they do)",
    )
    parser.add_argument(
        "--only",
        action="append",
        type=select_routes,
        metavar="TEXT",
        help="measure only the routes containing TEXT (repeatable; e.g. next, attempts): a quick "
        "check while working on one route; the gate then judges those routes only",
    )
    parser.add_argument(
        "--keep-dumps",
        action="store_true",
        help=f"keep each measured request's callgrind dump in {DUMPS.relative_to(ROOT)}/ "
        "(read them with callgrind_annotate)",
    )
    args = parser.parse_args(argv)
    only = [route for route in ROUTES if any(route in chosen for chosen in args.only or [ROUTES])]
    REPORTS.mkdir(parents=True, exist_ok=True)
    if args.profile:
        profiles = profile_once(only, args.clock)
        PROFILE_MD.write_text(profile_markdown(profiles), encoding="utf-8")
        say(f"wrote {PROFILE_MD.relative_to(ROOT)}")
        return 0
    if shutil.which("valgrind") is None:
        raise CostFailed(f"valgrind is not installed: `{VALGRIND_INSTALL}` (as root)")
    if shutil.which("redis-server") is None:
        raise CostFailed("redis-server is not installed: `apt-get install -y redis-server`")
    if args.update_budgets and args.inject_slowdown:
        parser.error("--update-budgets with --inject-slowdown would commit the slowdown")
    budgets = read_budgets(BUDGETS)
    inject = None
    if args.inject_slowdown:
        route, share = args.inject_slowdown
        if route not in budgets:
            raise CostFailed(f"--inject-slowdown: {route} has no budget in {BUDGETS.name}")
        inject = {"route": route, "instructions": budgets[route] * share}
        say(f"INJECTED SLOWDOWN: {100 * share:g} % of {route}'s budget")
    options: dict[str, Any] = {"inject": inject, "only": only}
    if args.keep_dumps:
        shutil.rmtree(DUMPS, ignore_errors=True)
        DUMPS.mkdir()
    samples = []
    for number in range(args.runs):
        say(f"run {number + 1} of {args.runs}")
        if args.keep_dumps:  # the last run's dumps are kept
            options["keep_dumps"] = str(DUMPS)
        samples.append(measure_once(options))
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
        # With --only, the other routes keep their budgets.
        BUDGETS.write_text(render_budgets({**budgets, **combine_runs(runs)}), encoding="utf-8")
        say(f"wrote {BUDGETS.relative_to(ROOT)}: commit it with the change that earned it")
        return 0
    status, lines = verdict(rows, spread(runs))
    for line in lines:
        say(line)
    SUMMARY_MD.write_text(summary_markdown(rows, lines), encoding="utf-8")
    return status


if __name__ == "__main__":
    try:
        sys.exit(main())
    except CostFailed as failure:
        print(f"[cost] ERROR: {failure}", file=sys.stderr, flush=True)
        sys.exit(2)
