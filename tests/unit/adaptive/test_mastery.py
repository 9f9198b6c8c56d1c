"""The mastery rule: θ and SE thresholds, configurable."""

from __future__ import annotations

import math

import pytest

from app.adaptive.mastery import DEFAULT_SE_THRESHOLD, DEFAULT_THETA_THRESHOLD, MasteryRule


def test_the_defaults_are_theta_one_and_se_point_four() -> None:
    rule = MasteryRule()

    assert (rule.theta_threshold, rule.se_threshold) == (1.0, 0.4)
    assert (DEFAULT_THETA_THRESHOLD, DEFAULT_SE_THRESHOLD) == (1.0, 0.4)


def test_mastery_needs_both_a_high_enough_theta_and_a_small_enough_se() -> None:
    rule = MasteryRule()

    assert rule.is_mastered(1.0, 0.4)  # both thresholds are inclusive
    assert rule.is_mastered(2.5, 0.2)
    assert not rule.is_mastered(0.99, 0.2)
    assert not rule.is_mastered(2.5, 0.41)


def test_the_thresholds_are_configurable() -> None:
    lenient = MasteryRule(theta_threshold=0.0, se_threshold=0.6)

    assert lenient.is_mastered(0.1, 0.55)
    assert not MasteryRule().is_mastered(0.1, 0.55)


@pytest.mark.parametrize(
    ("theta_threshold", "se_threshold", "message"),
    [
        (math.nan, 0.4, "theta_threshold"),
        (1.0, 0.0, "se_threshold"),
        (1.0, math.inf, "se_threshold"),
    ],
)
def test_a_rule_with_unusable_thresholds_is_rejected(
    theta_threshold: float, se_threshold: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        MasteryRule(theta_threshold, se_threshold)
