"""EAP ability estimation: the posterior of θ on a fixed quadrature grid.

The posterior is kept as an (unnormalised) log density over a grid of θ values, 81 points on
[-6, 6] by default. Starting from a normal prior, each response adds its log-likelihood at every
grid point, which is O(grid) work per attempt and no re-scan of the history. The estimate is the
posterior mean (EAP) and its standard error the posterior standard deviation.

Persisting the state: `AbilityPosterior.to_state()` gives a JSON-ready dict (the grid's bounds,
the prior, the number of responses and the log density, about 2 KB); `from_state()` restores it
exactly. Equivalently, `AbilityPosterior.from_responses()` recomputes the same posterior from the
stored attempts — the state is a cache of them, never the source of truth.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Final, NamedTuple

import numpy as np

from app.adaptive.irt import FloatArray, check_item_parameters, log_likelihood

GRID_MIN: Final = -6.0
GRID_MAX: Final = 6.0
GRID_POINTS: Final = 81


def make_grid(
    lower: float = GRID_MIN, upper: float = GRID_MAX, points: int = GRID_POINTS
) -> FloatArray:
    """An evenly spaced, read-only quadrature grid."""
    if not (math.isfinite(lower) and math.isfinite(upper) and lower < upper):
        raise ValueError(f"grid bounds must be finite with lower < upper, got {lower}, {upper}")
    if points < 3:
        raise ValueError(f"a quadrature grid needs at least 3 points, got {points}")
    grid = np.linspace(lower, upper, points, dtype=np.float64)
    grid.flags.writeable = False
    return grid


@dataclass(frozen=True)
class Prior:
    """A normal prior N(mean, sd²) on θ; N(0, 1) puts the population average at 0."""

    mean: float = 0.0
    sd: float = 1.0

    def __post_init__(self) -> None:
        if not math.isfinite(self.mean):
            raise ValueError(f"prior mean must be finite, got {self.mean!r}")
        if not (math.isfinite(self.sd) and self.sd > 0):
            raise ValueError(f"prior sd must be finite and positive, got {self.sd!r}")

    def log_density(self, grid: FloatArray) -> FloatArray:
        """The log density on the grid, up to a constant."""
        z = (grid - self.mean) / self.sd
        result: FloatArray = -0.5 * z * z
        return result


class Response(NamedTuple):
    """One scored attempt: the item's parameters and whether the answer was correct."""

    a: float
    b: float
    correct: bool


def posterior_summary(grid: FloatArray, log_density: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Posterior mean and SD over the last axis of `log_density` (one row per learner)."""
    weights = np.exp(log_density - np.max(log_density, axis=-1, keepdims=True))
    total = np.sum(weights, axis=-1)
    mean = (weights @ grid) / total
    second = (weights @ (grid * grid)) / total
    # Rounding can leave a tiny negative variance when the posterior is one grid point wide.
    sd = np.sqrt(np.maximum(second - mean * mean, 0.0))
    return np.asarray(mean, dtype=np.float64), np.asarray(sd, dtype=np.float64)


def _frozen(array: FloatArray) -> FloatArray:
    array.flags.writeable = False
    return array


def _log_density_of(state: dict[str, Any]) -> FloatArray:
    encoded = state.get("log_density_f64")
    if encoded is None:  # a state written before the binary form: a list of numbers
        return np.array(state["log_density"], dtype=np.float64)
    raw = base64.b64decode(encoded, validate=True)
    return np.frombuffer(raw, dtype="<f8").astype(np.float64)


@dataclass(frozen=True, eq=False)
class AbilityPosterior:
    """The posterior of one learner's θ on one skill; `update` returns a new posterior.

    Build one with `AbilityPosterior.start()` (prior only), `from_responses()` or `from_state()`.
    """

    grid: FloatArray
    log_density: FloatArray
    prior: Prior = field(default_factory=Prior)
    responses: int = 0

    def __post_init__(self) -> None:
        if self.grid.ndim != 1 or self.log_density.shape != self.grid.shape:
            raise ValueError("grid and log_density must be 1-D arrays of one length")
        if not bool(np.all(np.isfinite(self.log_density))):
            raise ValueError("log_density must be finite")

    @classmethod
    def start(cls, prior: Prior | None = None, grid: FloatArray | None = None) -> AbilityPosterior:
        """The posterior before any response: the prior itself."""
        prior = prior or Prior()
        grid = make_grid() if grid is None else grid
        return cls(grid=grid, log_density=_frozen(prior.log_density(grid)), prior=prior)

    @classmethod
    def from_responses(
        cls,
        responses: Iterable[Response | tuple[float, float, bool]],
        prior: Prior | None = None,
        grid: FloatArray | None = None,
    ) -> AbilityPosterior:
        """The posterior after the given responses, in any order (the result does not depend on it)."""
        posterior = cls.start(prior, grid)
        for a, b, correct in responses:
            posterior = posterior.update(a, b, correct)
        return posterior

    def update(self, a: float, b: float, correct: bool) -> AbilityPosterior:
        """The posterior after one more response to an item with parameters (a, b)."""
        check_item_parameters(a, b)
        updated = log_likelihood(self.grid, a, b, correct)
        updated += self.log_density
        # Re-centring keeps the log density near 0 however long the history grows.
        updated -= updated.max()
        return AbilityPosterior(
            grid=self.grid,
            log_density=_frozen(updated),
            prior=self.prior,
            responses=self.responses + 1,
        )

    @cached_property
    def _summary(self) -> tuple[float, float]:
        mean, sd = posterior_summary(self.grid, self.log_density)
        return float(mean), float(sd)

    @property
    def theta(self) -> float:
        """The EAP estimate: the posterior mean of θ."""
        return self._summary[0]

    @property
    def se(self) -> float:
        """The standard error of `theta`: the posterior standard deviation."""
        return self._summary[1]

    def to_state(self) -> dict[str, Any]:
        """A JSON-ready dict from which `from_state` rebuilds this posterior exactly.

        The log density goes as the base64 of its little-endian float64 bytes: exact like the
        JSON numbers it replaces, and writing 81 numbers' shortest decimal forms was a
        sixteenth of an answer's instructions (docs/benchmarks.md "Serving cost")."""
        return {
            "grid": [float(self.grid[0]), float(self.grid[-1]), int(self.grid.size)],
            "prior": [self.prior.mean, self.prior.sd],
            "responses": self.responses,
            "log_density_f64": base64.b64encode(self.log_density.astype("<f8").tobytes()).decode(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> AbilityPosterior:
        """Rebuild a posterior saved by `to_state`, or by its earlier form (`log_density` as a
        list of numbers); raises ValueError on a malformed state."""
        try:
            lower, upper, points = state["grid"]
            mean, sd = state["prior"]
            responses = int(state["responses"])
            log_density = _log_density_of(state)
        except (KeyError, TypeError, ValueError) as exc:  # binascii.Error is a ValueError
            raise ValueError(f"not an ability posterior state: {exc}") from exc
        if responses < 0:
            raise ValueError(f"responses must be >= 0, got {responses}")
        return cls(
            grid=make_grid(float(lower), float(upper), int(points)),
            log_density=_frozen(log_density),
            prior=Prior(float(mean), float(sd)),
            responses=responses,
        )
