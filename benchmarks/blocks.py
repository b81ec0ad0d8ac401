"""One IGCV2 block as trained vs its inference forms vs the dense Xception block.

    python benchmarks/blocks.py [--threads 2] [--repeats 15] [--out blocks.md]

For each width (C = 64 at 32x32, 256 at 16x16, 1024 at 7x7; strictly complementary
branch sizes 8x8, 16x16, 32x32) and batch (1, 32) every candidate runs interleaved after
warm-up; the table gives medians, the inter-quartile range and ratios:

* ``naive``: the block as trained (grouped convolutions, BatchNorms, shuffle copies), eval
  mode, NCHW input, under ``torch.inference_mode``;
* ``optimized``: ``igc.deploy.optimize(block)`` (the cost rule's choice), its input already
  in the layout it runs in (in a network the previous block produced it);
* ``dense`` / ``structured``: the same with every 1x1 segment forced to that form;
* ``xception``: the dense Xception block of the same width, optimized (BN folded).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

from igc.deploy import optimize
from igc.deploy.timing import time_interleaved
from igc.layers import IGCV2Block, XceptionBlock

CONFIGS = ((64, 32, (8, 8)), (256, 16, (16, 16)), (1024, 7, (32, 32)))
BATCHES = (1, 32)


def _bn_stats(module: torch.nn.Module) -> torch.nn.Module:
    g = torch.Generator().manual_seed(0)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return module.eval()


def run(threads: int, repeats: int, clock) -> list[dict]:
    torch.set_num_threads(threads)
    rows = []
    for channels, size, sizes in CONFIGS:
        block = _bn_stats(IGCV2Block(channels, channels, branch_sizes=sizes))
        xception = _bn_stats(XceptionBlock(channels, channels))
        for batch in BATCHES:
            x = torch.randn(batch, channels, size, size)
            candidates = {"naive": (lambda b=block, x=x: b(x))}
            forms = {}
            for name, mode in (("optimized", "auto"), ("dense", "dense"),
                               ("structured", "structured")):
                fast = optimize(block, mode, example=x)
                forms[name] = fast
                xl = x.contiguous(memory_format=torch.channels_last) \
                    if fast.uses_channels_last(batch) else x
                candidates[name] = (lambda f=fast.model, x=xl: f(x))
            fx = optimize(xception, example=x)
            xl = x.contiguous(memory_format=torch.channels_last) \
                if fx.uses_channels_last(batch) else x
            candidates["xception"] = (lambda f=fx.model, x=xl: f(x))
            with torch.inference_mode():
                timing = time_interleaved(candidates, repeats=repeats, warmup=3, clock=clock)
            chosen = [f.form for f in forms["optimized"].model.body.forms]
            rows.append({"channels": channels, "size": size, "batch": batch,
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
    cells += [r["chosen"], f"{naive / best:.2f}x", f"{best / t['xception'].median:.2f}"]
    return "| " + " | ".join(cells) + " |"


def table(rows: list[dict], threads: int, load: tuple, clock_name: str) -> str:
    head = ("| C | map | batch | naive ms (IQR) | optimized | dense | structured | xception | "
            "chosen | naive/optimized | optimized/xception |")
    lines = [f"IGCV2 block (strict, linear), fp32, {threads} thread(s), {clock_name}, "
             f"medians over interleaved rounds, IQR in brackets; load average before "
             f"{load[0]:.2f}, after {os.getloadavg()[0]:.2f}.", "", head,
             "|" + "---|" * 11]
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
    args = parser.parse_args()
    if args.cpu_time and args.threads != 1:
        parser.error("--cpu-time needs --threads 1")
    clock = time.thread_time if args.cpu_time else time.perf_counter
    load = os.getloadavg()
    rows = run(args.threads, args.repeats, clock)
    text = table(rows, args.threads, load, "thread CPU time" if args.cpu_time else "wall time")
    print(text)
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    main()
