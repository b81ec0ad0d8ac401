"""Training throughput of the IGC training forms, interleaved in one process.

    python benchmarks/train.py [--threads 2] [--device cpu|cuda] [--repeats 15]
                               [--models igcv2_fmnist,igcv2_c64_d8,igcv3_0.7] [--blocks]
                               [--json FILE]

For each network, one optimizer step (forward, backward, SGD with Nesterov momentum) on a
fixed synthetic batch, channels-last on the CPU (as the recipes train), in three forms
built from the same weights:

* ``before``: the training form as it was before the training forms existed (commit
  1c37a8a^): grouped convolutions and channel shuffles that reshape in NCHW terms, which
  turns a channels-last activation into an NCHW one;
* ``grouped``: grouped convolutions and layout-keeping shuffle copies;
* ``auto``: the default (:mod:`igc.layers.forms`): shuffles absorbed into adjacent 1x1
  factors (dense products) where the cost rule says so;
* ``absorbed``: every shuffle that can be absorbed is.

Candidates run interleaved after warm-up (medians and inter-quartile ranges); the ratio
column is ``before`` time over the form's time. ``--profile`` (default on) splits one
form's self time into BatchNorm, convolution, copies and the rest with ``torch.profiler``.
``--blocks`` times one IGCV2 block per width, ``grouped`` vs ``absorbed``: the
measurements behind the rule's :data:`~igc.layers.forms.DENSE_MAX_GROUPS`.
The machine's load average is printed beside the results: a busy machine invalidates them.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys

import torch
from torch import nn

import igc
from igc.deploy.bench import time_interleaved
from igc.layers import ChannelShuffle, IGCV2Block
from igc.layers.chain import set_training_form

#: name -> (batch, input size) of the benchmark.
MODELS = {"igcv2_fmnist": (128, 28), "igcv2_c48_d11_fmnist": (128, 28), "igcv2_c64_d8": (64, 32),
          "igcv3_0.7": (32, 96)}
FORMS = ("before", "grouped", "auto", "absorbed")
#: (channels, spatial size, 1x1 branch sizes) of the block table.
BLOCKS = ((32, 14, (4, 8)), (64, 7, (8, 8)), (128, 4, (16, 8)), (64, 32, (8, 8)),
          (128, 16, (16, 8)), (256, 8, (16, 16)))
CATEGORIES = {"batch norm": ("batch_norm",), "convolution": ("conv",),
              "copy": ("copy_", "clone", "contiguous")}


class NCHWShuffle(nn.Module):
    """The channel shuffle before the training forms: reshapes in NCHW terms, so a
    channels-last input comes out NCHW-contiguous (kept here only as the baseline)."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        return x.view(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)


def in_form(model: nn.Module, form: str) -> nn.Module:
    """A copy of ``model`` that trains in ``form`` (``before`` swaps the old shuffles in)."""
    model = copy.deepcopy(model)
    if form == "before":
        for module in list(model.modules()):
            for name, child in list(module.named_children()):
                if isinstance(child, ChannelShuffle):
                    setattr(module, name, NCHWShuffle(child.groups))
        form = "grouped"
    return set_training_form(model, form)


def step_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
    """A zero-argument callable doing one SGD step of ``model`` on ``(x, y)``."""
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, nesterov=True)
    criterion = nn.CrossEntropyLoss()
    model.train()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        criterion(model(x), y).backward()
        optimizer.step()
        if x.device.type == "cuda":
            torch.cuda.synchronize()

    return step


def profile_split(step, device: torch.device, steps: int = 5) -> dict[str, float]:
    """Shares of self time per category (see :data:`CATEGORIES`) over ``steps`` steps."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        for _ in range(steps):
            step()
    totals = dict.fromkeys([*CATEGORIES, "other"], 0.0)
    attr = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    for event in prof.key_averages():
        t = getattr(event, attr, 0.0)
        name = event.key.lower()
        if not name.startswith("aten::") and device.type == "cpu":
            continue
        for category, keys in CATEGORIES.items():
            if any(k in name for k in keys):
                totals[category] += t
                break
        else:
            totals["other"] += t
    whole = sum(totals.values()) or 1.0
    return {k: v / whole for k, v in totals.items()}


def bench_model(name: str, device: torch.device, repeats: int, profile: bool) -> dict:
    batch, size = MODELS[name]
    torch.manual_seed(0)
    base = igc.create_model(name, num_classes=10)
    chans = base.stem[0].in_channels if hasattr(base, "stem") else 3
    fmt = torch.channels_last if device.type == "cpu" else torch.contiguous_format
    base = base.to(device, memory_format=fmt)
    x = torch.randn(batch, chans, size, size, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch,), device=device)
    steps = {form: step_fn(in_form(base, form), x, y) for form in FORMS}
    timings = time_interleaved(steps, repeats=repeats, warmup=3)
    row = {"model": name, "batch": batch, "input": size, "forms": {}}
    before = timings["before"].median
    for form, t in timings.items():
        row["forms"][form] = {"ms": 1e3 * t.median, "iqr_ms": 1e3 * t.iqr,
                              "images_per_s": batch / t.median, "ratio": before / t.median}
    if profile:
        row["profile"] = {form: profile_split(steps[form], device) for form in ("before", "auto")}
    return row


def bench_blocks(device: torch.device, repeats: int) -> list[dict]:
    rows = []
    for channels, size, sizes in BLOCKS:
        torch.manual_seed(0)
        block = IGCV2Block(channels, channels, branch_sizes=sizes, nonlinear=True)
        fmt = torch.channels_last if device.type == "cpu" else torch.contiguous_format
        block = block.to(device, memory_format=fmt)
        batch = 128 if size <= 14 else 32
        x = torch.randn(batch, channels, size, size, device=device).contiguous(
            memory_format=fmt).requires_grad_()

        def step_of(model: nn.Module, x: torch.Tensor = x):
            def step() -> None:
                model(x).sum().backward()
            return step

        forms = ("grouped", "auto", "absorbed")
        t = time_interleaved({f: step_of(in_form(block, f)) for f in forms},
                             repeats=repeats, warmup=3)
        groups = [channels // k for k in sizes]
        row = {"channels": channels, "size": size, "batch": batch, "groups": groups}
        for f in forms:
            row[f"{f}_ms"] = 1e3 * t[f].median
            row[f"{f}_ratio"] = t["grouped"].median / t[f].median
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--blocks", action="store_true", help="also time single blocks")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("benchmarks/train.py: no CUDA device here; use --device cpu", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    names = [n for n in args.models.split(",") if n]
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        print(f"benchmarks/train.py: unknown model(s) {unknown}; use {list(MODELS)}",
              file=sys.stderr)
        return 2
    load = os.getloadavg()
    print(f"device {device}, {args.threads} threads, torch {torch.__version__}, load average "
          f"before {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    results = {"device": str(device), "threads": args.threads, "load_before": load,
               "models": [], "blocks": []}
    print(f"{'model':16s} {'batch':>5s} " + " ".join(f"{f:>18s}" for f in FORMS))
    for name in names:
        row = bench_model(name, device, args.repeats, not args.no_profile)
        results["models"].append(row)
        cells = [f"{r['images_per_s']:7.0f}/s x{r['ratio']:.2f}" for r in row["forms"].values()]
        print(f"{name:16s} {row['batch']:5d} " + " ".join(f"{c:>18s}" for c in cells))
        for form, split in row.get("profile", {}).items():
            parts = ", ".join(f"{k} {100 * v:.0f}%" for k, v in split.items())
            print(f"  profile {form:8s}: {parts}")
    if args.blocks:
        print(f"\none nonlinear IGCV2 block, forward + backward:\n{'C':>5s} {'HxW':>5s} "
              f"{'batch':>5s} {'groups':>8s} {'grouped':>9s} {'auto':>16s} {'absorbed':>16s}")
        for r in bench_blocks(device, args.repeats):
            results["blocks"].append(r)
            print(f"{r['channels']:5d} {r['size']:5d} {r['batch']:5d} "
                  f"{'/'.join(map(str, r['groups'])):>8s} {r['grouped_ms']:7.2f}ms "
                  f"{r['auto_ms']:7.2f}ms x{r['auto_ratio']:.2f} "
                  f"{r['absorbed_ms']:7.2f}ms x{r['absorbed_ratio']:.2f}")
    load = os.getloadavg()
    results["load_after"] = load
    print(f"load average after {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
