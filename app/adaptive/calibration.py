"""Online calibration of item difficulty from attempts (an Elo-style stochastic gradient step).

Rule, applied once per scored attempt, with θ the learner's estimate *before* this response
(using the estimate after it would let the response pull θ and b toward each other):

    P      = P(correct | θ, a, b)                         (2PL)
    step_n = max(min_step, initial_step / (1 + decay · n))  n = attempts already used for the item
    b'     = clip(b + step_n · a · (P - y), B_MIN, B_MAX)    y = 1 if correct else 0

`a · (P - y)` is minus the derivative of the response's log-likelihood with respect to b, so
this is one step of stochastic gradient ascent on the likelihood: an unexpected wrong answer
(high θ, P near 1) makes the item harder, an unexpected correct one makes it easier, and an
expected result barely moves it. The step shrinks as the item accumulates attempts, so early
attempts correct a poor authored guess quickly and later ones only fine-tune; `min_step` keeps
the item able to follow a slow drift. Discrimination `a` is left as authored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from app.adaptive.irt import B_MAX, B_MIN, check_item_parameters, probability


@dataclass(frozen=True)
class CalibrationConfig:
    """Step-size schedule of the difficulty update (see the module docstring)."""

    initial_step: float = 0.4
    decay: float = 0.05
    min_step: float = 0.02

    def __post_init__(self) -> None:
        for name in ("initial_step", "decay", "min_step"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
        if self.min_step > self.initial_step:
            raise ValueError("min_step must not exceed initial_step")

    def step(self, attempts: int) -> float:
        """The step size for an item that has already been used in `attempts` updates."""
        if attempts < 0:
            raise ValueError(f"attempts must be >= 0, got {attempts}")
        return max(self.min_step, self.initial_step / (1.0 + self.decay * attempts))


def update_difficulty(
    a: float,
    b: float,
    theta: float,
    correct: bool,
    attempts: int,
    config: CalibrationConfig | None = None,
) -> float:
    """The item's new difficulty after one attempt, always within [B_MIN, B_MAX]."""
    check_item_parameters(a, b)
    if not math.isfinite(theta):
        raise ValueError(f"theta must be finite, got {theta!r}")
    config = config or CalibrationConfig()
    p = float(probability(theta, a, b))
    target = 1.0 if correct else 0.0
    updated = b + config.step(attempts) * a * (p - target)
    return float(np.clip(updated, B_MIN, B_MAX))
