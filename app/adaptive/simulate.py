"""Simulation benchmark of the adaptive engine (computerised adaptive testing).

    python -m app.adaptive.simulate --learners 2000 --items 30 --bank 500 --seed 1 --json

Draws a 2PL bank (a ~ LogNormal(0, 0.3) clipped to [0.2, 3.0], b ~ N(0, 1) clipped to
[-4, 4]) and learners θ ~ N(0, 1), then gives every learner a test of `--items` items three
ways — maximum information with the default top-k exposure control, pure maximum information
(k = 1) and random items — answering each item Bernoulli(P(θ)). Every learner goes through the
engine's public API one response at a time (`select_item`, `AbilityPosterior.update`), the way
the platform uses it. Reports the RMSE of the EAP estimate against the true θ after 10, 20 and
30 items (null when the test is shorter), the RMS posterior SD at the same points (it should
match the RMSE if the SE is honest), the largest item exposure rate, and per-call latency
percentiles of `select_item` on banks of `--bank` and 10,000 items.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from app.adaptive.estimation import (
    GRID_POINTS,
    AbilityPosterior,
    Prior,
    make_grid,
    posterior_summary,
)
from app.adaptive.irt import (
    A_MAX,
    A_MIN,
    B_MAX,
    B_MIN,
    FloatArray,
    log_likelihood,
    probability,
)
from app.adaptive.selection import DEFAULT_TOP_K, ItemBank, select_item, select_random_item

CHECKPOINTS: Final = (10, 20, 30)
LARGE_BANK: Final = 10_000
# A learner's recent items are excluded in production; the latency figures exclude this many.
TIMING_EXCLUDED: Final = 20
TIMING_WARMUP: Final = 200

Selector = Callable[[ItemBank, float, np.random.Generator, set[str]], str | None]


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate; the defaults are the benchmark's reference run."""

    learners: int = 2000
    items: int = 30
    bank: int = 500
    seed: int = 1
    top_k: int = DEFAULT_TOP_K
    timing_calls: int = 2000

    def __post_init__(self) -> None:
        for name in ("learners", "items", "bank", "top_k", "timing_calls"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.items > self.bank:
            raise ValueError("a test cannot be longer than the bank (items are not repeated)")


def generate_bank(size: int, rng: np.random.Generator, prefix: str = "item") -> ItemBank:
    """A simulated 2PL bank with the platform's parameter limits."""
    a = np.clip(rng.lognormal(mean=0.0, sigma=0.3, size=size), A_MIN, A_MAX)
    b = np.clip(rng.normal(0.0, 1.0, size=size), B_MIN, B_MAX)
    ids = tuple(f"{prefix}-{index:05d}" for index in range(size))
    return ItemBank(ids=ids, a=a, b=b)


def max_info_selector(k: int) -> Selector:
    """The engine's selector: maximum information, random among the top `k`."""

    def choose(
        bank: ItemBank, theta: float, rng: np.random.Generator, seen: set[str]
    ) -> str | None:
        return select_item(bank, theta, rng, k=k, excluded=seen)

    return choose


def random_selector(
    bank: ItemBank, theta: float, rng: np.random.Generator, seen: set[str]
) -> str | None:
    """The baseline: any unseen item, ignoring θ."""
    return select_random_item(bank, rng, excluded=seen)


@dataclass(frozen=True)
class ArmResult:
    """One selection strategy's run, one row per learner and one column per test position."""

    items: npt.NDArray[np.intp]  # bank position of the item given
    correct: npt.NDArray[np.bool_]  # whether it was answered correctly
    estimates: FloatArray  # EAP estimate after the response
    errors: FloatArray  # posterior SD after the response
    exposure: FloatArray  # per bank item: the fraction of learners who were given it


def run_arm(
    bank: ItemBank,
    thetas: FloatArray,
    length: int,
    choose: Selector,
    rng: np.random.Generator,
) -> ArmResult:
    """Give every learner a `length`-item test chosen by `choose`.

    The learners advance in lock-step so that their posteriors can be updated as one
    learners x grid matrix, with the same `log_likelihood` and `posterior_summary` that
    `AbilityPosterior` uses; each item is still chosen by one `choose` call per learner.
    """
    index = {item_id: position for position, item_id in enumerate(bank.ids)}
    learners = thetas.size
    grid = make_grid()
    log_posterior = np.tile(Prior().log_density(grid), (learners, 1))
    theta_hat, _ = posterior_summary(grid, log_posterior)
    seen: list[set[str]] = [set() for _ in range(learners)]
    items = np.empty((learners, length), dtype=np.intp)
    correct = np.empty((learners, length), dtype=np.bool_)
    estimates = np.empty((learners, length))
    errors = np.empty((learners, length))
    for step in range(length):
        for learner in range(learners):
            item_id = choose(bank, float(theta_hat[learner]), rng, seen[learner])
            if item_id is None:  # pragma: no cover - SimulationConfig keeps length <= bank
                raise RuntimeError("the bank ran out of items")
            seen[learner].add(item_id)
            items[learner, step] = index[item_id]
        a = bank.a[items[:, step]]
        b = bank.b[items[:, step]]
        correct[:, step] = rng.random(learners) < probability(thetas, a, b)
        log_posterior += log_likelihood(grid, a[:, None], b[:, None], correct[:, step, None])
        log_posterior -= np.max(log_posterior, axis=1, keepdims=True)
        theta_hat, estimates_se = posterior_summary(grid, log_posterior)
        estimates[:, step] = theta_hat
        errors[:, step] = estimates_se
    exposure = np.bincount(items.ravel(), minlength=len(bank)) / learners
    return ArmResult(
        items=items, correct=correct, estimates=estimates, errors=errors, exposure=exposure
    )


def _at(values: FloatArray, length: int) -> float | None:
    """Root mean square of column `length - 1`, or None when the test is shorter."""
    if length > values.shape[1]:
        return None
    return round(float(np.sqrt(np.mean(values[:, length - 1] ** 2))), 4)


def time_selection(
    bank: ItemBank, rng: np.random.Generator, calls: int, k: int
) -> tuple[float, float]:
    """p50 and p95 in ms of one `select_item` call, with TIMING_EXCLUDED recent items excluded."""
    excluded_count = min(TIMING_EXCLUDED, len(bank) - 1)
    samples = np.empty(calls)
    for call in range(-TIMING_WARMUP, calls):
        theta = float(rng.normal())
        picks = rng.choice(len(bank), size=excluded_count, replace=False)
        excluded = frozenset(bank.ids[int(p)] for p in picks)
        started = time.perf_counter_ns()
        select_item(bank, theta, rng, k=k, excluded=excluded)
        elapsed = time.perf_counter_ns() - started
        if call >= 0:
            samples[call] = elapsed / 1e6
    p50, p95 = np.percentile(samples, [50, 95])
    return round(float(p50), 4), round(float(p95), 4)


def time_update(rng: np.random.Generator, calls: int) -> float:
    """Median ms of one `AbilityPosterior.update` (the per-attempt cost of estimation)."""
    posterior = AbilityPosterior.start()
    samples = np.empty(calls)
    for call in range(calls):
        a, b, correct = float(rng.uniform(0.5, 2.0)), float(rng.normal()), bool(rng.random() < 0.5)
        started = time.perf_counter_ns()
        posterior.update(a, b, correct).theta  # noqa: B018 - the estimate is part of the cost
        samples[call] = (time.perf_counter_ns() - started) / 1e6
    return round(float(np.median(samples)), 4)


def run(config: SimulationConfig) -> dict[str, Any]:
    """Run the whole benchmark and return the figures as a JSON-ready dict."""
    started = time.perf_counter()
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(config.seed).spawn(7)]
    bank_rng, theta_rng, adaptive_rng, maxinfo_rng, random_rng, timing_rng, large_rng = streams
    bank = generate_bank(config.bank, bank_rng)
    thetas = theta_rng.normal(0.0, 1.0, size=config.learners)

    arms = {
        "": run_arm(bank, thetas, config.items, max_info_selector(config.top_k), adaptive_rng),
        "maxinfo_": run_arm(bank, thetas, config.items, max_info_selector(1), maxinfo_rng),
        "random_": run_arm(bank, thetas, config.items, random_selector, random_rng),
    }
    simulated = time.perf_counter() - started

    result: dict[str, Any] = {}
    for prefix, arm in arms.items():
        for length in CHECKPOINTS:
            result[f"{prefix}rmse_at_{length}"] = _at(arm.estimates - thetas[:, None], length)
        for length in CHECKPOINTS:
            result[f"{prefix}se_rms_at_{length}"] = _at(arm.errors, length)
        result[f"{prefix}max_exposure"] = round(float(np.max(arm.exposure)), 4)

    large_bank = generate_bank(LARGE_BANK, large_rng)
    result["select_p50_ms"], result["select_p95_ms"] = time_selection(
        bank, timing_rng, config.timing_calls, config.top_k
    )
    result["select_p50_ms_10000"], result["select_p95_ms_10000"] = time_selection(
        large_bank, timing_rng, config.timing_calls, config.top_k
    )
    result["update_p50_ms"] = time_update(timing_rng, config.timing_calls)
    result["parameters"] = {
        **asdict(config),
        "grid_points": GRID_POINTS,
        "prior": "N(0, 1)",
        "timing_excluded_items": TIMING_EXCLUDED,
    }
    result["simulation_s"] = round(simulated, 2)
    result["runtime_s"] = round(time.perf_counter() - started, 2)
    return result


def format_table(result: dict[str, Any]) -> str:
    """A readable summary of `run`'s result."""

    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    parameters = result["parameters"]
    lines = [
        f"{parameters['learners']} learners, bank of {parameters['bank']}, seed {parameters['seed']}",
        "",
        f"{'selection':<28}"
        + "".join(f"{f'RMSE@{n}':>10}{f'SE@{n}':>9}" for n in CHECKPOINTS)
        + f"{'max exposure':>14}",
    ]
    for label, prefix in (
        (f"max info, top-{parameters['top_k']}", ""),
        ("max info, k = 1", "maxinfo_"),
        ("random", "random_"),
    ):
        lines.append(
            f"{label:<28}"
            + "".join(
                f"{cell(result[f'{prefix}rmse_at_{n}']):>10}{cell(result[f'{prefix}se_rms_at_{n}']):>9}"
                for n in CHECKPOINTS
            )
            + f"{result[f'{prefix}max_exposure']:>14.3f}"
        )
    lines += [
        "",
        f"select_item p50/p95, bank {parameters['bank']}: "
        f"{result['select_p50_ms']:.4f} / {result['select_p95_ms']:.4f} ms",
        f"select_item p50/p95, bank {LARGE_BANK}: "
        f"{result['select_p50_ms_10000']:.4f} / {result['select_p95_ms_10000']:.4f} ms",
        f"posterior update p50: {result['update_p50_ms']:.4f} ms",
        f"runtime: {result['runtime_s']:.1f} s",
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> tuple[SimulationConfig, bool]:
    parser = argparse.ArgumentParser(
        prog="python -m app.adaptive.simulate",
        description="Simulation benchmark of the adaptive engine.",
    )
    parser.add_argument("--learners", type=int, default=SimulationConfig.learners)
    parser.add_argument("--items", type=int, default=SimulationConfig.items, help="test length")
    parser.add_argument("--bank", type=int, default=SimulationConfig.bank, help="bank size")
    parser.add_argument("--seed", type=int, default=SimulationConfig.seed)
    parser.add_argument("--top-k", type=int, default=SimulationConfig.top_k)
    parser.add_argument(
        "--timing-calls",
        type=int,
        default=SimulationConfig.timing_calls,
        help="select_item calls timed per bank",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    try:
        config = SimulationConfig(
            learners=args.learners,
            items=args.items,
            bank=args.bank,
            seed=args.seed,
            top_k=args.top_k,
            timing_calls=args.timing_calls,
        )
    except ValueError as exc:
        parser.error(str(exc))
    return config, bool(args.json)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; prints the result to stdout and returns the exit status."""
    config, as_json = parse_args(argv)
    result = run(config)
    print(json.dumps(result) if as_json else format_table(result))
    return 0


if __name__ == "__main__":  # pragma: no cover - exercised through main() in tests
    sys.exit(main())
