"""Load shapes: how many simulated users run, second by second. One LoadTestShape per shape.

| shape  | class         | what it answers                                  | length | users         |
|--------|---------------|--------------------------------------------------|--------|---------------|
| smoke  | `SmokeShape`  | does the hot path work and stay fast? (the gate) | 60 s   | 50            |
| steady | `SteadyShape` | latency and CPU per request at the target load   | 120 s  | 50            |
| ramp   | `RampShape`   | where latency bends as users grow                | 150 s  | 10 → 100      |
| spike  | `SpikeShape`  | does a sudden burst recover without errors?      | 90 s   | 20 → 150 → 20 |
| soak   | `SoakShape`   | slow leaks (memory, connections) over time       | 240 s  | 40            |

load/locustfile.py decides which of them Locust sees: the one named by `--shape NAME` (or
`LOAD_SHAPE=NAME`, which the runner sets), all of them with the web UI's `--class-picker`, and
none otherwise, so plain `locust -f load/locustfile.py` is user-controlled (`-u/-r/-t`, the web
UI's fields).

The full profile (`nox -s load -- --profile full`) runs steady, ramp, spike and soak in turn
(10 minutes of load, about 12 with start-up and seeding). The load stack adds its baseline
users (LOAD_BASELINE_USERS) on top of these counts, so "50 users" means 50 simulated platform
users.
"""

from __future__ import annotations

from typing import ClassVar

from locust import LoadTestShape

from load.stages import STAGES, extra_users, users_at


class StagedShape(LoadTestShape):
    """The stages of `name` (load/stages.py), plus the load stack's baseline users."""

    abstract: ClassVar[bool] = True  # Locust offers only the concrete shapes below
    name: ClassVar[str]

    def __init__(self) -> None:
        super().__init__()
        self.stages = STAGES[self.name]
        self.extra = extra_users()

    def tick(self) -> tuple[int, float] | None:
        current = users_at(self.stages, self.get_run_time())
        if current is None:
            return None
        users, rate = current
        return users + self.extra, rate + self.extra


class SmokeShape(StagedShape):
    """smoke: 50 users for 60 s, the merge gate."""

    name = "smoke"


class SteadyShape(StagedShape):
    """steady: 50 users for 120 s, latency and CPU at the target load."""

    name = "steady"


class RampShape(StagedShape):
    """ramp: 10 → 100 users over 150 s, where latency bends."""

    name = "ramp"


class SpikeShape(StagedShape):
    """spike: 20 → 150 → 20 users over 90 s, a burst and the recovery."""

    name = "spike"


class SoakShape(StagedShape):
    """soak: 40 users for 240 s, slow leaks."""

    name = "soak"


SHAPES: dict[str, type[StagedShape]] = {
    shape.name: shape for shape in (SmokeShape, SteadyShape, RampShape, SpikeShape, SoakShape)
}
