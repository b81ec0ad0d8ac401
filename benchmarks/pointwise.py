"""The fused kernel's 1x1 products alone against the dense GEMM rate, on the shapes of
IGCV2-1.0's and IGCV3-1.0's blocks (ImageNet 224x224, batch 1).

    taskset -c 1 python benchmarks/pointwise.py [--repeats 15] [--nets igcv2_100,igcv3_100]

For every distinct 1x1 segment of the networks' fused blocks (the ``pre`` expansion of
IGCV3 on the block's input map, the ``post`` products on its output map), interleaved in
one process after warm-up, one thread, this thread's CPU time, medians:

* ``kernel``: the native ``segment`` entry (``igc.deploy.native``), the micro-kernel the
  fused block runs, over the map in tiles of the pixels one fused tile holds, with the
  memory traffic the fused block has: ``pre`` (IGCV3's expansion) reads the ``(P, C_in)``
  map and writes one tile-sized block that stays in cache (the rolling buffer; its
  trailing shuffle left out, the fused block moves it into ``post``'s index table);
  ``post`` reads one tile-sized block in cache (the spatial result) and writes the map;
* ``mm``: ``torch.mm`` of ``(P, C_in) @ (C_in, n)`` with the same multiply-adds
  (``n = MACs per pixel / C_in``), the dense rate;
* ``bmm``: the segment's products as ``torch.bmm`` per factor over the whole map (ATen
  GEMM per branch, the ``structured`` form's products without its copies);
* ``aten_tile``: ATen's GEMM per branch per tile, called from C++ inside the same tile
  loop (the inputs gathered through the index table into a ``(tile, k)`` block).

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


def chain_shapes(model: torch.nn.Module) -> dict[str, tuple]:
    """``{name: (input shape, output shape)}`` of every FactorChain of ``model`` on one
    224x224 image."""
    shapes: dict[str, tuple] = {}
    hooks = [m.register_forward_hook(
        lambda mod, inp, out, n=n: shapes.__setitem__(n, (inp[0].shape, out.shape)))
        for n, m in model.named_modules() if isinstance(m, FactorChain)]
    with torch.inference_mode():
        model(torch.randn(1, 3, 224, 224))
    for h in hooks:
        h.remove()
    return shapes


def segments_of(name: str) -> list[tuple[str, Segment, int, int]]:
    """``(label, segment, pixels, tile pixels)`` of every distinct 1x1 segment of the
    network's fused blocks at 224x224, batch 1."""
    model = create_model(name).eval()
    shapes = chain_shapes(model)
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


def _candidates(module, label: str, seg: Segment, pixels: int, tile: int) -> dict:
    """The timed calls for one segment (see the module docstring)."""
    params, config = pack_segment(seg)
    x = torch.randn(pixels, seg.in_channels)
    n = max(1, round(seg.structured_macs() / seg.in_channels))
    wd = torch.randn(seg.in_channels, n)
    # as in the fused block: pre reads the map, writes rows that stay in cache; post
    # reads a tile in cache (the spatial result), writes the map
    pre = label.split()[1] == "pre"
    keep = 1 if pre else 2
    if pre and config[1]:  # its trailing shuffle moves into post's index table
        params, config = params[:-1], [config[0], 0, *config[2:]]

    def kernel(variant: int):
        def run() -> torch.Tensor:
            module.set_variant(variant)
            try:
                return module.segment(x, params, config, tile, keep)
            finally:
                module.set_variant(0)
        return run

    return {"kernel": kernel(0), "mm": lambda: torch.mm(x, wd), "bmm": _bmm_form(seg, x),
            "aten_tile": kernel(-1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--nets", default="igcv2_100,igcv3_100")
    args = parser.parse_args()
    torch.set_num_threads(1)
    module = native()
    if module is None:
        raise SystemExit("no native kernel here")
    print(f"load average before: {os.getloadavg()}")
    rows = []
    for net in args.nets.split(","):
        for label, seg, pixels, tile in segments_of(net):
            calls = _candidates(module, label, seg, pixels, tile)
            with torch.inference_mode():
                t = time_interleaved(calls, repeats=args.repeats, warmup=2,
                                     clock=time.thread_time)
            macs = seg.structured_macs()
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
