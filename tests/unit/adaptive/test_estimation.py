"""EAP ability estimation: prior, updates, standard error and the persisted state."""

from __future__ import annotations

import base64
import json
import math
import re
import struct

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


@FAST
@given(history=histories.filter(bool))
def test_after_any_update_the_log_density_is_re_centred_to_a_maximum_of_zero(
    history: list[Item],
) -> None:
    posterior = AbilityPosterior.start()
    for a, b, correct in history:
        posterior = posterior.update(a, b, correct)
        # The state stays near 0 however long the history, so it never loses precision.
        assert posterior.log_density.max() == 0.0


def test_a_thousand_surprising_answers_keep_a_precise_posterior() -> None:
    posterior = AbilityPosterior.from_responses([(A_MAX, B_MIN, False)] * 1000)

    assert posterior.log_density.max() == 0.0
    assert B_MIN - 2.0 < posterior.theta < B_MIN
    assert 0.0 < posterior.se < 0.5


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
    assert restored.log_density.tolist() == posterior.log_density.tolist()


def test_the_state_holds_the_log_density_as_little_endian_float64_bytes() -> None:
    posterior = AbilityPosterior.from_responses([(1.2, -0.5, True)])

    encoded = posterior.to_state()["log_density_f64"]

    raw = base64.b64decode(encoded, validate=True)
    assert len(raw) == GRID_POINTS * 8
    assert struct.unpack(f"<{GRID_POINTS}d", raw) == tuple(posterior.log_density.tolist())
    assert "log_density" not in posterior.to_state()


def test_a_state_written_before_the_binary_form_still_reads() -> None:
    posterior = AbilityPosterior.from_responses([(0.9, 0.3, False)], prior=Prior(0.1, 1.2))
    earlier = {
        "grid": [float(posterior.grid[0]), float(posterior.grid[-1]), GRID_POINTS],
        "prior": [0.1, 1.2],
        "responses": 1,
        "log_density": posterior.log_density.tolist(),
    }

    restored = AbilityPosterior.from_state(json.loads(json.dumps(earlier)))

    assert restored.log_density.tolist() == posterior.log_density.tolist()
    assert restored.theta == posterior.theta
    assert restored.log_density.dtype == np.float64
    assert not restored.log_density.flags.writeable


def test_a_state_read_from_its_bytes_is_a_native_read_only_float64_array() -> None:
    restored = AbilityPosterior.from_state(AbilityPosterior.start().to_state())

    assert restored.log_density.dtype == np.dtype(np.float64)
    assert restored.log_density.dtype.isnative
    assert not restored.log_density.flags.writeable


def test_the_state_of_a_posterior_without_responses_round_trips() -> None:
    start = AbilityPosterior.start(Prior(-0.3, 0.9))

    restored = AbilityPosterior.from_state(start.to_state())

    assert restored.responses == 0
    assert restored.theta == start.theta
    assert restored.se == start.se


def test_the_state_keeps_a_custom_grid() -> None:
    grid = make_grid(-3.0, 3.0, 61)
    posterior = AbilityPosterior.from_responses([(1.0, 0.5, True)], grid=grid)

    restored = AbilityPosterior.from_state(posterior.to_state())

    assert restored.grid.tolist() == grid.tolist()
    assert restored.log_density.tolist() == posterior.log_density.tolist()
    assert restored.theta == posterior.theta


NOT_A_STATE = "not an ability posterior state"


@pytest.mark.parametrize(
    ("state", "says"),
    [
        ({}, NOT_A_STATE),
        (
            {"grid": [-6, 6], "prior": [0, 1], "responses": 0, "log_density": [0.0] * 81},
            NOT_A_STATE,
        ),
        (
            {"grid": [-6, 6, 81], "prior": [0, 1], "responses": 0, "log_density": [0.0] * 80},
            "1-D arrays of one length",
        ),
        (
            {"grid": [-6, 6, 81], "prior": [0, 1], "responses": -1, "log_density": [0.0] * 81},
            "responses must be >= 0, got -1",
        ),
        (
            {"grid": [-6, 6, 81], "prior": [0, 0], "responses": 0, "log_density": [0.0] * 81},
            "prior sd must be finite and positive",
        ),
        (
            {"grid": [-6, 6, 81], "prior": [0, 1], "responses": 0, "log_density": ["x"] * 81},
            NOT_A_STATE,
        ),
        (
            {"grid": [-6, 6, 81], "prior": [0, 1], "responses": 0, "log_density": [math.inf] * 81},
            "log_density must be finite",
        ),
        (
            {"grid": [-6, 6, 81], "prior": [0, 1], "responses": 0, "log_density_f64": "%%%"},
            NOT_A_STATE,
        ),
        (
            {"grid": [-6, 6, 81], "prior": [0, 1], "responses": 0, "log_density_f64": 12},
            NOT_A_STATE,
        ),
        (
            {
                "grid": [-6, 6, 81],
                "prior": [0, 1],
                "responses": 0,
                "log_density_f64": base64.b64encode(bytes(81 * 8 - 1)).decode(),
            },
            NOT_A_STATE,
        ),
        (
            {
                "grid": [-6, 6, 81],
                "prior": [0, 1],
                "responses": 0,
                "log_density_f64": base64.b64encode(bytes(80 * 8)).decode(),
            },
            "1-D arrays of one length",
        ),
        (
            {
                "grid": [-6, 6, 81],
                "prior": [0, 1],
                "responses": 0,
                "log_density_f64": base64.b64encode(struct.pack("<81d", *[math.nan] * 81)).decode(),
            },
            "log_density must be finite",
        ),
    ],
)
def test_a_malformed_state_is_rejected_saying_what_is_wrong(
    state: dict[str, object], says: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(says)):
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


def test_a_grid_is_evenly_spaced_read_only_and_spans_its_bounds() -> None:
    smallest = make_grid(-1.0, 1.0, 3)
    default = make_grid()

    assert smallest.tolist() == [-1.0, 0.0, 1.0]
    assert default.dtype == np.float64
    assert default.size == GRID_POINTS
    assert (default[0], default[-1]) == (-6.0, 6.0)
    assert np.diff(default) == pytest.approx(np.full(GRID_POINTS - 1, 0.15))
    with pytest.raises(ValueError, match="read-only"):
        default[0] = 0.0


@pytest.mark.parametrize(
    ("lower", "upper", "points"),
    [(1.0, -1.0, 81), (1.0, 1.0, 81), (-6.0, math.inf, 81), (-6.0, 6.0, 2)],
)
def test_a_grid_needs_ordered_finite_bounds_and_three_points(
    lower: float, upper: float, points: int
) -> None:
    with pytest.raises(ValueError, match="grid"):
        make_grid(lower, upper, points)


def test_a_custom_grid_is_used_for_the_estimate() -> None:
    grid = make_grid(-3.0, 3.0, 61)

    posterior = AbilityPosterior.start(grid=grid).update(1.0, 0.0, True)
    replayed = AbilityPosterior.from_responses([(1.0, 0.0, True)], grid=grid)

    assert posterior.grid is grid
    assert posterior.theta > 0.0
    assert replayed.grid is grid
    assert replayed.theta == posterior.theta


def test_a_posterior_needs_a_one_dimensional_log_density_aligned_with_its_grid() -> None:
    with pytest.raises(ValueError, match="1-D arrays of one length"):
        AbilityPosterior(grid=make_grid(), log_density=np.zeros(3))
    with pytest.raises(ValueError, match="1-D arrays of one length"):
        AbilityPosterior(grid=np.zeros((3, 3)), log_density=np.zeros((3, 3)))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_posterior_needs_a_finite_log_density(bad: float) -> None:
    log_density = np.zeros(GRID_POINTS)
    log_density[40] = bad

    with pytest.raises(ValueError, match="log_density must be finite"):
        AbilityPosterior(grid=make_grid(), log_density=log_density)


def test_the_batch_summary_matches_one_posterior_at_a_time() -> None:
    posteriors = [
        AbilityPosterior.from_responses([(1.0, 0.0, True)] * n + [(1.5, 1.0, False)])
        for n in range(4)
    ]

    means, sds = posterior_summary(make_grid(), np.stack([p.log_density for p in posteriors]))

    assert means == pytest.approx([p.theta for p in posteriors], abs=1e-12)
    assert sds == pytest.approx([p.se for p in posteriors], abs=1e-12)


@pytest.mark.parametrize("shift", [-1e4, -800.0, 800.0, 1e4])
def test_the_summary_ignores_a_constant_added_to_the_log_density(shift: float) -> None:
    # The log density is unnormalised: only differences between grid points carry meaning,
    # even when the constant is far past what exp() can represent.
    posterior = AbilityPosterior.from_responses([(1.2, 0.4, True), (0.8, -1.0, False)])

    mean, sd = posterior_summary(posterior.grid, posterior.log_density + shift)

    assert float(mean) == pytest.approx(posterior.theta, rel=1e-9)
    assert float(sd) == pytest.approx(posterior.se, rel=1e-9)


def test_the_batch_summary_normalises_each_row_on_its_own() -> None:
    # Rows whose log densities sit at levels far apart: each row is summarised as if alone,
    # so one learner's scale can neither underflow nor overflow another's weights.
    posteriors = [
        AbilityPosterior.from_responses([(1.0, 0.0, True)]),
        AbilityPosterior.from_responses([(1.5, 1.0, False)] * 3),
    ]
    rows = np.stack([posteriors[0].log_density, posteriors[1].log_density - 1e4])

    means, sds = posterior_summary(make_grid(), rows)

    assert means == pytest.approx([p.theta for p in posteriors], rel=1e-9)
    assert sds == pytest.approx([p.se for p in posteriors], rel=1e-9)
