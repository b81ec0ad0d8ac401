"""``igc bench``: latency and throughput of models in each inference form, timed
interleaved, beside the machine's dense matmul rate."""

from __future__ import annotations

import argparse
import json
import sys


def _forms(text: str) -> list[str]:
    return [f.strip() for f in text.split(",") if f.strip()]


def register(sub: argparse._SubParsersAction) -> None:
    from igc.deploy.bench import BENCH_FORMS

    p = sub.add_parser("bench", help="time models in each inference form", description=__doc__)
    p.add_argument("models", nargs="+", metavar="NAME", help="registered model names")
    p.add_argument("--batch", type=int, default=1, help="images per call")
    p.add_argument("--input-size", type=int, help="image side (default: each model's)")
    p.add_argument("--threads", type=int, help="torch (and onnxruntime) threads")
    p.add_argument("--forms", type=_forms, default=list(BENCH_FORMS),
                   help=f"comma-separated, from {','.join(BENCH_FORMS)} (default all "
                        "available; compiled takes a while to compile)")
    p.add_argument("--repeats", type=int, default=20, help="timed rounds (each runs every "
                   "model in every form once, interleaved)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from igc.deploy.bench import bench_models
    from igc.errors import IGCError

    if args.repeats < 1:
        raise IGCError(f"--repeats must be positive, got {args.repeats}")
    if args.threads is not None and args.threads < 1:
        raise IGCError(f"--threads must be positive, got {args.threads}")
    log = None if args.json else (lambda msg: print(msg, file=sys.stderr, flush=True))
    report = bench_models(args.models, args.batch, args.input_size, args.threads, args.forms,
                          args.repeats, log=log)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.table())
    return 0
