"""Live alert drill: proves that a burst of 5xx answers pages someone, and that every dashboard
query has data behind it. Run by `nox -s alert-drill` (or directly with the project's Python,
from the repository root: `python -m ops.drill.alert_drill`); the manual equivalent is in
docs/runbooks/alerts.md.

Everything runs on loopback ports chosen at start, in a temporary directory removed at the end:

1. the platform under gunicorn (2 workers, PROMETHEUS_MULTIPROC_DIR, SQLite, jobs in-process,
   the OpenAI-compatible provider pointed at a fake served here, rate-limit counters in a
   scratch redis-server, DRILL_TOKEN set);
2. Prometheus (Debian's `prometheus`) with a copy of ops/prometheus/prometheus.yml scraping it
   every 2 s and evaluating the rules every 2 s, and a copy of the alert rules in which every
   `for:` is cut to FOR_IN_DRILL (the windows and thresholds are the real ones);
3. Alertmanager (Debian's `prometheus-alertmanager`) with a copy of
   ops/alertmanager/alertmanager.yml whose webhook receivers point at a small HTTP server here
   and whose grouping waits are cut to seconds.

Then: normal traffic (logins, authoring, practice with hints and AI grading, a generation job,
a failed login, a refresh-token reuse); drill traffic (`X-Drill-Token`) until High5xxRatio
reaches the webhook (bound: FIRE_BOUND_SECONDS); healthy traffic only until the webhook gets
the resolution (bound: RESOLVE_BOUND_SECONDS); a rate-limit storage outage (the redis-server is
stopped); finally every dashboard panel's query against Prometheus' HTTP API, each of which
must return data. Exit status 0 only when all of that happened.

When the drill fails, the logs of the platform, Prometheus, Alertmanager and redis-server and
the generated Prometheus and Alertmanager configs are copied to reports/alert-drill/logs/
before the temporary directory goes; CI uploads that directory as the `alert-drill-logs`
artifact. A passing drill removes it.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml

from tools.ci_artifacts import keep_logs
from tools.processes import ProcessGroup, free_port, scratch_database
from tools.processes import wait_until as poll_until

ROOT = Path(__file__).resolve().parents[2]

PROMETHEUS_CONFIG = ROOT / "ops" / "prometheus" / "prometheus.yml"
ALERTMANAGER_CONFIG = ROOT / "ops" / "alertmanager" / "alertmanager.yml"
DASHBOARD = ROOT / "ops" / "grafana" / "dashboards" / "mastery.json"

DRILL_ALERT = "High5xxRatio"
FOR_IN_DRILL = "10s"
INTERVAL = "2s"
FIRE_BOUND_SECONDS = 120.0
RESOLVE_BOUND_SECONDS = 180.0
LOOSE_LIMIT = "100000/minute"
DEMO = {
    "admin": ("admin@mastery.local", "mastery-demo-admin-pass"),
    "instructor": ("instructor@mastery.local", "mastery-demo-instructor-pass"),
    "learner": ("learner@mastery.local", "mastery-demo-learner-pass"),
}
BINARIES = ("prometheus", "prometheus-alertmanager", "redis-server")
# The Postgres server the scratch database is created on (and dropped from at the end).
INSTALL_HINT = "apt-get install prometheus prometheus-alertmanager redis-server"
# Where a failed drill's logs are kept (CI uploads them), and which files of the working
# directory: every process's output and the configs generated for the drill.
KEPT_LOGS = ROOT / "reports" / "alert-drill" / "logs"
LOG_PATTERNS = ("*.log", "prometheus.yml", "alertmanager.yml", "rules/*.yml")

_started = time.monotonic()


def say(message: str) -> None:
    print(f"[drill {time.monotonic() - _started:6.1f}s] {message}", flush=True)


class DrillFailed(Exception):
    """A step of the drill did not happen within its bound."""


# Polls every 0.5 s (Prometheus evaluates rules every second here); DrillFailed on timeout.
wait_until = partial(poll_until, failure=DrillFailed, interval=0.5)


# --- small HTTP servers run by the drill ----------------------------------------------------------


class Webhook:
    """Alertmanager's webhook receiver: keeps every notification it is sent."""

    def __init__(self) -> None:
        self.notifications: list[tuple[float, str, dict[str, Any]]] = []
        self.lock = threading.Lock()
        webhook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with webhook.lock:
                    webhook.notifications.append((time.monotonic(), self.path, json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]

    def alerts(self, name: str, status: str) -> list[tuple[str, dict[str, Any]]]:
        """(receiver path, alert) for every alert `name` notified with `status`."""
        with self.lock:
            return [
                (path, alert)
                for _, path, payload in self.notifications
                for alert in payload.get("alerts", [])
                if alert["labels"].get("alertname") == name and alert["status"] == status
            ]


def fake_openai_server() -> ThreadingHTTPServer:
    """An OpenAI-compatible `/chat/completions` that answers every Mastery operation validly,
    with token usage, so the AI panels (outcomes, latency, circuit, tokens) have data."""
    answers: dict[str, Any] = {
        "hint": {"hint": "Think about parts of the same size."},
        "grade_short_answer": {"score": 1.0, "correct": True, "feedback": "Complete answer."},
        "generate_items": {
            "items": [
                {
                    "kind": "mcq",
                    "stem": f"Drill question {n}: which fraction equals one half?",
                    "choices": ["2/4", "1/3", "3/4"],
                    "answer_index": 0,
                    "reference_answer": None,
                    "rubric": [],
                }
                for n in (1, 2)
            ]
        },
    }

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            template = body.get("metadata", {}).get("template", "")
            content = json.dumps(answers.get(template, {}))
            reply = json.dumps(
                {
                    "choices": [{"message": {"role": "assistant", "content": content}}],
                    "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150},
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: Any) -> None:
            return

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


@contextmanager
def serving(server: ThreadingHTTPServer) -> Iterator[None]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


# --- processes ------------------------------------------------------------------------------------


# --- generated configuration ----------------------------------------------------------------------


def drill_rules(rules_dir: Path, target: Path) -> list[str]:
    """Copies of the rule files with every alert's `for:` cut to FOR_IN_DRILL."""
    target.mkdir()
    written = []
    for path in sorted(rules_dir.glob("*.yml")):
        document = yaml.safe_load(path.read_text())
        for group in document["groups"]:
            for rule in group["rules"]:
                if "alert" in rule and "for" in rule:
                    rule["for"] = FOR_IN_DRILL
        copy = target / path.name
        copy.write_text(yaml.safe_dump(document, sort_keys=False))
        written.append(str(copy))
    return written


def prometheus_config(tmp: Path, app_port: int, alertmanager_port: int) -> Path:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    config["global"].update(
        {"scrape_interval": INTERVAL, "scrape_timeout": INTERVAL, "evaluation_interval": INTERVAL}
    )
    config["alerting"]["alertmanagers"] = [
        {"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}
    ]
    config["rule_files"] = drill_rules(PROMETHEUS_CONFIG.parent / "rules", tmp / "rules")
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "mastery"]
    job["static_configs"] = [{"targets": [f"127.0.0.1:{app_port}"], "labels": {"env": "drill"}}]
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def alertmanager_config(tmp: Path, webhook_port: int) -> Path:
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    routes = [config["route"], *config["route"].get("routes", [])]
    for route in routes:
        route.update({"group_wait": "1s", "group_interval": "2s", "repeat_interval": "1h"})
    for receiver in config["receivers"]:
        for webhook in receiver.get("webhook_configs", []):
            webhook["url"] = f"http://127.0.0.1:{webhook_port}/alerts/{receiver['name']}"
            webhook["send_resolved"] = True
    path = tmp / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


# --- traffic --------------------------------------------------------------------------------------


class Platform:
    """A client of the running platform, logged in as the demo users."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=30.0)
        self.tokens: dict[str, dict[str, str]] = {}
        self.unexpected: list[str] = []

    def call(self, method: str, path: str, role: str | None = None, **kwargs: Any) -> Any:
        headers = dict(kwargs.pop("headers", {}))
        if role is not None:
            headers["Authorization"] = f"Bearer {self.tokens[role]['access_token']}"
        response = self.http.request(method, path, headers=headers, **kwargs)
        if response.status_code >= 400:
            self.unexpected.append(f"{method} {path} -> {response.status_code}")
            raise DrillFailed(f"{method} {path} answered {response.status_code}: {response.text}")
        return response.json() if response.content else None

    def login(self, role: str) -> None:
        email, password = DEMO[role]
        self.tokens[role] = self.call(
            "POST", "/auth/login", json={"email": email, "password": password}
        )


def normal_traffic(platform: Platform) -> None:
    """Traffic that exercises every metric family the dashboard shows."""
    for role in DEMO:
        platform.login(role)
    # auth: a failed login, and a refresh token presented twice (the second is a reuse)
    response = platform.http.post(
        "/auth/login", json={"email": DEMO["learner"][0], "password": "not-the-password"}
    )
    say(f"failed login answered {response.status_code} (expected 401)")
    spent = platform.tokens["learner"]["refresh_token"]
    platform.tokens["learner"] = platform.call(
        "POST", "/auth/refresh", json={"refresh_token": spent}
    )
    response = platform.http.post("/auth/refresh", json={"refresh_token": spent})
    say(f"refresh-token reuse answered {response.status_code} (expected 401)")
    platform.login("learner")  # the reuse revoked the family

    # authoring: a course with a skill, mcq and short-answer items, published
    course = platform.call("POST", "/courses", "instructor", json={"title": "Drill fractions"})
    skill = platform.call(
        "POST", f"/courses/{course['id']}/skills", "instructor", json={"name": "Adding fractions"}
    )
    items = [
        {
            "kind": "mcq",
            "prompt": f"Drill item {n}: what is 1/{n + 1} + 1/{n + 1}?",
            "choices": [{"text": f"2/{n + 1}", "correct": True}, {"text": f"1/{2 * n + 2}"}],
            "a": 1.0 + 0.1 * n,
            "b": -1.0 + 0.4 * n,
        }
        for n in range(1, 6)
    ] + [
        {
            "kind": "short_answer",
            "prompt": f"Drill question {n}: why do fractions need a common denominator?",
            "reference_answer": "Only parts of the same size can be added together.",
            "rubric": "mentions parts of equal size",
            "b": -0.5 + 0.5 * n,
        }
        for n in range(3)
    ]
    for item in items:
        created = platform.call("POST", f"/skills/{skill['id']}/items", "instructor", json=item)
        platform.call("POST", f"/items/{created['id']}/publish", "instructor")
    platform.call("PATCH", f"/courses/{course['id']}", "instructor", json={"status": "published"})

    # an AI generation job (runs in-process: no broker) and its status
    job = platform.call(
        "POST", f"/skills/{skill['id']}/generation-jobs", "instructor", json={"count": 2}
    )
    job = platform.call("GET", f"/jobs/{job['id']}", "instructor")
    say(f"generation job {job['id']} is {job['status']}")

    # practice: the adaptive engine serves every item; hints and AI grading on short answers
    platform.call("POST", f"/courses/{course['id']}/enrollments", "learner")
    session = platform.call("POST", "/sessions", "learner", json={"skill_id": skill["id"]})
    attempts = hints = 0
    for _ in range(len(items)):
        response = platform.http.get(
            f"/sessions/{session['id']}/next",
            headers={"Authorization": f"Bearer {platform.tokens['learner']['access_token']}"},
        )
        if response.status_code != 200:  # the bank is exhausted
            break
        item = response.json()["item"]
        if item["kind"] == "short_answer":
            platform.call("GET", f"/sessions/{session['id']}/items/{item['id']}/hint", "learner")
            hints += 1
            answer: int | str = "Parts of the same size can be added."
        else:
            answer = 0
        platform.call(
            "POST",
            f"/sessions/{session['id']}/attempts",
            "learner",
            json={"item_id": item["id"], "response": answer},
        )
        attempts += 1
    platform.call("GET", "/me/progress", "learner")
    platform.call("GET", "/admin/stats", "admin")
    say(f"normal traffic done: {attempts} attempts, {hints} hints, 1 generation job")


def requests_in_parallel(platform: Platform, count: int, headers: dict[str, str]) -> list[int]:
    auth = {"Authorization": f"Bearer {platform.tokens['learner']['access_token']}", **headers}

    def one(_: int) -> int:
        return platform.http.get("/courses", headers=auth).status_code

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(one, range(count)))


# --- Prometheus -----------------------------------------------------------------------------------


def query(prometheus: httpx.Client, expr: str) -> list[dict[str, Any]]:
    response = prometheus.get("/api/v1/query", params={"query": expr})
    response.raise_for_status()
    body = response.json()
    if body["status"] != "success":
        raise DrillFailed(f"query failed: {expr}: {body}")
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def dashboard_targets() -> list[tuple[str, str, str]]:
    board = json.loads(DASHBOARD.read_text())
    panels = [panel for row in board["panels"] for panel in (row, *row.get("panels", []))]
    return [
        (panel["title"], target["refId"], target["expr"])
        for panel in panels
        for target in panel.get("targets", [])
    ]


# --- the drill ------------------------------------------------------------------------------------


def run(tmp: Path) -> None:
    server_url = os.environ.get("DRILL_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    with scratch_database(server_url, "mastery_drill", DrillFailed, say) as database:
        run_with_database(tmp, database.url)


def run_with_database(tmp: Path, database_url: str) -> None:
    processes = ProcessGroup(tmp, DrillFailed, say, cwd=ROOT)
    ports = {name: free_port() for name in ("app", "prometheus", "alertmanager", "redis")}
    webhook = Webhook()
    ai = fake_openai_server()
    drill_token = secrets.token_urlsafe(24)
    env = {
        **os.environ,
        "APP_ENV": "development",
        "DATABASE_URL": database_url,
        "STORAGE_URL": f"file://{tmp / 'storage'}",
        "JOBS_EAGER": "true",
        "AI_PROVIDER": "openai",
        "AI_BASE_URL": f"http://127.0.0.1:{ai.server_address[1]}/v1",
        "AI_MODEL": "drill-model",
        "AI_API_KEY": secrets.token_hex(16),
        "DRILL_TOKEN": drill_token,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp / "metrics"),
        "RATELIMIT_ENABLED": "true",
        "RATELIMIT_STORAGE_URL": f"redis://127.0.0.1:{ports['redis']}/0",
        "LOG_LEVEL": "WARNING",
        **{
            f"RATELIMIT_{name}": LOOSE_LIMIT
            for name in (
                "DEFAULT",
                "LOGIN",
                "LOGIN_ACCOUNT",
                "REGISTER",
                "REFRESH",
                "HINT",
                "ATTEMPT",
                "GENERATION",
            )
        },
    }
    for name in ("REDIS_URL", "CELERY_BROKER_URL", "METRICS_TOKEN", "SENTRY_DSN"):
        env.pop(name, None)
    flask = [sys.executable, "-m", "flask", "--app", "app"]
    # Before gunicorn starts: its log configuration imports the app (and so prometheus_client)
    # before gunicorn.conf.py's on_starting hook would create the directory.
    (tmp / "metrics").mkdir()
    try:
        with serving(webhook.server), serving(ai):
            say(
                f"webhook receiver on 127.0.0.1:{webhook.port}; fake AI provider on {env['AI_BASE_URL']}"
            )
            # the CLI is one short-lived process: no multiprocess metric files for it
            cli_env = {k: v for k, v in env.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
            for command in (["db", "upgrade"], ["seed", "demo"]):
                subprocess.run(  # noqa: S603 - our own fixed command
                    [*flask, *command], cwd=ROOT, env=cli_env, check=True, capture_output=True
                )
            processes.start(
                "redis",
                [
                    "redis-server",
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(ports["redis"]),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ],
            )
            app_url = f"http://127.0.0.1:{ports['app']}"
            processes.start(
                "platform",
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "app:create_app()",
                    "-c",
                    "gunicorn.conf.py",
                    "--bind",
                    f"127.0.0.1:{ports['app']}",
                    "--workers",
                    "2",
                ],
                env=env,
            )
            wait_until(
                "the platform answers /healthz",
                lambda: httpx.get(f"{app_url}/healthz").status_code == 200,
                60,
                alive=processes.check_alive,
            )
            processes.start(
                "alertmanager",
                [
                    "prometheus-alertmanager",
                    f"--config.file={alertmanager_config(tmp, webhook.port)}",
                    f"--storage.path={tmp / 'alertmanager'}",
                    f"--web.listen-address=127.0.0.1:{ports['alertmanager']}",
                    "--cluster.listen-address=",
                ],
            )
            processes.start(
                "prometheus",
                [
                    "prometheus",
                    f"--config.file={prometheus_config(tmp, ports['app'], ports['alertmanager'])}",
                    f"--storage.tsdb.path={tmp / 'prometheus'}",
                    f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
                    "--rules.alert.resend-delay=2s",
                ],
            )
            prometheus = httpx.Client(
                base_url=f"http://127.0.0.1:{ports['prometheus']}", timeout=10
            )
            alertmanager_url = f"http://127.0.0.1:{ports['alertmanager']}"
            wait_until(
                "Alertmanager is ready",
                lambda: httpx.get(f"{alertmanager_url}/-/ready").status_code == 200,
                60,
                alive=processes.check_alive,
            )
            wait_until(
                "Prometheus is ready", lambda: prometheus.get("/-/ready").status_code == 200, 60
            )
            wait_until(
                "Prometheus scrapes the platform (up == 1)",
                lambda: any(s["value"][1] == "1" for s in query(prometheus, 'up{job="mastery"}')),
                60,
                alive=processes.check_alive,
            )
            say('Prometheus scrapes the platform: up{job="mastery"} == 1')
            processes.check_alive()

            platform = Platform(app_url)
            normal_traffic(platform)
            statuses = requests_in_parallel(platform, 200, {})
            say(f"healthy traffic: {len(statuses)} requests, {statuses.count(200)} answered 200")
            if webhook.alerts(DRILL_ALERT, "firing"):
                raise DrillFailed(f"{DRILL_ALERT} fired before the drill started")

            # --- the drill: fail on purpose until the alert reaches the receiver
            say(f"DRILL ON: requests carry X-Drill-Token; waiting for {DRILL_ALERT} at the webhook")
            drill_started = time.monotonic()
            failed = 0
            while not webhook.alerts(DRILL_ALERT, "firing"):
                if time.monotonic() - drill_started > FIRE_BOUND_SECONDS:
                    raise DrillFailed(
                        f"{DRILL_ALERT} did not reach the webhook within {FIRE_BOUND_SECONDS:.0f} s"
                    )
                statuses = requests_in_parallel(platform, 10, {"X-Drill-Token": drill_token})
                failed += statuses.count(500)
                requests_in_parallel(platform, 10, {})
                time.sleep(0.5)
                processes.check_alive()
            fired_after = time.monotonic() - drill_started
            receiver, alert = webhook.alerts(DRILL_ALERT, "firing")[0]
            say(
                f"FIRED: {DRILL_ALERT} reached the webhook ({receiver}) {fired_after:.1f} s after the "
                f"drill started ({failed} requests failed on purpose); severity="
                f"{alert['labels'].get('severity')}; summary: {alert['annotations'].get('summary')}"
            )
            for name in sorted(
                {a["labels"]["alertname"] for _, _, p in webhook.notifications for a in p["alerts"]}
            ):
                say(f"  webhook has seen: {name}")

            # --- stop the drill: healthy traffic until the alert resolves
            say(f"DRILL OFF: healthy traffic only; waiting for {DRILL_ALERT} to resolve")
            stopped = time.monotonic()
            while not webhook.alerts(DRILL_ALERT, "resolved"):
                if time.monotonic() - stopped > RESOLVE_BOUND_SECONDS:
                    raise DrillFailed(
                        f"{DRILL_ALERT} did not resolve within {RESOLVE_BOUND_SECONDS:.0f} s"
                    )
                requests_in_parallel(platform, 100, {})
                processes.check_alive()
            ratio = query(prometheus, "job:mastery_http_errors:ratio_rate5m")
            say(
                f"RESOLVED: {DRILL_ALERT} resolution reached the webhook "
                f"{time.monotonic() - stopped:.1f} s after the drill stopped (5xx ratio now "
                f"{float(ratio[0]['value'][1]) if ratio else float('nan'):.3f})"
            )

            # --- a rate-limit storage outage, so that panel has data too
            say("stopping the rate-limit storage (redis-server) for a few requests")
            processes.stop("redis")
            statuses = requests_in_parallel(platform, 20, {})
            say(f"during the outage: statuses {sorted(set(statuses))} (routes fail open)")

            # --- every dashboard query against Prometheus
            wait_until(
                "Prometheus sees the storage outage",
                lambda: bool(query(prometheus, "mastery_ratelimit_storage_unavailable_total")),
                30,
                alive=processes.check_alive,
            )
            time.sleep(5)  # a few more rule evaluations over the latest scrapes
            missing = []
            for title, ref, expr in dashboard_targets():
                series = query(prometheus, expr)
                say(
                    f"  {'ok     ' if series else 'NO DATA'} {len(series):3d} series  {title} [{ref}]"
                )
                if not series:
                    missing.append(f"{title} [{ref}]: {expr}")
            if missing:
                raise DrillFailed("dashboard queries without data:\n  " + "\n  ".join(missing))
            say(f"every dashboard query returned data ({len(dashboard_targets())} queries)")
    except Exception:
        processes.print_logs()
        raise
    finally:
        processes.stop_all()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    missing = [binary for binary in BINARIES if shutil.which(binary) is None]
    if missing:
        say(f"missing {', '.join(missing)}: install with `{INSTALL_HINT}`")
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="mastery-drill-"))
    say(f"working directory {tmp}")
    shutil.rmtree(KEPT_LOGS, ignore_errors=True)  # only ever the latest failed drill's
    passed = False
    try:
        run(tmp)
        passed = True
    except DrillFailed as failure:
        say(f"DRILL FAILED: {failure}")
        return 1
    except subprocess.CalledProcessError as failure:
        output = (failure.stderr or b"").decode(errors="replace")
        say(f"DRILL FAILED: {' '.join(failure.cmd)} exited with {failure.returncode}\n{output}")
        return 1
    finally:
        if not passed:
            kept = keep_logs(tmp, KEPT_LOGS, LOG_PATTERNS)
            say(f"kept {len(kept)} log files in {KEPT_LOGS.relative_to(ROOT)}/")
        if args.keep:
            say(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    say(
        "DRILL PASSED: the 5xx alert fired, reached the receiver and resolved; every dashboard query has data"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
