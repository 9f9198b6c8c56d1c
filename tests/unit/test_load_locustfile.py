"""Plain Locust works like Locust (load/locustfile.py): without a shape named, Locust finds no
shape class and honours -u/-r/-t and the web UI's fields; `--shape NAME` / LOAD_SHAPE runs that
shape; `--class-picker` offers every shape in the web UI. Each shape class yields its stages.

Locust decides which shape runs while it imports the locustfile (the first LoadTestShape class
found wins and overrides -u/-r/-t), so the test asks Locust itself: a child process imports
the locustfile through Locust's own loader, with each command line and environment. A child,
because importing Locust monkey-patches the whole process with gevent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from load.stages import STAGES

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = "load/locustfile.py"
# Run in the child: for each case, set the command line and environment, load the locustfile
# the way `locust` does, and report the user classes, the shape classes and the shape Locust
# would run; then every shape's ticks at given run times.
PROBE = """
import json, os, sys
from locust.main import merge_locustfiles_content
from load.shapes import SHAPES

cases, times = json.loads(sys.argv[1]), json.loads(sys.argv[2])
base_env, report = dict(os.environ), {"cases": [], "ticks": {}}
for argv, env in cases:
    os.environ.clear()
    os.environ.update({**base_env, **env})
    sys.argv = argv
    users, shapes, _tasks, chosen = merge_locustfiles_content([argv[2]])
    report["cases"].append({
        "users": sorted(users),
        "shapes": list(shapes),
        "runs": type(chosen).__name__ if chosen else None,
    })
os.environ.clear()
os.environ.update(base_env)
for name, shape_class in SHAPES.items():
    shape = shape_class()
    ticks = []
    for t in times:
        shape.get_run_time = lambda t=t: t
        ticks.append(shape.tick())
    report["ticks"][name] = [list(tick) if tick else None for tick in ticks]
print(json.dumps(report))
"""
ALL_SHAPES = ["SmokeShape", "SteadyShape", "RampShape", "SpikeShape", "SoakShape"]
CASES: list[tuple[str, list[str], dict[str, str], list[str], str | None]] = [
    # (what, command line, environment, shape classes Locust finds, the one it runs)
    ("plain -u/-r/-t", ["-u", "3", "-r", "3", "-t", "15s", "--headless"], {}, [], None),
    ("web UI without the picker", [], {}, [], None),
    ("--shape ramp", ["--shape", "ramp", "--headless"], {}, ["RampShape"], "RampShape"),
    ("LOAD_SHAPE=smoke (the gate)", ["--headless"], {"LOAD_SHAPE": "smoke"}, ["SmokeShape"],
     "SmokeShape"),
    ("web UI --class-picker", ["--class-picker"], {}, ALL_SHAPES, "SmokeShape"),
    ("--class-picker from the environment", [], {"LOCUST_USERCLASS_PICKER": "true"},
     ALL_SHAPES, "SmokeShape"),
    ("--class-picker --headless", ["--class-picker", "--headless", "-u", "3"], {}, [], None),
    ("--class-picker --shape spike", ["--class-picker", "--shape", "spike"], {},
     ["SpikeShape", *[s for s in ALL_SHAPES if s != "SpikeShape"]], "SpikeShape"),
    ("a worker", ["--worker", "--class-picker"], {}, [], None),
]  # fmt: skip
TIMES = [0.0, 25.0, 59.9, 60.0, 100.0, 149.9, 239.9, 240.0]


@pytest.fixture(scope="module")
def probe() -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOAD_", "LOCUST_"))}
    cases = [(["locust", "-f", LOCUSTFILE, *argv], extra) for _, argv, extra, _, _ in CASES]
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(cases), json.dumps(TIMES)],
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    return report


@pytest.mark.parametrize(
    ("what", "shapes", "runs"),
    [(what, shapes, runs) for what, _, _, shapes, runs in CASES],
    ids=[case[0] for case in CASES],
)
def test_locust_runs_a_shape_only_when_one_is_named_or_picked(
    probe: dict[str, Any], what: str, shapes: list[str], runs: str | None
) -> None:
    found = probe["cases"][[case[0] for case in CASES].index(what)]

    assert found["users"] == ["Admin", "Instructor", "Learner"]
    assert found["shapes"] == shapes
    assert found["runs"] == runs


def test_each_shape_class_ticks_through_its_stages_and_then_stops(probe: dict[str, Any]) -> None:
    for name, stages in STAGES.items():
        expected = []
        for t in TIMES:
            stage = next(((users, rate) for until, users, rate in stages if t < until), None)
            expected.append(list(stage) if stage else None)

        assert probe["ticks"][name] == expected, name
    assert probe["ticks"]["smoke"][:4] == [[50, 10], [50, 10], [50, 10], None]
    assert probe["ticks"]["spike"][:5] == [[20, 10], [150, 50], [20, 50], [20, 50], None]
