"""Whole networks with and without the fused kernel, against their MobileNet peers.

    taskset -c 1 python benchmarks/fused_networks.py [--batch 1] [--threads 1] [--repeats 7]

For IGCV2-1.0 vs MobileNetV1-1.0 and IGCV3-1.0 vs MobileNetV2-1.0 at 224x224: every
network as ``optimize(model, "fused")`` (``fused``), the same with the PyTorch form of every
block (``unfused``, :func:`igc.deploy.chain.fused.unfused`), and ``optimize(model)``
(``auto``: the cost rule's choice per block), and onnxruntime on the model's ONNX export
(``igc.deploy.export.ONNX_FORM``; ``--no-onnx`` leaves it out), all interleaved in one
process after warm-up. Prints medians (IQR) and the ratios the issue asks for:
fused/unfused per network and each IGC network's best path over its peer's best path.
With one thread the clock is the thread's CPU time (robust on a shared machine); the load
average is printed before and after.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from igc.deploy import optimize
from igc.deploy.bench import onnxruntime_runner
from igc.deploy.chain.fused import unfused
from igc.deploy.export import ONNX_FORM
from igc.deploy.timing import time_interleaved
from igc.models import create_model

PAIRS = (("igcv2_100", "mobilenetv1_100"), ("igcv3_100", "mobilenetv2_100"))
PATHS = ("unfused", "fused", "auto", "onnxruntime")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-onnx", action="store_true", help="leave out onnxruntime")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"load average before: {os.getloadavg()}")
    x = torch.randn(args.batch, 3, 224, 224).contiguous(memory_format=torch.channels_last)
    calls = {}
    for name in (n for pair in PAIRS for n in pair):
        model = create_model(name).eval()
        fused = optimize(model, "fused", batch=args.batch)
        forms = {"unfused": unfused(fused), "fused": fused,
                 "auto": optimize(model, batch=args.batch)}
        for path, net in forms.items():
            calls[f"{name}/{path}"] = (lambda net=net: net(x))
        if not args.no_onnx:
            calls[f"{name}/onnxruntime"] = onnxruntime_runner(
                optimize(model, ONNX_FORM), x.contiguous(), args.threads)
    clock = time.thread_time if args.threads == 1 else time.perf_counter
    with torch.inference_mode():
        timing = time_interleaved(calls, repeats=args.repeats, warmup=2, clock=clock)
    print(f"batch {args.batch}, {args.threads} thread(s), "
          f"{'thread CPU time' if args.threads == 1 else 'wall time'}, medians (IQR) ms")
    for key, t in timing.items():
        print(f"  {key:24s} {t.median * 1e3:8.2f} ({t.iqr * 1e3:.2f})")
    for igc, peer in PAIRS:
        med = {k: timing[k].median for k in timing}
        best = min(med[k] for k in med if k.startswith(igc + "/"))
        peer_best = min(med[k] for k in med if k.startswith(peer + "/"))
        print(f"{igc}: fused/unfused {med[igc + '/fused'] / med[igc + '/unfused']:.2f}; "
              f"best {igc} / best {peer} {best / peer_best:.2f}; fused {igc} / unfused "
              f"{peer} {med[igc + '/fused'] / med[peer + '/unfused']:.2f}")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
