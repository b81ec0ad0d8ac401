"""Reproduce the IGCV2 paper's tables and figures beside the paper's.

Analytic targets (counts, widths, non-sparsity) are exact and take seconds. Empirical
targets train networks under a budget into an output folder that caches every run (per
target, network and seed), so an interrupted reproduction resumes where it stopped and a
finished one is not trained again. Runs can be spread over worker processes (--jobs) and
machines (--shard); --report-only rewrites the results and the document from the cache.

Examples:
  igc reproduce --list
  igc reproduce analytic --docs docs/reproduction.md
  igc reproduce table2 --budget smoke
  igc reproduce empirical --budget medium --estimate-only
"""

from __future__ import annotations

import argparse
import textwrap

from igc import checks
from igc.cli import args as A
from igc.cli import one_line
from igc.cli.parser import add_command
from igc.errors import IGCError
from igc.names import DEVICES
from igc.reproduce.budgets import budgets

# The library is imported inside the functions that use it: `igc --help` and every
# subcommand's --help answer in under 0.5 s without it (tests/test_cli_startup.py).


def _budgets() -> str:
    """The budgets of budgets.toml, one paragraph each, for the help's end."""
    lines = ["budgets (igc/reproduce/budgets.toml):"]
    for name, budget in budgets().items():
        lines += textwrap.wrap(budget.description, 86, initial_indent=f"  {name:<7}",
                               subsequent_indent=" " * 9)
    return "\n".join(lines)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``igc reproduce`` to the subcommands ``sub``."""
    p = add_command(sub, "reproduce", __doc__, epilog=_budgets())
    p.add_argument("targets", nargs="*", metavar="TARGET", type=A.name("target"),
                   help="target names (see --list), or all / analytic / empirical")
    p.add_argument("--list", action="store_true", help="name every target and exit")
    p.add_argument("--data", default="fashion-mnist", type=A.name("--data"), metavar="NAME",
                   help="data set of the empirical targets (default fashion-mnist)")
    p.add_argument("--data-dir", type=A.existing("dir", "--data-dir"), metavar="DIR",
                   help="directory holding the data set's files")
    p.add_argument("--budget", default="short", type=A.choice("budget", tuple(budgets())),
                   metavar="{" + ",".join(budgets()) + "}",
                   help="how much training the empirical targets get (default short; see "
                        "the list below)")
    p.add_argument("--epochs", type=A.integer("--epochs", 1, checks.MAX_EPOCHS), metavar="N",
                   help="override the budget's epochs")
    p.add_argument("--seeds", type=A.integer("--seeds", 1, checks.MAX_SEEDS), metavar="N",
                   help="seeds per network (default: the budget's)")
    p.add_argument("--out", type=A.out_dir("--out"), metavar="DIR",
                   help="output folder (default runs/reproduce/DATA-BUDGET)")
    p.add_argument("--docs", metavar="FILE.md", type=A.out_file((".md",), "--docs"),
                   help="also write every section into one document (plots beside it)")
    p.add_argument("--report-only", "--no-train", dest="report_only", action="store_true",
                   help="train nothing: rewrite the results (and --docs) from the runs the "
                        "output folder holds")
    p.add_argument("--estimate-only", action="store_true",
                   help="only print how many runs are done and an estimate of the time the "
                        "rest takes (with these --jobs, --threads, --device); train nothing")
    p.add_argument("--jobs", "-j", type=A.integer("--jobs", 1, checks.MAX_WORKERS), default=1,
                   metavar="N", help="worker processes training runs at the same time "
                                     "(default 1)")
    p.add_argument("--threads", type=A.integer("--threads", 0, checks.MAX_THREADS),
                   metavar="N", help="torch threads per run (default: the budget's, 1 for "
                                     "smoke, short and medium; 0: every core)")
    p.add_argument("--shard", metavar="I/N", type=A.text("--shard", 40),
                   help="train only every N-th run starting at the I-th (1-based), e.g. "
                        "1/2 and 2/2 on two machines sharing --out")
    p.add_argument("--device", default="auto", type=A.device(), metavar="DEVICE",
                   help=f"{', '.join(DEVICES)} (default auto)")
    p.add_argument("--quiet", "-q", action="store_true", help="do not print the tables")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``igc reproduce`` with the parsed ``args``; returns the exit status."""
    import sys

    from igc.reproduce import Stopped, reproduce
    from igc.reproduce.targets import listing

    if args.list:
        print(listing())
        return 0
    if not args.targets:
        raise IGCError("name a target to reproduce, or `all` (see `igc reproduce --list`)")
    def text(path: object) -> str | None:
        return None if path is None else str(path)

    try:
        reproduce(args.targets, data=args.data, budget=args.budget, epochs=args.epochs,
                  seeds=args.seeds, out=text(args.out), data_dir=text(args.data_dir),
                  docs=text(args.docs),
                  train=not args.report_only, device=args.device, echo=not args.quiet,
                  jobs=args.jobs, threads=args.threads, shard=args.shard,
                  estimate_only=args.estimate_only)
    except Stopped as exc:
        print(f"igc: {one_line(str(exc))}; run the same `igc reproduce` command again to resume "
              "(finished runs are kept)", file=sys.stderr)
        return exc.code
    if args.docs and not args.estimate_only:
        print(f"wrote {args.docs}")
    return 0
