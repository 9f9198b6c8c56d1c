"""Locust entry point: `locust -f load/locustfile.py --host URL` (docs/load-testing.md).

The user classes are in load/scenarios.py, the shapes in load/shapes.py. Which shape runs:

- none by default: Locust's own `-u/-r/-t` (or the web UI's fields) set the users, as in any
  locustfile;
- `--shape NAME` (or `LOAD_SHAPE=NAME`, what `nox -s load` sets): that shape, and only it;
- `--class-picker` (web UI): every shape is offered next to "Default" (user-controlled).

Locust runs the first LoadTestShape class it finds in the locustfile and ignores `-u/-r/-t`
whenever there is one, so a shape class is put in this module's namespace only when it was
asked for. That has to be decided while Locust imports this file, before it parses its
options, so `requested()` reads `--shape` and `--class-picker` the way Locust reads options
(command line, environment, config file) with a parser of just those.

The baseline user runs only when LOAD_BASELINE_HOST is set (the load stack does).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

# Locust puts this file's directory on sys.path; the scenarios import `load.*` from the root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from locust import events
from locust.argument_parser import get_empty_argument_parser

from load.scenarios import Admin, Instructor, Learner
from load.shapes import SHAPES

__all__ = ["Admin", "Instructor", "Learner"]

SHAPE_HELP = (
    f"Run one of this project's load shapes ({', '.join(SHAPES)}) instead of -u/-r/-t."
    " Environment: LOAD_SHAPE. With --class-picker the web UI offers them all."
)


def _add_shape_argument(parser: Any, choices: list[str] | None) -> None:
    parser.add_argument(
        "--shape",
        choices=choices,
        default=None,
        env_var="LOAD_SHAPE",
        metavar="NAME",
        help=SHAPE_HELP,
        include_in_web_ui=False,  # the web UI picks shapes with --class-picker
    )


@events.init_command_line_parser.add_listener
def _on_parser(parser: Any, **_kwargs: Any) -> None:
    _add_shape_argument(parser, sorted(SHAPES))


def _run_by_locust() -> bool:
    """Whether this process is the `locust` command (`locust` or `python -m locust`), whose
    command line is Locust's to read; imported elsewhere (a test), only the environment is."""
    program = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path()
    return program.name == "locust" or program.parts[-2:] == ("locust", "__main__.py")


def requested() -> tuple[str | None, bool]:
    """(the shape named by --shape or LOAD_SHAPE, whether the web UI's class picker is on).
    `--class-picker --headless` has no picker to show, so it counts as off."""
    probe = get_empty_argument_parser(add_help=False)
    _add_shape_argument(probe, None)  # an unknown name is the real parser's error to report
    probe.add_argument("--class-picker", action="store_true", env_var="LOCUST_USERCLASS_PICKER")
    probe.add_argument("--headless", action="store_true", env_var="LOCUST_HEADLESS")
    probe.add_argument("--worker", action="store_true", env_var="LOCUST_MODE_WORKER")
    options, _unknown = probe.parse_known_args(sys.argv[1:] if _run_by_locust() else [])
    picker = options.class_picker and not (options.headless or options.worker)
    return options.shape, bool(picker)


def offered_shapes(shape: str | None, picker: bool) -> list[str]:
    """The names of the shape classes Locust should see, the one it runs by default first."""
    names = [shape] if shape in SHAPES else []
    if picker:
        names += [name for name in SHAPES if name not in names]
    return names


for _name in offered_shapes(*requested()):
    globals()[SHAPES[_name].__name__] = SHAPES[_name]
    __all__.append(SHAPES[_name].__name__)

if os.environ.get("LOAD_BASELINE_HOST"):
    from load.scenarios import Baseline  # noqa: F401 - Locust finds user classes by name

    __all__.append("Baseline")
