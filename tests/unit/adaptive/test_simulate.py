"""The simulation benchmark's command line, output and internal consistency (no timing asserts)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from app.adaptive.estimation import AbilityPosterior
from app.adaptive.irt import A_MAX, A_MIN, B_MAX, B_MIN
from app.adaptive.simulate import (
    CHECKPOINTS,
    SimulationConfig,
    generate_bank,
    main,
    max_info_selector,
    run,
    run_arm,
)

SMALL = [
    "--learners",
    "50",
    "--bank",
    "100",
    "--items",
    "10",
    "--seed",
    "3",
    "--timing-calls",
    "20",
]
REQUIRED = [f"{prefix}rmse_at_{n}" for prefix in ("", "random_") for n in CHECKPOINTS] + [
    "select_p50_ms",
    "select_p95_ms",
    "select_p50_ms_10000",
    "select_p95_ms_10000",
]


def test_main_prints_exactly_one_json_object_with_every_benchmark_key(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main([*SMALL, "--json"]) == 0

    output = capsys.readouterr().out
    result = json.loads(output)
    assert output.count("\n") == 1
    assert set(REQUIRED) <= set(result)
    assert result["rmse_at_10"] > 0
    assert result["random_rmse_at_10"] > 0
    assert result["rmse_at_20"] is None  # the test was only 10 items long
    assert result["parameters"]["learners"] == 50


def test_main_without_json_prints_a_readable_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(SMALL) == 0

    output = capsys.readouterr().out
    assert "RMSE@10" in output
    assert "random" in output
    assert "bank 10000" in output


def test_invalid_sizes_are_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--items", "200", "--bank", "100"])

    assert exit_info.value.code == 2
    assert "longer than the bank" in capsys.readouterr().err


def test_a_config_needs_positive_sizes() -> None:
    with pytest.raises(ValueError, match="learners"):
        SimulationConfig(learners=0)


def test_the_same_seed_gives_the_same_accuracy_figures() -> None:
    config = SimulationConfig(learners=30, items=12, bank=80, seed=5, timing_calls=5)

    first, second = run(config), run(config)

    for key in ("rmse_at_10", "random_rmse_at_10", "maxinfo_rmse_at_10", "se_rms_at_10"):
        assert first[key] == second[key]


def test_the_simulated_bank_respects_the_platform_limits() -> None:
    bank = generate_bank(2000, np.random.default_rng(0))

    assert len(bank) == 2000
    assert bank.a.min() >= A_MIN
    assert bank.a.max() <= A_MAX
    assert bank.b.min() >= B_MIN
    assert bank.b.max() <= B_MAX


def test_the_batched_estimates_equal_the_one_learner_posterior_of_the_same_responses() -> None:
    rng = np.random.default_rng(11)
    bank = generate_bank(60, rng)
    thetas = rng.normal(size=8)

    arm = run_arm(bank, thetas, 15, max_info_selector(3), rng)

    for learner in range(thetas.size):
        items = arm.items[learner]
        assert len(set(items.tolist())) == 15  # no item twice in one test
        posterior = AbilityPosterior.from_responses(
            (float(bank.a[i]), float(bank.b[i]), bool(c))
            for i, c in zip(items, arm.correct[learner], strict=True)
        )
        assert arm.estimates[learner, -1] == pytest.approx(posterior.theta, abs=1e-9)
        assert arm.errors[learner, -1] == pytest.approx(posterior.se, abs=1e-9)
    assert arm.exposure.sum() == pytest.approx(15)
