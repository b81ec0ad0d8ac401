"""Evaluate a checkpoint or released weights: top-1, top-5, per class.

Rebuilds the network a checkpoint (or the run folder holding it) was trained as and
evaluates it on the test split of the data set it was trained on, or of --data. With
--pretrained, CHECKPOINT names a zoo network and --pretrained its weights (a file, a URL,
a pytorchcv state dict; no value: its released weights); --data imagefolder --data-dir
VAL_DIR then evaluates an ImageNet-style validation folder with the network's own
preprocessing.

Examples:
  igc eval runs/igcv2_fmnist-fashion-mnist
  igc eval runs/r/checkpoint.pt --ema --json
  igc eval igcv2_c48_d11_fmnist --pretrained
  igc eval igcv3_100 --pretrained igcv3_w1.pth --data imagefolder --data-dir val/
"""

from __future__ import annotations

import argparse
import json

from igc import checks
from igc.cli import args as A
from igc.cli.parser import add_command
from igc.errors import IGCError
from igc.formatting import pct
from igc.names import DEVICES

# The library is imported inside the functions that use it: `igc --help` and every
# subcommand's --help answer in under 0.5 s without it (tests/test_cli_startup.py).


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``igc eval`` to the subcommands ``sub``."""
    p = add_command(sub, "eval", __doc__)
    p.add_argument("checkpoint", type=A.path("checkpoint"),
                   help="a checkpoint file or a run directory; with --pretrained, a model name")
    p.add_argument("--pretrained", nargs="?", const=True, metavar="FILE_OR_URL",
                   type=A.text("--pretrained", 4096),
                   help="evaluate the network CHECKPOINT names with these weights (a file, a "
                        "URL, a pytorchcv state dict; no value: its released weights)")
    p.add_argument("--hash", type=A.name("--hash"),
                   help="SHA-256 (or its first 8+ hex digits) the --pretrained file must have")
    p.add_argument("--data", "-d", type=A.name("--data"),
                   help="data set (default: the one it was trained on)")
    p.add_argument("--data-dir", type=A.existing("dir", "--data-dir"),
                   help="directory holding the data set's files (read from nowhere else)")
    p.add_argument("--no-download", action="store_true", help="never download data")
    p.add_argument("--batch-size", type=A.integer("batch size", 1, checks.MAX_BATCH),
                   help="evaluation batch size")
    p.add_argument("--device", default="auto", type=A.device(), metavar="DEVICE",
                   help=f"{', '.join(DEVICES)} (default auto: CUDA when available)")
    p.add_argument("--ema", action="store_true",
                   help="evaluate the moving average of the weights (runs with ema = true)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``igc eval`` with the parsed ``args``; returns the exit status."""
    if args.pretrained is not None:
        from igc.train.evaluate_pretrained import evaluate_pretrained

        if args.ema:
            raise IGCError("--ema applies to igc train checkpoints, not to --pretrained")
        result = evaluate_pretrained(str(args.checkpoint), args.pretrained, data=args.data,
                                     data_dir=args.data_dir, device=args.device,
                                     batch_size=args.batch_size,
                                     download=not args.no_download, hash=args.hash)
        what = f"{result['model']} ({result['weights'] or 'released weights'})"
    else:
        from igc.train.evaluate import evaluate_checkpoint

        if args.hash is not None:
            raise IGCError("--hash checks a --pretrained file; pass --pretrained FILE_OR_URL")
        checkpoint = checks.check_existing(args.checkpoint, "checkpoint")
        result = evaluate_checkpoint(checkpoint, data=args.data, data_dir=args.data_dir,
                                     device=args.device, batch_size=args.batch_size,
                                     download=not args.no_download, ema=args.ema)
        what = f"{result['model']} (epoch {result['epoch']}/{result['epochs']})"
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{what} on {result['data']}: top-1 {pct(result['top1'])}, top-5 "
          f"{pct(result['top5'])}, loss {result['loss']:.4f} ({result['images']:,} images, "
          f"{result['images_per_s']:,.0f} images/s)")
    width = max(len(name) for name in result["per_class"])
    for name, acc in result["per_class"].items():
        print(f"  {name:<{width}}  {pct(acc)}")
    return 0
