"""The two-parameter logistic (2PL) item response model: probability, information, limits.

An item has a discrimination `a` and a difficulty `b`; a learner of ability θ answers it
correctly with probability P(θ) = 1 / (1 + exp(-a(θ - b))). Every function here broadcasts with
numpy rules, so one call evaluates a whole bank (or a whole quadrature grid) at once.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

# The platform's item limits: content validation and calibration use the same numbers.
A_MIN: Final = 0.2
A_MAX: Final = 3.0
B_MIN: Final = -4.0
B_MAX: Final = 4.0

# Clipping the logit keeps P strictly inside (0, 1) in float64: 1/(1+e^-30) = 1 - 9.4e-14, which
# is still distinguishable from 1, and so is e^-30 from 0. Within the platform's limits and the
# quadrature grid (|θ| ≤ 6) |a(θ - b)| never exceeds 30, so the clip only acts on extreme θ.
LOGIT_LIMIT: Final = 30.0


def logit(theta: npt.ArrayLike, a: npt.ArrayLike, b: npt.ArrayLike) -> FloatArray:
    """a(θ - b), unclipped, broadcast over the inputs; always a fresh array (0-d for scalars)."""
    a_arr = np.asarray(a, dtype=np.float64)
    difference = np.subtract(np.asarray(theta, dtype=np.float64), np.asarray(b, dtype=np.float64))
    return np.asarray(a_arr * difference, dtype=np.float64)


def probability(theta: npt.ArrayLike, a: npt.ArrayLike, b: npt.ArrayLike) -> FloatArray:
    """P(correct | θ) under the 2PL model; always strictly between 0 and 1."""
    z = np.clip(logit(theta, a, b), -LOGIT_LIMIT, LOGIT_LIMIT)
    # exp of a clipped logit cannot overflow, so the plain formula is stable here.
    result: FloatArray = 1.0 / (1.0 + np.exp(-z))
    return result


def information(theta: npt.ArrayLike, a: npt.ArrayLike, b: npt.ArrayLike) -> FloatArray:
    """Fisher information a²P(1 - P) of each item at θ; largest at θ = b, where it is a²/4.

    Uses P(1 - P) = e/(1 + e)² with e = exp(-|a(θ - b)|), which needs no clipping (e is in
    (0, 1]) and is symmetric in the logit by construction. Selection calls this on the whole
    bank for every request, so it works in place on one temporary array.
    """
    a_arr = np.asarray(a, dtype=np.float64)
    e = logit(theta, a_arr, b)
    np.abs(e, out=e)
    np.negative(e, out=e)
    np.exp(e, out=e)
    denominator = e + 1.0
    denominator *= denominator
    e /= denominator
    e *= a_arr * a_arr
    return e


def log_likelihood(
    theta: npt.ArrayLike, a: npt.ArrayLike, b: npt.ArrayLike, correct: npt.ArrayLike
) -> FloatArray:
    """log P(response | θ): log P for a correct answer, log(1 - P) for a wrong one.

    Computed as -log(1 + e^{∓z}) with `logaddexp`, which is exact for any logit, so a long run
    of surprising answers cannot underflow the posterior to zero.
    """
    z = logit(theta, a, b)
    correct_arr = np.asarray(correct, dtype=bool)
    if correct_arr.ndim:
        z = np.where(correct_arr, -z, z)
    elif correct_arr:
        np.negative(z, out=z)
    np.logaddexp(0.0, z, out=z)
    np.negative(z, out=z)
    return z


def check_item_parameters(a: float, b: float) -> None:
    """Raise ValueError unless a is in [A_MIN, A_MAX] and b in [B_MIN, B_MAX] (finite)."""
    if not (math.isfinite(a) and A_MIN <= a <= A_MAX):
        raise ValueError(f"discrimination a={a!r} is outside [{A_MIN}, {A_MAX}]")
    if not (math.isfinite(b) and B_MIN <= b <= B_MAX):
        raise ValueError(f"difficulty b={b!r} is outside [{B_MIN}, {B_MAX}]")


def check_item_arrays(a: FloatArray, b: FloatArray) -> None:
    """The array form of `check_item_parameters`, for a whole bank."""
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"a and b must be 1-D arrays of one length, got {a.shape} and {b.shape}")
    if not bool(np.all((a >= A_MIN) & (a <= A_MAX))):
        raise ValueError(f"every discrimination a must be in [{A_MIN}, {A_MAX}]")
    if not bool(np.all((b >= B_MIN) & (b <= B_MAX))):
        raise ValueError(f"every difficulty b must be in [{B_MIN}, {B_MAX}]")
