"""The fused block kernel against an earlier version of itself, block by block, on the
blocks of IGCV2-1.0, MobileNetV1-1.0, IGCV3-1.0 and MobileNetV2-1.0 (224x224, batch 1).

    taskset -c 1 python benchmarks/kernel_versions.py [--baseline main] [--repeats 11]
                                                      [--nets igcv2_100,mobilenetv1_100]

``--baseline`` names a git revision whose ``igc/deploy/native/fused_block.cpp`` is built
as a second extension (named ``igc_fused_baseline_...``, its own cache folder,
:func:`igc.deploy.native.build`; the first run compiles it). Both modules take the same
``params`` and ``config``. For every distinct fused block of the networks (its input
shape and config), interleaved in one process after warm-up, one thread, this thread's
CPU time, medians:

* ``old``: the baseline's ``fused_block``;
* ``new``: this source's ``fused_block``;
* ``new_generic_dw``: this source with its generic depthwise loop (``set_dw_variant(1)``),
  which separates the depthwise pass from the rest of the change.

Each block's outputs of the two builds are compared first. Printed per block: medians
(ms) and ``new/old``; per network: the sums over its blocks (each distinct block times
how often it occurs) and their ratio. The load average is printed before and after.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
from pathlib import Path

import torch
from pointwise import chain_shapes  # benchmarks/ is the script's folder

from igc.analysis.count import count_macs
from igc.deploy import optimize
from igc.deploy.chain.fused import FusedChain
from igc.deploy.native import SOURCE, build, native
from igc.deploy.timing import time_interleaved
from igc.models import create_model

ROOT = Path(__file__).resolve().parents[1]
NETS = ("igcv2_100", "mobilenetv1_100", "igcv3_100", "mobilenetv2_100")


def baseline_source(rev: str) -> bytes:
    """The kernel's C++ source at git revision ``rev``."""
    path = SOURCE.relative_to(ROOT).as_posix()
    return subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{path}"], check=True,
                          capture_output=True).stdout


def blocks_of(net: str) -> list[tuple[str, torch.Tensor, list, list, int, int]]:
    """``(label, input, params, config, count, macs)`` of every distinct fused block of
    ``net`` (one 224x224 image; ``macs``: the block's true multiply-adds on it)."""
    model = create_model(net).eval()
    found: dict[tuple, list] = {}
    for name, (shape, out) in chain_shapes(model).items():
        block = model.get_submodule(name.rpartition(".")[0])
        x = torch.randn(shape).contiguous(memory_format=torch.channels_last)
        chains = [m for m in optimize(block, "fused", example=x).modules()
                  if isinstance(m, FusedChain)]
        if len(chains) != 1:
            continue
        chain = chains[0]
        key = (tuple(shape), tuple(chain.config))
        if key in found:
            found[key][4] += 1
            continue
        label = (f"{shape[1]}>{out[1]} @{shape[2]}x{shape[3]} s{chain.config[4]}"
                 + (" +x" if chain.residual else ""))
        macs = count_macs(model.get_submodule(name), (shape[2], shape[3]), shape[1],
                          method="hooks")
        found[key] = [label, x, chain.params(), list(chain.config), 1, macs]
    return [tuple(v) for v in found.values()]  # type: ignore[misc]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="main", help="git revision of the old kernel")
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--nets", default=",".join(NETS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    new = native()
    if new is None:
        raise SystemExit("no native kernel here")
    old = build(baseline_source(args.baseline), prefix="igc_fused_baseline")
    print(f"load average before: {os.getloadavg()}", flush=True)

    def call(module, x, params, config, dw=0):
        def run() -> torch.Tensor:
            if hasattr(module, "set_dw_variant"):
                module.set_dw_variant(dw)
            return module.fused_block(x, params, config)
        return run

    for net in args.nets.split(","):
        sums = {"old": 0.0, "new": 0.0, "new_generic_dw": 0.0}
        with torch.inference_mode():
            for label, x, params, config, count, _ in blocks_of(net):
                calls = {"old": call(old, x, params, config),
                         "new": call(new, x, params, config),
                         "new_generic_dw": call(new, x, params, config, 1)}
                ref = calls["old"]()
                scale = ref.abs().max().item() + 1
                for k in ("new", "new_generic_dw"):
                    err = (calls[k]() - ref).abs().max().item()
                    assert err < 1e-4 * scale, f"{net} {label}: {k} differs by {err}"
                t = time_interleaved(calls, repeats=args.repeats, warmup=3,
                                     clock=time.thread_time)
                med = {k: v.median for k, v in t.items()}
                for k in sums:
                    sums[k] += count * med[k]
                print(f"{net} {label} x{count}: " + "  ".join(
                    f"{k} {v * 1e3:.3f}" for k, v in med.items())
                    + f"  new/old {med['new'] / med['old']:.2f}"
                      f"  generic_dw/old {med['new_generic_dw'] / med['old']:.2f}", flush=True)
        print(f"{net} sum over blocks (ms): " + "  ".join(
            f"{k} {v * 1e3:.2f}" for k, v in sums.items())
            + f"  new/old {sums['new'] / sums['old']:.2f}"
              f"  generic_dw/old {sums['new_generic_dw'] / sums['old']:.2f}", flush=True)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
