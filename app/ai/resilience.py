"""Retry timing and the circuit breaker used by network providers.

Both take their clock, sleep and randomness from the caller, so tests never really wait.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Literal

Clock = Callable[[], float]
Sleep = Callable[[float], None]
CircuitState = Literal["closed", "open", "half_open"]


@dataclass(frozen=True)
class RetryPolicy:
    """At most `max_attempts` tries; exponential backoff with up to `jitter` extra (a share)."""

    max_attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 8.0
    jitter: float = 0.5
    max_retry_after: float = 30.0

    def backoff(self, retry: int, rng: random.Random) -> float:
        """Delay before retry number `retry` (1 = the first retry)."""
        delay = min(self.max_delay, self.base_delay * 2.0 ** (retry - 1))
        return delay * (1 + self.jitter * rng.random())

    def delay(self, retry: int, rng: random.Random, retry_after: float | None) -> float:
        """`Retry-After` when the server sent one (capped), otherwise the backoff."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        return self.backoff(retry, rng)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a `Retry-After` header: delay-seconds or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - now, 0.0)


@dataclass
class CircuitBreaker:
    """Opens after `failure_threshold` consecutive failures; after `reset_timeout` seconds one
    probe call is let through (half-open): its success closes the circuit, its failure reopens
    it for another `reset_timeout`."""

    failure_threshold: int = 5
    reset_timeout: float = 30.0
    clock: Clock = field(default=time.monotonic, repr=False)
    failures: int = 0
    opened_at: float | None = None
    _state: CircuitState = "closed"

    @property
    def state(self) -> CircuitState:
        if self._state == "open" and self._cooled_down():
            return "half_open"
        return self._state

    def allow(self) -> bool:
        """May a call go out now? Moving to half-open admits exactly one probe."""
        if self._state == "closed":
            return True
        if self._state == "open" and self._cooled_down():
            self._state = "half_open"
            return True
        return False

    def record_success(self) -> None:
        self.failures = 0
        self.opened_at = None
        self._state = "closed"

    def record_failure(self) -> None:
        self.failures += 1
        if self._state == "half_open" or self.failures >= self.failure_threshold:
            self._state = "open"
            self.opened_at = self.clock()

    def _cooled_down(self) -> bool:
        return self.opened_at is not None and self.clock() - self.opened_at >= self.reset_timeout
