"""Locust entry point: `locust -f load/locustfile.py --host URL` (docs/load-testing.md).

The user classes are in load/scenarios.py and the shape in load/shapes.py (LOAD_SHAPE picks
its stages). The baseline user runs only when LOAD_BASELINE_HOST is set (the load stack does).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Locust puts this file's directory on sys.path; the scenarios import `load.*` from the root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from load.scenarios import Admin, Instructor, Learner
from load.shapes import StagedShape

__all__ = ["Admin", "Instructor", "Learner", "StagedShape"]

if os.environ.get("LOAD_BASELINE_HOST"):
    from load.scenarios import Baseline  # noqa: F401 - Locust finds user classes by name

    __all__.append("Baseline")
