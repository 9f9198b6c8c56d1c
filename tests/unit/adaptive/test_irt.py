"""The 2PL model: probabilities, information and the platform's item limits."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.adaptive.irt import (
    A_MAX,
    A_MIN,
    B_MAX,
    B_MIN,
    LOGIT_LIMIT,
    check_item_arrays,
    check_item_parameters,
    information,
    log_likelihood,
    probability,
)
from tests.unit.adaptive.strategies import (
    FAST,
    abilities,
    difficulties,
    discriminations,
    extreme_abilities,
)


@FAST
@given(theta=extreme_abilities, a=discriminations, b=difficulties)
def test_probability_is_strictly_between_zero_and_one_for_any_ability(
    theta: float, a: float, b: float
) -> None:
    p = float(probability(theta, a, b))

    assert 0.0 < p < 1.0


def test_probability_stays_inside_the_open_interval_at_the_most_extreme_logits() -> None:
    p = probability(np.array([-50.0, 50.0]), A_MAX, np.array([B_MAX, B_MIN]))

    assert np.all(p > 0.0)
    assert np.all(p < 1.0)
    assert p[0] < 1e-12 < 1 - 1e-12 < p[1]


@pytest.mark.parametrize("theta", [-1e4, -800.0, 800.0, 1e4])
@pytest.mark.parametrize("a", [A_MIN, A_MAX])
def test_probability_saturates_inside_the_open_interval_far_beyond_the_grid(
    theta: float, a: float
) -> None:
    # An ability this far out is not one the engine estimates, but probability() is public and
    # its promise is "strictly between 0 and 1" for any θ: the logit clip keeps exp() finite.
    p = float(probability(theta, a, 0.0))
    near = float(probability(math.copysign(LOGIT_LIMIT / a, theta), a, 0.0))

    assert 0.0 < p < 1.0
    assert p == near  # past the clip the probability no longer moves


@FAST
@given(theta=abilities, a=discriminations, b=difficulties)
def test_probability_matches_the_logistic_formula(theta: float, a: float, b: float) -> None:
    expected = 1.0 / (1.0 + math.exp(-a * (theta - b)))

    assert float(probability(theta, a, b)) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_probability_is_one_half_at_the_difficulty_and_vectorises_over_items() -> None:
    a = np.array([0.5, 1.0, 2.0])
    b = np.array([-1.0, 0.0, 1.0])

    p = probability(0.0, a, b)

    assert p.shape == (3,)
    assert p[1] == 0.5
    assert p[0] > 0.5 > p[2]


@FAST
@given(theta=extreme_abilities, a=discriminations, b=difficulties)
def test_information_equals_a_squared_p_times_one_minus_p(theta: float, a: float, b: float) -> None:
    p = float(probability(theta, a, b))

    assert float(information(theta, a, b)) == pytest.approx(a * a * p * (1 - p), rel=1e-9)


@FAST
@given(
    a=discriminations,
    b=difficulties,
    offset=st.floats(min_value=0.01, max_value=5.0, allow_nan=False),
)
def test_information_of_an_item_peaks_at_its_difficulty(a: float, b: float, offset: float) -> None:
    at_peak = float(information(b, a, b))

    assert at_peak == pytest.approx(a * a / 4)
    assert at_peak > float(information(b - offset, a, b))
    assert at_peak > float(information(b + offset, a, b))


@FAST
@given(
    a=discriminations,
    b=difficulties,
    offset=st.floats(min_value=0.0, max_value=1e4, allow_nan=False),
)
def test_information_is_symmetric_about_the_difficulty_and_finite_at_any_distance(
    a: float, b: float, offset: float
) -> None:
    below = float(information(b - offset, a, b))
    above = float(information(b + offset, a, b))

    # b ± offset round differently in float64, so the two logits agree to rounding only.
    assert below == pytest.approx(above, rel=1e-9)
    assert 0.0 <= above <= a * a / 4


@pytest.mark.parametrize("offset", [800.0, 1e4])
def test_information_vanishes_without_overflow_far_from_the_difficulty(offset: float) -> None:
    # |a(θ - b)| here is far past where exp() of it overflows (about 709).
    values = information(np.array([-offset, offset]), A_MAX, 0.0)

    assert np.all(np.isfinite(values))
    assert values.tolist() == [0.0, 0.0]


@FAST
@given(theta=abilities, a=discriminations, b=difficulties)
def test_float32_item_parameters_are_evaluated_in_float64(theta: float, a: float, b: float) -> None:
    # Parameters may arrive as float32 (a bank loaded from a compact array); the model must
    # compute with their exact values in float64, not round a² or the logit to float32.
    a32, b32 = np.float32(a), np.float32(b)
    a64, b64 = float(a32), float(b32)

    for function in (probability, information):
        narrow = function(theta, a32, b32)
        assert narrow.dtype == np.float64
        assert float(narrow) == float(function(theta, a64, b64))
    assert float(log_likelihood(theta, a32, b32, True)) == float(
        log_likelihood(theta, a64, b64, True)
    )


def test_information_over_a_grid_is_largest_at_the_grid_point_nearest_the_difficulty() -> None:
    grid = np.linspace(-4, 4, 801)

    info = information(grid, 1.7, 0.83)

    assert grid[np.argmax(info)] == pytest.approx(0.83)


@FAST
@given(theta=extreme_abilities, a=discriminations, b=difficulties)
def test_log_likelihood_is_the_log_of_the_response_probability(
    theta: float, a: float, b: float
) -> None:
    z = a * (theta - b)
    # log P = -log(1 + e^-z) and log(1 - P) = -log(1 + e^z), without forming P near 0 or 1.
    assert float(log_likelihood(theta, a, b, True)) == pytest.approx(
        -math.log1p(math.exp(-z)), rel=1e-9
    )
    assert float(log_likelihood(theta, a, b, False)) == pytest.approx(
        -math.log1p(math.exp(z)), rel=1e-9
    )
    if abs(z) < 20:
        p = 1.0 / (1.0 + math.exp(-z))
        assert float(log_likelihood(theta, a, b, True)) == pytest.approx(math.log(p))
        assert float(log_likelihood(theta, a, b, False)) == pytest.approx(math.log(1 - p))


def test_log_likelihood_stays_finite_for_a_hopelessly_unlikely_answer() -> None:
    value = float(log_likelihood(50.0, A_MAX, B_MIN, False))

    assert value == pytest.approx(-A_MAX * (50.0 - B_MIN))


def test_log_likelihood_takes_one_correctness_per_item() -> None:
    values = log_likelihood(
        0.0, np.array([1.0, 1.0]), np.array([0.0, 0.0]), np.array([True, False])
    )

    assert values == pytest.approx([math.log(0.5), math.log(0.5)])


def test_item_parameters_at_the_limits_are_accepted() -> None:
    check_item_parameters(A_MIN, B_MIN)
    check_item_parameters(A_MAX, B_MAX)


@pytest.mark.parametrize(
    ("a", "b", "named"),
    [
        (A_MIN - 0.01, 0.0, "discrimination"),
        (A_MAX + 0.01, 0.0, "discrimination"),
        (math.nan, 0.0, "discrimination"),
        (1.0, B_MIN - 0.01, "difficulty"),
        (1.0, B_MAX + 0.01, "difficulty"),
        (1.0, math.inf, "difficulty"),
    ],
)
def test_item_parameters_outside_the_limits_are_rejected_naming_the_parameter(
    a: float, b: float, named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        check_item_parameters(a, b)


def test_bank_arrays_must_be_one_dimensional_and_aligned() -> None:
    with pytest.raises(ValueError, match="1-D"):
        check_item_arrays(np.ones(3), np.zeros(2))
    with pytest.raises(ValueError, match="1-D"):
        check_item_arrays(np.ones((2, 2)), np.zeros((2, 2)))


def test_bank_arrays_at_the_limits_are_accepted() -> None:
    check_item_arrays(np.array([A_MIN, A_MAX]), np.array([B_MIN, B_MAX]))


@pytest.mark.parametrize(
    ("a", "b", "named"),
    [
        ([1.0, A_MAX + 0.5], [0.0, 0.0], "discrimination"),
        ([A_MIN - 0.1, 1.0], [0.0, 0.0], "discrimination"),
        ([1.0, 1.0], [0.0, B_MAX + 0.5], "difficulty"),
        ([1.0, 1.0], [B_MIN - 0.5, 0.0], "difficulty"),
        ([1.0, 1.0], [0.0, math.nan], "difficulty"),
    ],
)
def test_bank_arrays_outside_the_limits_are_rejected_naming_the_parameter(
    a: list[float], b: list[float], named: str
) -> None:
    with pytest.raises(ValueError, match=f"every {named}"):
        check_item_arrays(np.array(a), np.array(b))
