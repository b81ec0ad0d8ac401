"""How igc writes numbers and messages for people: counts, percentages, durations, lines.

One place for the small formatters every command needs, so that a parameter count, an
accuracy or a wall time reads the same in ``igc train``, ``igc eval``, ``igc summarize`` and
the reports:

* :func:`count` — ``25634 -> '25.6k'``, ``4.1e6 -> '4.1M'`` (SI suffix, three digits);
  ``kilo=False`` writes counts below a million in full: ``4,672``, ``0.447M``;
* :func:`integer` — ``4672.4 -> '4,672'``;
* :func:`pct` — ``91.234 -> '91.23%'`` (a value already in percent), ``signed=True``
  for a change: ``'+2.3%'``;
* :func:`mean_std` — ``'92.00 ± 2.00'``;
* :func:`duration` — ``372.4 -> '6m12s'``;
* :func:`shorten` / :func:`first_line` — one line of at most ``width`` characters, cut
  at a word boundary (never mid-word), for error messages that quote other text;
* :func:`table` — aligned plain-text columns for the terminal.
"""

from __future__ import annotations

import math

MISSING = "n/a"


def count(n: float | int | None, unit: str = "", missing: str = MISSING,
          kilo: bool = True) -> str:
    """A count with an SI suffix: ``25634 -> '25.6k'``, ``4.1e6 -> '4.1M'``.

    ``950 -> '950'``; ``None -> missing``. With ``kilo=False`` a count below a million is
    written in full (``'25,634'``)."""
    if n is None:
        return missing
    n = float(n)
    if not math.isfinite(n):
        return missing
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale:
            if not kilo and scale == 1e3:
                break
            value = n / scale
            text = f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
            return f"{text}{suffix}{unit}"
    return f"{n:.0f}{unit}" if kilo else f"{round(n):,}{unit}"


def integer(n: float | int | None, missing: str = MISSING) -> str:
    """``4672.4 -> '4,672'`` (rounded, thousands separated); ``None`` or NaN -> ``missing``."""
    if n is None or not math.isfinite(float(n)):
        return missing
    return f"{round(n):,}"


def pct(x: float | None, digits: int = 2, missing: str = MISSING, signed: bool = False) -> str:
    """A value in percent: ``91.234 -> '91.23%'``.

    ``signed``: ``2.34 -> '+2.34%'`` (a change); ``None`` or NaN -> ``missing``."""
    if x is None or not math.isfinite(float(x)):
        return missing
    return f"{x:+.{digits}f}%" if signed else f"{x:.{digits}f}%"


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
    """``text`` on one line of at most ``width`` characters, cut at a word boundary.

    Whitespace runs become one space; a cut text ends in ``…`` (only a first word longer
    than ``width`` is itself cut)."""
    flat = " ".join(str(text).split())
    if len(flat) <= width:
        return flat
    cut = flat[: max(width - 1, 1)]
    if flat[len(cut)] != " ":  # the cut falls inside a word: drop that word
        space = cut.rfind(" ")
        cut = cut[:space] if space > 0 else cut
    return cut.rstrip(" ,;:") + "…"


def first_line(error: BaseException | str, width: int = 160) -> str:
    """The first non-empty line of an exception's message, shortened.

    Else the exception's type name; shortened with :func:`shorten`. For quoting a library's
    error inside one of ours."""
    text = str(error).strip()
    line = next((part for part in text.splitlines() if part.strip()), "")
    if not line and isinstance(error, BaseException):
        line = type(error).__name__
    return shorten(line, width)


def table(headers: list[str], rows: list[list[str]], right: set[int] = frozenset()) -> str:
    """``headers`` and ``rows`` of cells as aligned plain-text columns.

    Columns are separated by two spaces, with a rule of dashes under the headers; those whose
    index is in ``right`` are aligned right (numbers), the others left."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]),
                      *(line(r) for r in rows)])


__all__ = ["MISSING", "count", "duration", "first_line", "integer", "mean_std", "pct",
           "shorten", "table"]
