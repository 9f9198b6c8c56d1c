"""Load shapes: how many simulated users run, second by second. `LOAD_SHAPE` picks one.

| shape  | what it answers                                  | length | users         |
|--------|--------------------------------------------------|--------|---------------|
| smoke  | does the hot path work and stay fast? (the gate) | 60 s   | 50            |
| steady | latency and CPU per request at the target load   | 120 s  | 50            |
| ramp   | where latency bends as users grow                | 150 s  | 10 → 100      |
| spike  | does a sudden burst recover without errors?      | 90 s   | 20 → 150 → 20 |
| soak   | slow leaks (memory, connections) over time       | 240 s  | 40            |

The full profile (`nox -s load -- --profile full`) runs steady, ramp, spike and soak in turn
(10 minutes of load, about 12 with start-up and seeding). The load stack adds its baseline users (LOAD_BASELINE_USERS)
on top of these counts, so "50 users" means 50 simulated platform users.
"""

from __future__ import annotations

import os

from locust import LoadTestShape

from load.stages import STAGES, extra_users, users_at


class StagedShape(LoadTestShape):
    """The stages of LOAD_SHAPE (default: smoke)."""

    def __init__(self) -> None:
        super().__init__()
        name = os.environ.get("LOAD_SHAPE", "smoke")
        if name not in STAGES:
            raise ValueError(f"LOAD_SHAPE={name!r}: choose one of {', '.join(STAGES)}")
        self.stages = STAGES[name]
        self.extra = extra_users()

    def tick(self) -> tuple[int, float] | None:
        current = users_at(self.stages, self.get_run_time())
        if current is None:
            return None
        users, rate = current
        return users + self.extra, rate + self.extra
