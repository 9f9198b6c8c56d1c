"""A Redis database of one test process's own, on a server other runs may share.

Every test process (each xdist worker, or the one process of `-n 0`) claims one logical
database (1 to 15; 0 is left to whoever else uses the server) and flushes only that one. A claim
is a key inside the database, `mastery-test:claim`, set with NX semantics and a TTL that a
daemon thread keeps refreshing, so two runs against one server, whether two developers or two CI
jobs, never share a database, and a run that died frees its databases when its claims expire.

A database is claimable when it is empty, or when it carries this harness's marker key
(`mastery-test:owned`) but no live claim: leftovers of a dead run, which the claim flushes.
A database with anything else in it (a developer's data) is never claimed, so never flushed.
Each step runs as one Lua script: checking and taking a claim, or flushing only while the claim
is still this process's, is atomic.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from dataclasses import dataclass, field

import redis

CLAIM_KEY = "mastery-test:claim"
MARKER_KEY = "mastery-test:owned"
TTL_SECONDS = 60
REFRESH_SECONDS = 10

# KEYS: claim, marker. ARGV: owner, TTL in ms. 1 when this call took the database.
_CLAIM = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if redis.call('DBSIZE') > 0 and redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
redis.call('FLUSHDB')
redis.call('SET', KEYS[2], ARGV[1])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""
# Empties the database but keeps it claimed; 0 (and nothing flushed) when the claim is not ours.
_FLUSH = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('FLUSHDB')
redis.call('SET', KEYS[2], ARGV[1])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""
_REFRESH = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""
# Leaves the database empty, so claimable by anyone.
_RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('FLUSHDB')
return 1
"""


class NoFreeDatabase(RuntimeError):
    pass


class ClaimLost(RuntimeError):
    pass


def server_url(url: str) -> str:
    """`redis://host:port` of a Redis URL, without a database number."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


def database_count(client: redis.Redis) -> int:
    """The server's number of logical databases (16 when CONFIG is not allowed)."""
    try:
        answer = client.config_get("databases")
        return int(answer.get("databases") or 16)
    except redis.ResponseError:
        return 16


@dataclass
class Claim:
    """This process's database on the server at `server`; `release()` gives it back."""

    server: str
    database: int
    owner: str
    _client: redis.Redis = field(repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    lost: bool = False

    @property
    def url(self) -> str:
        return f"{self.server}/{self.database}"

    def _run(self, script: str, *args: str | int) -> int:
        return int(self._client.eval(script, 2, CLAIM_KEY, MARKER_KEY, self.owner, *args))

    def flush(self) -> None:
        """Empty the database, which stays claimed; ClaimLost when it is no longer ours."""
        if not self._run(_FLUSH, TTL_SECONDS * 1000):
            self.lost = True
            raise ClaimLost(
                f"Redis database {self.database} on {self.server} is no longer claimed by this "
                "process (its claim expired): not flushing a database another run may hold"
            )

    def refresh(self) -> bool:
        """Extend the claim's TTL; False (and `lost`) when it is no longer ours."""
        kept = bool(self._run(_REFRESH, TTL_SECONDS * 1000))
        self.lost = self.lost or not kept
        return kept

    def keep_alive(self, every: float = REFRESH_SECONDS) -> None:
        """Refresh the claim from a daemon thread until `release()`."""

        def loop() -> None:
            while not self._stop.wait(every):
                try:
                    if not self.refresh():
                        return
                except redis.RedisError:
                    continue  # the server is busy or restarting; the TTL leaves time to retry

        self._thread = threading.Thread(target=loop, name="redis-claim", daemon=True)
        self._thread.start()

    def release(self) -> None:
        """Stop refreshing, flush the database if it is still ours, and close the connection."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self._run(_RELEASE)
        except redis.RedisError:
            pass  # a throwaway server may already be gone; an unreleased claim expires
        finally:
            self._client.close()


def owner_token() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def claim_database(url: str, owner: str | None = None) -> Claim:
    """Claim the first free database (1 upwards) on the server of `url`."""
    server = server_url(url)
    owner = owner or owner_token()
    probe = redis.Redis.from_url(f"{server}/0")
    try:
        count = database_count(probe)
    finally:
        probe.close()
    for number in range(1, count):
        client = redis.Redis.from_url(f"{server}/{number}")
        took = client.eval(_CLAIM, 2, CLAIM_KEY, MARKER_KEY, owner, TTL_SECONDS * 1000)
        if took:
            return Claim(server, number, owner, client)
        client.close()
    raise NoFreeDatabase(
        f"every Redis database 1-{count - 1} on {server} is claimed by another test process or "
        "holds data that is not the test harness's; stop a run, or point TEST_REDIS_URL at "
        "another server (or install redis-server: each run then starts its own)"
    )
