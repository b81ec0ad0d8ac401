"""Pictures: block connectivity (matplotlib is an optional extra)."""

from __future__ import annotations

from igc.errors import IGCError


def pyplot():
    """Import matplotlib with a file-only backend, or explain how to install it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise IGCError("drawing needs matplotlib: pip install 'igc[plot]'") from None
    return plt
