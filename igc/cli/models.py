"""List the papers' networks, our counts beside the paper's.

One row per registered network: its family, the paper table it comes from, its input
size, parameters and multiply-adds as built, the same counted the way the paper counts
them (CIFAR and Tiny ImageNet: convolution weights without BatchNorm and classifier;
8-layer networks: one block at 32x32; ImageNet: all parameters), the paper's numbers and
the difference. The zoo's counts ship with igc, so the list comes at once; --no-cache
counts every network again from its built module (tens of seconds: a progress bar on
stderr when it is a terminal, unless --quiet).

Examples:
  igc models                  every network
  igc models 'igcv3_*'        a shell-style pattern of names or aliases
  igc models --pretrained     only networks with released weights
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
    """Add ``igc models`` to the subcommands ``sub``."""
    p = add_command(sub, "models", __doc__)
    p.add_argument("pattern", nargs="?", type=A.name("pattern"),
                   help="shell-style pattern of names or aliases, e.g. 'igcv3_*'")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.add_argument("--pretrained", action="store_true",
                   help="only networks with released weights")
    p.add_argument("--no-cache", action="store_true",
                   help="count every network again instead of reading the shipped "
                        "table or the cache in ~/.cache/igc")
    p.add_argument("--quiet", "-q", action="store_true",
                   help="no progress bar while networks are counted (there is one only "
                        "when stderr is a terminal)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``igc models`` with the parsed ``args``; returns the exit status."""
    from igc.analysis.zoo import count_cell as si
    from igc.analysis.zoo import diff_cell as diff
    from igc.analysis.zoo import model_rows

    rows = model_rows(args.pattern, use_cache=not args.no_cache, pretrained=args.pretrained,
                      progress=not args.quiet)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0

    headers = ["name", "family", "table", "input", "params", "MACs", "counted", "MACs",
               "paper", "MACs", "diff", "MACs"]
    body = [[r["name"], r["family"], r["table"], f"{r['input_size']}", si(r["params"]),
             si(r["macs"]), si(r["params_counted"]), si(r["macs_counted"]),
             ("~" if r["paper_approx"] else "") + si(r["paper_params"]),
             si(r["paper_macs"]), diff(r["params_diff"]), diff(r["macs_diff"])]
            for r in rows]
    print(table(headers, body, right=set(range(4, 12))))
    print(f"\n{len(rows)} models. params/MACs: the network as built. counted: as the paper "
          "counts (CIFAR/Tiny: conv weights without BN and classifier; 8-layer: one block "
          "at 32x32; ImageNet: all parameters). diff: counted vs paper. See docs/zoo.md.")
    return 0
