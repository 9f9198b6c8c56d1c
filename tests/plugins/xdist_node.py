"""What the harness's plugins use of a pytest-xdist worker node (xdist ships no type hints)."""

from __future__ import annotations

from typing import Any, Protocol

import pytest


class WorkerNode(Protocol):
    """The `node` of xdist's `pytest_configure_node` hook: its config, and the dict handed to
    the worker process as `config.workerinput`."""

    config: pytest.Config
    workerinput: dict[str, Any]
