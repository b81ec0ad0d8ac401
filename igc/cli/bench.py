"""``igc bench``: latency and throughput of models in each inference form, timed
interleaved, beside the machine's dense matmul rate; ``--calibrate`` measures the cost
model that ``optimize`` chooses forms by and writes it to the user cache."""

from __future__ import annotations

import argparse
import json
import sys

from igc.errors import IGCError


def _forms(text: str) -> list[str]:
    return [f.strip() for f in text.split(",") if f.strip()]


def register(sub: argparse._SubParsersAction) -> None:
    from igc.deploy.bench import BENCH_FORMS

    p = sub.add_parser("bench", help="time models in each inference form", description=__doc__)
    p.add_argument("models", nargs="*", metavar="NAME", help="registered model names")
    p.add_argument("--batch", type=int, default=1, help="images per call")
    p.add_argument("--input-size", type=int, help="image side (default: each model's)")
    p.add_argument("--threads", type=int, help="torch (and onnxruntime) threads while "
                   "timing (the previous setting is restored)")
    p.add_argument("--forms", type=_forms, default=list(BENCH_FORMS),
                   help=f"comma-separated, from {','.join(BENCH_FORMS)} (default all "
                        "available; compiled takes a while to compile)")
    p.add_argument("--repeats", type=int, default=20, help="timed rounds (each runs every "
                   "model in every form once, interleaved)")
    p.add_argument("--calibrate", action="store_true",
                   help="measure the cost model's constants here and write them to the "
                        "user cache (~/.cache/igc/cost-model-DEVICE.json); no models needed")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                   help="device to calibrate (with --calibrate)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from igc.deploy.inputs import check_range
    from igc.deploy.timing import num_threads

    if args.threads is not None:
        check_range(args.threads, "--threads", 1, 4096)
    if args.calibrate:
        if args.models:
            raise IGCError("--calibrate measures the machine, not models; drop the names")
        with num_threads(args.threads):
            return _calibrate(args)
    if not args.models:
        raise IGCError("give at least one model name (see `igc models`), or --calibrate")
    from igc.deploy.bench import bench_models

    check_range(args.repeats, "--repeats", 1, 10000)
    log = None if args.json else (lambda msg: print(msg, file=sys.stderr, flush=True))
    report = bench_models(args.models, args.batch, args.input_size, args.threads, args.forms,
                          args.repeats, log=log)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.table())
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    import torch

    from igc.deploy.chain.calibrate import calibrate, write_calibration

    if args.device == "cuda" and not torch.cuda.is_available():
        raise IGCError("--device cuda: no CUDA device is available here")
    model, info = calibrate(args.device)
    path = write_calibration(model, args.device, info)
    if args.json:
        print(json.dumps({"file": str(path), "device": args.device,
                          "constants": model.constants(), "info": info}, indent=2))
        return 0
    c = model.constants()
    print(f"wrote {path}: cost model for {args.device}, {info['threads']} thread(s)")
    print(f"dense 1x1 {c['dense_rate'] / 1e9:.1f} GMAC/s, memory {c['memory_rate'] / 1e9:.1f} "
          f"GB/s, L2 {c['l2_bytes'] // 1024} KiB, branches of k at min("
          f"{c['max_branch_efficiency']:.2f}, k/{c['full_rate_branch']:.1f}) of dense")
    print("optimize() now chooses forms by these; delete the file to return to the "
          "built-in constants")
    return 0
