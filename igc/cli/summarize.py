"""Mean ± std of the final accuracy over runs, per model.

Groups the runs (folders with a summary.json, found below the folders given) by model
and data set, and prints the mean and standard deviation over their seeds.

Examples:
  igc summarize runs/ls          (the seed*/ folders of `igc train --seeds N`)
  igc summarize runs/a runs/b --json
"""

from __future__ import annotations

import argparse
import json

from igc.cli import args as A
from igc.cli.parser import add_command

# The library is imported inside the functions that use it: `igc --help` and every
# subcommand's --help answer in under 0.5 s without it (tests/test_cli_startup.py).


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``igc summarize`` to the subcommands ``sub``."""
    p = add_command(sub, "summarize", __doc__)
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", type=A.existing("dir", "run folder"),
                   help="run directories, or directories holding runs (e.g. seed*/)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``igc summarize`` with the parsed ``args``; returns the exit status."""
    from igc.train.summarize import find_runs, format_groups, group_runs

    groups = group_runs(find_runs(args.runs))
    if args.json:
        print(json.dumps(groups, indent=2))
    else:
        print(format_groups(groups))
    return 0
