"""app/security/rate_limits.py in the unit tier: the keys a request counts by, which routes and
statuses count, the 429 and 503 answers with their headers, and what the limiter does when its
storage cannot be reached.

The app is a bare APIFlask with stand-in views registered under the real endpoint names
(`auth.login`, `learning.hint`, ...), the request id, the error handlers and the rate limits on
`memory://` counters; an unreachable storage is a Redis URL on a port nobody listens on, which
refuses the connection at once. Real Redis, the real routes and a Redis that goes away mid-run
are tests/integration/test_rate_limits.py's subject. Every test builds its own app, so mutation
testing maps the module's functions to these tests.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from apiflask import APIBlueprint as Blueprint
from apiflask import APIFlask
from flask import g, request
from flask_jwt_extended import JWTManager, create_access_token, create_refresh_token
from flask_limiter import RateLimitExceeded
from flask_limiter._limits import RuntimeLimit  # what the library raises with; not re-exported
from limits import parse
from limits.errors import StorageError
from limits.storage import MemoryStorage, RedisStorage
from prometheus_client import REGISTRY
from redis.backoff import NoBackoff
from redis.retry import Retry
from werkzeug.test import TestResponse

from app import errors
from app.config import Settings
from app.observability import request_id
from app.security import rate_limits
from app.security.rate_limits import (
    EXEMPT_PATHS,
    Key,
    OnStorageDown,
    RouteLimits,
    account_client_key,
    account_key,
    client_key,
    get_limiter,
    is_exempt,
    route_limits,
    user_key,
)

SECRET = "unit-test-secret-key-of-32-bytes!!"  # pragma: allowlist secret
LOOSE = "1000/minute"
HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")
ADDRESS = "198.51.100.7"


def settings(**changes: Any) -> Settings:
    """The limits on, loose, in process memory, unless a test changes one."""
    values: dict[str, Any] = {
        "ratelimit_enabled": True,
        "ratelimit_storage_url": "memory://",
        "ratelimit_default": LOOSE,
        "ratelimit_login": LOOSE,
        "ratelimit_login_account": LOOSE,
        "ratelimit_login_account_client": LOOSE,
        "ratelimit_register": LOOSE,
        "ratelimit_refresh": LOOSE,
        "ratelimit_password_change": LOOSE,
        "ratelimit_hint": LOOSE,
        "ratelimit_attempt": LOOSE,
        "ratelimit_generation": LOOSE,
    }
    return Settings(_env_file=None, app_env="test", database_url="sqlite://", **(values | changes))


def make_app(flask_config: dict[str, Any] | None = None, **changes: Any) -> APIFlask:
    """A bare app whose views answer the status a test asks for (`?status=`), under the
    endpoint names the limits table uses; `flask_config` is set before the limits."""
    app = APIFlask(__name__)
    app.config.update(flask_config or {})
    app.config["SECRET_KEY"] = SECRET
    app.config["JWT_SECRET_KEY"] = SECRET
    JWTManager(app)
    request_id.init_app(app)
    rate_limits.init_app(app, settings(**changes))
    errors.init_app(app)

    def answer() -> tuple[dict[str, str], int]:
        return {"endpoint": str(request.endpoint)}, int(request.args.get("status", "200"))

    auth = Blueprint("auth", __name__)
    for path, name in [
        ("/auth/login", "login"),
        ("/auth/register", "register"),
        ("/auth/refresh", "refresh"),
        ("/auth/password", "change_password"),
    ]:
        auth.add_url_rule(path, name, answer, methods=["GET", "POST", "OPTIONS"])
    learning = Blueprint("learning", __name__)
    learning.add_url_rule("/hint", "hint", answer, methods=["GET", "OPTIONS"])
    learning.add_url_rule("/attempt", "submit_attempt", answer, methods=["POST"])
    jobs = Blueprint("jobs", __name__)
    jobs.add_url_rule("/generation-jobs", "create_generation_job", answer, methods=["POST"])
    content = Blueprint("content", __name__)
    content.add_url_rule("/courses", "list_courses", answer, methods=["GET", "OPTIONS"])
    for blueprint in (auth, learning, jobs, content):
        app.register_blueprint(blueprint)
    for path in (*EXEMPT_PATHS, "/healthz/deep", "/healthzzz"):
        app.add_url_rule(path, f"plain{path}", answer)
    return app


def client_at(app: APIFlask, address: str = ADDRESS) -> Any:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def login(client: Any, email: str = "ada@example.com", status: int = 401) -> TestResponse:
    response: TestResponse = client.post(f"/auth/login?status={status}", json={"email": email})
    return response


def spelled(response: TestResponse) -> list[str]:
    """The header names as sent (`headers[...]` and `in` ignore case)."""
    return [name for name, _ in response.headers.items()]


def unavailable_count(outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "mastery_ratelimit_storage_unavailable_total", {"outcome": outcome}
    )
    return value or 0.0


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port bound and not listening: a connection to it is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


# --- keys ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("203.0.113.9", "client:203.0.113.9"),
        ("2001:db8:1:2:3:4:5:6", "client:2001:db8:1:2::/64"),
        ("::ffff:203.0.113.9", "client:203.0.113.9"),  # an IPv4 client on a dual-stack socket
        ("not-an-address", "client:not-an-address"),
        ("", "client:unknown"),
    ],
)
def test_the_client_key_is_the_address_an_ipv6_one_by_its_64(address: str, key: str) -> None:
    app = make_app()
    with app.test_request_context("/", environ_base={"REMOTE_ADDR": address}):
        assert client_key() == key


def test_a_request_without_an_address_is_keyed_as_unknown() -> None:
    app = make_app()
    with app.test_request_context("/", environ_base={"REMOTE_ADDR": None}):
        assert client_key() == "client:unknown"


def bearer(token: str, scheme: str = "Bearer") -> dict[str, str]:
    return {"Authorization": f"{scheme} {token}"}


def test_the_user_key_is_the_subject_of_a_valid_access_token_once_per_request() -> None:
    app = make_app()
    with app.app_context():
        token = create_access_token(identity="user-1")
    with app.test_request_context("/", headers=bearer(f"  {token}  ", scheme="bEaReR")):
        assert user_key() == "user:user-1"
        assert g._ratelimit_user_key == "user:user-1"
        g._ratelimit_user_key = "user:remembered"
        assert user_key() == "user:remembered"  # read once, then kept for the request


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer    "},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer not.a.token"},
    ],
)
def test_without_a_valid_token_the_user_key_is_the_client_key(headers: dict[str, str]) -> None:
    app = make_app()
    with app.test_request_context("/", headers=headers, environ_base={"REMOTE_ADDR": ADDRESS}):
        assert user_key() == f"client:{ADDRESS}"


def test_a_refresh_token_or_one_without_a_subject_is_not_a_user() -> None:
    app = make_app()
    with app.app_context():
        refresh = create_refresh_token(identity="user-1")
        empty = create_access_token(identity="")
    for token in (refresh, empty):
        with app.test_request_context(
            "/", headers=bearer(token), environ_base={"REMOTE_ADDR": ADDRESS}
        ):
            assert user_key() == f"client:{ADDRESS}"


def expected_account(email: str, secret: str = SECRET) -> str:
    digest = hmac.new(secret.encode(), email.encode(), hashlib.sha256).hexdigest()
    return f"account:{digest[:32]}"


def test_the_account_key_is_an_hmac_of_the_normalised_address_never_the_address() -> None:
    app = make_app()
    with app.test_request_context(
        "/auth/login",
        method="POST",
        json={"email": "  Ada@Example.COM "},
        environ_base={"REMOTE_ADDR": ADDRESS},
    ):
        assert account_key() == expected_account("ada@example.com")
        assert account_client_key() == f"{expected_account('ada@example.com')}:client:{ADDRESS}"
        assert "example" not in account_client_key()


def test_the_account_key_changes_with_the_secret_key() -> None:
    app = make_app()
    app.config["SECRET_KEY"] = "another-secret-key-of-32-bytes!!!"  # pragma: allowlist secret
    with app.test_request_context("/auth/login", method="POST", json={"email": "ada@example.com"}):
        assert account_key() == expected_account(
            "ada@example.com", "another-secret-key-of-32-bytes!!!"  # pragma: allowlist secret
        )


@pytest.mark.parametrize("body", [{}, {"email": "   "}, {"email": 7}, ["ada@example.com"], None])
def test_a_login_body_without_an_address_has_no_account_key(body: Any) -> None:
    app = make_app()
    with app.test_request_context("/auth/login", method="POST", json=body):
        assert account_key() == ""


# --- which requests count ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "exempt"),
    [
        *((path, True) for path in EXEMPT_PATHS),
        ("/healthz/deep", True),
        ("/healthzzz", False),
        ("/auth/login", False),
        ("/docs-but-not", False),
    ],
)
def test_probes_and_the_api_description_are_exempt_by_path(path: str, exempt: bool) -> None:
    app = make_app()
    with app.test_request_context(path):
        assert is_exempt() is exempt


def test_the_limits_table_names_each_routes_keys_and_class() -> None:
    table = route_limits(settings(ratelimit_login="1/minute", ratelimit_hint="2/minute"))

    login = table["auth.login"]
    assert login == RouteLimits(
        {Key.CLIENT: "1/minute", Key.ACCOUNT_CLIENT: LOOSE, Key.ACCOUNT: LOOSE},
        OnStorageDown.CLOSED,
        frozenset({401}),
    )
    assert table["learning.hint"] == RouteLimits({Key.USER: "2/minute"})
    closed = {
        name for name, route in table.items() if route.on_storage_down is OnStorageDown.CLOSED
    }
    assert closed == {"auth.login", "auth.register", "auth.refresh", "auth.change_password"}
    assert {name: set(route.limits) for name, route in table.items()} == {
        "auth.login": {Key.CLIENT, Key.ACCOUNT_CLIENT, Key.ACCOUNT},
        "auth.register": {Key.CLIENT},
        "auth.refresh": {Key.CLIENT},
        "auth.change_password": {Key.USER},
        "learning.hint": {Key.USER},
        "learning.submit_attempt": {Key.USER},
        "jobs.create_generation_job": {Key.USER},
    }


def test_every_request_counts_against_the_default_limit_per_client_across_routes() -> None:
    app = make_app(ratelimit_default="3/minute")
    client = client_at(app)

    answers = [client.get(path) for path in ("/courses", "/healthzzz", "/courses")]
    refused = client.get("/healthzzz")

    assert [a.status_code for a in answers] == [200, 200, 200]
    assert [a.headers["RateLimit-Limit"] for a in answers] == ["3", "3", "3"]
    assert [a.headers["RateLimit-Remaining"] for a in answers] == ["2", "1", "0"]
    assert all(0 <= int(a.headers["RateLimit-Reset"]) <= 60 for a in answers)
    assert not any(name.startswith("X-RateLimit") for a in answers for name in spelled(a))
    assert refused.status_code == 429
    assert refused.mimetype == "application/problem+json"
    assert refused.get_json()["type"].endswith("/rate-limited")
    assert refused.get_json()["detail"] == (
        f"Too many requests: the limit is 3 per 1 minute. "
        f"Retry in {refused.headers['Retry-After']} s."
    )
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["RateLimit-Remaining"] == "0"
    names = {name for a in (*answers, refused) for name in spelled(a)}
    assert set(HEADERS) | {"Retry-After"} <= names  # the IETF draft's spelling
    assert client_at(app, "198.51.100.99").get("/courses").status_code == 200


def test_without_a_default_limit_only_the_routes_own_limits_count() -> None:
    app = make_app(ratelimit_default="", ratelimit_hint="1/minute")
    client = client_at(app)

    plain = [client.get("/courses") for _ in range(3)]

    assert [a.status_code for a in plain] == [200, 200, 200]
    assert not any(name in a.headers for a in plain for name in HEADERS)
    assert client.get("/hint").headers["RateLimit-Limit"] == "1"
    assert client.get("/hint").status_code == 429


def test_exempt_and_unrouted_requests_are_never_counted() -> None:
    app = make_app(ratelimit_default="1/minute")
    client = client_at(app)

    probes = [client.get(path) for path in ("/healthz", "/healthz/deep", "/metrics") * 2]
    missing = [client.get("/nowhere") for _ in range(2)]

    assert {a.status_code for a in probes} == {200}
    assert not any(name in a.headers for a in probes for name in HEADERS)
    assert [a.status_code for a in missing] == [404, 404]
    assert client.get("/healthzzz").status_code == 200  # not a probe: it spends the budget
    assert client.get("/courses").status_code == 429


def test_a_cors_preflight_spends_only_the_default_limit() -> None:
    app = make_app(ratelimit_hint="1/minute", ratelimit_default="5/minute")
    client = client_at(app)

    preflights = [client.options("/hint") for _ in range(2)]

    assert [p.headers["RateLimit-Limit"] for p in preflights] == ["5", "5"]
    assert client.get("/hint").headers["RateLimit-Limit"] == "1"


def test_per_user_routes_count_by_user_and_fall_back_to_the_client() -> None:
    app = make_app(ratelimit_hint="1/minute")
    with app.app_context():
        alice = bearer(create_access_token(identity="alice"))
        bob = bearer(create_access_token(identity="bob"))

    assert client_at(app, "198.51.100.1").get("/hint", headers=alice).status_code == 200
    assert client_at(app, "198.51.100.2").get("/hint", headers=alice).status_code == 429
    assert client_at(app, "198.51.100.1").get("/hint", headers=bob).status_code == 200
    assert client_at(app, "198.51.100.1").get("/hint").status_code == 200  # the address
    assert client_at(app, "198.51.100.1").get("/hint").status_code == 429


@pytest.mark.parametrize(
    ("path", "setting"),
    [
        ("/attempt", "ratelimit_attempt"),
        ("/generation-jobs", "ratelimit_generation"),
        ("/auth/password", "ratelimit_password_change"),
        ("/auth/register", "ratelimit_register"),
        ("/auth/refresh", "ratelimit_refresh"),
    ],
)
def test_each_limited_route_reads_its_own_setting(path: str, setting: str) -> None:
    changes: dict[str, Any] = {setting: "2/minute"}
    client = client_at(make_app(**changes))

    answers = [client.post(path, json={}) for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert [a.headers["RateLimit-Limit"] for a in answers] == ["2", "2", "2"]


def test_logins_count_only_when_they_fail() -> None:
    client = client_at(make_app(ratelimit_login="2/minute"))

    answers = [login(client, status=status) for status in (200, 401, 200, 403, 401)]

    assert [a.status_code for a in answers] == [200, 401, 200, 403, 401]
    assert [a.headers["RateLimit-Remaining"] for a in answers] == ["2", "1", "1", "1", "0"]
    assert login(client, status=200).status_code == 429


def test_failed_logins_count_per_account_and_per_account_and_address() -> None:
    app = make_app(ratelimit_login_account="3/minute", ratelimit_login_account_client="2/minute")
    attacker = client_at(app, "203.0.113.1")

    assert [login(attacker, "Ada@example.com").status_code for _ in range(3)] == [401, 401, 429]
    assert login(attacker, "bob@example.com").status_code == 401
    assert login(client_at(app, "203.0.113.2"), "ada@example.com").status_code == 401
    assert login(client_at(app, "203.0.113.3"), "ada@example.com").status_code == 429
    assert login(client_at(app, "203.0.113.3"), "").status_code == 401  # no account to count


def test_limits_are_off_when_disabled() -> None:
    app = make_app(ratelimit_enabled=False, ratelimit_default="1/minute")

    assert get_limiter(app) is None
    assert [client_at(app).get("/courses").status_code for _ in range(2)] == [200, 200]


def test_the_limiter_is_the_apps_own_and_counts_under_the_projects_prefix() -> None:
    app = make_app()
    limiter = get_limiter(app)
    assert limiter is not None
    with app.app_context():
        assert get_limiter() is limiter
    assert isinstance(limiter.storage, MemoryStorage)

    client_at(app).get("/courses")

    (key,) = limiter.storage.storage
    assert key.startswith(f"LIMITER/mastery/client:{ADDRESS}/global/1000/1/minute/")


# --- the storage cannot be reached ----------------------------------------------------------------


def outage_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == rate_limits.__name__ and r.levelno == logging.WARNING
    ]


def test_with_the_storage_refused_auth_fails_closed_and_the_rest_fails_open(
    closed_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(
        ratelimit_storage_url=f"redis://127.0.0.1:{closed_port}/0",
        ratelimit_storage_retry_seconds=0.0,
    )
    client = client_at(app)
    before = {outcome: unavailable_count(outcome) for outcome in ("open", "closed")}
    caplog.set_level(logging.WARNING, logger=rate_limits.__name__)

    refused = client.post("/auth/register", json={}, headers={"X-Request-ID": "req-register-1"})
    served = client.get("/courses", headers={"X-Request-ID": "req-courses-1"})
    preflight = client.options("/auth/login")

    assert refused.status_code == 503
    assert refused.mimetype == "application/problem+json"
    assert refused.get_json()["type"].endswith("/rate-limit-unavailable")
    assert refused.get_json()["detail"] == (
        "This operation is unavailable while its rate limit cannot be checked; retry shortly."
    )
    assert refused.headers["Retry-After"] == "1"  # never 0, even with no retry interval
    assert "Retry-After" in spelled(refused)  # spelled as RFC 9110 spells it
    assert served.status_code == 200
    assert not any(name in served.headers for name in HEADERS)
    assert preflight.status_code == 200  # a preflight is not the login itself
    assert unavailable_count("closed") - before["closed"] == 1
    assert unavailable_count("open") - before["open"] == 2
    assert outage_warnings(caplog) == [
        "rate-limit storage unavailable (StorageError): failing closed for POST auth.register; "
        "request_id=req-register-1",
        "rate-limit storage unavailable (StorageError): failing open for GET "
        "content.list_courses; request_id=req-courses-1",
        "rate-limit storage unavailable (StorageError): failing open for OPTIONS auth.login; "
        f"request_id={preflight.headers['X-Request-ID']}",
    ]
    assert [getattr(r, "request_id", None) for r in caplog.records][:2] == [
        "req-register-1",
        "req-courses-1",
    ]


@pytest.mark.parametrize(("retry", "header"), [(2.5, "3"), (60.0, "60")])
def test_after_a_failure_the_storage_is_left_alone_for_the_retry_interval(
    closed_port: int, caplog: pytest.LogCaptureFixture, retry: float, header: str
) -> None:
    app = make_app(
        ratelimit_storage_url=f"redis://127.0.0.1:{closed_port}/0",
        ratelimit_storage_retry_seconds=retry,
    )
    client = client_at(app)
    caplog.set_level(logging.WARNING, logger=rate_limits.__name__)
    before = unavailable_count("closed")

    answers = [client.post("/auth/refresh", json={}) for _ in range(3)]

    assert [a.status_code for a in answers] == [503, 503, 503]
    assert {a.headers["Retry-After"] for a in answers} == {header}
    assert unavailable_count("closed") - before == 3
    assert len(outage_warnings(caplog)) == 1  # the first request tried, the others did not


def test_the_retry_interval_starts_at_the_failure(closed_port: int) -> None:
    app = make_app(
        ratelimit_storage_url=f"redis://127.0.0.1:{closed_port}/0",
        ratelimit_storage_retry_seconds=60.0,
    )
    limiter = get_limiter(app)
    assert isinstance(limiter, rate_limits._Limiter)
    assert limiter._storage_down_until == 0.0  # nothing failed yet: the storage is tried

    started = time.monotonic()
    client_at(app).get("/courses")

    assert started + 60.0 <= limiter._storage_down_until <= time.monotonic() + 60.0


def test_a_storage_on_redis_answers_its_window_with_the_hit() -> None:
    redis_app = make_app(ratelimit_storage_url="redis://127.0.0.1:6379/0")
    memory_app = make_app()
    redis_limiter, memory_limiter = get_limiter(redis_app), get_limiter(memory_app)
    assert redis_limiter is not None
    assert memory_limiter is not None

    assert isinstance(redis_limiter.storage, RedisStorage)
    assert type(redis_limiter.limiter).__name__ == "SlidingWindowWithStats"
    assert type(memory_limiter.limiter).__name__ == "SlidingWindowCounterRateLimiter"


def test_the_storage_options_bound_an_outage_to_one_short_attempt() -> None:
    memory = rate_limits._storage_options("memory://")
    remote = rate_limits._storage_options("redis://cache:6379/0")

    assert memory == {"wrap_exceptions": True}
    retry = remote.pop("retry")
    assert remote == {
        "wrap_exceptions": True,
        "socket_connect_timeout": 0.5,
        "socket_timeout": 0.5,
    }
    assert isinstance(retry, Retry)
    assert retry._retries == 1
    assert isinstance(retry._backoff, NoBackoff)


def test_seconds_until_rounds_up_and_never_goes_below_zero() -> None:
    now = time.time()

    assert rate_limits._seconds_until(now + 30.2) == 31
    assert rate_limits._seconds_until(now - 30.0) == 0


def test_a_failed_login_that_cannot_be_counted_keeps_its_answer_and_closes_login(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(ratelimit_storage_retry_seconds=60.0)
    limiter = get_limiter(app)
    assert isinstance(limiter, rate_limits._Limiter)
    hit = limiter.limiter.hit

    def refused_for_accounts(*args: Any, **kwargs: Any) -> bool:
        if any(str(part).startswith("account:") for part in args[1:]):
            raise StorageError(ConnectionError("the counters went away"))
        return bool(hit(*args, **kwargs))

    monkeypatch.setattr(limiter.limiter, "hit", refused_for_accounts)
    client = client_at(app)
    caplog.set_level(logging.WARNING, logger=rate_limits.__name__)
    started = time.monotonic()

    failed = client.post(
        "/auth/login?status=401",
        json={"email": "ada@example.com"},
        headers={"X-Request-ID": "req-login-9"},
    )

    assert failed.status_code == 401
    assert started + 60.0 <= limiter._storage_down_until <= time.monotonic() + 60.0
    assert outage_warnings(caplog) == [
        "rate-limit storage unavailable (StorageError): a failed POST auth.login was not "
        "counted; request_id=req-login-9"
    ]
    assert getattr(caplog.records[0], "request_id", None) == "req-login-9"
    assert login(client, status=200).status_code == 503


# --- the 429 and the headers ----------------------------------------------------------------------


def test_retry_after_is_when_the_window_frees_an_entry_not_a_whole_period() -> None:
    # Memory counters align a day's window to the clock: it frees up before a day has passed.
    client = client_at(make_app(ratelimit_hint="1/day"))
    client.get("/hint")

    refused = client.get("/hint")

    assert refused.status_code == 429
    reset = int(refused.headers["RateLimit-Reset"])
    # The 429 reads the window a moment before its headers do: the same second, or one more.
    assert int(refused.headers["Retry-After"]) in (reset, reset + 1)


@pytest.mark.parametrize(("limit", "header"), [("1/second", "1"), ("5/minute", "60")])
def test_without_a_window_to_read_the_429_says_the_whole_period(limit: str, header: str) -> None:
    app = make_app()
    exceeded = RateLimitExceeded(RuntimeLimit(parse(limit), client_key, None))

    with app.test_request_context("/courses"):  # no limit checked: no window to read
        response = rate_limits._too_many_requests(exceeded)

    assert response.status_code == 429
    assert response.headers["Retry-After"] == header


def test_a_window_that_cannot_be_read_costs_the_headers_not_the_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = make_app(ratelimit_hint="1/minute")
    limiter = get_limiter(app)
    assert limiter is not None
    client = client_at(app)

    def unreadable(*args: Any, **kwargs: Any) -> Any:
        raise StorageError(ConnectionError("the counters went away"))

    monkeypatch.setattr(limiter.limiter, "get_window_stats", unreadable)
    served, refused = client.get("/hint"), client.get("/hint")

    assert served.status_code == 200
    assert not any(name in served.headers for name in HEADERS)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "60"  # the whole window: a safe upper bound
    assert not any(name in refused.headers for name in HEADERS)


def test_a_token_under_another_scheme_is_not_a_user() -> None:
    app = make_app()
    with app.app_context():
        token = create_access_token(identity="user-1")
    with app.test_request_context(
        "/", headers=bearer(token, scheme="Basic"), environ_base={"REMOTE_ADDR": ADDRESS}
    ):
        assert user_key() == f"client:{ADDRESS}"


def test_a_token_with_an_empty_subject_has_no_subject() -> None:
    app = make_app()
    with app.app_context():
        token = create_access_token(identity="")
    with app.test_request_context("/", headers=bearer(token)):
        assert rate_limits._token_subject() is None


def test_a_login_body_that_is_not_json_has_no_account_key() -> None:
    app = make_app()
    with app.test_request_context(
        "/auth/login", method="POST", data="{not json", content_type="application/json"
    ):
        assert account_key() == ""  # the route's own validation answers it


def test_during_an_outage_probes_and_unrouted_requests_are_not_counted_as_decided(
    closed_port: int,
) -> None:
    app = make_app(
        ratelimit_storage_url=f"redis://127.0.0.1:{closed_port}/0",
        ratelimit_storage_retry_seconds=60.0,
    )
    client = client_at(app)
    before = unavailable_count("open")
    assert client.get("/courses").status_code == 200  # fails open, starts the retry interval

    answers = [client.get(path).status_code for path in ("/healthz", "/nowhere", "/metrics")]

    assert answers == [200, 404, 200]
    assert unavailable_count("open") - before == 1  # only /courses needed the limits


class FrozenClock:
    """`time` as rate_limits reads it, with the monotonic clock held at one reading."""

    def __init__(self) -> None:
        self.now = time.monotonic()

    def monotonic(self) -> float:
        return self.now

    @staticmethod
    def time() -> float:
        return time.time()


def test_with_no_retry_interval_the_storage_is_tried_again_at_once(
    closed_port: int, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(
        ratelimit_storage_url=f"redis://127.0.0.1:{closed_port}/0",
        ratelimit_storage_retry_seconds=0.0,
    )
    monkeypatch.setattr(rate_limits, "time", FrozenClock())  # even within one clock reading
    caplog.set_level(logging.WARNING, logger=rate_limits.__name__)
    client = client_at(app)

    answers = [client.get("/courses").status_code for _ in range(2)]

    assert answers == [200, 200]
    assert len(outage_warnings(caplog)) == 2  # each request tried the storage and logged it


def test_flask_limiters_own_config_keys_cannot_turn_its_headers_or_error_swallowing_on(
    closed_port: int,
) -> None:
    own_keys = {"RATELIMIT_HEADERS_ENABLED": True, "RATELIMIT_SWALLOW_ERRORS": True}
    app = make_app(flask_config=own_keys)
    down = make_app(
        flask_config=own_keys,
        ratelimit_storage_url=f"redis://127.0.0.1:{closed_port}/0",
        ratelimit_storage_retry_seconds=0.0,
    )

    served = client_at(app).get("/hint")
    refused = login(client_at(down))

    assert served.status_code == 200
    assert not any(name.startswith("X-RateLimit") for name in spelled(served))
    assert refused.status_code == 503  # still closed: errors reach the per-route decision


def test_without_a_limiter_the_answers_hooks_leave_a_response_alone_and_say_the_period() -> None:
    app = make_app(ratelimit_enabled=False)
    exceeded = RateLimitExceeded(RuntimeLimit(parse("2/minute"), client_key, None))

    with app.test_request_context("/courses"):
        untouched = rate_limits._add_headers(app.response_class("{}"))
        refused = rate_limits._too_many_requests(exceeded)

    assert not any(name in untouched.headers for name in HEADERS)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "60"


def test_the_redis_storage_is_built_with_the_short_timeouts_and_wrapped_errors() -> None:
    app = make_app(ratelimit_storage_url="redis://127.0.0.1:6379/0")  # built, never connected
    limiter = get_limiter(app)
    assert limiter is not None
    storage = limiter.storage
    assert isinstance(storage, RedisStorage)
    connection: Any = storage.storage  # the redis-py client behind limits' narrow protocol

    options = connection.connection_pool.connection_kwargs
    assert storage.wrap_exceptions is True
    assert (options["socket_connect_timeout"], options["socket_timeout"]) == (0.5, 0.5)
    assert options["retry"]._retries == 1


def test_a_login_without_an_address_counts_only_per_client_and_skips_the_account_limits(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = make_app(ratelimit_login_account="2/minute", ratelimit_login_account_client="2/minute")
    client = client_at(app)
    caplog.set_level(logging.DEBUG, logger="flask-limiter")

    answers = [client.post("/auth/login?status=401", json={}).status_code for _ in range(3)]

    assert answers == [401, 401, 401]  # no account: the account limits do not apply
    assert not [r.getMessage() for r in caplog.records if "Skipping limit" in r.getMessage()]
