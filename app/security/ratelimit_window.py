"""A sliding-window counter whose hit also reports the window, in one Redis round trip.

Flask-Limiter checks a request with the strategy's `hit` and then, for the RateLimit-*
headers, asks `get_window_stats`, which is a second round trip to Redis on every request. This
strategy's hit runs one script that takes the entry and answers the window's counts as well;
the stats are kept for the rest of the request (in its WSGI environ), so the headers cost
nothing.

Counting is the `limits` library's sliding window counter, unchanged: the same keys, the same
shift of an expired window, the same weighting of the previous window (`_SCRIPT` below is that
algorithm, answering the counts too). Any other caller still gets the library's own
`get_window_stats` from Redis.
"""

from __future__ import annotations

import math
import time
from typing import Any

from flask import has_request_context, request
from limits import RateLimitItem
from limits.errors import StorageError
from limits.storage import RedisStorage
from limits.strategies import SlidingWindowCounterRateLimiter
from limits.util import WindowStats

# Take `cost` entries of a sliding-window counter if the limit allows, and answer the window.
# KEYS[1]: the previous window's counter, KEYS[2]: the current window's. ARGV: limit, expiry in
# seconds, cost. Times are milliseconds inside the script. Answers {acquired (1/0), previous
# count, previous TTL, current count, current TTL}, the counts after this request.
_SCRIPT = b"""
local limit = tonumber(ARGV[1])
local expiry = tonumber(ARGV[2]) * 1000
local cost = tonumber(ARGV[3])

-- A current window older than one expiry becomes the previous window; a new one starts.
local current_ttl = tonumber(redis.call('pttl', KEYS[2]))
if current_ttl > 0 and current_ttl < expiry then
    redis.call('rename', KEYS[2], KEYS[1])
    redis.call('set', KEYS[2], 0, 'PX', current_ttl + expiry)
end

local previous_count = tonumber(redis.call('get', KEYS[1])) or 0
local previous_ttl = math.max(tonumber(redis.call('pttl', KEYS[1])), 0)
local current_count = tonumber(redis.call('get', KEYS[2])) or 0
current_ttl = math.max(tonumber(redis.call('pttl', KEYS[2])), 0)

local weighted = math.floor(previous_count * previous_ttl / expiry) + current_count
if cost > limit or weighted + cost > limit then
    return {0, previous_count, previous_ttl, current_count, current_ttl}
end

if redis.call('exists', KEYS[2]) == 1 then
    current_count = redis.call('incrby', KEYS[2], cost)
else
    redis.call('set', KEYS[2], cost, 'PX', expiry * 2)
    current_count = cost
    current_ttl = expiry * 2
end
return {1, previous_count, previous_ttl, current_count, current_ttl}
"""
_CACHE = "mastery.ratelimit_windows"


def window_stats(
    item: RateLimitItem,
    previous_count: int,
    previous_ttl: float,
    current_count: int,
    current_ttl: float,
    now: float,
) -> WindowStats:
    """(reset time, remaining) of a sliding window from its counts (TTLs in seconds): the
    library's `SlidingWindowCounterRateLimiter.get_window_stats` arithmetic."""
    expiry = item.get_expiry()
    weighted = previous_count * previous_ttl / expiry + current_count
    remaining = max(0, item.amount - math.floor(weighted))
    if not (previous_count or current_count):
        return WindowStats(now, remaining)
    # A remainder of exactly 0 is a whole period away, not now: the library reads its TTLs a
    # moment after the hit and never sees a fresh counter's exact 2 x expiry; this script does.
    previous_reset_in = (
        previous_ttl % (expiry / previous_count) or expiry / previous_count
        if previous_count
        else math.inf
    )
    current_reset_in = (current_ttl % expiry or expiry) if current_count else math.inf
    return WindowStats(now + min(previous_reset_in, current_reset_in), remaining)


class SlidingWindowWithStats(SlidingWindowCounterRateLimiter):
    """`sliding-window-counter` on Redis, with the window's stats from the hit itself."""

    def __init__(self, storage: RedisStorage) -> None:
        super().__init__(storage)
        self._redis = storage
        # redis-py's Script sends EVALSHA and loads the script again after a Redis restart.
        self._acquire = storage.get_connection().register_script(_SCRIPT)

    def hit(self, item: RateLimitItem, *identifiers: str, cost: int = 1) -> bool:
        key = item.key_for(*identifiers)
        # The library's window keys (its storage names them), so both strategies share counts.
        current = self._redis._current_window_key(key)
        previous = self._redis._previous_window_key(key)
        keys = [self._redis.prefixed_key(previous), self._redis.prefixed_key(current)]
        try:
            answer: list[Any] = self._acquire(keys, [item.amount, item.get_expiry(), cost])
        except self._redis.base_exceptions as error:  # as the library's own calls report it
            raise StorageError(error) from error
        acquired, previous_count, previous_ms, current_count, current_ms = answer
        if has_request_context():
            stats = window_stats(
                item,
                int(previous_count),
                int(previous_ms) / 1000,
                int(current_count),
                int(current_ms) / 1000,
                time.time(),
            )
            request.environ.setdefault(_CACHE, {})[key] = stats
        return bool(acquired)

    def get_window_stats(self, item: RateLimitItem, *identifiers: str) -> WindowStats:
        if has_request_context():
            stats: WindowStats | None = request.environ.get(_CACHE, {}).get(
                item.key_for(*identifiers)
            )
            if stats is not None:
                return stats
        return super().get_window_stats(item, *identifiers)
