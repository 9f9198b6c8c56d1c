"""Transitional: the process helpers moved to tools/processes.py (issue 15).

Only tests/integration/test_worker.py and tests/integration/test_metrics_worker.py still import
this module; delete it once they import `tools.processes` instead. Nothing new imports it.
"""

from __future__ import annotations

from tools.processes import base_env, celery_worker_command, free_port, launch, stop

__all__ = ["base_env", "celery_worker_command", "free_port", "launch", "stop"]
