"""``igc summarize``: mean ± std of the final top-1 (and top-5) over runs, per model."""

from __future__ import annotations

import argparse
import json

from igc.cli import args as A


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("summarize", help="mean ± std of final accuracy over runs",
                       description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", type=A.existing("dir", "run folder"),
                   help="run directories, or directories holding runs (e.g. seed*/)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from igc.train.summarize import find_runs, format_groups, group_runs

    groups = group_runs(find_runs(args.runs))
    if args.json:
        print(json.dumps(groups, indent=2))
    else:
        print(format_groups(groups))
    return 0
