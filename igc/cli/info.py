"""Show one network block by block (the paper's Tables 8 and 10).

For each stage: the blocks (repeats merged into one row), their input and output
widths, stride, branch sizes and groups of every factor, the connectivity condition
(strict, relaxed, dense or sparse) with the number of paths between an input and an
output channel, and their parameters and multiply-adds. Above the table: the
network's counts beside the paper's, its input preprocessing and released weights.

Examples:
  igc info igcv2_100
  igc info igcv3_100 --input-size 160
  igc info igcv2_fmnist --json
"""

from __future__ import annotations

import argparse
import json

from igc.cli import args as A
from igc.cli.parser import add_command
from igc.formatting import table

# The library is imported inside the functions that use it: `igc --help` and every
# subcommand's --help answer in under 0.5 s without it (tests/test_cli_startup.py).


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``igc info`` to the subcommands ``sub``."""
    p = add_command(sub, "info", __doc__)
    p.add_argument("name", type=A.name("model name"),
                   help="registered model name or alias, e.g. igcv2_100")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object (with the metadata, `pretrained_cfg`)")
    p.add_argument("--input-size", type=A.integer("--input-size", 1), metavar="N",
                   help="count at this image side instead of the registered one")
    p.set_defaults(run=run)


def _cells(values: object) -> str:
    if values is None:
        return "-"
    return ",".join(str(v) for v in values)  # type: ignore[union-attr]


def run(args: argparse.Namespace) -> int:
    """Run ``igc info`` with the parsed ``args``; returns the exit status."""
    from igc.analysis.zoo import count_cell as si
    from igc.analysis.zoo import diff_cell as diff
    from igc.analysis.zoo import model_info

    info = model_info(args.name, args.input_size)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0

    size, chans, paper = info["input_size"], info["in_chans"], info["paper"]
    print(f"{info['name']}: {info['family']}, paper table {info['table']}, {info['dataset']}, "
          f"{chans}x{size}x{size} -> {info['num_classes']} classes")
    print(f"params {info['params']:,} (weights {info['weights']:,}), MACs {info['macs']:,}")
    cfg = info["pretrained_cfg"]
    if info["aliases"]:
        print(f"aliases: {', '.join(info['aliases'])}")
    print(f"input: mean {cfg['mean']}, std {cfg['std']}, crop {cfg['crop_pct']:.3f} "
          f"({cfg['interpolation']}); released weights: "
          + (f"{cfg['released']['file']} (top-1 {cfg['released']['top1']}%)"
             if cfg["released"] else "none"))
    if paper["paper_params"] is not None:
        print(f"paper  params {si(paper['paper_params'])} / MACs "
              f"{si(paper['paper_macs'])}; ours counted as the paper does "
              f"({paper['convention']}): {si(paper['params_counted'])} "
              f"({diff(paper['params_diff'])}) / {si(paper['macs_counted'])} "
              f"({diff(paper['macs_diff'])})")
    print()
    grouped: list[list] = []
    for r in info["blocks"]:
        key = tuple(r[k] for k in ("stage", "type", "in_channels", "out_channels", "stride",
                                   "branch_sizes", "groups", "condition", "params", "macs"))
        if grouped and grouped[-1][0] == key:
            grouped[-1][1] += 1
        else:
            grouped.append([key, 1, r])
    headers = ["stage", "block", "x", "c_in", "c_out", "stride", "branch K", "groups",
               "condition", "paths", "params", "MACs"]
    body = []
    for _key, n, r in grouped:
        paths = "-" if r["min_paths"] is None else f"{r['min_paths']}..{r['max_paths']}"
        body.append([str(r["stage"]), r["type"], str(n), str(r["in_channels"] or "-"),
                     str(r["out_channels"] or "-"), str(r["stride"] or "-"),
                     _cells(r["branch_sizes"]), _cells(r["groups"]), r["condition"] or "-",
                     paths, f"{r['params'] * n:,}", f"{r['macs'] * n:,}"])
    print(table(headers, body, right={0, 2, 3, 4, 5, 10, 11}))
    print("\nparams/MACs per row are for all x repeated blocks of the row.")
    return 0
