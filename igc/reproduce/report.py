"""What a reproduction target produces, and how it is written: markdown and PNG files.

Every target is rendered (:mod:`igc.reproduce.render`) into a :class:`Section`: an
introduction, one or more :class:`Table` objects (ours beside the paper's, with the
difference), notes where our result differs from the paper's, plots (drawers of
:mod:`igc.reproduce.plots`, run with :func:`igc.viz.pyplot`) and the numbers behind them as
JSON. :func:`write_section` puts ``<target>.md``, ``<target>.json`` and the PNGs into a
directory; :func:`write_document` joins sections into one markdown file
(``docs/reproduction.md`` is generated this way).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from igc.files.atomic import atomic_write
from igc.formatting import count, integer, mean_std, pct


@dataclass
class Table:
    """A markdown table: ``headers`` and ``rows`` of already formatted cells."""

    headers: list[str]
    rows: list[list[str]]
    caption: str = ""

    def markdown(self) -> str:
        def line(cells: Sequence[str]) -> str:
            return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

        out = [f"*{self.caption}*", ""] if self.caption else []
        out.append(line(self.headers))
        out.append("|" + "|".join("---" for _ in self.headers) + "|")
        out.extend(line(r) for r in self.rows)
        return "\n".join(out)


@dataclass
class Plot:
    """A PNG to draw: ``draw(plt)`` returns its figure; ``caption`` goes under it."""

    filename: str
    caption: str
    draw: Callable[[Any], Any]  # pyplot -> the figure


@dataclass
class Section:
    """One target's result."""

    target: str
    title: str
    intro: str
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    plots: list[Plot] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def markdown(self, image_dir: str = ".", level: int = 2) -> str:
        head = "#" * level
        parts = [f"{head} {self.title}", "", self.intro.strip(), ""]
        for table in self.tables:
            parts += [table.markdown(), ""]
        for plot in self.plots:
            parts += [f"![{plot.caption}]({image_dir}/{plot.filename})", "",
                      f"*{plot.caption}*", ""]
        if self.notes:
            parts += [f"{head}# Notes" if level < 6 else "Notes:", ""]
            parts += [f"* {n}" for n in self.notes]
            parts.append("")
        return "\n".join(parts).rstrip() + "\n"


def draw_plots(section: Section, directory: Path) -> list[Path]:
    """Write ``section``'s PNGs into ``directory``."""
    # matplotlib only when drawing: igc.reproduce is imported by `igc reproduce --help`
    from igc.viz import pyplot

    if not section.plots:
        return []
    plt = pyplot()
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for plot in section.plots:
        path = directory / plot.filename
        try:
            figure = plot.draw(plt)
            figure.tight_layout()
            figure.savefig(path, dpi=110)
        finally:
            plt.close("all")
        written.append(path)
    return written


def write_section(section: Section, directory: str | Path, plots: bool = True) -> Path:
    """Write ``<target>.md``, ``<target>.json`` and the plots into ``directory``; return the
    markdown file."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if plots:
        draw_plots(section, directory)
    md = directory / f"{section.target}.md"
    atomic_write(md, section.markdown("."))
    atomic_write(directory / f"{section.target}.json",
                  json.dumps(section.data, indent=2, default=_json_default) + "\n")
    return md


def write_document(sections: Sequence[Section], path: str | Path, header: str,
                   image_dir: str | Path | None = None,
                   drawn: str | Path | None = None) -> Path:
    """Join ``sections`` under ``header`` into one markdown file at ``path``.

    Plots go into ``image_dir`` (default: a folder named after the file, beside it), copied
    from ``drawn`` when they are there already, else drawn; they are linked relative to the
    file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = Path(image_dir) if image_dir is not None else path.with_suffix("")
    images.mkdir(parents=True, exist_ok=True)
    for section in sections:
        missing = []
        for plot in section.plots:
            source = Path(drawn) / plot.filename if drawn is not None else None
            if source is not None and source.is_file():
                target = images / plot.filename
                if not (target.exists() and target.samefile(source)):  # --docs beside --out
                    shutil.copyfile(source, target)
            else:
                missing.append(plot)
        if missing:
            draw_plots(Section(section.target, "", "", plots=missing), images)
    rel = os.path.relpath(images, path.parent)
    body = [header.rstrip(), ""]
    for section in sections:
        body += [section.markdown(rel), ""]
    atomic_write(path, "\n".join(body).rstrip() + "\n")
    return path


def as_record(obj: Any) -> Any:
    """A dataclass (recursively, also inside lists and dicts) as JSON-ready data, its fields
    in order; a field with metadata ``json=False`` is left out, one with ``omit_none``
    only when it is None."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {}
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if not f.metadata.get("json", True) or (f.metadata.get("omit_none")
                                                     and value is None):
                continue
            out[f.name] = as_record(value)
        return out
    if isinstance(obj, (list, tuple)):
        return [as_record(v) for v in obj]
    if isinstance(obj, dict):
        return {k: as_record(v) for k, v in obj.items()}
    return obj


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)


# ------------------------------------------------------------------------ cell formatting
#: A missing value in a table cell.
DASH = "—"
#: Cell formatters (:mod:`igc.formatting` with a dash for missing values): ``4,672``;
#: ``4,672`` / ``0.447M`` / ``131M`` (counts below a million in full); ``+2.3%``;
#: ``92.00 ± 2.00``.
fmt_int = partial(integer, missing=DASH)
fmt_count = partial(count, missing=DASH, kilo=False)
fmt_pct = partial(pct, digits=1, missing=DASH, signed=True)
fmt_mean_std = partial(mean_std, missing=DASH)


def relative(ours: float, paper: float | None) -> float | None:
    """``(ours - paper) / paper`` in percent, or ``None`` without a paper value."""
    if paper in (None, 0):
        return None
    return 100.0 * (ours - paper) / paper
