"""Where the fused block kernel's time goes, block by block, on IGCV2-1.0 and IGCV3-1.0
(224x224, batch 1, one thread).

    taskset -c 1 python benchmarks/kernel_profile.py [--repeats 11] [--nets igcv2_100,igcv3_100]
                                                     [--steps] [--batch 1]

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

``--steps``: instead, each whole network as ``optimize(model, "fused")`` (``--batch``
images) with this build's later steps switched off at run time (``before``: trailing
permutations as gathers, ``set_variant(-2)``; pixel strides unpadded,
``set_stride_pad(0)``; every buffer zeroed whole per call, ``set_skip(32)``) and on
(``after``), interleaved: one build, so code layout and the process's buffer addresses
are the same for both (two builds compared by :mod:`kernel_versions` differ by up to
5-10 % even for identical sources).

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

from igc.deploy import optimize
from igc.deploy.native import native
from igc.deploy.timing import time_interleaved
from igc.models import create_model

PARTS = {"-none": 0, "-pre": 1, "-dw": 2, "-post": 4, "-tail": 8, "-zero": 16}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--nets", default="igcv2_100,igcv3_100")
    parser.add_argument("--steps", action="store_true",
                        help="whole networks, the later steps off and on")
    parser.add_argument("--batch", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(1)
    module = native()
    if module is None:
        raise SystemExit("no native kernel here")
    print(f"load average before: {os.getloadavg()}", flush=True)
    if args.steps:
        for net in args.nets.split(","):
            compare_steps(module, net, args.batch, args.repeats)
        print(f"load average after: {os.getloadavg()}")
        return

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


def compare_steps(module, net: str, batch: int, repeats: int) -> None:
    """The whole fused network with the later kernel steps off and on (same build)."""
    model = optimize(create_model(net).eval(), "fused", batch=batch)
    x = torch.randn(batch, 3, 224, 224).contiguous(memory_format=torch.channels_last)

    def run(before: bool):
        def forward() -> torch.Tensor:
            module.set_variant(-2 if before else 0)
            module.set_stride_pad(0 if before else 1)
            module.set_skip(32 if before else 0)
            try:
                return model(x)
            finally:
                module.set_variant(0)
                module.set_stride_pad(1)
                module.set_skip(0)
        return forward

    with torch.inference_mode():
        assert torch.equal(run(True)(), run(False)())
        t = time_interleaved({"before": run(True), "after": run(False)}, repeats=repeats,
                             warmup=2, min_sample_s=0, clock=time.thread_time)
    med = {k: v.median for k, v in t.items()}
    print(f"{net} whole network, batch {batch} (ms): before {med['before'] * 1e3:.2f}  "
          f"after {med['after'] * 1e3:.2f}  after/before {med['after'] / med['before']:.3f}",
          flush=True)


if __name__ == "__main__":
    main()
