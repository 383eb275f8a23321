"""Imports go one way: gateway → services → domain; workers lean on neither the gateway nor each other;
no module imports itself back, not even through an import hidden inside a function.

The import graph is read from the source (every `import` anywhere in a module: top level, inside a
function, under `TYPE_CHECKING`), so a lazy import cannot hide a cycle or a wrong-way dependency.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = ("agents", "indexing", "models", "trainers", "evaluation", "schemas")
PACKAGES = (*DOMAIN, "streams")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {_module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


def _imported(name: str, path: Path) -> Iterator[str]:
    """The project modules `name` imports, wherever in the file the import statement sits."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against this module's package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:  # `import a.b.c` where c is a name in a.b
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target


GRAPH: dict[str, set[str]] = {name: set(_imported(name, path)) for name, path in MODULES.items()}


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _violations(allowed: Callable[[str, str], bool]) -> list[str]:
    return sorted(f"{source} imports {target}" for source, targets in GRAPH.items() for target in targets
                  if not allowed(source, target))


def test_the_graph_covers_the_project() -> None:
    assert "streams.workers.agent" in GRAPH and "indexing.backends.base" in GRAPH
    assert "streams.stores" in GRAPH["streams.runtime"]


def test_domain_folders_never_import_streams() -> None:
    assert _violations(lambda source, target: not (source.split(".")[0] in DOMAIN and _within(target, "streams"))) == []


def test_workers_import_neither_the_gateway_nor_another_worker() -> None:
    def allowed(source: str, target: str) -> bool:
        if not _within(source, "streams.workers") or source == "streams.workers":
            return True
        return not _within(target, "streams.gateway") and not _within(target, "streams.workers")

    assert _violations(allowed) == []


def test_the_gateway_never_imports_a_worker() -> None:
    assert _violations(lambda source, target: not (_within(source, "streams.gateway") and _within(target, "streams.workers"))) == []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in graph.get(node, ()):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycles(package: str) -> None:
    assert [cycle for cycle in _cycles(GRAPH) if any(_within(m, package) for m in cycle)] == []
