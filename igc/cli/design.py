"""``igc design``: choose or check the branch sizes of an IGCV2 block for a width."""

from __future__ import annotations

import argparse
import json
import math

from igc.errors import IGCError
from igc.sparsity import Design, design
from igc.sparsity.design import DesignReport, _check_request


def _sizes(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"branch sizes must be comma-separated integers, got {text!r}") from None


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("design", help="design or check an interleaved structured-sparse block",
                       description=__doc__)
    p.add_argument("--channels", "-C", type=int, required=True, help="block width C")
    p.add_argument("--kernel-area", "-S", type=int, default=9, help="spatial taps S (9 = 3x3)")
    p.add_argument("--layers", "-L", type=int, help="fix the number of factors L")
    p.add_argument("--branch-size", "-K", type=int, help="fix every 1x1 branch size (IGCV2*)")
    p.add_argument("--channelwise", action="store_true",
                   help="force a channel-wise spatial factor (K_1 = 1), the paper's advice")
    p.add_argument("--check", action="store_true", help="classify --branch-sizes instead")
    p.add_argument("--branch-sizes", type=_sizes, help="K_1,...,K_L to check, e.g. 1,8,8")
    p.add_argument("--strict", action="store_true",
                   help="with --check: fail unless the sizes multiply to C")
    p.add_argument("--alternatives", type=int, default=5, help="ranked alternatives to show")
    p.add_argument("--draw", metavar="FILE.png", help="draw the block's connectivity")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run)


def _check(args: argparse.Namespace) -> DesignReport:
    if not args.branch_sizes:
        raise IGCError("--check needs --branch-sizes, e.g. --branch-sizes 1,8,8")
    channels, area = _check_request(args.channels, args.kernel_area)
    if args.strict and math.prod(args.branch_sizes) != channels:
        raise IGCError(f"branch sizes {args.branch_sizes} multiply to "
                       f"{math.prod(args.branch_sizes)}, not C={channels}: not strictly "
                       f"complementary (eq. 6); drop --strict to classify a loose design")
    chosen = Design(channels, tuple(args.branch_sizes), area)
    chosen.product  # noqa: B018  (validates the sizes)
    return DesignReport(channels, area, [chosen])


def _row(d: Design) -> str:
    c = d.product.connectivity
    cw = d.bound_channelwise
    bound = f"{d.bound:,.0f}" + (f" (channel-wise {cw:,.0f})" if cw is not None else "")
    return (f"{list(d.branch_sizes)!s:<16} L={d.layers:<2} params={d.params:<9,} "
            f"{c.condition:<7} paths {c.min_paths}..{c.max_paths:<4} bound {bound}")


def run(args: argparse.Namespace) -> int:
    if args.check:
        report = _check(args)
    elif args.branch_sizes:
        raise IGCError("--branch-sizes is for --check; to design, give --layers or --branch-size")
    else:
        report = design(args.channels, args.kernel_area, args.layers, args.branch_size,
                        args.channelwise)
    if args.draw:
        from igc.viz.connectivity import draw_connectivity

        draw_connectivity(report.best.product, args.draw)
    if args.json:
        print(json.dumps(report.to_dict(args.alternatives), indent=2))
        return 0
    best, data = report.best, report.to_dict(args.alternatives)
    print(f"C={report.channels} S={report.kernel_area}: best L by eq. 14 = "
          f"{data['best_layers']}; bound = eq. 10 (channel-wise: C S + C (L-1) C^(1/(L-1)))")
    print(f"chosen  {_row(best)}")
    if report.note:
        print(f"note    {report.note}")
    for d in report.designs[1 : 1 + args.alternatives]:
        print(f"        {_row(d)}")
    for d in report.nearby:
        print(f"nearby  C={d.channels}: {_row(d)}")
    if args.draw:
        print(f"drew the connectivity to {args.draw}")
    return 0
