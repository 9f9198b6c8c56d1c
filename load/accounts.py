"""Which seeded account each simulated user logs in as (docs/load-testing.md "Distributed").

Plain data, no Locust import (the unit tests use it without gevent's monkey-patching):
load/scenarios.py asks the pool of its role for an account when a user starts and gives it
back when the user stops.

Every Locust process that runs users (the one process of a plain run, each worker of a
distributed one) owns a contiguous share of each role's seeded accounts: worker `i` of `n`
takes accounts `[i * P // n, (i + 1) * P // n)` of a pool of `P`. The shares never overlap,
so no two users anywhere in the run log in as the same person, whatever the role's pool size.
A process that needs more accounts of a role than its share holds fails loudly
(`AccountsExhausted`, naming the seed option to raise) instead of sharing an account.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

# How to seed more accounts of each role (app/ops/load_data.py) and tell Locust about them.
SEED_HINTS = {
    "learner": "`flask --app app seed load --learners N`, then LOAD_LEARNERS=N",
    "instructor": "`flask --app app seed load --courses N` (one instructor per course), then"
    " LOAD_INSTRUCTORS=N",
    "admin": "`flask --app app seed load --admins N`, then LOAD_ADMINS=N",
}


class AccountsExhausted(RuntimeError):
    """This process has no free account of a role left in its share."""


@dataclass(frozen=True)
class Partition:
    """This process's place among the processes that run users: worker `index` of `count`."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"a run has at least one worker, not {self.count}")
        if not 0 <= self.index < self.count:
            raise AccountsExhausted(
                f"worker index {self.index} is outside the {self.count} worker(s) the test"
                " started with: a worker that joins a running test has no accounts of its own;"
                " stop the test and start it again with every worker connected"
            )

    def share(self, population: int) -> range:
        """The account numbers of a pool of `population` that belong to this worker."""
        return range(
            population * self.index // self.count, population * (self.index + 1) // self.count
        )


SINGLE = Partition(0, 1)


class AccountPool:
    """The free accounts of one role in this worker's share; the lowest free one first, so a
    run uses the same accounts every time and a stopped user's account is reused."""

    def __init__(self, role: str, population: int, partition: Partition = SINGLE) -> None:
        self.role = role
        self.population = population
        self.partition = partition
        self.accounts = partition.share(population)
        self._free = list(self.accounts)  # ascending: already a heap
        self._held: set[int] = set()

    def acquire(self) -> int:
        if not self._free:
            raise AccountsExhausted(self._exhausted())
        number = heapq.heappop(self._free)
        self._held.add(number)
        return number

    def release(self, number: int) -> None:
        if number in self._held:
            self._held.remove(number)
            heapq.heappush(self._free, number)

    @property
    def in_use(self) -> int:
        return len(self._held)

    def _exhausted(self) -> str:
        p = self.partition
        where = "this Locust process" if p.count == 1 else f"worker {p.index} of {p.count}"
        if self.accounts:
            share = (
                f"its share is {self.role} accounts {self.accounts.start}-{self.accounts.stop - 1}"
                f" ({len(self.accounts)} of the {self.population} seeded), all in use"
            )
        else:
            share = f"{self.population} {self.role} accounts seeded leave it none"
        return (
            f"no free {self.role} account for {where}: {share}. Two users never share an"
            f" account: seed more ({SEED_HINTS.get(self.role, 'see docs/load-testing.md')} on"
            " every Locust process), or run fewer users or workers"
        )
