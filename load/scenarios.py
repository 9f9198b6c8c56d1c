"""The simulated users: a learner, an instructor and an admin, as Locust FastHttpUsers.

Each user logs in once as a distinct seeded account (`flask --app app seed load`), so no load
user registers inside the measured window and per-account rate limits see one person each.
The accounts come from load/accounts.py: each Locust process (each worker of a distributed
run) owns its own share of every role's accounts and fails loudly when its share is too small.
Every request is named by its route template (`/sessions/{id}/next`), so Locust's statistics
group per route and match the CPU accounting of the load stack.

Each user also sends `X-Forwarded-For` with an address of its own and `X-Forwarded-Proto: https`:
the production-like stack trusts one proxy hop, as behind a real TLS proxy, so per-client rate
limits see 50 clients instead of one load generator, and HTTPS is enforced as in production.
Against a real deployment the proxy in front overwrites or appends these headers.

Think times are compressed (seconds, not the half minute a person takes) so that 50 users make
a useful load on one machine; the weights make learners the bulk of the traffic.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from typing import Any

import gevent
from locust import between, events, task
from locust.contrib.fasthttp import FastHttpUser
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from load.accounts import SINGLE, AccountPool, Partition

# Which course, skill and answer a user picks: load-test variety, not secrets.
_rng = random.Random()  # noqa: S311 - picks simulated answers, not secrets
LOAD_DOMAIN = "load.mastery.test"
PASSWORD = os.environ.get("LOAD_PASSWORD", "mastery-load-shared-password")
# The seeded accounts per role; the defaults are `flask --app app seed load`'s (a subset of
# its 5,000 learners), so set these to the counts you seeded when they differ.
LEARNERS = int(os.environ.get("LOAD_LEARNERS", "1000"))
INSTRUCTORS = int(os.environ.get("LOAD_INSTRUCTORS", "20"))
ADMINS = int(os.environ.get("LOAD_ADMINS", "2"))
JOB_POLL_SECONDS = 30.0
# The master's count of workers, handed to the workers with the test's options (Locust sends
# the master's custom options to every worker before the worker's test_start).
PARTITIONS_OPTION = "load_account_partitions"

# This process's accounts, one pool per role, drawn afresh at each test start.
_pools: dict[str, AccountPool] = {}
_partition = SINGLE


def partition_of(environment: Environment) -> Partition:
    """Which share of the accounts this process's users take: worker index of how many."""
    runner = environment.runner
    if not isinstance(runner, WorkerRunner):
        return SINGLE
    options = environment.parsed_options
    # Without the master's count (a master that did not run this listener), what it expected.
    count = getattr(options, PARTITIONS_OPTION, 0) or getattr(options, "expect_workers", 0) or 1
    return Partition(runner.worker_index, int(count))


@events.test_start.add_listener
def _on_test_start(environment: Environment, **_kwargs: Any) -> None:
    global _partition
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        # Every index handed out so far (a reconnected worker keeps its own), so each worker's
        # index is below the count it receives.
        workers = max(getattr(runner, "worker_index_max", 0), runner.worker_count, 1)
        if environment.parsed_options is not None:
            setattr(environment.parsed_options, PARTITIONS_OPTION, workers)
        return
    _pools.clear()
    _partition = partition_of(environment)


def _pool(role: str, population: int) -> AccountPool:
    if role not in _pools:
        _pools[role] = AccountPool(role, population, _partition)
    return _pools[role]


def email(role: str, number: int) -> str:
    """The seeded account `number` of `role` (the rule of app/ops/load_data.py)."""
    width = 5 if role == "learner" else 3
    return f"{role}-{number:0{width}d}@{LOAD_DOMAIN}"


def _client_address(role: str, number: int) -> str:
    offset = {"learner": 0, "instructor": 100, "admin": 200}[role]
    return f"10.{offset + number // 65536 % 50}.{number // 256 % 256}.{number % 256}"


class MasteryUser(FastHttpUser):
    """Logs in as an account of its own, held until it stops; requests carry its token and
    proxy headers. Subclasses prepare their state in `prepare`, after the log-in."""

    abstract = True
    role = "learner"
    population = LEARNERS
    number: int | None = None

    def on_start(self) -> None:
        pool = _pool(self.role, self.population)
        self.number = pool.acquire()  # AccountsExhausted: logged, counted, fails the run
        try:
            self.log_in(self.number)
            self.prepare()
        except BaseException:
            # Locust does not call on_stop after a failed on_start: give the account back.
            pool.release(self.number)
            self.number = None
            raise

    def on_stop(self) -> None:
        if self.number is not None:
            _pool(self.role, self.population).release(self.number)
            self.number = None

    def log_in(self, number: int) -> None:
        self.headers = {
            "X-Forwarded-For": _client_address(self.role, number),
            "X-Forwarded-Proto": "https",
        }
        response = self.client.post(
            "/auth/login",
            json={"email": email(self.role, number), "password": PASSWORD},
            headers=self.headers,
            name="/auth/login",
        )
        response.raise_for_status()
        self.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def prepare(self) -> None:
        """What the user does once logged in, before its tasks."""

    def get(self, path: str, name: str, **kwargs: Any) -> Any:
        return self.client.get(path, name=name, headers=self.headers, **kwargs)

    def post(self, path: str, name: str, **kwargs: Any) -> Any:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return self.client.post(path, name=name, headers=headers, **kwargs)


class Learner(MasteryUser):
    """Enrols in a course, practises one of its skills (next, then an answer, right or wrong),
    checks progress, browses items, asks a hint now and then, and moves to another skill."""

    weight = 45
    wait_time = between(0.5, 2.0)

    def prepare(self) -> None:
        self.session_id: str | None = None
        self.skill_id: str | None = None
        self.start_practice()

    def start_practice(self) -> None:
        courses = self.get("/courses?limit=20", "/courses").json()["items"]
        if not courses:
            raise RuntimeError("no published courses: seed with `flask --app app seed load`")
        course = _rng.choice(courses)
        self.post(f"/courses/{course['id']}/enrollments", "/courses/{id}/enrollments")
        skills = self.get(f"/courses/{course['id']}/skills", "/courses/{id}/skills").json()
        self.skill_id = _rng.choice(skills["items"])["id"]
        created = self.post("/sessions", "/sessions", json={"skill_id": self.skill_id})
        self.session_id = created.json()["id"]

    @task(10)
    def practise(self) -> None:
        item = self.get(f"/sessions/{self.session_id}/next", "/sessions/{id}/next").json()["item"]
        if item["kind"] == "mcq":
            answer: int | str = _rng.randrange(len(item["choices"]))  # right about 1 in 4
        else:
            if _rng.random() < 0.3:
                self.get(
                    f"/sessions/{self.session_id}/items/{item['id']}/hint",
                    "/sessions/{id}/items/{id}/hint",
                )
            # The seeded prompts name their step; the reference answer follows from it.
            step = item["prompt"].split("step ")[-1].rstrip(".")
            answer = (
                f"Step {step} keeps both sides equal."
                if _rng.random() < 0.6
                else "I am not sure about this one."
            )
        self.post(
            f"/sessions/{self.session_id}/attempts",
            "/sessions/{id}/attempts",
            json={"item_id": item["id"], "response": answer},
            headers={"Idempotency-Key": uuid.uuid4().hex},
        )

    @task(2)
    def check_progress(self) -> None:
        self.get("/me/progress", "/me/progress")

    @task(1)
    def browse_items(self) -> None:
        self.get(f"/skills/{self.skill_id}/items?limit=20", "/skills/{id}/items")

    @task(1)
    def look_at_session(self) -> None:
        self.get(f"/sessions/{self.session_id}", "/sessions/{id}")

    @task(1)
    def switch_skill(self) -> None:
        self.start_practice()


class Instructor(MasteryUser):
    """Authors and publishes items in the course they own, uploads material, starts a
    generation job and polls it until the worker has finished it."""

    weight = 4
    role = "instructor"
    population = INSTRUCTORS
    wait_time = between(2.0, 5.0)

    def prepare(self) -> None:
        me = self.get("/auth/me", "/auth/me").json()
        courses = self.get("/courses?limit=100", "/courses").json()["items"]
        own = [c for c in courses if c["owner_id"] == me["id"]] or courses
        skills = self.get(f"/courses/{own[0]['id']}/skills", "/courses/{id}/skills").json()
        self.skill_ids = [s["id"] for s in skills["items"]]

    @task(4)
    def author_and_publish(self) -> None:
        skill_id = _rng.choice(self.skill_ids)
        created = self.post(
            f"/skills/{skill_id}/items",
            "/skills/{id}/items",
            json={
                "kind": "mcq",
                "prompt": f"Authored under load {uuid.uuid4().hex[:8]}: which is right?",
                "choices": [{"text": "this one", "correct": True}, {"text": "that one"}],
                "a": round(_rng.uniform(0.8, 1.8), 2),
                "b": round(_rng.uniform(-2, 2), 2),
            },
        )
        self.post(f"/items/{created.json()['id']}/publish", "/items/{id}/publish")

    @task(3)
    def list_items(self) -> None:
        skill_id = _rng.choice(self.skill_ids)
        self.get(f"/skills/{skill_id}/items?limit=50", "/skills/{id}/items")

    @task(1)
    def upload_material(self) -> None:
        boundary = uuid.uuid4().hex
        text = "# Notes\n\nBoth sides stay equal when the same step is applied to each.\n" * 20
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="notes.md"\r\nContent-Type: text/markdown\r\n\r\n{text}\r\n'
            f"--{boundary}--\r\n"
        ).encode()
        self.post(
            f"/skills/{_rng.choice(self.skill_ids)}/materials",
            "/skills/{id}/materials",
            data=body,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )

    @task(1)
    def generate_and_poll(self) -> None:
        skill_id = _rng.choice(self.skill_ids)
        job = self.post(
            f"/skills/{skill_id}/generation-jobs", "/skills/{id}/generation-jobs", json={"count": 2}
        ).json()
        deadline = time.monotonic() + JOB_POLL_SECONDS
        while time.monotonic() < deadline:
            gevent.sleep(1.0)  # an instructor's page polls about once a second
            with self.client.get(
                f"/jobs/{job['id']}", name="/jobs/{id}", headers=self.headers, catch_response=True
            ) as response:
                status = response.json()["status"]
                if status in ("failed", "dead"):
                    response.failure(f"generation job ended {status}")
                    return
            if status == "succeeded":
                return
        # Reported as a failed request so the error-ratio threshold catches a stuck worker.
        self.environment.events.request.fire(
            request_type="JOB",
            name="generation job finished",
            response_time=JOB_POLL_SECONDS * 1000,
            response_length=0,
            exception=TimeoutError(f"job {job['id']} not finished in {JOB_POLL_SECONDS:.0f} s"),
            context={},
        )


class Admin(MasteryUser):
    """Reads the audit log, the platform's stats, the users and the jobs."""

    weight = 1
    role = "admin"
    population = ADMINS
    wait_time = between(2.0, 6.0)

    @task(3)
    def audit_log(self) -> None:
        self.get("/admin/audit-log?limit=50", "/admin/audit-log")

    @task(2)
    def stats(self) -> None:
        self.get("/admin/stats", "/admin/stats")

    @task(2)
    def users(self) -> None:
        self.get("/admin/users?limit=50", "/admin/users")

    @task(1)
    def jobs(self) -> None:
        self.get("/admin/jobs?limit=50", "/admin/jobs")


class Baseline(FastHttpUser):
    """Loads the benchmark-only baseline app (load/baseline_app.py) side by side with the
    platform; only the load stack enables it (LOAD_BASELINE_HOST). Mostly the one-query
    baseline; now and then the round trips of next and of an answer with no framework."""

    # Locust's --host replaces every class's `host`, so the baseline is addressed by full URL.
    base = os.environ.get("LOAD_BASELINE_HOST", "").rstrip("/")
    fixed_count = int(os.environ.get("LOAD_BASELINE_USERS", "4"))
    wait_time = between(0.02, 0.08)

    @task(4)
    def one_query(self) -> None:
        self.client.get(f"{self.base}/baseline", name="/baseline")

    @task(1)
    def next_round_trips(self) -> None:
        self.client.get(f"{self.base}/baseline/next-round-trips", name="/baseline/next-round-trips")

    @task(1)
    def attempt_round_trips(self) -> None:
        self.client.get(
            f"{self.base}/baseline/attempt-round-trips", name="/baseline/attempt-round-trips"
        )
