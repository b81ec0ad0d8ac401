"""Draw the loss and accuracy curves of runs to a PNG.

Reads each run folder's metrics.jsonl: training and test loss, top-1 accuracy and the
learning rate per epoch, one colour per run.

Examples:
  igc plot runs/igcv2_fmnist-fashion-mnist
  igc plot runs/a runs/b --out compare.png --title "a vs b"
"""

from __future__ import annotations

import argparse
from pathlib import Path

from igc.cli import args as A
from igc.cli.parser import add_command

# The library is imported inside the functions that use it: `igc --help` and every
# subcommand's --help answer in under 0.5 s without it (tests/test_cli_startup.py).


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``igc plot`` to the subcommands ``sub``."""
    p = add_command(sub, "plot", __doc__)
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", type=A.existing("any", "run folder"),
                   help="run directories")
    p.add_argument("--out", "-o", type=A.out_file((".png",)),
                   help="PNG file (default: RUN_DIR/curves.png for one run, curves.png for "
                        "several)")
    p.add_argument("--title", type=A.text("--title", 200), help="figure title")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``igc plot`` with the parsed ``args``; returns the exit status."""
    from igc.viz.curves import plot_runs

    out = args.out or (Path(args.runs[0]) / "curves.png" if len(args.runs) == 1
                       else Path("curves.png"))
    path = plot_runs(args.runs, out, title=args.title)
    print(f"wrote {path}")
    return 0
