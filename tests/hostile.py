"""The rows of the hostile-input tables (``tests/test_hostile*.py``), shared by all of them.

A :class:`Row` is one ``igc`` command line made from a test's sandbox (an object whose
attributes name its folders: ``root``, ``work``, ``crafted``, ...) and the words its one-line
error must hold; :func:`R` makes one from literal arguments with ``{work}``-style fields.
:meth:`Row.check` runs it through conftest's ``refused`` fixture (exit 2, one stderr line, no
traceback, nothing in the sandbox changed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class Row:
    id: str
    argv: Callable[[Any], list[str]]
    expect: str

    def check(self, sandbox: Any, refused: Callable[..., str], limit_s: float,
              skip: str | None = None) -> str:
        """Run the row in ``sandbox`` under ``limit_s`` seconds, assert it is refused with
        :attr:`expect` in its one line (files below ``skip`` may change) and return that
        line."""
        err = refused(self.argv(sandbox), sandbox.root, limit_s, skip=skip)
        assert self.expect in err, err
        return err


def R(id: str, *args: str, expect: str) -> Row:
    """A row ``igc ARGS``; ``{name}`` in an argument is the sandbox's attribute ``name``
    (``{work}``, ``{crafted}``, ...)."""
    return Row(id, lambda sb: [a.format(**sb.__dict__) for a in args], expect)
