"""Where the fused block kernel's time goes, block by block, on IGCV2-1.0 and IGCV3-1.0
(224x224, batch 1, one thread).

    taskset -c 1 python benchmarks/kernel_profile.py [--repeats 11] [--nets igcv2_100,igcv3_100]

For every distinct fused block of the networks (:func:`kernel_versions.blocks_of`),
interleaved in one process after warm-up, this thread's CPU time, medians:

* ``full``: the kernel's ``fused_block``;
* ``-pre``, ``-dw``, ``-post``, ``-tail``, ``-zero``: the same call with one part left out
  (the native ``set_skip`` switch; the outputs are then wrong): the pre 1x1 segment, the
  spatial (depthwise) pass, the post 1x1 segment, the trailing permutation (a plain copy
  of the same bytes instead), the per-call zeroing of the input ring's margins. A part's
  cost is ``full`` minus its column (parts overlap in the caches, so the costs need not
  add up to ``full``); ``-none`` leaves nothing out: its "cost" is the method's noise;
* ``mm`` (timed after the others, not among them: the call after it in the rotation
  would find the caches refilled): ``torch.mm`` of ``(P, C_in) @ (C_in, n)`` with the
  block's multiply-adds (``P`` its output pixels, ``n = MACs / (P C_in)``), the dense
  rate.

One call per sample, as in :mod:`kernel_versions`. Printed per block: ``full`` (ms), the
block's true multiply-adds, GMAC/s, ``full/mm`` (the issue's target: at most 2), and each
part's cost in ms and as a share of ``full``; per network the sums. The load average is
printed before and after.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from kernel_versions import blocks_of  # benchmarks/ is the script's folder

from igc.deploy.native import native
from igc.deploy.timing import time_interleaved

PARTS = {"-none": 0, "-pre": 1, "-dw": 2, "-post": 4, "-tail": 8, "-zero": 16}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--nets", default="igcv2_100,igcv3_100")
    args = parser.parse_args()
    torch.set_num_threads(1)
    module = native()
    if module is None:
        raise SystemExit("no native kernel here")
    print(f"load average before: {os.getloadavg()}", flush=True)

    def call(x, params, config, skip=0):
        def run() -> torch.Tensor:
            module.set_skip(skip)
            try:
                return module.fused_block(x, params, config)
            finally:
                module.set_skip(0)
        return run

    for net in args.nets.split(","):
        sums: dict[str, float] = {}
        with torch.inference_mode():
            for label, x, params, config, count, macs in blocks_of(net):
                pixels = x.shape[2] * x.shape[3] // config[4] ** 2
                a = torch.randn(pixels, x.shape[1])
                b = torch.randn(x.shape[1], max(1, round(macs / (pixels * x.shape[1]))))
                calls = {"full": call(x, params, config)}
                calls.update({k: call(x, params, config, v) for k, v in PARTS.items()})
                t = time_interleaved(calls, repeats=args.repeats, warmup=3,
                                     min_sample_s=0, clock=time.thread_time)
                # apart: the call after torch.mm in the rotation would refill the caches
                t["mm"] = time_interleaved({"mm": lambda a=a, b=b: torch.mm(a, b)},
                                           repeats=args.repeats, warmup=3, min_sample_s=0,
                                           clock=time.thread_time)["mm"]
                med = {k: v.median for k, v in t.items()}
                cost = {k: med["full"] - med[k] for k in PARTS}
                for k, v in (("full", med["full"]), ("mm", med["mm"]), *cost.items()):
                    sums[k] = sums.get(k, 0.0) + count * v
                print(f"{net} {label} x{count}: full {med['full'] * 1e3:.3f} ms  "
                      f"{macs / 1e6:.1f} MMAC  {macs / med['full'] / 1e9:.1f} GMAC/s  "
                      f"full/mm {med['full'] / med['mm']:.2f}  parts ms (share): " + "  ".join(
                          f"{k[1:]} {v * 1e3:.3f} ({v / med['full']:.0%})"
                          for k, v in cost.items()), flush=True)
        print(f"{net} sums (ms): full {sums['full'] * 1e3:.2f}  mm {sums['mm'] * 1e3:.2f}  "
              f"full/mm {sums['full'] / sums['mm']:.2f}  " + "  ".join(
                  f"{k[1:]} {sums[k] * 1e3:.2f} ({sums[k] / sums['full']:.0%})"
                  for k in PARTS), flush=True)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
