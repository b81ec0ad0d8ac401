"""torch.compile (Inductor, CPU C++ code generation) of one IGC block against the fused
kernel: the alternative means issue 17 asks about.

    taskset -c 1 python benchmarks/fused_inductor.py [--repeats 15]

For one block of IGCV2-1.0 (the 512-wide stride-1 block at 28x28) and one of IGCV3-1.0
(the 64-wide residual block at 14x14), batch 1, one thread: the block in eval mode
(``eager``), ``optimize(block)`` (``optimized``: the cost rule's unfused form),
``torch.compile`` of the eval block (``inductor``, default mode, channels-last input;
``--freezing`` sets Inductor's ``freezing``, which folds BN and prepacks weights) and
``optimize(block, "fused")`` (``fused``), timed interleaved after warm-up (this thread's
CPU time, medians); the compile time (first call, wall clock) is printed separately.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from pointwise import chain_shapes  # benchmarks/ is the script's folder

from igc.deploy import optimize
from igc.deploy.timing import time_interleaved
from igc.formatting import first_line
from igc.models import create_model

#: (network, input channels, map size, stride) of the block taken from each network.
BLOCKS = (("igcv2_100", 512, 28, 1), ("igcv3_100", 64, 14, 1))


def block_of(net: str, channels: int, size: int, stride: int) -> torch.nn.Module:
    """The first block of ``net`` whose chain takes ``channels`` at ``size`` with
    ``stride`` (the block holding the chain, so its skip comes along)."""
    model = create_model(net).eval()
    shapes = chain_shapes(model)
    for name, (i, o) in shapes.items():
        if i[1] == channels and i[2] == size and i[2] == o[2] * stride:
            return model.get_submodule(name.rpartition(".")[0])
    raise SystemExit(f"no such block in {net}")


def _time(block: torch.nn.Module, compiled, x: torch.Tensor, repeats: int) -> dict:
    """The four forms of ``block`` on ``x``, checked against the eval block, timed."""
    fused = optimize(block, "fused", example=x)
    optimized = optimize(block, example=x)
    calls = {"eager": lambda: block(x), "optimized": lambda: optimized(x),
             "inductor": lambda: compiled(x), "fused": lambda: fused(x)}
    ref = block(x)
    for k, f in calls.items():
        assert (f() - ref).abs().max() < 1e-3, k
    return time_interleaved(calls, repeats=repeats, warmup=3, clock=time.thread_time)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--freezing", action="store_true",
                        help="torch._inductor.config.freezing (weights as constants: BN "
                             "folded, convolutions prepacked)")
    args = parser.parse_args()
    if args.freezing:
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True
    torch.set_num_threads(1)
    print(f"load average before: {os.getloadavg()}")
    for net, c, size, stride in BLOCKS:
        block = block_of(net, c, size, stride)
        x = torch.randn(1, c, size, size).contiguous(memory_format=torch.channels_last)
        compiled = torch.compile(block)
        start = time.perf_counter()
        try:
            with torch.inference_mode():
                compiled(x)
        except Exception as exc:  # an Inductor failure is a result too: one line
            print(f"{net} block {c}@{size}: inductor failed: {first_line(exc, 300)}")
            continue
        compile_s = time.perf_counter() - start
        with torch.inference_mode():
            t = _time(block, compiled, x, args.repeats)
        med = {k: v.median for k, v in t.items()}
        print(f"{net} block {c}@{size}: " + "  ".join(
            f"{k} {v * 1e3:.3f} ms" for k, v in med.items())
            + f"; inductor/fused {med['inductor'] / med['fused']:.2f}, "
              f"eager/fused {med['eager'] / med['fused']:.2f}, "
              f"optimized/fused {med['optimized'] / med['fused']:.2f}; "
              f"compile {compile_s:.1f} s (first call, wall)", flush=True)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
