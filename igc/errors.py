"""The one exception type for user errors.

Anything a user can get wrong (a width, a name, a file, a flag) raises :class:`IGCError`
with a one-line message that names the problem and the fix. The CLI prints it as
``igc: error: <message>`` and exits with status 2; library callers can catch it as a
``ValueError``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class IGCError(ValueError):
    """A user error: bad input, a missing or corrupt file, an unknown name."""


def unknown_name(kind: str, name: str, known: Iterable[str]) -> IGCError:
    """An error for an unknown ``name`` of a ``kind`` that suggests the closest known names."""
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    listing = " (see `igc models`)" if kind == "model" else ""
    return IGCError(f"unknown {kind} {name!r}{hint}{listing}")
