"""How igc writes numbers and messages for people: counts, percentages, durations, lines.

One place for the small formatters every command needs, so that a parameter count, an
accuracy or a wall time reads the same in ``igc train``, ``igc eval``, ``igc summarize`` and
the reports:

* :func:`count` — ``25634 -> '25.6k'``, ``4.1e6 -> '4.1M'`` (SI suffix, three digits);
* :func:`pct` — ``91.234 -> '91.23%'`` (a value already in percent);
* :func:`mean_std` — ``'92.00 ± 2.00'``;
* :func:`duration` — ``372.4 -> '6m12s'``;
* :func:`shorten` / :func:`first_line` — one line of at most ``width`` characters, cut
  at a word boundary (never mid-word), for error messages that quote other text.
"""

from __future__ import annotations

import math

MISSING = "n/a"


def count(n: float | int | None, unit: str = "", missing: str = MISSING) -> str:
    """``25634 -> '25.6k'``, ``4.1e6 -> '4.1M'``, ``950 -> '950'``; ``None -> missing``."""
    if n is None:
        return missing
    n = float(n)
    if not math.isfinite(n):
        return missing
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale:
            value = n / scale
            text = f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
            return f"{text}{suffix}{unit}"
    return f"{n:.0f}{unit}"


def pct(x: float | None, digits: int = 2, missing: str = MISSING) -> str:
    """A value in percent: ``91.234 -> '91.23%'``; ``None`` or NaN -> ``missing``."""
    if x is None or not math.isfinite(float(x)):
        return missing
    return f"{x:.{digits}f}%"


def mean_std(mean: float | None, std: float | None, digits: int = 2,
             missing: str = MISSING) -> str:
    """``'92.00 ± 2.00'``; without a standard deviation (one run) only the mean."""
    if mean is None:
        return missing
    if std is None or not math.isfinite(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def duration(seconds: float) -> str:
    """``12.3 -> '12.3s'``, ``372.4 -> '6m12s'``, ``4000 -> '1h06m40s'``."""
    if not math.isfinite(seconds):
        return MISSING
    if seconds < 60:
        return f"{seconds:.1f}s"
    m, s = divmod(round(seconds), 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s"


def shorten(text: str, width: int = 160) -> str:
    """``text`` on one line (whitespace runs become one space), at most ``width``
    characters, cut at a word boundary and marked with ``…`` when it was longer (only a
    first word longer than ``width`` is itself cut)."""
    flat = " ".join(str(text).split())
    if len(flat) <= width:
        return flat
    cut = flat[: max(width - 1, 1)]
    if flat[len(cut)] != " ":  # the cut falls inside a word: drop that word
        space = cut.rfind(" ")
        cut = cut[:space] if space > 0 else cut
    return cut.rstrip(" ,;:") + "…"


def first_line(error: BaseException | str, width: int = 160) -> str:
    """The first non-empty line of an exception's message (else its type name),
    shortened with :func:`shorten`: for quoting a library's error inside one of ours."""
    text = str(error).strip()
    line = next((part for part in text.splitlines() if part.strip()), "")
    if not line and isinstance(error, BaseException):
        line = type(error).__name__
    return shorten(line, width)


__all__ = ["MISSING", "count", "duration", "first_line", "mean_std", "pct", "shorten"]
