"""The package's import graph (issue 14): no cycle among igc's modules at module level,
and no private helper (``_name``) imported from another module.

The graph is read from the source with :mod:`ast`: every ``import`` / ``from ... import``
that runs when a module is imported (not those inside functions or under
``TYPE_CHECKING``), resolved to igc's modules and packages. Importing ``igc.a.b`` from
outside ``igc.a`` also runs ``igc/a/__init__.py``, so it is an edge to ``igc.a`` too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import igc

ROOT = Path(igc.__file__).resolve().parent


def modules() -> dict[str, Path]:
    """Every module of igc by dotted name (a package by its name, for its __init__.py)."""
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = ["igc", *path.relative_to(ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def module_level_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """The imports a module runs when it is imported."""
    def visit(nodes: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
        for node in nodes:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                yield node
            elif isinstance(node, ast.If):
                if "TYPE_CHECKING" not in ast.unparse(node.test):
                    yield from visit(node.body)
                yield from visit(node.orelse)
            elif isinstance(node, (ast.Try, ast.With, ast.ClassDef)):
                for block in ("body", "orelse", "finalbody"):
                    yield from visit(getattr(node, block, []))
                for handler in getattr(node, "handlers", []):
                    yield from visit(handler.body)
    yield from visit(tree.body)


def imported_names(node: ast.Import | ast.ImportFrom, package: str) -> list[str]:
    """The dotted names an import statement may load (a ``from`` import's names may be
    submodules)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        parts = package.split(".")[: len(package.split(".")) - node.level + 1]
        base = ".".join([*parts, base] if base else parts)
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def import_graph() -> dict[str, set[str]]:
    """``module -> igc modules it imports at module level``."""
    known = modules()
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in module_level_imports(ast.parse(path.read_text(encoding="utf-8"))):
            for target in imported_names(node, package):
                if target not in known:
                    continue
                edges.add(target)
                parts = target.split(".")
                for i in range(1, len(parts)):  # packages a first import runs
                    ancestor = ".".join(parts[:i])
                    if ancestor in known and not (name + ".").startswith(ancestor + "."):
                        edges.add(ancestor)
        edges.discard(name)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of nodes (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (cycle := walk(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := walk(node)):
            return cycle
    return None


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    assert len(graph) > 100 and "igc.sparsity.product" in graph["igc.sparsity.design"]
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a"}}) is None


def test_no_private_helper_is_imported_from_another_module():
    known = modules()
    found = []
    for name, path in known.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("igc"):
                found += [f"{name}: from {node.module} import {alias.name}"
                          for alias in node.names
                          if alias.name.startswith("_") and not alias.name.startswith("__")]
    assert not found, "\n".join(found)


#: The floors of igc's layering (issue 21): a module imports, when it is imported, only
#: modules of its own floor or below. 0: the foundation (errors, checks, files, ...).
FLOORS = {"errors": 0, "checks": 0, "formatting": 0, "names": 0, "log": 0, "runtime": 0,
          "provenance": 0, "files": 0, "sparsity": 1, "layers": 2, "models": 3, "hub": 3,
          "data": 4, "analysis": 4, "train": 4, "deploy": 4, "reproduce": 4, "viz": 4,
          "integrations": 4, "cli": 5, "__main__": 5}


def floor(module: str) -> int:
    """The floor of an igc module (``igc`` itself: 0, its names are imported lazily)."""
    parts = module.split(".")
    return 0 if len(parts) == 1 else FLOORS[parts[1]]


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{a} -> {b}" for a, targets in graph.items() for b in targets
                  if floor(b) > floor(a))


def test_every_module_has_a_floor():
    missing = sorted({m.split(".")[1] for m in modules() if "." in m} - set(FLOORS))
    assert not missing, f"give {missing} a floor in FLOORS"


def test_no_module_imports_upward_at_module_level():
    assert upward_imports(import_graph()) == []


def test_the_layering_check_can_fail():
    assert upward_imports({"igc.layers.chain": {"igc.models.net", "igc.sparsity"}}) == \
        ["igc.layers.chain -> igc.models.net"]
