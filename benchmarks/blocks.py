"""One IGC block as trained vs its inference forms (the fused kernel included) vs its
MobileNet-style peer.

    python benchmarks/blocks.py [--threads 2] [--repeats 15] [--out blocks.md]

For each width (C = 64 at 32x32, 256 at 16x16, 1024 at 7x7; strictly complementary
branch sizes 8x8, 16x16, 32x32) and batch (1, 32) every candidate runs interleaved after
warm-up; the table gives medians, the inter-quartile range and ratios:

* ``naive``: the block as trained (grouped convolutions, BatchNorms, shuffle copies), eval
  mode, NCHW input, under ``torch.inference_mode``;
* ``optimized``: ``igc.deploy.optimize(block)`` (the cost rule's choice), its input already
  in the layout it runs in (in a network the previous block produced it);
* ``dense`` / ``structured``: the same with every 1x1 segment forced to that form;
* ``xception``: the dense Xception block of the same width, optimized (BN folded);
* ``fused`` / ``xception_fused``: ``optimize(block, "fused")``, one native kernel call
  per block (:mod:`igc.deploy.chain.fused`);
* ``mm``: ``torch.mm`` with the fused block's multiply-adds (``(N*H*W, C) @ (C, n)``),
  the dense rate its time is measured against.

``--family igcv3`` runs the IGCV3 block (expansion 6, ``C/4`` channels in and out, so the
expanded width is 1.5 C) against MobileNetV2's instead.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

from igc.deploy import optimize
from igc.deploy.timing import time_interleaved
from igc.layers import IGCV2Block, IGCV3Block, MobileNetV2Block, XceptionBlock

CONFIGS = ((64, 32, (8, 8)), (256, 16, (16, 16)), (1024, 7, (32, 32)))
BATCHES = (1, 32)


def _bn_stats(module: torch.nn.Module) -> torch.nn.Module:
    g = torch.Generator().manual_seed(0)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return module.eval()


def _pair(family: str, channels: int, sizes: tuple[int, int]
          ) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The IGC block and its peer at ``channels``."""
    if family == "igcv3":
        return (_bn_stats(IGCV3Block(channels // 4, channels // 4)),
                _bn_stats(MobileNetV2Block(channels // 4, channels // 4)))
    return (_bn_stats(IGCV2Block(channels, channels, branch_sizes=sizes)),
            _bn_stats(XceptionBlock(channels, channels)))


def _macs(block: torch.nn.Module, x: torch.Tensor) -> int:
    """Multiply-adds of one call (convolutions only)."""
    total = 0

    def hook(module: torch.nn.Conv2d, args: tuple, out: torch.Tensor) -> None:
        nonlocal total
        total += out.numel() * module.weight[0].numel()

    hooks = [m.register_forward_hook(hook) for m in block.modules()
             if isinstance(m, torch.nn.Conv2d)]
    with torch.inference_mode():
        block(x)
    for h in hooks:
        h.remove()
    return total


def run(threads: int, repeats: int, clock, family: str = "igcv2") -> list[dict]:
    torch.set_num_threads(threads)
    rows = []
    for channels, size, sizes in CONFIGS:
        block, xception = _pair(family, channels, sizes)
        for batch in BATCHES:
            x = torch.randn(batch, block.in_channels, size, size)
            candidates = {"naive": (lambda b=block, x=x: b(x))}
            forms = {}
            for name, mode in (("optimized", "auto"), ("dense", "dense"),
                               ("structured", "structured"), ("fused", "fused")):
                fast = optimize(block, mode, example=x)
                forms[name] = fast
                xl = x.contiguous(memory_format=torch.channels_last) \
                    if fast.uses_channels_last(batch) else x
                candidates[name] = (lambda f=fast.model, x=xl: f(x))
            fx = optimize(xception, example=x)
            xl = x.contiguous(memory_format=torch.channels_last) \
                if fx.uses_channels_last(batch) else x
            candidates["xception"] = (lambda f=fx.model, x=xl: f(x))
            fxf = optimize(xception, "fused", example=x).model
            candidates["xception_fused"] = (lambda f=fxf, x=xl: f(x))
            macs = _macs(block, x)
            pixels = batch * size * size
            a = torch.randn(pixels, channels)
            b = torch.randn(channels, max(1, round(macs / (pixels * channels))))
            candidates["mm"] = (lambda a=a, b=b: torch.mm(a, b))
            with torch.inference_mode():
                timing = time_interleaved(candidates, repeats=repeats, warmup=3, clock=clock)
            chosen = [f.form for f in forms["optimized"].model.body.forms]
            rows.append({"family": family, "channels": channels, "size": size, "batch": batch,
                         "chosen": ",".join(chosen), "timing": timing})
            print(_row(rows[-1]), file=sys.stderr, flush=True)
    return rows


def _row(r: dict) -> str:
    t = r["timing"]
    naive = t["naive"].median
    cells = [f"{r['channels']}", f"{r['size']}x{r['size']}", f"{r['batch']}",
             f"{naive * 1e3:.3f} ({t['naive'].iqr * 1e3:.3f})"]
    for name in ("optimized", "dense", "structured", "xception"):
        cells.append(f"{t[name].median * 1e3:.3f} ({t[name].iqr * 1e3:.3f})")
    best = t["optimized"].median
    unfused = min(t["dense"].median, t["structured"].median)
    peer = min(t["xception"].median, t["xception_fused"].median)
    fused = t["fused"].median
    cells += [r["chosen"], f"{naive / best:.2f}x", f"{best / t['xception'].median:.2f}",
              f"{fused * 1e3:.3f} ({t['fused'].iqr * 1e3:.3f})", f"{fused / unfused:.2f}",
              f"{fused / peer:.2f}", f"{fused / t['mm'].median:.2f}"]
    return "| " + " | ".join(cells) + " |"


def table(rows: list[dict], threads: int, load: tuple, clock_name: str) -> str:
    head = ("| C | map | batch | naive ms (IQR) | optimized | dense | structured | peer | "
            "chosen | naive/optimized | optimized/peer | fused | fused/unfused | "
            "fused/best peer | fused/mm |")
    lines = [f"{rows[0]['family']} block vs its peer, fp32, {threads} thread(s), {clock_name}, "
             f"medians over interleaved rounds, IQR in brackets; load average before "
             f"{load[0]:.2f}, after {os.getloadavg()[0]:.2f}.", "", head,
             "|" + "---|" * 15]
    lines += [_row(r) for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--cpu-time", action="store_true",
                        help="time this thread's CPU time (robust on a shared machine; "
                             "needs --threads 1)")
    parser.add_argument("--out", help="also write the markdown table here")
    parser.add_argument("--family", choices=("igcv2", "igcv3"), default="igcv2",
                        help="IGCV2 vs Xception/MobileNetV1, or IGCV3 vs MobileNetV2 blocks")
    parser.add_argument("--batches", default="1,32", help="comma-separated batch sizes")
    args = parser.parse_args()
    if args.cpu_time and args.threads != 1:
        parser.error("--cpu-time needs --threads 1")
    clock = time.thread_time if args.cpu_time else time.perf_counter
    load = os.getloadavg()
    global BATCHES
    BATCHES = tuple(int(b) for b in args.batches.split(","))
    print(f"uptime: {os.getloadavg()}", file=sys.stderr)
    rows = run(args.threads, args.repeats, clock, args.family)
    text = table(rows, args.threads, load, "thread CPU time" if args.cpu_time else "wall time")
    print(text)
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    main()
