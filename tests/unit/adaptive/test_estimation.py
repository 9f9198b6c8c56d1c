"""EAP ability estimation: prior, updates, standard error and the persisted state."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given

from app.adaptive.estimation import (
    GRID_POINTS,
    AbilityPosterior,
    Prior,
    Response,
    make_grid,
    posterior_summary,
)
from app.adaptive.irt import A_MAX, B_MAX, B_MIN
from tests.unit.adaptive.strategies import FAST, difficulties, discriminations, histories

Item = tuple[float, float, bool]


def test_with_no_responses_the_estimate_is_the_prior_mean_and_the_se_the_prior_sd() -> None:
    default = AbilityPosterior.start()
    shifted = AbilityPosterior.start(Prior(mean=0.5, sd=0.8))

    assert default.theta == pytest.approx(0.0, abs=1e-9)
    assert default.se == pytest.approx(1.0, abs=1e-6)
    assert default.responses == 0
    assert shifted.theta == pytest.approx(0.5, abs=1e-6)
    assert shifted.se == pytest.approx(0.8, abs=1e-6)


@FAST
@given(history=histories, a=discriminations, b=difficulties)
def test_a_correct_answer_never_lowers_the_estimate_and_a_wrong_one_never_raises_it(
    history: list[Item], a: float, b: float
) -> None:
    posterior = AbilityPosterior.from_responses(history)

    assert posterior.update(a, b, True).theta >= posterior.theta - 1e-12
    assert posterior.update(a, b, False).theta <= posterior.theta + 1e-12


def test_the_se_shrinks_as_informative_responses_accumulate() -> None:
    posterior = AbilityPosterior.start()
    errors = [posterior.se]
    for step in range(30):
        posterior = posterior.update(1.5, 0.0, step % 2 == 0)
        errors.append(posterior.se)

    assert errors[5] < errors[0]
    assert errors[15] < errors[5]
    assert errors[30] < errors[15] < 0.5
    assert posterior.responses == 30


def test_an_update_returns_a_new_posterior_and_leaves_the_old_one_unchanged() -> None:
    before = AbilityPosterior.start()

    after = before.update(1.0, 0.0, True)

    assert after is not before
    assert before.theta == pytest.approx(0.0, abs=1e-9)
    assert after.theta > 0.0
    assert not after.log_density.flags.writeable


def test_the_posterior_does_not_depend_on_the_order_of_the_responses() -> None:
    responses = [Response(1.2, -0.5, True), Response(0.7, 1.0, False), Response(2.0, 0.3, True)]

    forward = AbilityPosterior.from_responses(responses)
    backward = AbilityPosterior.from_responses(reversed(responses))

    assert forward.theta == pytest.approx(backward.theta, abs=1e-12)
    assert forward.se == pytest.approx(backward.se, abs=1e-12)


def test_a_long_run_of_correct_answers_to_the_hardest_items_stays_finite_and_on_the_grid() -> None:
    posterior = AbilityPosterior.from_responses([(A_MAX, B_MAX, True)] * 200)

    assert B_MAX < posterior.theta <= 6.0
    assert 0.0 <= posterior.se < 0.5
    assert np.all(np.isfinite(posterior.log_density))


def test_the_state_round_trips_through_json_exactly() -> None:
    posterior = AbilityPosterior.from_responses(
        [(1.2, -0.5, True), (0.7, 1.0, False)], prior=Prior(0.2, 1.5)
    )

    restored = AbilityPosterior.from_state(json.loads(json.dumps(posterior.to_state())))

    assert restored.theta == posterior.theta
    assert restored.se == posterior.se
    assert restored.responses == 2
    assert restored.prior == Prior(0.2, 1.5)
    assert len(posterior.to_state()["log_density"]) == GRID_POINTS


@pytest.mark.parametrize(
    "state",
    [
        {},
        {"grid": [-6, 6], "prior": [0, 1], "responses": 0, "log_density": [0.0] * 81},
        {"grid": [-6, 6, 81], "prior": [0, 1], "responses": 0, "log_density": [0.0] * 80},
        {"grid": [-6, 6, 81], "prior": [0, 1], "responses": -1, "log_density": [0.0] * 81},
        {"grid": [-6, 6, 81], "prior": [0, 0], "responses": 0, "log_density": [0.0] * 81},
        {"grid": [-6, 6, 81], "prior": [0, 1], "responses": 0, "log_density": ["x"] * 81},
        {"grid": [-6, 6, 81], "prior": [0, 1], "responses": 0, "log_density": [math.inf] * 81},
    ],
)
def test_a_malformed_state_is_rejected(state: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case fails its own check
        AbilityPosterior.from_state(state)


def test_an_update_with_item_parameters_out_of_range_is_rejected() -> None:
    with pytest.raises(ValueError, match="difficulty"):
        AbilityPosterior.start().update(1.0, B_MIN - 1, True)


@pytest.mark.parametrize(
    ("mean", "sd"), [(math.nan, 1.0), (0.0, 0.0), (0.0, -1.0), (0.0, math.inf)]
)
def test_a_prior_needs_a_finite_mean_and_a_positive_finite_sd(mean: float, sd: float) -> None:
    with pytest.raises(ValueError, match="prior"):
        Prior(mean, sd)


@pytest.mark.parametrize(
    ("lower", "upper", "points"), [(1.0, -1.0, 81), (-6.0, math.inf, 81), (-6.0, 6.0, 2)]
)
def test_a_grid_needs_ordered_finite_bounds_and_three_points(
    lower: float, upper: float, points: int
) -> None:
    with pytest.raises(ValueError, match="grid"):
        make_grid(lower, upper, points)


def test_a_custom_grid_is_used_for_the_estimate() -> None:
    grid = make_grid(-3.0, 3.0, 61)

    posterior = AbilityPosterior.start(grid=grid).update(1.0, 0.0, True)

    assert posterior.grid is grid
    assert posterior.theta > 0.0


def test_a_posterior_needs_a_log_density_aligned_with_its_grid() -> None:
    with pytest.raises(ValueError, match="one length"):
        AbilityPosterior(grid=make_grid(), log_density=np.zeros(3))


def test_the_batch_summary_matches_one_posterior_at_a_time() -> None:
    posteriors = [
        AbilityPosterior.from_responses([(1.0, 0.0, True)] * n + [(1.5, 1.0, False)])
        for n in range(4)
    ]

    means, sds = posterior_summary(make_grid(), np.stack([p.log_density for p in posteriors]))

    assert means == pytest.approx([p.theta for p in posteriors], abs=1e-12)
    assert sds == pytest.approx([p.se for p in posteriors], abs=1e-12)
