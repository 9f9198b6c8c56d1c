"""The rate-limit check, spent on purpose and therefore run last.

It spends the throwaway learner's own hint budget (a per-user limit, RATELIMIT_HINT), so no
other client and no other account is slowed down. Every request asks for a hint on an item
that does not exist: limits are checked before the route runs, so each one counts, and none
reaches the AI provider.
"""

from __future__ import annotations

import httpx
import pytest

from tests.smoke.client import describe, expect_problem
from tests.smoke.conftest import Account, random_id

# More than any sensible per-user hint limit, and far below the per-client default limit (which
# the cleanup still needs).
MAX_REQUESTS = 120


@pytest.mark.last
@pytest.mark.check("rate limits: a spent limit answers 429 problem+json with Retry-After")
def test_a_spent_limit_answers_429_with_retry_after(api: httpx.Client, learner: Account) -> None:
    path = f"/sessions/{random_id()}/items/{random_id()}/hint"
    first = api.get(path, headers=learner.headers)
    assert first.status_code == 404, describe(first)
    remaining = first.headers.get("RateLimit-Remaining")
    assert remaining is not None, f"no RateLimit headers: is rate limiting on? {describe(first)}"
    assert int(remaining) < MAX_REQUESTS, f"{remaining} requests left: more than the suite spends"

    statuses = []
    for _ in range(int(remaining) + 1):
        response = api.get(path, headers=learner.headers)
        statuses.append(response.status_code)
        if response.status_code == 429:
            break
    assert statuses[-1] == 429, f"no 429 after {len(statuses)} requests: {statuses}"
    assert set(statuses[:-1]) <= {404}, statuses
    expect_problem(response, 429)
    assert int(response.headers["Retry-After"]) >= 1, response.headers
    assert response.headers.get("RateLimit-Remaining") == "0", response.headers
