"""``igc reproduce``: regenerate the IGCV2 paper's figures and tables, ours beside the paper's.

Analytic targets (counts, widths, non-sparsity) are exact; empirical ones train under a
budget into an output directory that caches every run, so an interrupted reproduction
resumes where it stopped and a finished one is not trained again.
"""

from __future__ import annotations

import argparse


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reproduce", help="reproduce the paper's figures and tables",
                       description=__doc__)
    p.add_argument("targets", nargs="*", metavar="TARGET",
                   help="target names (see --list), or all / analytic / empirical")
    p.add_argument("--list", action="store_true", help="name every target and exit")
    p.add_argument("--data", default="fashion-mnist",
                   help="data set of the empirical targets (default fashion-mnist)")
    p.add_argument("--data-dir", help="directory holding the data set's files")
    p.add_argument("--budget", default="short",
                   help="smoke (seconds) | short (~30 min on 2 CPU cores) | full (the "
                        "paper's recipe, GPU); default short")
    p.add_argument("--epochs", type=_positive, help="override the budget's epochs")
    p.add_argument("--seeds", type=_positive, help="seeds per network (default: the budget's)")
    p.add_argument("--out", help="output directory (default runs/reproduce/DATA-BUDGET)")
    p.add_argument("--docs", metavar="FILE.md",
                   help="also write every section into one document (plots beside it)")
    p.add_argument("--no-train", action="store_true",
                   help="report only the runs the output directory holds; train nothing")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    p.add_argument("--quiet", "-q", action="store_true", help="do not print the tables")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from igc.errors import IGCError
    from igc.reproduce import reproduce
    from igc.reproduce.targets import listing

    if args.list:
        print(listing())
        return 0
    if not args.targets:
        raise IGCError("name a target to reproduce, or `all` (see `igc reproduce --list`)")
    from igc.train.trainer import Interrupted

    try:
        reproduce(args.targets, data=args.data, budget=args.budget,
                             epochs=args.epochs, seeds=args.seeds, out=args.out,
                             data_dir=args.data_dir, docs=args.docs, train=not args.no_train,
                             device=args.device, echo=not args.quiet)
    except Interrupted as exc:
        import sys

        print(f"igc: {exc}; run the same `igc reproduce` command again to resume "
              "(finished runs are kept)", file=sys.stderr)
        return exc.code
    if args.docs:
        print(f"wrote {args.docs}")
    return 0
