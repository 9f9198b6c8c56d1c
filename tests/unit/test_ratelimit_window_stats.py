"""The RateLimit-* figures of a sliding-window counter, from the counts the hit script returns:
remaining is the limit minus the weighted count (the previous window's count scaled by the
share of it still inside the window, plus the current count), never below zero; the reset is
the earliest moment an entry leaves the window.

tests/integration/test_rate_limits.py compares the strategy with the `limits` library on Redis;
these pin the arithmetic itself, case by case, worked out by hand in the comments.
"""

from __future__ import annotations

import math

import pytest
from limits import RateLimitItemPerMinute

from app.security.ratelimit_window import window_stats

NOW = 1_000.0
TEN_A_MINUTE = RateLimitItemPerMinute(10)  # expiry 60 s


def test_an_unused_window_has_everything_left_and_resets_now() -> None:
    stats = window_stats(TEN_A_MINUTE, 0, 0.0, 0, 0.0, NOW)

    assert (stats.reset_time, stats.remaining) == (NOW, 10)


def test_a_fresh_current_window_resets_a_whole_period_away_not_now() -> None:
    # The hit that created the counter set its TTL to 2 x expiry: 120 % 60 is 0, read as 60.
    stats = window_stats(TEN_A_MINUTE, 0, 0.0, 1, 120.0, NOW)

    assert (stats.reset_time, stats.remaining) == (NOW + 60, 9)


def test_a_current_window_resets_when_its_period_rolls_over() -> None:
    # 100 s of TTL left: the period turns over in 100 % 60 = 40 s.
    stats = window_stats(TEN_A_MINUTE, 0, 0.0, 3, 100.0, NOW)

    assert (stats.reset_time, stats.remaining) == (NOW + 40, 7)


def test_the_previous_window_counts_by_the_share_still_inside_the_window() -> None:
    # 4 previous entries with 45 of 60 s left weigh 4 * 45 / 60 = 3; plus 3 current: 6 used.
    # One previous entry leaves every 60 / 4 = 15 s; 45 % 15 is 0, read as a whole 15 s.
    stats = window_stats(TEN_A_MINUTE, 4, 45.0, 3, 100.0, NOW)

    assert (stats.reset_time, stats.remaining) == (NOW + 15, 4)


def test_the_weighted_count_is_rounded_down_and_the_earlier_reset_wins() -> None:
    # 4 * 50 / 60 + 3 = 6.33, floored to 6; the previous window frees an entry in 50 % 15 = 5 s,
    # before the current period's 100 % 60 = 40 s.
    stats = window_stats(TEN_A_MINUTE, 4, 50.0, 3, 100.0, NOW)

    assert (stats.reset_time, stats.remaining) == (NOW + 5, 4)


def test_the_current_window_can_reset_first() -> None:
    # Previous: 2 entries, one leaving every 30 s, next in 50 % 30 = 20 s; current: 70 % 60 = 10 s.
    # Used: 2 * 50 / 60 + 1 = 2.67, floored to 2.
    stats = window_stats(TEN_A_MINUTE, 2, 50.0, 1, 70.0, NOW)

    assert (stats.reset_time, stats.remaining) == (NOW + 10, 8)


def test_only_a_previous_window_left() -> None:
    # 5 entries over 30 s left: 5 * 30 / 60 = 2.5 used, floored to 2; one leaves every 12 s, the
    # next in 30 % 12 = 6 s. No current entries, so no current reset.
    stats = window_stats(TEN_A_MINUTE, 5, 30.0, 0, 0.0, NOW)

    assert (stats.reset_time, stats.remaining) == (NOW + 6, 8)


@pytest.mark.parametrize(("previous", "current"), [(20, 5), (0, 10), (0, 11)])
def test_remaining_never_goes_below_zero(previous: int, current: int) -> None:
    stats = window_stats(TEN_A_MINUTE, previous, 60.0 if previous else 0.0, current, 90.0, NOW)

    assert stats.remaining == 0
    assert math.isfinite(stats.reset_time)
    assert stats.reset_time > NOW


def test_an_emptied_current_window_does_not_bring_the_reset_forward() -> None:
    # After a shift the current counter exists at 0 with a TTL (70 % 60 = 10 s) but holds no
    # entry to free: the reset is the previous window's single entry leaving, in 50 s.
    stats = window_stats(TEN_A_MINUTE, 1, 50.0, 0, 70.0, NOW)

    assert (stats.reset_time, stats.remaining) == (NOW + 50, 10)
