"""The collector's modules import in one direction: `app` → route modules (`pixel`, `webhooks`,
`segment`) → `service` and `responses` → helpers, with no import inside a function and no
import kept for type checkers only, which is how the old circle was dodged."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
PACKAGE = ROOT / "stream" / "collector"
SOURCES = sorted(PACKAGE.rglob("*.py"))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in SOURCES}


def imported(node: ast.Import | ast.ImportFrom) -> list[str]:
    """The stream.collector modules an import statement loads (a name imported from a package
    that is itself a module counts as that module)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        assert not node.level, f"line {node.lineno}: relative import (the project uses absolute)"
        base = node.module or ""
        names = [
            f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
            for alias in node.names
        ]
    return sorted({name for name in names if name in MODULES})


def module_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Imports that run when the module loads (top level, and inside top-level try/if)."""
    found: list[ast.Import | ast.ImportFrom] = []
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        statement = pending.pop()
        if isinstance(statement, ast.Import | ast.ImportFrom):
            found.append(statement)
        elif isinstance(statement, ast.If):
            pending += statement.body + statement.orelse
        elif isinstance(statement, ast.Try):
            pending += statement.body + statement.orelse + statement.finalbody
            for handler in statement.handlers:
                pending += handler.body
    return found


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(), str(path))
        edges[name] = {
            target
            for node in module_level_imports(tree)
            for target in imported(node)
            if target != name
        }
    return edges


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_collector_import_inside_a_function_or_for_type_checkers(path: Path) -> None:
    tree = ast.parse(path.read_text(), str(path))
    for scope in ast.walk(tree):
        if isinstance(scope, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            for node in ast.walk(scope):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    assert not imported(node), f"{path}:{node.lineno}: import inside a function"
        if isinstance(scope, ast.If) and "TYPE_CHECKING" in ast.unparse(scope.test):
            for node in ast.walk(scope):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    assert not imported(node), f"{path}:{node.lineno}: TYPE_CHECKING import"


def test_module_imports_form_no_circle() -> None:
    edges = graph()
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycle = [*path[path.index(module) :], module]
            raise AssertionError("import circle: " + " -> ".join(cycle))
        if module in done:
            return
        for target in sorted(edges[module]):
            visit(target, [*path, module])
        done.add(module)

    for module in sorted(edges):
        visit(module, [])


def test_the_layers_point_one_way() -> None:
    edges = graph()
    assert {"stream.collector.pixel", "stream.collector.webhooks"} <= edges["stream.collector.app"]
    for route_module in ("stream.collector.pixel", "stream.collector.webhooks"):
        assert "stream.collector.service" in edges[route_module]
        assert "stream.collector.responses" in edges[route_module]
    lower = ("stream.collector.service", "stream.collector.responses")
    upper = {"stream.collector.app", "stream.collector.pixel", "stream.collector.webhooks"}
    for module in lower:
        assert not edges[module] & upper, module
    assert not edges["stream.collector"], "the package imports its modules only when asked"


def test_the_route_modules_load_without_the_app() -> None:
    code = (
        "import sys\n"
        "import stream.collector.pixel, stream.collector.webhooks, stream.collector.service\n"
        "import json\n"
        "print(json.dumps([m for m in sys.modules if m.startswith('stream.collector')]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout))
    assert "stream.collector.app" not in loaded
    assert {"stream.collector.service", "stream.collector.webhooks.mailgun"} <= loaded
