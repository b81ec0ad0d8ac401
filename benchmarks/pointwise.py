"""The fused kernel's 1x1 products alone against the dense GEMM rate, on the shapes of
IGCV2-1.0's and IGCV3-1.0's blocks (ImageNet 224x224, batch 1).

    taskset -c 1 python benchmarks/pointwise.py [--repeats 15] [--nets igcv2_100,igcv3_100]

For every distinct 1x1 segment of the networks' fused blocks (the ``pre`` expansion of
IGCV3 on the block's input map, the ``post`` products on its output map), interleaved in
one process after warm-up, one thread, this thread's CPU time, medians:

* ``kernel``: the native ``segment`` entry (``igc.deploy.native``), the micro-kernel the
  fused block runs, over the map in tiles of the pixels one fused tile holds, writing
  ``post`` results to the ``(P, C_out)`` map and ``pre`` results to one tile-sized block
  that stays in cache (as the fused block's rolling buffer does);
* ``mm``: ``torch.mm`` of ``(P, C_in) @ (C_in, n)`` with the same multiply-adds
  (``n = MACs per pixel / C_in``), the dense rate;
* ``bmm``: the segment's products as ``torch.bmm`` per factor over the whole map (ATen
  GEMM per branch, the ``structured`` form's products without its copies);
* ``aten_tile``: ATen's GEMM per branch per tile, called from C++ inside the same tile
  loop (the inputs gathered through the index table into a ``(tile, k)`` block);
  ``--variants`` adds the micro-kernel variants a build offers (``variants()``).

GMAC/s count the segment's true multiply-adds (without the zeros of joined branches);
``kernel/mm`` is the kernel's time over ``mm``'s. The load average is printed before and
after.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from igc.deploy.chain.fused import FusedPlan, pack_segment
from igc.deploy.chain.ops import lower
from igc.deploy.chain.segments import Segment
from igc.deploy.native import native
from igc.deploy.timing import time_interleaved
from igc.layers import FactorChain
from igc.models import create_model


def segments_of(name: str) -> list[tuple[str, Segment, int, int]]:
    """``(label, segment, pixels, tile pixels)`` of every distinct 1x1 segment of the
    network's fused blocks at 224x224, batch 1."""
    model = create_model(name).eval()
    shapes: dict[str, tuple] = {}
    hooks = [m.register_forward_hook(
        lambda mod, inp, out, n=n: shapes.__setitem__(n, (inp[0].shape, out.shape)))
        for n, m in model.named_modules() if isinstance(m, FactorChain)]
    with torch.inference_mode():
        model(torch.randn(1, 3, 224, 224))
    for h in hooks:
        h.remove()
    found: dict[tuple, tuple[str, Segment, int, int]] = {}
    for n, m in model.named_modules():
        if not isinstance(m, FactorChain):
            continue
        plan = FusedPlan(lower(m))
        (_, _, h, w), (_, _, ho, wo) = shapes[n]
        plan.set_tile(wo)
        k, s, rows = plan.config[3], plan.config[4], plan.config[9]
        pre = plan.config[10] > 0
        for i, seg in enumerate(plan.segments):
            if pre and i == 0:
                label, pixels, tile = "pre", h * w, ((rows - 1) * s + k) * w
            else:
                label, pixels, tile = "post", ho * wo, rows * wo
            desc = [(c.in_channels, c.out_channels, c.groups) for c in seg.convs]
            key = (label, tuple(desc), pixels)
            text = " ".join(f"{i}>{o}/g{g}" for i, o, g in desc)
            found.setdefault(key, (f"{name} {label} {text} @{h if label == 'pre' else ho}",
                                   seg, pixels, tile))
    return list(found.values())


def _bmm_form(seg: Segment, x: torch.Tensor):
    """The segment's products as ``torch.bmm`` per factor over the whole map (channel
    order as the factors need it: the permutations are left out, they move no MACs)."""
    ws = []
    for c in seg.convs:
        g = c.groups
        ws.append(c.weight.reshape(g, c.out_channels // g, c.in_channels // g)
                  .transpose(1, 2).contiguous())
    p = x.shape[0]

    def run() -> torch.Tensor:
        y = x
        for w in ws:
            g, k, _ = w.shape
            y = torch.bmm(y.view(p, g, k).transpose(0, 1), w).transpose(0, 1).reshape(p, -1)
        return y
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--nets", default="igcv2_100,igcv3_100")
    parser.add_argument("--variants", action="store_true",
                        help="also time the micro-kernel variants the build offers")
    args = parser.parse_args()
    torch.set_num_threads(1)
    module = native()
    if module is None:
        raise SystemExit("no native kernel here")
    variants = list(module.variants()) if args.variants and hasattr(module, "variants") \
        else []
    print(f"load average before: {os.getloadavg()}")
    rows = []
    for net in args.nets.split(","):
        for label, seg, pixels, tile in segments_of(net):
            params, config = pack_segment(seg)
            x = torch.randn(pixels, seg.in_channels)
            macs = seg.structured_macs()
            n = max(1, round(macs / seg.in_channels))
            wd = torch.randn(seg.in_channels, n)
            keep = label == "pre"  # the expansion's rows stay in cache in the fused block
            calls = {"kernel": lambda: module.segment(x, params, config, tile, keep),
                     "mm": lambda: torch.mm(x, wd), "bmm": _bmm_form(seg, x)}
            if hasattr(module, "set_variant"):
                def at(v: int):
                    def run() -> torch.Tensor:
                        module.set_variant(v)
                        try:
                            return module.segment(x, params, config, tile, keep)
                        finally:
                            module.set_variant(0)
                    return run
                calls["aten_tile"] = at(-1)
                for v in variants:
                    calls[f"v{v}"] = at(v)
            with torch.inference_mode():
                t = time_interleaved(calls, repeats=args.repeats, warmup=2,
                                     clock=time.thread_time)
            rate = {k: macs * pixels / v.median / 1e9 for k, v in t.items()}
            rows.append((label, pixels, tile, rate, {k: v.median for k, v in t.items()}))
            cols = "  ".join(f"{k} {rate[k]:5.1f}" for k in calls)
            print(f"{label:44s} P={pixels:5d} tile={tile:4d}  GMAC/s: {cols}  "
                  f"kernel/mm {t['kernel'].median / t['mm'].median:.2f}", flush=True)
    total = {k: sum(r[4][k] for r in rows) for k in rows[0][4]}
    print("sum over shapes, time / mm: " + "  ".join(
        f"{k} {v / total['mm']:.2f}" for k, v in total.items()))
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
