"""The layers outside the blocks: oneDNN (PyTorch's ``nn.Conv2d`` and the activation)
against igc's native forms, one thread, with hot caches and with the caches flushed (a
64 MiB write) before every call, as in a network that reads each layer's weights once
per forward.

    taskset -c 1 python benchmarks/outside_blocks.py [--repeats 15]

* 1x1 convolutions with ReLU6 on NHWC input against the native 1x1 product
  (:class:`igc.deploy.chain.pointwise.NativePointwise`);
* stems, 3x3 stride 2 on a 224x224 NCHW image with ReLU: oneDNN given the image
  converted to NHWC (what the network did) against the native stem
  (:class:`igc.deploy.chain.stem.NativeStem`, which reads NCHW);
* the head at batch 1: ATen's global average pool of a 7x7 channels-last map against the
  native pool (:class:`igc.deploy.chain.head.NativeAvgPool`), and ``nn.Linear`` against
  the native pass over its packed weights (:class:`igc.deploy.chain.head.NativeLinear`;
  IGCV2-1.0's two-group classifier as a grouped one).

Interleaved per shape after one warm-up call, medians; the ratio is native / PyTorch (oneDNN
for the convolutions and the linear layer, ATen for the pool).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from torch import nn

from igc.deploy.chain.head import NativeAvgPool, NativeLinear, linear_parts
from igc.deploy.chain.pointwise import NativePointwise
from igc.deploy.chain.stem import NativeStem
from igc.deploy.native import native
from igc.models.net import GroupClassifier, make_pool

#: (C_in, C_out, images, side): MobileNetV2's final conv at batch 1 and 10, and 1x1
#: products of the sizes in the CIFAR and ImageNet networks.
SHAPES = ((320, 1280, 1, 7), (320, 1280, 10, 7), (64, 128, 1, 32), (128, 128, 1, 56),
          (32, 64, 1, 112), (1024, 1024, 1, 14))
#: (C_in, C_out): the MobileNets' and IGCV3's stem, IGCV2-1.0's.
STEMS = ((3, 32), (3, 64))
#: Channels of the pooled 7x7 maps: MobileNetV2's and IGCV3's, MobileNetV1's, IGCV2-1.0's.
POOLS = (1280, 1024, 2048)
#: (in_features, classes, groups): the ImageNet classifiers.
LINEARS = ((1280, 1000, 1), (1024, 1000, 1), (2048, 1000, 2))


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
    cases = []
    for cin, cout, n, side in SHAPES:
        seq = nn.Sequential(nn.Conv2d(cin, cout, 1), nn.ReLU6()).eval()
        x = torch.randn(n, cin, side, side).contiguous(memory_format=torch.channels_last)
        cases.append((f"1x1 {cin}->{cout}, {n}x{side}x{side}", seq,
                      NativePointwise(seq[0], "relu6", seq), x, seq))
    for cin, cout in STEMS:
        seq = nn.Sequential(nn.Conv2d(cin, cout, 3, 2, 1), nn.ReLU()).eval()
        x = torch.randn(1, cin, 224, 224)
        cases.append((f"stem {cin}->{cout}, 224x224", seq,
                      NativeStem(seq[0], "relu", seq, native().simd_width()), x,
                      lambda v, s=seq: s(v.contiguous(memory_format=torch.channels_last))))
    for c in POOLS:
        pool = make_pool("avg")
        x = torch.randn(1, c, 7, 7).contiguous(memory_format=torch.channels_last)
        cases.append((f"avg pool {c}x7x7", pool, NativeAvgPool(pool), x, pool))
    for k, o, groups in LINEARS:
        layer = nn.Linear(k, o) if groups == 1 else GroupClassifier(k, o, (groups,))
        cases.append((f"linear {k}->{o}/g{groups}", layer,
                      NativeLinear(*linear_parts(layer), fallback=layer), torch.randn(1, k),
                      layer))
    for label, seq, native_form, x, onednn in cases:
        cells = []
        with torch.inference_mode():
            error = (native_form(x) - seq(x)).abs().max().item()
            for cold in (False, True):
                times: dict[str, list[float]] = {"onednn": [], "native": []}
                for _ in range(args.repeats):
                    times["onednn"].append(timed(lambda s=onednn, v=x: s(v), cold))
                    times["native"].append(timed(lambda m=native_form, v=x: m(v), cold))
                a, b = (statistics.median(times[k]) for k in ("onednn", "native"))
                cells.append(f"{'cold' if cold else 'hot'}: PyTorch {a * 1e3:.3f} ms, native "
                             f"{b * 1e3:.3f} ms ({b / a:.2f}x)")
        print(f"{label} (max error {error:.1e}): " + "; ".join(cells))
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
