"""The fused kernel's output pool on and off, interleaved in one process.

    taskset -c 1 python benchmarks/fused_pool.py [--repeats 15] [--batch 1]

IGCV2-1.0 and MobileNetV1-1.0 as ``optimize(model, "fused")`` at 224x224, one thread, each
forward with the pool on (outputs reuse unreferenced buffers) or off (``set_pool(False)``:
a fresh allocation per output, as before the pool). The clock is the thread's CPU time
(user + system: page faults count). Prints medians (IQR), the off/on ratio, minor page
faults per forward, and the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import torch

from igc.deploy import optimize
from igc.deploy.native import native
from igc.deploy.timing import time_interleaved
from igc.models import create_model

NETWORKS = ("igcv2_100", "mobilenetv1_100")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(1)
    kernel = native()
    if kernel is None:
        raise SystemExit("no native kernel here")
    print(f"load average before: {os.getloadavg()}")
    x = torch.randn(args.batch, 3, 224, 224).contiguous(memory_format=torch.channels_last)
    calls = {}
    for name in NETWORKS:
        fused = optimize(create_model(name).eval(), "fused", batch=args.batch)
        for on in (True, False):
            calls[f"{name}/pool {'on' if on else 'off'}"] = (
                lambda fused=fused, on=on: (kernel.set_pool(on), fused(x)))
    with torch.inference_mode():
        timing = time_interleaved(calls, repeats=args.repeats, warmup=3, clock=time.thread_time)
        faults = {}
        for key, call in calls.items():
            start = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
            for _ in range(5):
                call()
            faults[key] = (resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - start) / 5
    kernel.set_pool(True)
    print(f"batch {args.batch}, 1 thread, thread CPU time, medians (IQR) ms, minor faults")
    for key, t in timing.items():
        print(f"  {key:28s} {t.median * 1e3:8.2f} ({t.iqr * 1e3:.2f})  {faults[key]:6.0f}")
    for name in NETWORKS:
        off, on = timing[f"{name}/pool off"].median, timing[f"{name}/pool on"].median
        print(f"{name}: pool off / on {off / on:.3f}")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
