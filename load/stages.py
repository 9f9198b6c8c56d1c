"""The stages of every load shape, as plain data (no Locust import: the runner and the unit
tests read them without Locust's gevent monkey-patching). load/shapes.py turns them into one
LoadTestShape class per shape; the table of what each shape is for is there.
"""

from __future__ import annotations

import os

Stage = tuple[float, int, float]  # (until second, users, spawn rate per second)

STAGES: dict[str, list[Stage]] = {
    "smoke": [(10, 50, 10), (60, 50, 10)],
    "steady": [(15, 50, 10), (120, 50, 10)],
    "ramp": [(30, 10, 5), (60, 25, 5), (90, 50, 5), (120, 75, 5), (150, 100, 5)],
    "spike": [(20, 20, 10), (50, 150, 50), (90, 20, 50)],
    "soak": [(20, 40, 5), (240, 40, 5)],
}
FULL_PROFILE = ("steady", "ramp", "spike", "soak")


def duration(name: str) -> float:
    return STAGES[name][-1][0]


def extra_users() -> int:
    """The baseline users the load stack runs beside the platform's (0 against a host)."""
    if not os.environ.get("LOAD_BASELINE_HOST"):
        return 0
    return int(os.environ.get("LOAD_BASELINE_USERS", "4"))


def users_at(stages: list[Stage], elapsed: float) -> tuple[int, float] | None:
    """(users, spawn rate) at `elapsed` seconds, or None when the shape is over."""
    for until, users, rate in stages:
        if elapsed < until:
            return users, rate
    return None
