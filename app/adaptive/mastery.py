"""The mastery rule: a skill is mastered when θ is high enough and known precisely enough.

Defaults: θ ≥ 1.0 (one prior SD above the population mean: the learner answers an average item,
b = 0 and a = 1, correctly with probability 0.73) and SE ≤ 0.4 (the estimate is trusted to
within about ±0.8 at 95 %; on the simulated bank of docs/benchmarks.md the average learner
reaches it after about 10 adaptively chosen items).
Requiring both stops a lucky streak of three answers from counting as mastery.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DEFAULT_THETA_THRESHOLD = 1.0
DEFAULT_SE_THRESHOLD = 0.4


@dataclass(frozen=True)
class MasteryRule:
    """Mastered when θ ≥ `theta_threshold` and SE ≤ `se_threshold`."""

    theta_threshold: float = DEFAULT_THETA_THRESHOLD
    se_threshold: float = DEFAULT_SE_THRESHOLD

    def __post_init__(self) -> None:
        if not math.isfinite(self.theta_threshold):
            raise ValueError(f"theta_threshold must be finite, got {self.theta_threshold!r}")
        if not (math.isfinite(self.se_threshold) and self.se_threshold > 0):
            raise ValueError(f"se_threshold must be finite and positive, got {self.se_threshold!r}")

    def is_mastered(self, theta: float, se: float) -> bool:
        """Whether an estimate θ with standard error `se` counts as mastery."""
        return theta >= self.theta_threshold and se <= self.se_threshold
