"""Rate limits: Flask-Limiter with every route-specific limit in one table, `route_limits()`.

Every request that is not exempt counts against `RATELIMIT_DEFAULT` per client address (one
bucket across all routes). The routes in the table count, in addition, against their own
limits, keyed by the client address (login, register, refresh), by the e-mail address a login
targets (alone, and together with the client address), or by the authenticated user (the
AI-backed routes). All limits are checked in `before_request`, before body validation and
authentication, so malformed or unauthenticated requests count too; login's limits count only
the attempts that fail (401), deducted once the answer is known.

Answers: `429` problem+json with `Retry-After`; `RateLimit-Limit`, `RateLimit-Remaining` and
`RateLimit-Reset` (delta seconds) on every response of a limited route, successes included.

When the counter storage (Redis) cannot be reached, the route's class decides: login, register
and refresh fail **closed** (`503` with `Retry-After`: their brute-force protection is gone);
every other route fails **open** (the request proceeds unlimited). Both outcomes are counted
(`mastery_ratelimit_storage_unavailable_total{outcome}`) and logged at WARNING with the request
id. After a failure the storage is left alone for `RATELIMIT_STORAGE_RETRY_SECONDS`, so an
outage does not add a connection timeout to every request. docs/security.md ("Rate limits")
has the reasoning.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

import redis
from flask import Flask, Response, current_app, g, has_request_context, request
from flask_jwt_extended import decode_token
from flask_limiter import ApplicationLimit, Limit, Limiter, RateLimitExceeded
from limits.errors import StorageError
from limits.storage import RedisStorage
from redis.backoff import NoBackoff
from redis.retry import Retry

from app.auth.service import normalise_email
from app.config import Settings
from app.errors import ProblemError, problem_response
from app.observability import metrics
from app.observability.request_id import current_request_id
from app.security.ratelimit_window import SlidingWindowWithStats

logger = logging.getLogger(__name__)

EXTENSION_KEY = "mastery.limiter"
KEY_PREFIX = "mastery"
# Sliding-window counters: a fixed window lets a client spend a limit twice around a boundary.
STRATEGY = "sliding-window-counter"
# An unreachable Redis must cost a request at most this long before the fail-open/closed choice.
STORAGE_TIMEOUT_SECONDS = 0.5
# Probes, scrapes and the API description: never limited (DESIGN.md fixes these paths).
EXEMPT_PATHS = ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs")
STORAGE_ERRORS: tuple[type[Exception], ...] = (StorageError, redis.RedisError)


class Key(Enum):
    """What a limit counts by."""

    CLIENT = "client"  # the client address (after ProxyFix); IPv6 by /64
    USER = "user"  # the user of a valid access token; the client address without one
    ACCOUNT = "account"  # the e-mail address a login targets (keyed by an HMAC of it)
    ACCOUNT_CLIENT = "account-client"  # that e-mail address from one client address


class OnStorageDown(Enum):
    """What a route does when the counters cannot be read."""

    CLOSED = "closed"  # refuse with 503: the limit is a security control
    OPEN = "open"  # proceed unlimited: availability matters more than the limit


@dataclass(frozen=True)
class RouteLimits:
    limits: Mapping[Key, str]
    on_storage_down: OnStorageDown = OnStorageDown.OPEN
    # Statuses that count against the limits; empty = every request counts. Counting only
    # failures lets the owner of an account log in however often others fail at it.
    counted_statuses: frozenset[int] = frozenset()


def route_limits(settings: Settings) -> dict[str, RouteLimits]:
    """Every route-specific limit, by endpoint. Routes not listed get only RATELIMIT_DEFAULT
    and fail open."""
    closed = OnStorageDown.CLOSED
    return {
        # Failed logins only (a success needs the password), per client, per account from one
        # client (an attacker's failures never block the owner's address) and per account from
        # all of them (the bound on guesses at one account, however many addresses guess).
        "auth.login": RouteLimits(
            {
                Key.CLIENT: settings.ratelimit_login,
                Key.ACCOUNT_CLIENT: settings.ratelimit_login_account_client,
                Key.ACCOUNT: settings.ratelimit_login_account,
            },
            closed,
            counted_statuses=frozenset({401}),
        ),
        "auth.register": RouteLimits({Key.CLIENT: settings.ratelimit_register}, closed),
        "auth.refresh": RouteLimits({Key.CLIENT: settings.ratelimit_refresh}, closed),
        # Guessing the current password of a stolen session: per user, and closed like login.
        "auth.change_password": RouteLimits({Key.USER: settings.ratelimit_password_change}, closed),
        "learning.hint": RouteLimits({Key.USER: settings.ratelimit_hint}),
        "learning.submit_attempt": RouteLimits({Key.USER: settings.ratelimit_attempt}),
        "jobs.create_generation_job": RouteLimits({Key.USER: settings.ratelimit_generation}),
    }


# --- the storage-unavailable counter ----------------------------------------------------------


def _count_storage_unavailable(outcome: OnStorageDown) -> None:
    """One request decided without the counter storage: `closed` (refused with 503) or `open`
    (let through), counted as `mastery_ratelimit_storage_unavailable_total{outcome}`."""
    metrics.record_ratelimit_storage_unavailable(outcome.value)


# --- keys --------------------------------------------------------------------------------------


def client_key() -> str:
    """The client address; an IPv6 client is keyed by its /64, which one subscriber holds."""
    address = request.remote_addr or ""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return f"client:{address or 'unknown'}"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return f"client:{ip.ipv4_mapped}"
        return f"client:{ipaddress.IPv6Network((ip, 64), strict=False)}"
    return f"client:{ip}"


def _token_subject() -> str | None:
    """The user id of a valid access token in the request, else None. A missing, malformed,
    expired or forged token is the route's business (it answers 401), never an error here."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    try:
        claims = decode_token(token)
    except Exception:  # noqa: BLE001 - every way a token can be bad means "not a user"
        return None
    subject = claims.get("sub")
    if claims.get("type") != "access" or not isinstance(subject, str) or not subject:
        return None
    return subject


def user_key() -> str:
    """The authenticated user (verified signature: a forged `sub` cannot spend someone else's
    budget); requests without a valid token count against their client address instead."""
    key: str | None = g.get("_ratelimit_user_key")
    if key is None:
        subject = _token_subject()
        key = f"user:{subject}" if subject else client_key()
        g._ratelimit_user_key = key
    return key


def _login_account() -> str | None:
    body = request.get_json(silent=True)
    email = body.get("email") if isinstance(body, dict) else None
    if not isinstance(email, str) or not email.strip():
        return None
    # An HMAC, not the address: Redis keys must not be a list of e-mail addresses.
    secret = str(current_app.config["SECRET_KEY"]).encode()
    digest = hmac.new(secret, normalise_email(email).encode(), hashlib.sha256).hexdigest()
    return f"account:{digest[:32]}"


def account_key() -> str:
    # Only called when `_no_login_account` is false: a body without an e-mail is left to the
    # route's validation (422) and to the per-client limit.
    return _login_account() or ""


def account_client_key() -> str:
    return f"{account_key()}:{client_key()}"


def _no_login_account() -> bool:
    return _login_account() is None


# --- the limiter -------------------------------------------------------------------------------


def is_exempt() -> bool:
    path = request.path
    return any(path == prefix or path.startswith(prefix + "/") for prefix in EXEMPT_PATHS)


def _route_limit(
    table: Mapping[str, RouteLimits], key: Key, *, conditional: bool = False
) -> Callable[[], str]:
    """The limit string of `key` for the current request's route ("" = none): of the routes
    that count every request, or (`conditional`) of those that count some statuses only."""

    def provider() -> str:
        # CORS preflights carry no credentials and are not the operation itself.
        if not has_request_context() or request.method == "OPTIONS":
            return ""
        route = table.get(request.endpoint or "")
        if route is None or bool(route.counted_statuses) != conditional:
            return ""
        return route.limits.get(key, "")

    return provider


def _counts(table: Mapping[str, RouteLimits]) -> Callable[[Response], bool]:
    """`deduct_when` of the conditional limits: does this answer count against them?"""

    def counts(response: Response) -> bool:
        route = table.get(request.endpoint or "")
        return route is not None and response.status_code in route.counted_statuses

    return counts


class _Limiter(Limiter):
    """Flask-Limiter, answering for an unreachable storage per route class.

    Flask-Limiter's own options apply one answer to every route: `swallow_errors` fails open
    everywhere (login too) and `in_memory_fallback` counts per process, which a fleet of
    workers multiplies. The choice is made here instead, around the library's check.
    """

    def __init__(
        self, table: Mapping[str, RouteLimits], retry_seconds: float, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self._table = table
        self._retry_seconds = retry_seconds
        self._storage_down_until = 0.0

    def init_app(self, app: Flask) -> None:
        super().init_app(app)
        # On Redis, one round trip per limit instead of two: the hit answers the window the
        # RateLimit-* headers need (app/security/ratelimit_window.py).
        if isinstance(self._storage, RedisStorage) and STRATEGY == "sliding-window-counter":
            self._limiter = SlidingWindowWithStats(self._storage)

    def _check_request_limit(
        self, callable_name: str | None = None, in_middleware: bool = True
    ) -> None:
        if request.endpoint is None or is_exempt():
            return  # unrouted (404/405) and exempt requests are never limited
        if time.monotonic() < self._storage_down_until:
            self._storage_unavailable(None)
            return
        try:
            super()._check_request_limit(callable_name, in_middleware)
        except STORAGE_ERRORS as error:
            self._storage_down_until = time.monotonic() + self._retry_seconds
            self._storage_unavailable(error)

    # Flask-Limiter's private hook (`Limiter.__check_conditional_deductions`, name-mangled) that
    # deducts `deduct_when` limits after the response: a storage failure there would turn an
    # answered request into a 500. The answer stands; that one deduction is lost, and the
    # storage is left alone for the retry interval (the closed routes answer 503 meanwhile).
    def _Limiter__check_conditional_deductions(self, response: Response) -> None:
        try:
            super()._Limiter__check_conditional_deductions(response)  # type: ignore[misc]  # a name-mangled private method mypy cannot see
        except STORAGE_ERRORS as error:
            self._storage_down_until = time.monotonic() + self._retry_seconds
            request_id = current_request_id()
            logger.warning(
                "rate-limit storage unavailable (%s): a failed %s %s was not counted; "
                "request_id=%s",
                type(error).__name__,
                request.method,
                request.endpoint,
                request_id,
                extra={"request_id": request_id},
            )

    def _storage_unavailable(self, error: Exception | None) -> None:
        route = self._table.get(request.endpoint or "")
        outcome = OnStorageDown.OPEN
        if route is not None and request.method != "OPTIONS":
            outcome = route.on_storage_down
        _count_storage_unavailable(outcome)
        if error is not None:  # once per retry interval, not once per request of an outage
            request_id = current_request_id()
            logger.warning(
                "rate-limit storage unavailable (%s): failing %s for %s %s; request_id=%s",
                type(error).__name__,
                outcome.value,
                request.method,
                request.endpoint,
                request_id,
                extra={"request_id": request_id},
            )
        if outcome is OnStorageDown.CLOSED:
            raise ProblemError(
                "This operation is unavailable while its rate limit cannot be checked; "
                "retry shortly.",
                status=503,
                slug="rate-limit-unavailable",
                headers={"Retry-After": str(max(1, math.ceil(self._retry_seconds)))},
            )


def get_limiter(app: Flask | None = None) -> Limiter | None:
    """The application's limiter; None when RATELIMIT_ENABLED is off."""
    limiter: Limiter | None = (app or current_app).extensions.get(EXTENSION_KEY)
    return limiter


def _seconds_until(timestamp: float) -> int:
    return max(0, math.ceil(timestamp - time.time()))


def _too_many_requests(error: RateLimitExceeded) -> Response:
    limiter = get_limiter()
    current = limiter.current_limit if limiter is not None else None
    retry_after = int(error.limit.limit.get_expiry())
    if current is not None:
        with contextlib.suppress(*STORAGE_ERRORS):  # else the whole window: a safe upper bound
            retry_after = _seconds_until(current.window.reset_time)
    retry_after = max(1, retry_after)
    return problem_response(
        429,
        f"Too many requests: the limit is {error.limit.limit}. Retry in {retry_after} s.",
        slug="rate-limited",
        headers={"Retry-After": str(retry_after)},
    )


def _add_headers(response: Response) -> Response:
    """RateLimit-* headers of the limit Flask-Limiter reports as the request's current one: the
    route's own limit when it has one, else the shared default (not necessarily the limit
    nearest exhaustion; the shipped route limits are all tighter than the default)."""
    limiter = get_limiter()
    current = limiter.current_limit if limiter is not None else None
    if current is None:
        return response
    try:
        reset_time, remaining = current.window
    except STORAGE_ERRORS:
        return response  # the request was decided; missing headers beat a 500
    response.headers["RateLimit-Limit"] = str(current.limit.amount)
    response.headers["RateLimit-Remaining"] = str(max(0, remaining))
    response.headers["RateLimit-Reset"] = str(_seconds_until(reset_time))
    return response


def _storage_options(uri: str) -> dict[str, object]:
    options: dict[str, object] = {"wrap_exceptions": True}
    if not uri.startswith("memory://"):
        options.update(
            socket_connect_timeout=STORAGE_TIMEOUT_SECONDS,
            socket_timeout=STORAGE_TIMEOUT_SECONDS,
            # redis-py retries 10 times with backoff by default: seconds per request in an outage.
            retry=Retry(NoBackoff(), 1),
        )
    return options


def init_app(app: Flask, settings: Settings) -> None:
    """Limit every non-exempt route; a no-op when RATELIMIT_ENABLED is off."""
    if not settings.ratelimit_enabled:
        return
    table = route_limits(settings)
    counts = _counts(table)
    # Flask-Limiter's typed `storage_options` admits no floats; the config key takes the same dict.
    app.config["RATELIMIT_STORAGE_OPTIONS"] = _storage_options(settings.ratelimit_storage)
    application_limits = (
        [ApplicationLimit(settings.ratelimit_default, key_function=client_key)]
        if settings.ratelimit_default
        else []
    )
    limiter = _Limiter(
        table,
        settings.ratelimit_storage_retry_seconds,
        key_func=client_key,
        application_limits=application_limits,
        # Per-route limits ride on Flask-Limiter's "default limits" (checked in before_request,
        # scoped per endpoint) with providers that read `table` for the current endpoint.
        default_limits=[
            Limit(_route_limit(table, Key.CLIENT), key_function=client_key),
            Limit(_route_limit(table, Key.USER), key_function=user_key),
            # Conditional limits: checked before the request, deducted after it when its answer
            # is one the route counts. Requests in flight at once all pass the check, so the
            # bound can be exceeded by the number of requests the workers serve concurrently.
            Limit(
                _route_limit(table, Key.CLIENT, conditional=True),
                key_function=client_key,
                deduct_when=counts,
            ),
            Limit(
                _route_limit(table, Key.ACCOUNT_CLIENT, conditional=True),
                key_function=account_client_key,
                exempt_when=_no_login_account,
                deduct_when=counts,
            ),
            Limit(
                _route_limit(table, Key.ACCOUNT, conditional=True),
                key_function=account_key,
                exempt_when=_no_login_account,
                deduct_when=counts,
            ),
        ],
        strategy=STRATEGY,
        storage_uri=settings.ratelimit_storage,
        key_prefix=KEY_PREFIX,
        headers_enabled=False,  # written by _add_headers: IETF names, delta-seconds reset
        swallow_errors=False,  # storage errors reach _Limiter, which decides per route
    )
    limiter.request_filter(is_exempt)
    # Registered before the limiter's own hooks, so it runs after them (Flask runs
    # after_request functions in reverse order).
    app.after_request(_add_headers)
    limiter.init_app(app)
    app.extensions[EXTENSION_KEY] = limiter
    app.register_error_handler(RateLimitExceeded, _too_many_requests)
