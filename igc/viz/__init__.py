"""Pictures: block connectivity, training curves (matplotlib is an optional extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from igc.errors import IGCError
from igc.files.atomic import atomic_writer


def pyplot():
    """Import matplotlib with a file-only backend, or explain how to install it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise IGCError("drawing needs matplotlib: pip install 'igc-torch[plot]'") from None
    return plt


def save_figure(fig: Any, path: str | Path, what: str = "figure", dpi: int = 110) -> Path:
    """Write the matplotlib figure ``fig`` to ``path`` atomically, then close it.

    The format is the one ``path``'s suffix names; the folder is created when missing; the
    figure is closed either way. IGCError (one line) when the file cannot be written."""
    import matplotlib.pyplot as plt

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_writer(path, what) as handle:
            fig.savefig(handle, dpi=dpi, format=path.suffix.lower().lstrip(".") or "png")
    except OSError as exc:
        raise IGCError(f"cannot write {what} {path} ({exc.strerror or exc})") from None
    finally:
        plt.close(fig)
    return path


__all__ = ["pyplot", "save_figure"]
