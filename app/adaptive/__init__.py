"""The adaptive engine: IRT 2PL model, ability estimation, item selection, calibration, mastery.

Pure Python and numpy — no Flask, no database, no I/O — so the learning service calls it with
plain values and the unit tests exercise it with hypothesis properties. It owns:

* `irt` — the 2PL probability and Fisher information, and the platform's item limits
  (a in [0.2, 3.0], b in [-4, 4]);
* `estimation` — EAP ability estimates with their standard error, updated one response at a
  time on a quadrature grid (`AbilityPosterior`);
* `selection` — the next item: maximum information with random choice among the top k, never an
  excluded (recently seen) item; deterministic for a seeded `numpy.random.Generator`;
* `calibration` — online item-difficulty updates from attempts;
* `mastery` — the θ and SE thresholds that decide mastery;
* `simulate` — the simulation benchmark (`python -m app.adaptive.simulate --json`).
"""

from __future__ import annotations

from app.adaptive.calibration import CalibrationConfig, update_difficulty
from app.adaptive.estimation import AbilityPosterior, Prior, Response, make_grid
from app.adaptive.irt import (
    A_MAX,
    A_MIN,
    B_MAX,
    B_MIN,
    check_item_parameters,
    information,
    probability,
)
from app.adaptive.mastery import MasteryRule
from app.adaptive.selection import DEFAULT_TOP_K, ItemBank, select_item, select_random_item

__all__ = [
    "A_MAX",
    "A_MIN",
    "B_MAX",
    "B_MIN",
    "DEFAULT_TOP_K",
    "AbilityPosterior",
    "CalibrationConfig",
    "ItemBank",
    "MasteryRule",
    "Prior",
    "Response",
    "check_item_parameters",
    "information",
    "make_grid",
    "probability",
    "select_item",
    "select_random_item",
    "update_difficulty",
]
