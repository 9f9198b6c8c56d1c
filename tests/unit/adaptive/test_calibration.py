"""Online item-difficulty calibration from attempts."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.adaptive.calibration import CalibrationConfig, update_difficulty
from app.adaptive.irt import B_MAX, B_MIN
from tests.unit.adaptive.strategies import (
    FAST,
    difficulties,
    discriminations,
    extreme_abilities,
)


def test_a_wrong_answer_from_a_strong_learner_makes_the_item_harder() -> None:
    updated = update_difficulty(a=1.0, b=0.0, theta=2.0, correct=False, attempts=0)

    assert 0.0 < updated <= B_MAX
    assert updated == pytest.approx(0.4 * 1.0 / (1.0 + math.exp(-2.0)))


def test_a_correct_answer_from_a_weak_learner_makes_the_item_easier() -> None:
    assert update_difficulty(a=1.0, b=0.0, theta=-2.0, correct=True, attempts=0) < 0.0


def test_an_expected_result_barely_moves_the_difficulty() -> None:
    surprising = update_difficulty(a=1.0, b=0.0, theta=3.0, correct=False, attempts=0)
    expected = update_difficulty(a=1.0, b=0.0, theta=3.0, correct=True, attempts=0)

    assert abs(expected) < 0.05 < surprising


def test_the_difficulty_is_clipped_to_the_platform_limits() -> None:
    config = CalibrationConfig(initial_step=2.0)

    assert update_difficulty(3.0, 3.9, 6.0, False, 0, config) == B_MAX
    assert update_difficulty(3.0, -3.9, -6.0, True, 0, config) == B_MIN


def test_the_step_shrinks_with_the_items_attempts_down_to_the_floor() -> None:
    config = CalibrationConfig(initial_step=0.4, decay=0.05, min_step=0.02)

    assert config.step(0) == 0.4
    assert config.step(20) == pytest.approx(0.2)
    assert config.step(10_000) == 0.02
    first = update_difficulty(1.0, 0.0, 2.0, False, attempts=0)
    later = update_difficulty(1.0, 0.0, 2.0, False, attempts=100)
    assert 0.0 < later < first


@FAST
@given(
    a=discriminations,
    b=difficulties,
    theta=extreme_abilities,
    correct=st.booleans(),
    attempts=st.integers(min_value=0, max_value=10**6),
)
def test_calibration_always_stays_within_the_limits_and_moves_the_right_way(
    a: float, b: float, theta: float, correct: bool, attempts: int
) -> None:
    updated = update_difficulty(a, b, theta, correct, attempts)

    assert B_MIN <= updated <= B_MAX
    if correct:
        assert updated <= b
    else:
        assert updated >= b


def test_calibration_rejects_a_non_finite_ability_and_out_of_range_items() -> None:
    with pytest.raises(ValueError, match="theta"):
        update_difficulty(1.0, 0.0, math.nan, True, 0)
    with pytest.raises(ValueError, match="discrimination"):
        update_difficulty(5.0, 0.0, 0.0, True, 0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"initial_step": -0.1}, "initial_step"),
        ({"decay": math.inf}, "decay"),
        ({"min_step": math.nan}, "min_step"),
        ({"initial_step": 0.1, "min_step": 0.2}, "min_step must not exceed"),
    ],
)
def test_a_calibration_config_with_bad_steps_is_rejected(
    kwargs: dict[str, float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        CalibrationConfig(**kwargs)


def test_a_negative_attempt_count_is_rejected() -> None:
    with pytest.raises(ValueError, match="attempts"):
        CalibrationConfig().step(-1)
