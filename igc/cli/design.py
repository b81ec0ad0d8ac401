"""Design or check the branch sizes of an IGCV2 block of width C.

An IGCV2 block factors a C x C convolution into L group convolutions: a spatial one
(S taps, 9 for 3x3) with branches of K_1 channels, then L-1 group 1x1 convolutions with
branches of K_2..K_L channels, interleaved by channel permutations. The designer lists
the strictly complementary designs (K_1 x ... x K_L = C: exactly one path between every
input and output channel, eq. 6 of the IGCV2 paper) ranked by their parameters (eq. 7),
with the lower bound of eq. 10. Where none exists it shows the cheapest loose (dense)
design and nearby widths that have one. With --rank latency it orders the cheapest
designs by how fast their inference form runs here, priced by the cost model or timed
(--latency measure), beside their parameters.

Examples:
  igc design -C 64                      rank every design of width 64
  igc design -C 64 -L 3 --channelwise   K_1 = 1 (a depthwise 3x3), three factors
  igc design -C 256 -K 8                IGCV2*: every 1x1 branch of 8 channels
  igc design -C 64 --check --branch-sizes 1,4,4
                                        classify a design: strict, dense or sparse
  igc design -C 24 -L 3 --draw block.png
  igc design -C 256 --rank latency --size 16
                                        the 20 cheapest designs, fastest first
  igc design -C 64 --rank latency --latency measure --threads 1
"""

from __future__ import annotations

import argparse
import json

from igc import checks
from igc.cli import args as A
from igc.cli.parser import add_command
from igc.errors import IGCError
from igc.names import DESIGN_RANKS, LATENCY_SOURCES, PICTURE_SUFFIXES

# The library is imported inside the functions that use it: `igc --help` and every
# subcommand's --help answer in under 0.5 s without it (tests/test_cli_startup.py).

#: The latency options and their defaults (they apply to --rank latency only).
LATENCY_DEFAULTS = {"latency": "model", "size": 32, "batch": 1, "threads": 1, "repeats": 7,
                    "candidates": 20, "cpu_time": False}


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``igc design`` to the subcommands ``sub``."""
    p = add_command(sub, "design", __doc__)
    p.add_argument("--channels", "-C", type=A.integer("--channels", 1), required=True,
                   metavar="C", help="block width C")
    p.add_argument("--kernel-area", "-S", type=A.integer("--kernel-area", 1), default=9,
                   metavar="S", help="taps of the spatial factor (default 9, a 3x3)")
    p.add_argument("--layers", "-L", type=A.integer("--layers", 1), metavar="L",
                   help="fix the number of factors L")
    p.add_argument("--branch-size", "-K", type=A.integer("--branch-size", 1), metavar="K",
                   help="fix every 1x1 branch size K, with a channel-wise spatial factor "
                        "(IGCV2*)")
    p.add_argument("--channelwise", action="store_true",
                   help="force a channel-wise spatial factor (K_1 = 1), the paper's advice")
    p.add_argument("--check", action="store_true",
                   help="classify --branch-sizes instead of designing")
    p.add_argument("--branch-sizes", type=A.integers("--branch-sizes", 1), metavar="K1,K2,..",
                   help="the branch sizes to check, e.g. 1,8,8")
    p.add_argument("--strict", action="store_true",
                   help="with --check: fail unless the sizes multiply to C")
    p.add_argument("--alternatives", type=A.integer("--alternatives", 0, 1000), default=5,
                   metavar="N", help="ranked alternatives to show (default 5)")
    p.add_argument("--draw", metavar="FILE", type=A.out_file(PICTURE_SUFFIXES, "--draw"),
                   help="draw the block's connectivity to a .png, .svg or .pdf file (widths "
                        "up to 64)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    g = p.add_argument_group("latency ranking (--rank latency)")
    g.add_argument("--rank", type=A.choice("--rank", DESIGN_RANKS), default="params",
                   metavar="{" + ",".join(DESIGN_RANKS) + "}",
                   help="order designs by parameters (default) or by latency on this machine")
    g.add_argument("--latency", type=A.choice("--latency", LATENCY_SOURCES),
                   metavar="{" + ",".join(LATENCY_SOURCES) + "}",
                   help="where latency comes from: the cost model (default; fast) or "
                        "timing each optimized block (measure)")
    g.add_argument("--candidates", type=A.integer("--candidates", 1,
                                                  checks.MAX_LATENCY_CANDIDATES),
                   metavar="N", help="rank the N designs with fewest parameters (default 20)")
    g.add_argument("--size", type=A.integer("--size", 1, checks.MAX_LATENCY_SIZE),
                   metavar="N", help="input side of the block (default 32)")
    g.add_argument("--batch", type=A.integer("--batch", 1, checks.MAX_LATENCY_BATCH),
                   metavar="N", help="images per call (default 1)")
    g.add_argument("--threads", type=A.integer("--threads", 1, checks.MAX_THREADS),
                   metavar="N", help="torch threads while timing (default 1)")
    g.add_argument("--repeats", type=A.integer("--repeats", 1, checks.MAX_LATENCY_REPEATS),
                   metavar="N", help="timed rounds with --latency measure (default 7)")
    g.add_argument("--cpu-time", action="store_true", default=None,
                   help="with --latency measure --threads 1: count this thread's CPU time, "
                        "not wall time (robust on a busy machine)")
    p.set_defaults(run=run)


def _row(d) -> str:
    c = d.product.connectivity
    cw = d.bound_channelwise
    bound = f"{d.bound:,.0f}" + (f" (channel-wise {cw:,.0f})" if cw is not None else "")
    return (f"{list(d.branch_sizes)!s:<16} L={d.layers:<2} params={d.params:<9,} "
            f"{c.condition:<7} paths {c.min_paths}..{c.max_paths:<4} bound {bound}")


def run(args: argparse.Namespace) -> int:
    """Run ``igc design`` with the parsed ``args``; returns the exit status."""
    from igc.sparsity.design import check_design, design

    given = [k for k in LATENCY_DEFAULTS if getattr(args, k) is not None]
    if args.rank == "latency":
        if args.check:
            raise IGCError("--rank latency ranks designs; it does not combine with --check")
        if args.branch_sizes:
            raise IGCError("--branch-sizes is for --check; --rank latency ranks the designer's "
                           "candidates")
        return _run_latency(args)
    if given:
        raise IGCError(f"--{given[0].replace('_', '-')} applies to --rank latency only")
    if args.check:
        if not args.branch_sizes:
            raise IGCError("--check needs --branch-sizes, e.g. --branch-sizes 1,8,8")
        report = check_design(args.channels, args.branch_sizes, args.kernel_area, args.strict)
    elif args.branch_sizes:
        raise IGCError("--branch-sizes is for --check; to design, give --layers or --branch-size")
    else:
        report = design(args.channels, args.kernel_area, args.layers, args.branch_size,
                        args.channelwise)
    if args.draw:
        from igc.viz.connectivity import draw_connectivity

        draw_connectivity(report.best.product, args.draw)
    data = report.to_dict(args.alternatives)
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print(f"C={report.channels} S={report.kernel_area}: best L by {report.best_layers_rule} = "
          f"{data['best_layers']}; bound = eq. 10 (channel-wise: C S + C (L-1) C^(1/(L-1)))")
    print(f"chosen  {_row(report.best)}")
    if report.note:
        print(f"note    {report.note}")
    for d in report.designs[1 : 1 + args.alternatives]:
        print(f"        {_row(d)}")
    for d in report.nearby:
        print(f"nearby  C={d.channels}: {_row(d)}")
    if args.draw:
        print(f"drew the connectivity to {args.draw}")
    return 0


def _run_latency(args: argparse.Namespace) -> int:
    """``igc design --rank latency``: the cheapest designs ordered by latency here."""
    try:
        from igc.deploy.latency import design_by_latency
    except ImportError as exc:
        raise IGCError(f"--rank latency needs PyTorch ({exc}); the parameter ranking does "
                       "not") from None

    opts = {k: v if (v := getattr(args, k)) is not None else default
            for k, default in LATENCY_DEFAULTS.items()}
    ranking = design_by_latency(args.channels, args.kernel_area, args.layers, args.branch_size,
                                args.channelwise, candidates=opts["candidates"],
                                source=opts["latency"], size=opts["size"], batch=opts["batch"],
                                threads=opts["threads"], repeats=opts["repeats"],
                                cpu_time=opts["cpu_time"])
    if args.draw:
        from igc.viz.connectivity import draw_connectivity

        draw_connectivity(ranking.fastest.design.product, args.draw)
    if args.json:
        print(json.dumps(ranking.to_dict(), indent=2))
        return 0
    print(ranking.table())
    if args.draw:
        print(f"drew the fastest design's connectivity to {args.draw}")
    return 0
