"""The package's layering, read from its imports: no import circle, and nothing below the
endpoints reaches up to them or to the request dependencies (`org_service/deps.py`).
Imports under `if TYPE_CHECKING:` and inside functions count too: they are arrows a reader
has to follow all the same."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "org_service"
# The top layer: the app, the routes and their dependencies. Everything else is below.
TOP = {"org_service.main", "org_service.deps", "org_service.health"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_top(module: str) -> bool:
    return module in TOP or module.endswith(".endpoints")


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from org_service import health` imports the module org_service.health.
                targets = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}"
                           in modules else node.module for alias in node.names]
            graph[name] |= {t for t in targets if t in modules and t != name
                            and t != "org_service"}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_package_has_no_import_circle() -> None:
    assert cycles(import_graph()) == []


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{low} -> {high}" for low, targets in graph.items()
                  if not is_top(low) for high in targets if is_top(high))


def test_nothing_below_the_endpoints_imports_them_or_the_request_dependencies() -> None:
    assert upward_imports(import_graph()) == []


def test_the_checks_see_a_circle_and_an_upward_import() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert upward_imports({"org_service.db": {"org_service.deps"},
                           "org_service.deps": {"org_service.db"}}) == [
        "org_service.db -> org_service.deps"]
    real = import_graph()
    assert "org_service.deps" in real["org_service.main"]  # the parser sees real arrows
