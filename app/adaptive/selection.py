"""Next-item selection: maximum Fisher information with randomesque exposure control.

The most informative item at the current θ is the best next question, but always serving it
would show the same few items to everyone (and leak them). So the selector picks uniformly at
random among the `k` most informative items that are not excluded; `k = 1` is pure maximum
information. Items seen recently are excluded by the caller (the learning service flags a
learner's latest answers in its bank query: app/learning/queries.py, `BANK`).

The bank's parameters live in numpy arrays, so one selection is one vectorised information
evaluation plus an `argpartition` (linear time, no full sort): well under a millisecond for
10,000 items. Randomness comes only from the `numpy.random.Generator` passed in, so a seeded
generator makes every choice reproducible.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from app.adaptive.irt import FloatArray, check_item_arrays, information

DEFAULT_TOP_K: Final = 5


@dataclass(frozen=True, eq=False)
class ItemBank:
    """The selectable items of one skill: ids and their 2PL parameters, index-aligned."""

    ids: tuple[str, ...]
    a: FloatArray
    b: FloatArray
    _position: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Private read-only copies: the caller's arrays stay writable, and the bank cannot
        # change under a selection that is using it.
        a = np.array(self.a, dtype=np.float64)
        b = np.array(self.b, dtype=np.float64)
        check_item_arrays(a, b)
        if len(self.ids) != a.size:
            raise ValueError(f"{len(self.ids)} ids for {a.size} items")
        position = {item_id: index for index, item_id in enumerate(self.ids)}
        if len(position) != len(self.ids):
            raise ValueError("item ids must be unique")
        a.flags.writeable = False
        b.flags.writeable = False
        object.__setattr__(self, "a", a)
        object.__setattr__(self, "b", b)
        object.__setattr__(self, "_position", position)

    @classmethod
    def from_items(cls, items: Iterable[tuple[str, float, float]]) -> ItemBank:
        """A bank from (id, a, b) triples."""
        rows = list(items)
        return cls(
            ids=tuple(item_id for item_id, _, _ in rows),
            a=np.array([a for _, a, _ in rows], dtype=np.float64),
            b=np.array([b for _, _, b in rows], dtype=np.float64),
        )

    def __len__(self) -> int:
        return len(self.ids)

    def positions(self, item_ids: Iterable[str]) -> npt.NDArray[np.intp]:
        """The array indices of the given ids; ids not in the bank are ignored."""
        position = self._position
        return np.fromiter(
            (position[item_id] for item_id in item_ids if item_id in position), dtype=np.intp
        )


def select_item(
    bank: ItemBank,
    theta: float,
    rng: np.random.Generator,
    *,
    k: int = DEFAULT_TOP_K,
    excluded: Collection[str] = frozenset(),
) -> str | None:
    """The id of the next item for a learner at `theta`, or None when every item is excluded.

    Chooses uniformly among the `k` most informative non-excluded items (fewer when fewer are
    left). Draws from `rng` exactly once per call that returns an item.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    info = information(theta, bank.a, bank.b)
    if excluded:
        info[bank.positions(excluded)] = -np.inf
        available = int(np.count_nonzero(np.isfinite(info)))
    else:
        available = info.size
    if available == 0:
        return None
    top = min(k, available)
    # argpartition leaves the top `top` in an unspecified order; sorting those few by
    # (information, index) makes the choice independent of numpy's partition algorithm.
    candidates = np.argpartition(info, info.size - top)[info.size - top :]
    candidates = candidates[np.lexsort((candidates, -info[candidates]))]
    return bank.ids[int(candidates[rng.integers(top)])]


def select_random_item(
    bank: ItemBank, rng: np.random.Generator, *, excluded: Collection[str] = frozenset()
) -> str | None:
    """A uniformly random non-excluded item (the baseline the simulation compares against)."""
    if excluded:
        allowed = np.ones(len(bank), dtype=bool)
        allowed[bank.positions(excluded)] = False
        choices = np.flatnonzero(allowed)
    else:
        choices = np.arange(len(bank))
    if choices.size == 0:
        return None
    return bank.ids[int(choices[rng.integers(choices.size)])]
