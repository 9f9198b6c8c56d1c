"""Rate limits on real Redis: 429s with their headers, the keys (client, user, account), the
exempt routes, and what each route class does when Redis goes away.

The shared test settings switch the limits off (the suite logs in far more often than any
client may); every application here is built with them on, counting in this worker's own
Redis database, which `redis_client` empties before and after each test.
"""

from __future__ import annotations

import contextlib
import logging
import math
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import jwt
import pytest
import redis
from apiflask import APIFlask
from flask.testing import FlaskClient
from limits import parse
from limits.errors import StorageError
from limits.storage import RedisStorage
from limits.strategies import SlidingWindowCounterRateLimiter
from prometheus_client.parser import text_string_to_metric_families

from app.auth.models import Role, User
from app.config import Settings
from app.security import rate_limits
from app.security.rate_limits import OnStorageDown, get_limiter, route_limits
from app.security.ratelimit_window import SlidingWindowWithStats
from tests.conftest import PASSWORD, MakeApp
from tools.processes import free_port, port_open, wait_until

AsUser = Callable[[User], dict[str, str]]

LOOSE = "1000/minute"
HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")
NO_PERSISTENCE = ("--save", "", "--appendonly", "no")


@pytest.fixture
def make_app(make_app: MakeApp, redis_client: redis.Redis) -> MakeApp:
    """Applications with the limits on (loose unless a test tightens one) on the test's data:
    tests/conftest.py's `make_app`, with the limits' settings first."""
    limits_on = {
        "ratelimit_enabled": True,
        "ratelimit_default": LOOSE,
        "ratelimit_login": LOOSE,
        "ratelimit_login_account": LOOSE,
        "ratelimit_login_account_client": LOOSE,
    }
    return lambda **changes: make_app(**(limits_on | changes))


def client_at(app: APIFlask, address: str) -> FlaskClient:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def login(client: FlaskClient, email: str, password: str = PASSWORD) -> Any:
    return client.post("/auth/login", json={"email": email, "password": password})


def hint(client: FlaskClient, headers: dict[str, str]) -> Any:
    return client.get(f"/sessions/{uuid.uuid4()}/items/{uuid.uuid4()}/hint", headers=headers)


def assert_rate_limited(response: Any, limit: int) -> None:
    assert response.status_code == 429
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == 429
    assert body["type"].endswith("/rate-limited")
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert 1 <= int(response.headers["Retry-After"]) <= 3600
    assert response.headers["RateLimit-Limit"] == str(limit)
    assert response.headers["RateLimit-Remaining"] == "0"
    assert 0 <= int(response.headers["RateLimit-Reset"]) <= 3600


# --- the table ---------------------------------------------------------------------------------


def test_every_endpoint_in_the_limits_table_exists(
    session_app: APIFlask, settings: Settings
) -> None:
    table = route_limits(settings)

    assert set(table) <= set(session_app.view_functions), set(table) - set(
        session_app.view_functions
    )
    assert {name for name, r in table.items() if r.on_storage_down is OnStorageDown.CLOSED} == {
        "auth.login",
        "auth.register",
        "auth.refresh",
        "auth.change_password",
    }


def test_the_shared_test_application_runs_without_limits(session_app: APIFlask) -> None:
    assert get_limiter(session_app) is None


# --- 429s and headers ----------------------------------------------------------------------------


def test_login_answers_429_after_the_limit_with_retry_after_and_ratelimit_headers(
    make_app: MakeApp, make_user: Callable[..., User]
) -> None:
    client = client_at(make_app(ratelimit_login="3/minute"), "198.51.100.1")
    user = make_user()

    answers = [
        login(client, user.email, "wrong password" if n in (1, 3, 4) else PASSWORD)
        for n in range(5)
    ]
    refused = login(client, user.email)

    assert [a.status_code for a in answers] == [200, 401, 200, 401, 401]  # failures count
    assert [a.headers["RateLimit-Remaining"] for a in answers] == ["3", "2", "2", "1", "0"]
    assert all(a.headers["RateLimit-Limit"] == "3" for a in answers)
    assert all("Retry-After" not in a.headers for a in answers)
    assert_rate_limited(refused, limit=3)
    assert "3 per 1 minute" in refused.get_json()["detail"]


def test_successful_logins_never_count_against_the_login_limits(
    make_app: MakeApp, make_user: Callable[..., User]
) -> None:
    """Issue 17, finding 3: a school behind one NAT address logs in more than 20 times an
    hour (the default limits, which count failures only)."""
    defaults = Settings.model_fields
    app = make_app(
        ratelimit_login=defaults["ratelimit_login"].default,
        ratelimit_login_account=defaults["ratelimit_login_account"].default,
        ratelimit_login_account_client=defaults["ratelimit_login_account_client"].default,
    )
    school = client_at(app, "198.51.100.20")
    user = make_user()

    assert {login(school, user.email).status_code for _ in range(25)} == {200}


def test_failed_logins_from_one_address_do_not_lock_the_owner_out_elsewhere(
    make_app: MakeApp, make_user: Callable[..., User]
) -> None:
    """Issue 17, finding 3: twenty wrong passwords for an admin from one address used to lock
    the admin out from everywhere for an hour."""
    defaults = Settings.model_fields
    app = make_app(
        ratelimit_login_account=defaults["ratelimit_login_account"].default,
        ratelimit_login_account_client=defaults["ratelimit_login_account_client"].default,
    )
    admin = make_user(role=Role.ADMIN)
    attacker = client_at(app, "203.0.113.50")

    attempts = [login(attacker, admin.email, "guess").status_code for _ in range(20)]

    assert attempts == [401] * 10 + [429] * 10  # RATELIMIT_LOGIN_ACCOUNT_CLIENT=10/hour
    assert login(attacker, admin.email).status_code == 429  # this address stays refused
    assert login(client_at(app, "198.51.100.21"), admin.email).status_code == 200


def test_a_refused_login_is_refused_before_its_credentials_are_checked(
    make_app: MakeApp, make_user: Callable[..., User]
) -> None:
    client = client_at(make_app(ratelimit_login="1/minute"), "198.51.100.2")
    user = make_user()
    login(client, user.email, "wrong password")

    assert login(client, user.email).status_code == 429  # even the right password


def test_logins_at_one_account_are_limited_across_client_addresses(
    make_app: MakeApp, make_user: Callable[..., User]
) -> None:
    app = make_app(ratelimit_login_account="2/hour")
    target, other = make_user(), make_user()

    spread = [
        login(client_at(app, f"203.0.113.{n}"), target.email.upper(), "guess") for n in range(3)
    ]

    assert [r.status_code for r in spread] == [401, 401, 429]
    assert login(client_at(app, "203.0.113.9"), other.email).status_code == 200


def test_a_failure_that_cannot_be_counted_keeps_its_answer_and_closes_login_for_a_while(
    make_app: MakeApp,
    make_user: Callable[..., User],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Failed logins are counted after the answer: Redis failing at that moment must not turn
    the 401 into a 500, and login then fails closed for the retry interval."""
    app = make_app(ratelimit_storage_retry_seconds=60.0)
    limiter = get_limiter(app)
    assert limiter is not None
    client = client_at(app, "198.51.100.22")
    user = make_user()
    assert login(client, user.email).status_code == 200  # the check itself works

    hit = limiter.limiter.hit

    def unreachable_when_counting_an_account(*args: Any, **kwargs: Any) -> bool:
        if any(str(part).startswith("account:") for part in args[1:]):
            raise StorageError(ConnectionError("redis went away"))
        return bool(hit(*args, **kwargs))

    monkeypatch.setattr(limiter.limiter, "hit", unreachable_when_counting_an_account)
    with caplog.at_level(logging.WARNING, logger="app.security.rate_limits"):
        failed = login(client, user.email, "wrong password")

    assert failed.status_code == 401
    assert any("was not counted" in r.getMessage() for r in caplog.records)
    assert login(client, user.email).status_code == 503


def test_register_is_limited_per_client(make_app: MakeApp) -> None:
    app = make_app(ratelimit_register="2/hour")

    def register(client: FlaskClient) -> int:
        body = {"email": f"{uuid.uuid4().hex}@example.com", "password": "a long enough passphrase"}
        response = client.post("/auth/register", json={**body, "display_name": "New"})
        return int(response.status_code)

    first = client_at(app, "198.51.100.3")
    assert [register(first) for _ in range(3)][2] == 429
    assert register(client_at(app, "198.51.100.4")) != 429


def test_refresh_is_limited_per_client(make_app: MakeApp) -> None:
    client = client_at(make_app(ratelimit_refresh="2/minute"), "198.51.100.5")
    body = {"refresh_token": "not-a-token"}

    answers = [client.post("/auth/refresh", json=body).status_code for _ in range(3)]

    assert answers == [401, 401, 429]


# --- keys ----------------------------------------------------------------------------------------


def test_ai_routes_count_per_user_across_clients_and_never_share_a_bucket_between_users(
    make_app: MakeApp, make_user: Callable[..., User], as_user: AsUser
) -> None:
    app = make_app(ratelimit_hint="2/minute")
    alice, bob = as_user(make_user()), as_user(make_user())
    laptop, phone = client_at(app, "198.51.100.10"), client_at(app, "198.51.100.11")

    used = [hint(laptop, alice).status_code, hint(phone, alice).status_code]

    assert used == [404, 404]  # counted, then answered by the route itself
    assert_rate_limited(hint(laptop, alice), limit=2)
    assert hint(phone, alice).status_code == 429  # another client of the same user
    assert hint(laptop, bob).status_code == 404  # another user from the same client


def test_a_bad_token_on_a_per_user_route_still_gets_the_routes_own_401(
    make_app: MakeApp,
) -> None:
    client = client_at(make_app(ratelimit_hint="5/minute"), "198.51.100.12")

    for token in ("garbage", "a.b.c", ""):
        response = hint(client, {"Authorization": f"Bearer {token}"})
        assert response.status_code == 401
        assert response.mimetype == "application/problem+json"


def test_a_forged_token_cannot_spend_another_users_budget(
    make_app: MakeApp, make_user: Callable[..., User], as_user: AsUser
) -> None:
    app = make_app(ratelimit_hint="1/minute")
    victim = make_user()
    header, payload, _ = as_user(victim)["Authorization"].removeprefix("Bearer ").split(".")
    forged = {"Authorization": f"Bearer {header}.{payload}.forgedsignature"}
    client = client_at(app, "198.51.100.13")

    assert hint(client, forged).status_code == 401
    assert hint(client_at(app, "198.51.100.14"), as_user(victim)).status_code == 404


def test_generation_jobs_are_limited_per_user(
    make_app: MakeApp, make_user: Callable[..., User], as_user: AsUser
) -> None:
    client = client_at(make_app(ratelimit_generation="1/hour"), "198.51.100.15")
    instructor = as_user(make_user(Role.INSTRUCTOR))
    path = f"/skills/{uuid.uuid4()}/generation-jobs"

    assert client.post(path, json={"count": 1}, headers=instructor).status_code == 404
    assert client.post(path, json={"count": 1}, headers=instructor).status_code == 429


def test_password_changes_are_limited_per_user(
    make_app: MakeApp, make_user: Callable[..., User], as_user: AsUser
) -> None:
    client = client_at(make_app(ratelimit_password_change="1/hour"), "198.51.100.16")
    headers = as_user(make_user())
    wrong = {"current_password": "not the password at all", "new_password": "gentle otter 4 lamps"}

    assert client.post("/auth/password", json=wrong, headers=headers).status_code == 403
    assert_rate_limited(client.post("/auth/password", json=wrong, headers=headers), limit=1)


def test_the_default_limit_counts_per_client_across_routes(
    make_app: MakeApp, make_user: Callable[..., User], as_user: AsUser
) -> None:
    app = make_app(ratelimit_default="3/minute")
    headers = as_user(make_user())
    first = client_at(app, "198.51.100.20")

    answers = [first.get(path, headers=headers) for path in ("/courses", "/auth/me", "/courses")]

    assert [a.status_code for a in answers] == [200, 200, 200]
    assert [a.headers["RateLimit-Remaining"] for a in answers] == ["2", "1", "0"]
    assert_rate_limited(first.get("/me/progress", headers=headers), limit=3)
    assert client_at(app, "198.51.100.21").get("/courses", headers=headers).status_code == 200


def test_an_ipv6_client_is_counted_by_its_64_prefix(make_app: MakeApp) -> None:
    app = make_app(ratelimit_default="1/minute")

    assert client_at(app, "2001:db8:1:2::1").get("/auth/me").status_code == 401
    assert client_at(app, "2001:db8:1:2::ffff").get("/auth/me").status_code == 429
    assert client_at(app, "2001:db8:1:3::1").get("/auth/me").status_code == 401


def test_a_request_costs_one_redis_round_trip_per_limit_headers_included(
    make_app: MakeApp, make_user: Callable[..., User], as_user: AsUser, monkeypatch: Any
) -> None:
    app = make_app(ratelimit_default="50/minute", ratelimit_attempt="40/minute")
    limiter = get_limiter(app)
    assert limiter is not None
    assert isinstance(limiter.storage, RedisStorage)
    # The client itself: get_connection() returns it typed as a narrow protocol of `limits`.
    connection: redis.Redis = limiter.storage.storage
    commands: list[str] = []
    send: Callable[..., Any] = connection.execute_command  # redis-py leaves it unannotated

    def counting(*args: Any, **options: Any) -> Any:
        commands.append(str(args[0]))
        return send(*args, **options)

    client_at(app, "198.51.100.41").get("/auth/me")  # Redis loads the script once (NOSCRIPT)
    monkeypatch.setattr(connection, "execute_command", counting)
    client = client_at(app, "198.51.100.40")
    headers = as_user(make_user())

    me = client.get("/auth/me", headers=headers)  # the default limit only
    me_commands = list(commands)
    commands.clear()
    attempt = client.post(  # the default limit and the per-user limit of answers
        f"/sessions/{uuid.uuid4()}/attempts",
        json={"item_id": str(uuid.uuid4()), "response": 0},
        headers=headers,
    )

    assert me.headers["RateLimit-Remaining"] == "49"
    assert me_commands == ["EVALSHA"], me_commands
    assert attempt.status_code == 404
    assert attempt.headers["RateLimit-Limit"] == "40"  # the tighter of the two
    assert attempt.headers["RateLimit-Remaining"] == "39"
    assert commands == ["EVALSHA", "EVALSHA"], commands


def test_a_token_is_verified_once_per_request_though_the_rate_limit_reads_it_too(
    make_app: MakeApp, make_user: Callable[..., User], as_user: AsUser, monkeypatch: Any
) -> None:
    app = make_app()
    headers = as_user(make_user())
    verified: list[str] = []
    decode_complete = jwt.PyJWT.decode_complete

    def counting(self: jwt.PyJWT, token: Any, *args: Any, **kwargs: Any) -> Any:
        if args and args[0]:  # with a key: a signature check (the claims peek has none)
            verified.append(str(token))
        return decode_complete(self, token, *args, **kwargs)

    monkeypatch.setattr(jwt.PyJWT, "decode_complete", counting)
    client = client_at(app, "198.51.100.42")

    answer = hint(client, headers)  # a per-user limit: the limiter needs the token's subject
    verified_for_answer = list(verified)
    verified.clear()
    forged = hint(client, {"Authorization": headers["Authorization"][:-4] + "AAAA"})

    assert answer.status_code == 404  # authenticated: no such session
    assert verified_for_answer == [headers["Authorization"].removeprefix("Bearer ")]
    assert forged.status_code == 401  # a failed check is not remembered as a success
    assert len(verified) == 2, verified  # the limiter's try and the view's own, both refused


def test_the_windows_a_hit_reports_are_what_the_library_reads_from_redis(
    make_app: MakeApp,
) -> None:
    """Across a window shift, remaining and reset from the hit match `limits`' own reading."""
    app = make_app()
    limiter = get_limiter(app)
    assert limiter is not None
    ours = limiter.limiter
    assert isinstance(ours, SlidingWindowWithStats)
    library = SlidingWindowCounterRateLimiter(limiter.storage)
    item = parse("6/2 second")
    key = f"window-check-{uuid.uuid4().hex}"

    def compare(rounds: int, previous_hits: int) -> list[int]:
        remaining = []
        for _ in range(rounds):
            started = time.monotonic()
            with app.test_request_context():
                ours.hit(item, key)
                reported = ours.get_window_stats(item, key)
            read = library.get_window_stats(item, key)
            elapsed = time.monotonic() - started
            # The library reads a moment after the hit answered. Meanwhile the previous window's
            # weight only shrinks, by previous_hits x elapsed / period entries, so the library may
            # see that many more remaining, never fewer; with no previous window they are equal.
            decayed = math.ceil(previous_hits * elapsed / item.get_expiry())
            assert reported.remaining <= read.remaining <= reported.remaining + decayed, (
                reported,
                read,
                elapsed,
            )
            # Within a millisecond of a hit the library reads a fresh counter's TTL as exactly
            # two periods and answers "resets now"; the hit's own answer says a whole period.
            library_says_now = read.reset_time - time.time() < 0.05
            assert abs(reported.reset_time - read.reset_time) < 0.5 + elapsed or library_says_now
            remaining.append(reported.remaining)
        return remaining

    first = compare(4, previous_hits=0)
    # The window's clock is its counter's TTL in Redis: age the current counter to just past one
    # period, where the next hit shifts it into the previous window, instead of sleeping it out.
    storage = limiter.storage
    assert isinstance(storage, RedisStorage)
    window_key = item.key_for(key)
    current = storage.prefixed_key(storage._current_window_key(window_key))
    previous = storage.prefixed_key(storage._previous_window_key(window_key))
    redis_view: redis.Redis = storage.storage  # the client behind get_connection()'s protocol
    assert not redis_view.exists(previous)
    assert redis_view.pexpire(current, item.get_expiry() * 1000 - 1)
    later = compare(4, previous_hits=len(first))

    assert redis_view.get(previous) == b"4"  # Redis shifted the window: the first four hits
    assert first == [5, 4, 3, 2]
    assert later[-1] < 5  # the previous window still counts
    with app.test_request_context():  # over the limit: refused, and the window says so
        assert not all(ours.hit(item, key) for _ in range(6))
        assert ours.get_window_stats(item, key).remaining == 0
    outside = f"{key}-outside"  # no request: nothing kept, Redis is read
    assert ours.hit(item, outside)
    assert ours.get_window_stats(item, outside).remaining == 5
    with app.test_request_context():  # a request that has not hit the limit: Redis is read too
        assert ours.get_window_stats(item, outside).remaining == 5


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/openapi.json", "/docs"])
def test_probes_and_the_api_description_are_never_limited(make_app: MakeApp, path: str) -> None:
    client = client_at(make_app(ratelimit_default="1/minute"), "198.51.100.30")
    client.get("/auth/me")  # the client's whole budget

    answers = [client.get(path) for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 200]
    assert not any(name in a.headers for a in answers for name in HEADERS)
    assert client.get("/auth/me").status_code == 429


# --- Redis down ----------------------------------------------------------------------------------


class _Relay:
    """A TCP relay to a Redis server; closing it is an outage as the application sees it."""

    def __init__(self, target: tuple[str, int], port: int) -> None:
        self._target = target
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", port), reuse_port=False)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._target)
            self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass

    def close(self) -> None:
        for sock in [self._listener, *self._sockets]:
            with contextlib.suppress(OSError):  # shutdown wakes the thread blocked in accept()
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


class KillableRedis:
    """A Redis only this test uses, so stopping it leaves the shared one alone: a throwaway
    `redis-server` when the binary is installed, else a relay to the discovered server (CI
    runs Redis as a service container and has no binary)."""

    def __init__(self, shared_url: str) -> None:
        self.port = free_port()
        self._binary = shutil.which("redis-server")
        shared = redis.Redis.from_url(shared_url).connection_pool.connection_kwargs
        self._shared = (str(shared.get("host", "127.0.0.1")), int(shared.get("port", 6379)))
        self._db = 0 if self._binary else int(shared.get("db", 0))
        self._process: subprocess.Popen[bytes] | None = None
        self._relay: _Relay | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/{self._db}"

    def start(self) -> None:
        if self._binary:
            self._process = subprocess.Popen(
                [self._binary, "--port", str(self.port), "--bind", "127.0.0.1", *NO_PERSISTENCE],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        else:
            self._relay = _Relay(self._shared, self.port)
        wait_until("the test's redis to listen", lambda: port_open("127.0.0.1", self.port), 10)

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=10)
            self._process = None
        if self._relay is not None:
            self._relay.close()
            self._relay = None


@pytest.fixture
def killable_redis(redis_url: str) -> Iterator[KillableRedis]:
    server = KillableRedis(redis_url)
    server.start()
    yield server
    server.stop()


def outage_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == rate_limits.__name__
        and r.levelno == logging.WARNING
        and "storage unavailable" in r.getMessage()
    ]


def storage_unavailable_counts(client: FlaskClient) -> dict[str, float]:
    """`mastery_ratelimit_storage_unavailable_total` by outcome, as /metrics exposes it (the
    registry is the process's: compare before and after)."""
    scraped = client.get("/metrics")
    assert scraped.status_code == 200, scraped.get_data(as_text=True)[:300]
    return {
        sample.labels["outcome"]: sample.value
        for family in text_string_to_metric_families(scraped.get_data(as_text=True))
        for sample in family.samples
        if sample.name == "mastery_ratelimit_storage_unavailable_total"
    }


def test_with_redis_down_auth_fails_closed_and_everything_else_fails_open(
    make_app: MakeApp,
    make_user: Callable[..., User],
    as_user: AsUser,
    killable_redis: KillableRedis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = make_app(ratelimit_storage_url=killable_redis.url, ratelimit_storage_retry_seconds=0.0)
    client = client_at(app, "198.51.100.40")
    user = make_user()
    headers = as_user(user)
    assert login(client, user.email).status_code == 200
    assert client.get("/courses", headers=headers).status_code == 200
    before = storage_unavailable_counts(client)

    killable_redis.stop()
    caplog.set_level(logging.WARNING, logger=rate_limits.__name__)
    refused = login(client, user.email)
    read = client.get("/courses", headers=headers)
    practice = hint(client, headers)
    registered = client.post("/auth/register", json={})

    assert refused.status_code == 503
    assert refused.mimetype == "application/problem+json"
    assert refused.get_json()["type"].endswith("/rate-limit-unavailable")
    assert int(refused.headers["Retry-After"]) >= 1
    assert registered.status_code == 503
    assert read.status_code == 200
    assert practice.status_code == 404  # through to the route, unlimited
    assert not any(name in read.headers for name in HEADERS)

    after = storage_unavailable_counts(client)
    assert after.get("closed", 0) - before.get("closed", 0) == 2
    assert after.get("open", 0) - before.get("open", 0) == 2
    logged = outage_warnings(caplog)
    assert len(logged) == 4  # every request tried Redis (no retry interval here)
    first = logged[0].getMessage()
    assert "failing closed for POST auth.login" in first
    assert refused.get_json()["request_id"] in first
    assert "failing open for GET content.list_courses" in logged[1].getMessage()
    assert not any(PASSWORD in r.getMessage() or user.email in r.getMessage() for r in logged)


def test_limits_count_again_once_redis_is_back(
    make_app: MakeApp, make_user: Callable[..., User], killable_redis: KillableRedis
) -> None:
    app = make_app(
        ratelimit_storage_url=killable_redis.url,
        ratelimit_storage_retry_seconds=0.0,
        ratelimit_login="2/minute",
    )
    client = client_at(app, "198.51.100.41")
    user = make_user()
    killable_redis.stop()
    assert login(client, user.email).status_code == 503

    killable_redis.start()

    answers = [login(client, user.email, "wrong password").status_code for _ in range(3)]
    assert answers == [401, 401, 429]


def test_after_a_failure_redis_is_left_alone_for_the_retry_interval(
    make_app: MakeApp,
    make_user: Callable[..., User],
    killable_redis: KillableRedis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = make_app(ratelimit_storage_url=killable_redis.url, ratelimit_storage_retry_seconds=60.0)
    client = client_at(app, "198.51.100.42")
    user = make_user()
    killable_redis.stop()
    caplog.set_level(logging.WARNING, logger=rate_limits.__name__)

    first, second = login(client, user.email), login(client, user.email)
    killable_redis.start()
    third = login(client, user.email)

    assert [first.status_code, second.status_code, third.status_code] == [503, 503, 503]
    assert third.headers["Retry-After"] == "60"
    assert len(outage_warnings(caplog)) == 1  # one line per failure, not per request
