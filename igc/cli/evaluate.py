"""``igc eval``: top-1, top-5 and per-class accuracy of a checkpoint on a test split."""

from __future__ import annotations

import argparse
import json


def _positive(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a checkpoint (top-1, top-5, per class)",
                       description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", help="a checkpoint file or a run directory")
    p.add_argument("--data", "-d", help="data set (default: the one it was trained on)")
    p.add_argument("--data-dir", help="directory holding the data set's files")
    p.add_argument("--no-download", action="store_true", help="never download data")
    p.add_argument("--batch-size", type=_positive, help="evaluation batch size")
    p.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from igc.errors import IGCError
    from igc.train.evaluate import evaluate_checkpoint
    from igc.train.metrics import pct
    from igc.train.run import set_threads

    set_threads(0, 1)

    if args.batch_size is not None and args.batch_size < 1:
        raise IGCError(f"batch size must be at least 1, got {args.batch_size}")
    result = evaluate_checkpoint(args.checkpoint, data=args.data, data_dir=args.data_dir,
                                 device=args.device, batch_size=args.batch_size,
                                 download=not args.no_download)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{result['model']} (epoch {result['epoch']}/{result['epochs']}) on "
          f"{result['data']}: top-1 {pct(result['top1'])}, top-5 {pct(result['top5'])}, "
          f"loss {result['loss']:.4f} ({result['images']:,} images, "
          f"{result['images_per_s']:,.0f} images/s)")
    width = max(len(name) for name in result["per_class"])
    for name, acc in result["per_class"].items():
        print(f"  {name:<{width}}  {pct(acc)}")
    return 0
