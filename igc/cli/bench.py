"""Time networks in each inference form (latency, throughput).

Each network runs as trained (naive), in its inference form (optimized), that form under
torch.compile (compiled) and exported to ONNX and run by onnxruntime, timed in
interleaved rounds; the table gives latency, throughput and the fraction of the dense
matrix-multiply rate reached. --calibrate measures the cost model that `optimize` chooses
forms by and writes it to ~/.cache/igc/cost-model-DEVICE.json. The thread count is
restored afterwards.

Examples:
  igc bench igcv2_100 mobilenetv1_100 --threads 1
  igc bench igcv3_100 --forms naive,optimized --batch 8 --json
  igc bench --calibrate
"""

from __future__ import annotations

import argparse
import json
import sys

from igc import checks
from igc.cli import args as A
from igc.cli.parser import add_command
from igc.errors import IGCError
from igc.names import BENCH_FORMS, DEFAULT_BENCH_FORMS
from igc.runtime import num_threads

# The library is imported inside the functions that use it: `igc --help` and every
# subcommand's --help answer in under 0.5 s without it (tests/test_cli_startup.py).


def _forms(text: str) -> list[str]:
    forms = [checks.check_choice(f.strip(), "form", BENCH_FORMS)
             for f in text.split(",") if f.strip()]
    if not forms:
        raise IGCError(f"--forms names no form; give some of {', '.join(BENCH_FORMS)}")
    return forms


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``igc bench`` to the subcommands ``sub``."""
    p = add_command(sub, "bench", __doc__)
    p.add_argument("models", nargs="*", metavar="NAME", type=A.name("model name"),
                   help="registered model names")
    p.add_argument("--batch", type=A.integer("--batch"), default=1, metavar="N",
                   help="images per call (default 1)")
    p.add_argument("--input-size", type=A.integer("--input-size"), metavar="N",
                   help="image side (default: each model's)")
    p.add_argument("--threads", type=A.integer("--threads", 1, checks.MAX_THREADS),
                   metavar="N", help="torch (and onnxruntime) threads while timing (the "
                                     "previous setting is restored)")
    p.add_argument("--forms", type=A.wrap(_forms, "forms"), default=list(DEFAULT_BENCH_FORMS),
                   metavar="F1,F2",
                   help=f"comma-separated, from {','.join(BENCH_FORMS)} (default all "
                        "available but openvino-bf16, the one not in float32; compiled takes "
                        "a while to compile)")
    p.add_argument("--repeats", type=A.integer("--repeats", 1, 10000), default=20,
                   metavar="N", help="timed rounds, each running every model in every form "
                                     "once, interleaved (default 20)")
    p.add_argument("--calibrate", action="store_true",
                   help="measure the cost model's constants here and write them to the "
                        "user cache (~/.cache/igc/cost-model-DEVICE.json); no models needed")
    p.add_argument("--device", default="cpu", type=A.choice("device", ("cpu", "cuda")),
                   metavar="{cpu,cuda}", help="device to calibrate (with --calibrate)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``igc bench`` with the parsed ``args``; returns the exit status."""
    if args.calibrate:
        if args.models:
            raise IGCError("--calibrate measures the machine, not models; drop the names")
        with num_threads(args.threads):
            return _calibrate(args)
    if not args.models:
        raise IGCError("give at least one model name (see `igc models`), or --calibrate")
    from igc.deploy.bench import bench_models

    log = None if args.json else (lambda msg: print(msg, file=sys.stderr, flush=True))
    report = bench_models(args.models, args.batch, args.input_size, args.threads, args.forms,
                          args.repeats, log=log)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.table())
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    import torch

    from igc.deploy.chain.calibrate import calibrate, write_calibration
    from igc.deploy.chain.cost import calibration_path
    from igc.files.cache import check_cache_dir

    if args.device == "cuda" and not torch.cuda.is_available():
        raise IGCError("--device cuda: no CUDA device is available here")
    check_cache_dir(calibration_path(args.device).parent)  # before minutes of measuring
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
          f"{c['max_branch_efficiency']:.2f}, k/{c['full_rate_branch']:.1f}) of dense, dense "
          f"of k inputs out of cache at min(1, k/{c['dense_full_branch']:.1f})")
    print(f"depthwise 3x3 {c['spatial_rate'] / 1e9:.1f} GMAC/s (stride 2: "
          f"{c['strided_spatial_rate'] / 1e9:.1f}; NCHW x{c['channel_major_spatial']:.2f}); "
          f"fused kernel ({info['fused']}): "
          f"1x1 {c['fused_rate'] / 1e9:.1f} GMAC/s at min(1, k/{c['fused_full_branch']:.1f}), "
          f"spatial pass {c['fused_spatial_rate'] / 1e9:.1f} GMAC/s")
    print("optimize() now chooses forms by these; delete the file to return to the "
          "built-in constants")
    return 0
