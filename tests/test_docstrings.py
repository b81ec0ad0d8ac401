"""Docstrings (issue 14): every public module, class and function of the packages below
has a docstring whose first line is a one-line summary (a sentence, then a blank line or
the end), the line ``igc --help`` and the API reference show."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import igc

ROOT = Path(igc.__file__).resolve().parent
#: Packages and modules held to the rule (the others are listed in the house report).
CHECKED = ("cli", "sparsity", "analysis", "files", "viz", "checks.py", "errors.py",
           "formatting.py", "names.py", "runtime.py")


def public_nodes(tree: ast.Module):
    """The module, its public classes and functions, and their public methods."""
    yield "module", tree
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
            yield node.name, node
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, ast.FunctionDef) and not item.name.startswith("_"):
                        yield f"{node.name}.{item.name}", item


def problems(path: Path, root: Path = ROOT) -> list[str]:
    """What breaks the rule in the module at ``path`` (named relative to ``root``)."""
    found = []
    for name, node in public_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        doc = ast.get_docstring(node)
        where = f"{path.relative_to(root)}: {name}"
        if not doc:
            found.append(f"{where}: no docstring")
            continue
        lines = doc.splitlines()
        if not lines[0].rstrip().endswith((".", ":", "?", "!")) or \
                (len(lines) > 1 and lines[1].strip()):
            found.append(f"{where}: first line is not a one-line summary: {lines[0][:60]}")
    return found


FILES = sorted(p for entry in CHECKED for p in ((ROOT / entry).rglob("*.py")
                                                 if (ROOT / entry).is_dir() else [ROOT / entry]))


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(ROOT)) for p in FILES])
def test_public_docstrings_start_with_a_one_line_summary(path):
    found = problems(path)
    assert not found, "\n".join(found)


def test_the_rule_can_fail(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text('"""Fine."""\n\ndef f():\n    """A summary that goes\n    on."""\n\n'
                   'def g():\n    pass\n')
    assert len(problems(bad, tmp_path)) == 2

