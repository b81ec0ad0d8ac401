"""``igc reproduce``: regenerate the IGCV2 paper's figures and tables, ours beside the paper's.

Analytic targets (counts, widths, non-sparsity) are exact; empirical ones train under a
budget into an output folder that caches every run (per target, network and seed), so an
interrupted reproduction resumes where it stopped and a finished one is not trained again.
Runs can be spread over worker processes (--jobs) and machines (--shard); --report-only
rewrites the results and the document from the cache.
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


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
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
                   help="smoke (seconds) | short (~30 min on 2 CPU cores) | medium (the "
                        "evidence: all of Fashion-MNIST, 3 seeds) | full (the paper's "
                        "recipe, GPU); budgets are data: igc/reproduce/budgets.toml; "
                        "default short")
    p.add_argument("--epochs", type=_positive, help="override the budget's epochs")
    p.add_argument("--seeds", type=_positive, help="seeds per network (default: the budget's)")
    p.add_argument("--out", help="output folder (default runs/reproduce/DATA-BUDGET)")
    p.add_argument("--docs", metavar="FILE.md",
                   help="also write every section into one document (plots beside it)")
    p.add_argument("--report-only", "--no-train", dest="report_only", action="store_true",
                   help="train nothing: rewrite the results (and --docs) from the runs the "
                        "output folder holds")
    p.add_argument("--estimate-only", action="store_true",
                   help="only print how many runs are done and an estimate of the time the "
                        "rest takes (with these --jobs, --threads, --device); train nothing")
    p.add_argument("--jobs", "-j", type=_positive, default=1,
                   help="worker processes training runs at the same time (default 1)")
    p.add_argument("--threads", type=_count,
                   help="torch threads per run (default: the budget's, 1 for smoke, short "
                        "and medium; 0: every core)")
    p.add_argument("--shard", metavar="I/N",
                   help="train only every N-th run starting at the I-th (1-based), e.g. "
                        "1/2 and 2/2 on two machines sharing --out")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N] (default auto)")
    p.add_argument("--quiet", "-q", action="store_true", help="do not print the tables")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from igc.errors import IGCError
    from igc.reproduce import Stopped, reproduce
    from igc.reproduce.targets import listing

    if args.list:
        print(listing())
        return 0
    if not args.targets:
        raise IGCError("name a target to reproduce, or `all` (see `igc reproduce --list`)")
    try:
        reproduce(args.targets, data=args.data, budget=args.budget, epochs=args.epochs,
                  seeds=args.seeds, out=args.out, data_dir=args.data_dir, docs=args.docs,
                  train=not args.report_only, device=args.device, echo=not args.quiet,
                  jobs=args.jobs, threads=args.threads, shard=args.shard,
                  estimate_only=args.estimate_only)
    except Stopped as exc:
        print(f"igc: {exc}; run the same `igc reproduce` command again to resume "
              "(finished runs are kept)", file=sys.stderr)
        return exc.code
    if args.docs and not args.estimate_only:
        print(f"wrote {args.docs}")
    return 0
