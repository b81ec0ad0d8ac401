"""``igc plot``: loss and accuracy curves of one or several runs, to a PNG."""

from __future__ import annotations

import argparse
from pathlib import Path

from igc.cli import args as A


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plot", help="draw training curves of runs to a PNG",
                       description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", type=A.existing("any", "run folder"),
                   help="run directories")
    p.add_argument("--out", "-o", type=A.out_file((".png",)),
                   help="PNG file (default: RUN_DIR/curves.png for one run, curves.png for "
                        "several)")
    p.add_argument("--title", type=A.text("--title", 200), help="figure title")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from igc.viz.curves import plot_runs

    out = args.out or (Path(args.runs[0]) / "curves.png" if len(args.runs) == 1
                       else Path("curves.png"))
    path = plot_runs(args.runs, out, title=args.title)
    print(f"wrote {path}")
    return 0
