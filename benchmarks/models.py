"""The honest speed table: IGC networks beside their peers at equal multiply-adds, every
runner, interleaved, medians with the IQR and the load average.

    python benchmarks/models.py --threads 1,2 --batches 1,32 --repeats 20 \
        --out docs/deployment/models.md --plot docs/deployment/latency-vs-macs.png

Pairs (the papers' comparisons at about equal multiply-adds): IGCV2-1.0 vs MobileNetV1-1.0
and IGCV3-1.0 vs MobileNetV2-1.0 at 224x224 (IGCV2 Table 9, IGCV3 Table 11), and the CIFAR
pair IGCV2 C64 D20 vs Xception C35 D20 at 32x32 (IGCV2 Table 4: the IGCV2 row and its
Xception baseline at the same depth and about equal parameters, 146k vs 168k in the
blocks, 25.9M vs 26.8M multiply-adds; the closest pair of the CIFAR tables in both).

Runners (``--runners``; unavailable ones are skipped with one line):

* ``naive``: the eval-mode model as trained, NCHW input;
* ``optimized``: ``igc.deploy.optimize(model, batch=B)`` (its input layout included);
* ``fused``: ``optimize(model, "fused", batch=B)``, when ``igc.names.MODES`` has that mode;
* ``onnxruntime``: exported to ONNX in the ``grouped`` form (BN folded), run by onnxruntime;
* ``openvino``: exported to ONNX in the ``small-dense`` form (dense where the dense 1x1 is
  small, grouped elsewhere: what OpenVINO runs fastest, ``igc.deploy.chain.small_dense``),
  compiled by OpenVINO for the CPU (``pip install 'igc-torch[openvino]'``), latency hint,
  float32 (``INFERENCE_PRECISION_HINT`` set: OpenVINO's own default is bfloat16 on CPUs with
  AVX512-BF16 or AMX, such as these);
* ``openvino-bf16``: the same in bfloat16 (about 1e-2 relative error), shown beside the
  others but never the "fastest" of a network, which compares float32 paths only;
* ``nchw`` / ``compiled`` (not by default): the optimized form on NCHW input / under
  ``torch.compile`` (compiling takes minutes on two cores).

For each thread count, batch and pair, both networks in every runner run in one interleaved
session (:func:`igc.deploy.timing.time_interleaved`) with ``torch.mm`` of 1024x1024
matrices (the dense ceiling), after warm-up. ``--save`` keeps the raw rows as JSON and
``--load`` writes the table and plot from saved rows without timing (e.g. a one-thread run
pinned with ``taskset -c 1`` merged with a two-thread run). ``--cpu-time`` (one thread
only) counts the process's CPU time instead of wall time: on a shared machine a
descheduled process then pays nothing, and a spinning worker thread is counted.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

PAIRS = (("igcv2_100", "mobilenetv1_100"), ("igcv3_100", "mobilenetv2_100"),
         ("igcv2_c64_d20", "xception_c35_d20"))
#: Every runner this script knows, in table order.
RUNNERS = ("naive", "optimized", "fused", "nchw", "compiled", "onnxruntime", "openvino",
           "openvino-bf16")
#: Runners not in float32: in the tables, never a network's fastest.
LOWER_PRECISION = ("openvino-bf16",)
MATMUL_SIZE = 1024


def default_runners() -> list[str]:
    """The runners timed by default: all but ``nchw`` and ``compiled``."""
    return [f for f in RUNNERS if f not in ("nchw", "compiled")]


def available(runners: list[str]) -> tuple[list[str], list[str]]:
    """The runners this machine can run, and one line for each one it cannot."""
    from igc.deploy.bench import available_forms
    from igc.names import MODES

    keep, notes = [], []
    for runner in runners:
        if runner == "fused" and "fused" not in MODES:
            notes.append("fused runner skipped: this igc has no optimize mode 'fused'")
        elif runner.startswith("openvino") and importlib.util.find_spec("openvino") is None:
            notes.append(f"{runner} runner skipped: openvino not installed "
                         "(pip install 'igc-torch[openvino]')")
        elif runner in ("onnxruntime", "compiled"):
            ok, why = available_forms([runner])
            keep += ok
            notes += why
        else:
            keep.append(runner)
    return keep, notes


def _calls(name: str, batch: int, runners: list[str], threads: int) -> dict:
    """``{runner: zero-argument call}`` for one network on one random batch."""
    import torch

    from igc.deploy import optimize
    from igc.deploy.bench import onnxruntime_runner, openvino_runner
    from igc.deploy.export import ONNX_FORM, OPENVINO_FORM
    from igc.models.registry import create_model, model_entry

    entry = model_entry(name)
    model = create_model(name).eval()
    x = torch.randn(batch, entry.in_chans, entry.input_size, entry.input_size)
    fast = None
    out = {}
    for runner in runners:
        start = time.perf_counter()
        if runner == "naive":
            out[runner] = (lambda m=model: m(x))
        elif runner == "compiled":
            fast = fast or optimize(model, batch=batch)
            fn = torch.compile(fast)
            with torch.inference_mode():
                fn(x)  # compile now, not in the timed rounds
            out[runner] = (lambda f=fn: f(x))
        elif runner in ("optimized", "nchw", "fused"):
            if runner == "fused":
                made = optimize(model, "fused", batch=batch)
            else:
                made = fast = fast or optimize(model, batch=batch)
            # the input in the layout the form runs in (in a pipeline the producer writes it,
            # so the OptimizedModel's own conversion is a no-op; its micro-batches run)
            xin = x if runner == "nchw" else \
                x.contiguous(memory_format=made.input_memory_format(batch))
            call = made.model if runner == "nchw" else made
            out[runner] = (lambda f=call, xin=xin: f(xin))
        elif runner == "onnxruntime":
            out[runner] = onnxruntime_runner(optimize(model, ONNX_FORM), x, threads)
        else:
            out[runner] = openvino_runner(optimize(model, OPENVINO_FORM), x, threads,
                                          "bf16" if runner == "openvino-bf16" else "f32")
        print(f"  {name} b{batch} t{threads} {runner}: ready in "
              f"{time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
    return out


def measure(threads_list: list[int], batches: list[int], runners: list[str], repeats: int,
            pairs=PAIRS, clock: Callable[[], float] = time.perf_counter) -> list[dict]:
    """Time every pair in every runner; one row per network, runner, batch and thread count:
    ``model``, ``pair`` (its index), ``role`` (``igc`` or ``peer``), ``runner``, ``batch``,
    ``threads``, ``median_s``, ``q1_s``, ``q3_s``, ``macs`` (one image), ``input_size``,
    ``matmul_macs_per_s``, ``load`` (1-minute load average before and after the session)."""
    import torch

    from igc.analysis.count import count_macs
    from igc.deploy.timing import num_threads, time_interleaved
    from igc.models.registry import create_model, model_entry

    info = {n: model_entry(n) for p in pairs for n in p}
    macs = {n: count_macs(create_model(n), e.input_size, e.in_chans, method="hooks")
            for n, e in info.items()}
    a, b = torch.randn(MATMUL_SIZE, MATMUL_SIZE), torch.randn(MATMUL_SIZE, MATMUL_SIZE)
    rows = []
    for threads in threads_list:
        with num_threads(threads):
            for batch in batches:
                for index, pair in enumerate(pairs):
                    print(f"{threads} thread(s), batch {batch}: {' vs '.join(pair)}",
                          file=sys.stderr, flush=True)
                    candidates = {f"{n}/{f}": fn for n in pair
                                  for f, fn in _calls(n, batch, runners, threads).items()}
                    candidates["matmul"] = lambda: torch.mm(a, b)
                    before = os.getloadavg()[0]
                    with torch.inference_mode():
                        timing = time_interleaved(candidates, repeats=repeats, warmup=1,
                                                  min_sample_s=0.0, clock=clock)
                    load = [before, os.getloadavg()[0]]
                    mm = MATMUL_SIZE ** 3 / timing.pop("matmul").median
                    for key, t in timing.items():
                        name, runner = key.split("/")
                        rows.append({"model": name, "pair": index, "runner": runner,
                                     "role": "igc" if name == pair[0] else "peer",
                                     "batch": batch, "threads": threads, "median_s": t.median,
                                     "q1_s": t.q1, "q3_s": t.q3, "macs": macs[name],
                                     "input_size": info[name].input_size,
                                     "matmul_macs_per_s": mm, "load": load})
                    print(markdown(rows[-2 * len(runners):], []), file=sys.stderr, flush=True)
                    del candidates
    return rows


def _groups(rows: list[dict]) -> list[tuple[tuple[int, int, int], list[dict]]]:
    """Rows grouped by (threads, batch, pair), in first-seen order."""
    out: dict[tuple[int, int, int], list[dict]] = {}
    for r in rows:
        out.setdefault((r["threads"], r["batch"], r["pair"]), []).append(r)
    return list(out.items())


def _runners(rows: list[dict]) -> list[str]:
    seen = {r["runner"] for r in rows}
    return [f for f in RUNNERS if f in seen]


def best(rows: list[dict], model: str) -> dict:
    """The fastest float32 row of ``model`` among ``rows`` (:data:`LOWER_PRECISION` runners
    are not candidates)."""
    return min((r for r in rows if r["model"] == model and r["runner"] not in LOWER_PRECISION),
               key=lambda r: r["median_s"])


def _cell(r: dict) -> str:
    return f"{r['median_s'] * 1e3:.2f} ({(r['q3_s'] - r['q1_s']) * 1e3:.2f})"


def markdown(rows: list[dict], header: list[str]) -> str:
    """The tables: per thread count, batch and pair, each network's median (IQR) per runner,
    its fastest runner and the ratio to naive; then one summary row per pair, the IGC
    network's latency over its peer's, fastest runner each and runner by runner."""
    runners = _runners(rows)
    lines = [*header]
    summary = []
    for (threads, batch, _), group in _groups(rows):
        models = sorted(dict.fromkeys(r["model"] for r in group),
                        key=lambda m: next(r["role"] != "igc" for r in group if r["model"] == m))
        first = group[0]
        lines += ["", f"**{' vs '.join(models)}**, {first['input_size']}x{first['input_size']}, "
                      f"batch {batch}, {threads} thread(s); load average "
                      f"{first['load'][0]:.2f} -> {first['load'][1]:.2f}; torch.mm "
                      f"{first['matmul_macs_per_s'] / 1e9:.1f} GMAC/s", ""]
        head = ["model", "MMAC/image", *[f"{f} ms (IQR)" for f in runners], "fastest (fp32)",
                "naive / fastest"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for m in models:
            cells = {r["runner"]: r for r in group if r["model"] == m}
            top = best(group, m)
            naive = cells.get("naive")
            lines.append("| " + " | ".join([
                m, f"{top['macs'] / 1e6:.1f}",
                *[_cell(cells[f]) if f in cells else "-" for f in runners],
                top["runner"],
                f"{naive['median_s'] / top['median_s']:.2f}x" if naive else "-"]) + " |")
        if len(models) == 2:
            igc, peer = models
            ratio = best(group, igc)["median_s"] / best(group, peer)["median_s"]
            per_runner = []
            for f in runners:
                mine = {r["model"]: r["median_s"] for r in group if r["runner"] == f}
                per_runner.append(f"{mine[igc] / mine[peer]:.2f}" if len(mine) == 2 else "-")
            summary.append(f"| {igc} / {peer} | {batch} | {threads} | {ratio:.2f} | "
                           + " | ".join(per_runner) + " |")
    if summary:
        head = ["pair", "batch", "threads", "fastest / fastest (fp32)", *runners]
        lines += ["", "**IGC network's latency over its peer's** (below 1: the IGC network "
                      "is faster)", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head),
                  *summary]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: str | Path) -> None:
    """Latency per image against multiply-adds per image, one panel per (batch, threads),
    every network in every path (log-log); the IGC networks in one colour, their peers in
    another, the marker naming the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    panels = sorted({(r["batch"], r["threads"]) for r in rows})
    runners = _runners(rows)
    markers = dict(zip(RUNNERS, "oDs^vP*X"))
    cols = min(2, len(panels))
    nrows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(6 * cols, 4.2 * nrows), squeeze=False)
    for ax, (batch, threads) in zip(axes.flat, panels):
        mine = [r for r in rows if (r["batch"], r["threads"]) == (batch, threads)]
        for r in mine:
            ax.scatter(r["macs"] / 1e6, r["median_s"] / batch * 1e3, marker=markers[r["runner"]],
                       color="tab:red" if r["role"] == "igc" else "tab:blue",
                       alpha=0.8)
        for m in dict.fromkeys(r["model"] for r in mine):
            top = best(mine, m)
            ax.annotate(m, (top["macs"] / 1e6, top["median_s"] / batch * 1e3), fontsize=7,
                        xytext=(4, -8), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_yscale("log")
        for axis in (ax.xaxis, ax.yaxis):  # plain numbers, no crowded minor labels
            axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            axis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("multiply-adds per image (M)")
        ax.set_ylabel("latency per image (ms)")
        ax.set_title(f"batch {batch}, {threads} thread(s)")
        ax.grid(True, which="both", alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    handles = [plt.Line2D([], [], linestyle="", marker=markers[f], color="gray", label=f)
               for f in runners]
    handles += [plt.Line2D([], [], linestyle="", marker="o", color=c, label=label)
                for c, label in (("tab:red", "IGC network"), ("tab:blue", "peer"))]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def uptime() -> str:
    """The ``uptime`` line (or the load average where ``uptime`` is missing)."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5,
                              check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def _ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") \
            from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def main(argv: list[str] | None = None) -> None:
    """Parse the options, time (or ``--load``), then print and write the table and plot."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=_ints, default=[1, 2], help="e.g. 1,2")
    parser.add_argument("--batches", type=_ints, default=[1, 32], help="e.g. 1,32")
    parser.add_argument("--repeats", type=int, default=20, help="interleaved rounds")
    parser.add_argument("--runners", default=",".join(default_runners()),
                        help=f"comma-separated, from {','.join(RUNNERS)}")
    parser.add_argument("--pairs", default="all",
                        help="comma-separated pair numbers (1-3) or 'all'")
    parser.add_argument("--cpu-time", action="store_true",
                        help="count the process's CPU time, not wall time (robust on a busy "
                             "machine; needs --threads 1)")
    parser.add_argument("--out", help="write the markdown here")
    parser.add_argument("--plot", help="draw latency vs multiply-adds to this .png")
    parser.add_argument("--save", help="write the raw rows to this .json")
    parser.add_argument("--load", nargs="+", help="rows saved by --save: no timing")
    args = parser.parse_args(argv)
    notes: list[str] = []
    if args.load:
        rows = [r for path in args.load for r in json.loads(Path(path).read_text())["rows"]]
        head = [line for path in args.load
                for line in json.loads(Path(path).read_text())["header"]]
    else:
        runners = [f for f in args.runners.split(",") if f]
        unknown = sorted(set(runners) - set(RUNNERS))
        if unknown:
            parser.error(f"unknown runners {unknown}; use some of {', '.join(RUNNERS)}")
        if args.repeats < 1:
            parser.error("--repeats must be at least 1")
        if args.cpu_time and args.threads != [1]:
            parser.error("--cpu-time needs --threads 1")
        pairs = PAIRS if args.pairs == "all" else \
            [PAIRS[i - 1] for i in _ints(args.pairs) if i <= len(PAIRS)]
        runners, notes = available(runners)
        for n in notes:
            print("note:", n, file=sys.stderr)
        import torch

        start = uptime()
        clock = time.process_time if args.cpu_time else time.perf_counter
        rows = measure(args.threads, args.batches, runners, args.repeats, pairs, clock)
        affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        head = [f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, torch "
                f"{torch.__version__}, fp32 (but the openvino-bf16 column: bfloat16), "
                f"{'process CPU time' if args.cpu_time else 'wall time'}, medians over "
                f"{args.repeats} interleaved rounds (IQR in brackets), cores allowed {affinity}.",
                f"`uptime` before: {start}", f"`uptime` after: {uptime()}",
                *[f"note: {n}" for n in notes]]
        if args.save:
            Path(args.save).write_text(json.dumps({"header": head, "rows": rows}, indent=1))
    text = markdown(rows, [f"{line}  " for line in head])
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    if args.plot:
        plot(rows, args.plot)


if __name__ == "__main__":
    main()
