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


#: How many valid names an error lists before it stops (``... and N more``).
LISTED_NAMES = 12


def unknown_name(kind: str, name: str, known: Iterable[str]) -> IGCError:
    """An error for an unknown ``name`` of a ``kind`` that helps choose a known one.

    It suggests the closest known names, or lists the valid ones when none is close (at most
    :data:`LISTED_NAMES` of them)."""
    known = sorted(set(known))
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    if close:
        hint = f"; did you mean {', '.join(close)}?"
    elif known:
        shown = ", ".join(known[:LISTED_NAMES])
        more = len(known) - LISTED_NAMES
        hint = f"; choose from {shown}" + (f" and {more} more" if more > 0 else "")
    else:
        hint = ""
    listing = " (see `igc models`)" if kind == "model" else ""
    return IGCError(f"unknown {kind} {name!r}{hint}{listing}")
