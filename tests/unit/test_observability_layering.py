"""The observability layer depends on no capability: capabilities register their metrics with it.

An import inside a function is how a cycle hides (it defers the import until the first call),
so none is allowed in app/observability/; and nothing there may import app.ai or app.jobs,
whose metrics and scrape-time collectors are registered from their own `init_app`
(app/ai/metrics.py, app/jobs/metrics.py). File parsing only.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

OBSERVABILITY = Path(__file__).resolve().parents[2] / "app" / "observability"
MODULES = sorted(OBSERVABILITY.glob("*.py"))
CAPABILITIES = ("app.ai", "app.jobs")


def imported_modules(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:  # relative: resolve against app.observability
        base = "app.observability" if node.level == 1 else "app"
        module = f"{base}.{node.module}" if node.module else base
    else:
        module = node.module or ""
    # `from app import ai` imports app.ai: count each name as a possible submodule too.
    return [module, *(f"{module}.{alias.name}" for alias in node.names)]


def function_level_imports(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for function in ast.walk(tree):
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            for node in ast.walk(function):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    found.append((node.lineno, ast.unparse(node)))
    return found


def test_the_observability_package_is_found() -> None:
    names = {path.name for path in MODULES}
    assert {"__init__.py", "metrics.py", "worker_metrics.py", "logging.py"} <= names


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.name)
def test_no_import_inside_a_function(path: Path) -> None:
    imports = function_level_imports(ast.parse(path.read_text(), filename=str(path)))

    assert not imports, f"{path.name}: function-level imports (hidden cycles?): {imports}"


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.name)
def test_nothing_is_imported_from_a_capability(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    reaching = [
        (node.lineno, module)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for module in imported_modules(node)
        if any(module == cap or module.startswith(f"{cap}.") for cap in CAPABILITIES)
    ]

    assert not reaching, f"{path.name} imports capability internals: {reaching}"


def test_the_checks_catch_what_they_look_for() -> None:
    source = (
        "from app import ai\n"
        "from app.jobs.models import Job\n"
        "def scrape():\n"
        "    import app.ai.runtime\n"
        "    return lambda: __import__('x')\n"
    )
    tree = ast.parse(source)

    assert [line for line, _ in function_level_imports(tree)] == [4]
    modules = [
        module
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for module in imported_modules(node)
    ]
    assert {"app.ai", "app.jobs.models", "app.ai.runtime"} <= set(modules)
