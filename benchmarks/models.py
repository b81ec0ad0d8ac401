"""IGCV2-1.0 vs MobileNetV1-1.0 and IGCV3-1.0 vs MobileNetV2-1.0 at 224x224, each in
every available inference form, batch 1 and 32.

    python benchmarks/models.py [--threads 2] [--repeats 5] [--batches 1,32]
                                [--forms naive,optimized,nchw,compiled,onnxruntime]
                                [--out models.md]

Forms: ``naive`` (the eval-mode model as trained, NCHW), ``optimized``
(``igc.deploy.optimize(model, batch=B)``, NHWC), ``nchw`` (the same forms run on NCHW
input), ``compiled`` (``torch.compile`` of ``optimized``, inductor; compiling takes
minutes on two cores), ``onnxruntime`` (exported to ONNX in the ``grouped`` form, BN
folded: onnxruntime's fused grouped convolutions beat the MatMul graph there). Each pair
of networks is timed in one interleaved run per batch, together with ``torch.mm`` of
1024x1024 matrices (the dense ceiling), after warm-up; medians and IQRs.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

from igc.analysis.count import count_macs
from igc.deploy import optimize
from igc.deploy.bench import MATMUL_SIZE, available_forms, onnxruntime_runner
from igc.deploy.export import ONNX_FORM
from igc.deploy.timing import time_interleaved
from igc.models.registry import create_model

PAIRS = (("igcv2_1.0", "mobilenetv1_1.0"), ("igcv3_1.0", "mobilenetv2_1.0"))
FORMS = ("naive", "optimized", "nchw", "compiled", "onnxruntime")


def _caller(model, x: torch.Tensor):
    return lambda: model(x)


def _candidates(name: str, batch: int, forms: list[str], threads: int) -> dict:
    model = create_model(name).eval()
    x = torch.randn(batch, 3, 224, 224)
    out = {}
    fast = optimize(model, batch=batch) if set(forms) - {"naive"} else None
    for form in forms:
        start = time.perf_counter()
        if form == "naive":
            fn = _caller(model, x)
        elif form == "optimized":
            xl = x.contiguous(memory_format=torch.channels_last)
            fn = _caller(fast.model, xl)
        elif form == "nchw":
            fn = _caller(fast.model, x)
        elif form == "compiled":
            compiled = torch.compile(fast)
            with torch.inference_mode():
                compiled(x)
            fn = _caller(compiled, x)
        else:
            fn = onnxruntime_runner(optimize(model, ONNX_FORM), x, threads)
        print(f"  {name} {form}: ready in {time.perf_counter() - start:.1f} s", file=sys.stderr,
              flush=True)
        out[f"{name}/{form}"] = fn
    return out


def run(threads: int, repeats: int, batches: list[int], forms: list[str],
        clock=time.perf_counter) -> list[dict]:
    torch.set_num_threads(threads)
    ok, notes = available_forms([f for f in forms if f != "nchw"])
    forms = [f for f in FORMS if f in ok or (f == "nchw" and f in forms)]
    for n in notes:
        print("note:", n, file=sys.stderr)
    macs = {n: count_macs(create_model(n), 224, 3, method="hooks") for p in PAIRS for n in p}
    rows = []
    a = torch.randn(MATMUL_SIZE, MATMUL_SIZE)
    b = torch.randn(MATMUL_SIZE, MATMUL_SIZE)
    for batch in batches:
        for pair in PAIRS:
            print(f"batch {batch}: {' vs '.join(pair)}", file=sys.stderr, flush=True)
            candidates = {}
            for name in pair:
                candidates.update(_candidates(name, batch, forms, threads))
            candidates["matmul"] = lambda: torch.mm(a, b)
            load = os.getloadavg()[0]
            with torch.inference_mode():
                timing = time_interleaved(candidates, repeats=repeats, warmup=1,
                                          min_sample_s=0.0, clock=clock)
            rows.append({"batch": batch, "pair": pair, "timing": timing, "macs": macs,
                         "load": (load, os.getloadavg()[0])})
            print(table([rows[-1]], forms), file=sys.stderr, flush=True)
    return rows


def table(rows: list[dict], forms: list[str]) -> str:
    lines = []
    for r in rows:
        t, batch = r["timing"], r["batch"]
        mm = MATMUL_SIZE ** 3 / t["matmul"].median
        lines.append(f"batch {batch}, load average {r['load'][0]:.2f} -> {r['load'][1]:.2f}, "
                     f"dense matmul {mm / 1e9:.1f} GMAC/s")
        lines.append("")
        head = "| model | " + " | ".join(f"{f} ms (IQR)" for f in forms) + \
               " | best | best vs naive | GMAC/s (best) | of matmul |"
        lines += [head, "|" + "---|" * (head.count("|") - 1)]
        best = {}
        for name in r["pair"]:
            cells = [name]
            for f in forms:
                tt = t[f"{name}/{f}"]
                cells.append(f"{tt.median * 1e3:.1f} ({tt.iqr * 1e3:.1f})")
            form = min(forms, key=lambda f, name=name: t[f"{name}/{f}"].median)
            best[name] = t[f"{name}/{form}"].median
            rate = r["macs"][name] * batch / best[name]
            cells += [form, f"{t[f'{name}/naive'].median / best[name]:.2f}x",
                      f"{rate / 1e9:.1f}", f"{rate / mm:.0%}"]
            lines.append("| " + " | ".join(cells) + " |")
        igc, peer = r["pair"]
        lines += ["", f"best {igc} / best {peer}: {best[igc] / best[peer]:.2f}", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batches", default="1,32")
    parser.add_argument("--forms", default="naive,optimized,nchw,onnxruntime")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time this thread's CPU time (needs --threads 1)")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.cpu_time and args.threads != 1:
        parser.error("--cpu-time needs --threads 1")
    forms = [f for f in args.forms.split(",") if f]
    batches = [int(b) for b in args.batches.split(",")]
    clock = time.thread_time if args.cpu_time else time.perf_counter
    rows = run(args.threads, args.repeats, batches, forms, clock)
    kept = [f for f in FORMS if all(f"{r['pair'][0]}/{f}" in r["timing"] for r in rows)]
    text = (f"Networks at 224x224, fp32, {args.threads} thread(s), "
            f"{'thread CPU time' if args.cpu_time else 'wall time'}, medians over "
            f"{args.repeats} interleaved rounds.\n\n" + table(rows, kept))
    print(text)
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    main()
