"""The fused block kernel against an earlier version of itself, block by block, on the
blocks of IGCV2-1.0, MobileNetV1-1.0, IGCV3-1.0 and MobileNetV2-1.0 (224x224), and on the
whole fused networks.

    taskset -c 1 python benchmarks/kernel_versions.py [--baseline main] [--repeats 11]
                        [--nets igcv2_100,mobilenetv1_100] [--batch 1] [--no-blocks]

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

One call per sample (``min_sample_s=0``): with several, the calls after the first reuse
the output memory the one before freed, and a candidate timed so would skip the page
faults of a fresh output (about 0.3 ms on IGCV2-1.0's 6.4 MB outputs at 112x112) that
another pays. Each block's outputs of the two builds are compared first. Printed per block: medians
(ms) and ``new/old``; per network: the sums over its blocks (each distinct block times
how often it occurs) and their ratio. Then each network as ``optimize(model, "fused")``
with either build behind its ``igc::fused_block`` calls (``old`` and ``new`` whole, the
same process, interleaved; stem, pooling and classifier included). ``--batch``: images
per call. The load average is printed before and after. Two builds in one process differ
by up to 5-10 % even for identical sources (``--baseline HEAD`` on an unchanged tree: an
A/A run); a step that can be switched at run time is better measured in one build
(``kernel_profile.py --steps``).
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
from igc.deploy.native import SOURCE, _state, build, native
from igc.deploy.timing import time_interleaved
from igc.models import create_model

ROOT = Path(__file__).resolve().parents[1]
NETS = ("igcv2_100", "mobilenetv1_100", "igcv3_100", "mobilenetv2_100")


def baseline_source(rev: str) -> bytes:
    """The kernel's C++ source at git revision ``rev``."""
    path = SOURCE.relative_to(ROOT).as_posix()
    return subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{path}"], check=True,
                          capture_output=True).stdout


def blocks_of(net: str, batch: int = 1) -> list[tuple[str, torch.Tensor, list, list, int, int]]:
    """``(label, input, params, config, count, macs)`` of every distinct fused block of
    ``net`` (``batch`` 224x224 images; ``macs``: the block's true multiply-adds on one)."""
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
        if batch != 1:
            x = torch.randn(batch, *shape[1:]).contiguous(memory_format=torch.channels_last)
        found[key] = [label, x, chain.params(), list(chain.config), 1, macs]
    return [tuple(v) for v in found.values()]  # type: ignore[misc]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="main", help="git revision of the old kernel")
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--nets", default=",".join(NETS))
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--no-blocks", action="store_true", help="whole networks only")
    args = parser.parse_args()
    torch.set_num_threads(1)
    new = native()
    if new is None:
        raise SystemExit("no native kernel here")
    old = build(baseline_source(args.baseline), prefix="igc_fused_baseline")
    print(f"load average before: {os.getloadavg()}", flush=True)
    for net in args.nets.split(","):
        if not args.no_blocks:
            compare_blocks(net, old, new, args)
        compare_network(net, old, new, args)
    print(f"load average after: {os.getloadavg()}")


def compare_network(net: str, old, new, args) -> None:
    """The whole fused network with the old and the new build behind ``igc::fused_block``."""
    model = optimize(create_model(net).eval(), "fused", batch=args.batch)
    x = torch.randn(args.batch, 3, 224, 224).contiguous(memory_format=torch.channels_last)

    def call(module):
        def run() -> torch.Tensor:
            _state["module"] = module
            try:
                return model(x)
            finally:
                _state["module"] = new
        return run

    with torch.inference_mode():
        ref = call(old)()
        err = (call(new)() - ref).abs().max().item()
        assert err < 1e-4 * (ref.abs().max().item() + 1), f"{net}: outputs differ by {err}"
        t = time_interleaved({"old": call(old), "new": call(new)}, repeats=args.repeats,
                             warmup=2, min_sample_s=0, clock=time.thread_time)
    med = {k: v.median for k, v in t.items()}
    print(f"{net} whole network, batch {args.batch} (ms): old {med['old'] * 1e3:.2f}  "
          f"new {med['new'] * 1e3:.2f}  new/old {med['new'] / med['old']:.2f}", flush=True)


def call_block(module, x, params, config, dw=0):
    """One block's ``fused_block`` call with ``module``'s build (``dw``: its depthwise
    variant)."""
    def run() -> torch.Tensor:
        if hasattr(module, "set_dw_variant"):
            module.set_dw_variant(dw)
        return module.fused_block(x, params, config)
    return run


def compare_blocks(net: str, old, new, args) -> None:
    """Every distinct fused block of ``net`` with both builds (see the module docstring)."""
    sums = {"old": 0.0, "new": 0.0, "new_generic_dw": 0.0}
    with torch.inference_mode():
        for label, x, params, config, count, _ in blocks_of(net, args.batch):
            calls = {"old": call_block(old, x, params, config),
                     "new": call_block(new, x, params, config),
                     "new_generic_dw": call_block(new, x, params, config, 1)}
            ref = calls["old"]()
            scale = ref.abs().max().item() + 1
            for k in ("new", "new_generic_dw"):
                err = (calls[k]() - ref).abs().max().item()
                assert err < 1e-4 * scale, f"{net} {label}: {k} differs by {err}"
            t = time_interleaved(calls, repeats=args.repeats, warmup=3,
                                 min_sample_s=0, clock=time.thread_time)
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


if __name__ == "__main__":
    main()
