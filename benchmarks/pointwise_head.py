"""A 1x1 convolution with its activation outside the blocks: oneDNN (PyTorch's
``nn.Conv2d`` and the activation, NHWC) against the native 1x1 product
(:class:`igc.deploy.chain.pointwise.NativePointwise`), one thread, with hot caches and
with the caches flushed (a 64 MiB write) before every call, as in a network that reads
each layer's weights once per forward.

    taskset -c 1 python benchmarks/pointwise_head.py [--repeats 15]

Interleaved per shape after one warm-up call, medians; the ratio is native / oneDNN.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from torch import nn

from igc.deploy.chain.pointwise import NativePointwise

#: (C_in, C_out, images, side): MobileNetV2's final conv at batch 1 and 10, and 1x1
#: products of the sizes in the CIFAR and ImageNet networks.
SHAPES = ((320, 1280, 1, 7), (320, 1280, 10, 7), (64, 128, 1, 32), (128, 128, 1, 56),
          (32, 64, 1, 112), (1024, 1024, 1, 14))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(1)
    flush = torch.empty(64 << 18)  # 64 MiB of floats

    def timed(call, cold: bool) -> float:
        if cold:
            flush.add_(1.0)
        start = time.perf_counter()
        call()
        return time.perf_counter() - start

    print(f"load average before: {os.getloadavg()}")
    for cin, cout, n, side in SHAPES:
        seq = nn.Sequential(nn.Conv2d(cin, cout, 1), nn.ReLU6()).eval()
        native = NativePointwise(seq[0], "relu6", seq)
        x = torch.randn(n, cin, side, side).contiguous(memory_format=torch.channels_last)
        cells = []
        with torch.inference_mode():
            error = (native(x) - seq(x)).abs().max().item()
            for cold in (False, True):
                times: dict[str, list[float]] = {"onednn": [], "native": []}
                for _ in range(args.repeats):
                    times["onednn"].append(timed(lambda s=seq, v=x: s(v), cold))
                    times["native"].append(timed(lambda m=native, v=x: m(v), cold))
                a, b = (statistics.median(times[k]) for k in ("onednn", "native"))
                cells.append(f"{'cold' if cold else 'hot'}: oneDNN {a * 1e3:.3f} ms, native "
                             f"{b * 1e3:.3f} ms ({b / a:.2f}x)")
        print(f"{cin}->{cout}, {n}x{side}x{side} (max error {error:.1e}): " + "; ".join(cells))
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
