"""``igc bench``'s driver: registered models in several inference forms, timed interleaved
(:func:`igc.deploy.timing.time_interleaved`) beside the machine's dense matmul rate."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from igc.analysis.count import count_macs
from igc.checks import check_int
from igc.deploy.export import ONNX_FORM, OPENVINO_FORM, onnx_bytes, onnx_session
from igc.deploy.inputs import MAX_DEPLOY_BATCH, check_input
from igc.deploy.native import native, native_reason
from igc.deploy.optimize import optimize
from igc.deploy.timing import Timing, num_threads, time_interleaved
from igc.errors import IGCError
from igc.models.registry import create_model, model_entry
from igc.names import BENCH_FORMS, DEFAULT_BENCH_FORMS

# ---------------------------------------------------------------------------------------
# Models in several forms
# ---------------------------------------------------------------------------------------

MATMUL_SIZE = 1024


@dataclass
class FormResult:
    """One model in one form."""

    model: str
    form: str
    batch: int
    timing: Timing
    macs: int  # multiply-adds of one batch
    setup_s: float  # building (and compiling / exporting) the form

    @property
    def images_per_s(self) -> float:
        return self.batch / self.timing.median

    @property
    def macs_per_s(self) -> float:
        return self.macs / self.timing.median

    def to_dict(self) -> dict:
        return {"model": self.model, "form": self.form, "batch": self.batch,
                **self.timing.to_dict(), "latency_ms": self.timing.median * 1e3,
                "iqr_ms": self.timing.iqr * 1e3, "images_per_s": self.images_per_s,
                "macs": self.macs, "macs_per_s": self.macs_per_s, "setup_s": self.setup_s}


@dataclass
class BenchReport:
    results: list[FormResult]
    matmul: Timing  # torch.mm of MATMUL_SIZE squares, timed in the same rounds
    threads: int
    input_sizes: dict[str, int]
    load_before: tuple[float, float, float] | None
    load_after: tuple[float, float, float] | None
    notes: list[str]

    @property
    def matmul_macs_per_s(self) -> float:
        return MATMUL_SIZE ** 3 / self.matmul.median

    def to_dict(self) -> dict:
        return {"threads": self.threads, "torch": torch.__version__,
                "matmul": {"size": MATMUL_SIZE, **self.matmul.to_dict(),
                           "macs_per_s": self.matmul_macs_per_s},
                "load_average_before": self.load_before, "load_average_after": self.load_after,
                "input_sizes": self.input_sizes, "notes": self.notes,
                "results": [r.to_dict() for r in self.results]}

    def table(self) -> str:
        """A plain-text table, one row per model and form."""
        head = (f"{'model':<18} {'form':<12} {'batch':>5} {'latency ms':>11} {'IQR ms':>8} "
                f"{'images/s':>9} {'GMAC/s':>7} {'of mm':>6} {'vs naive':>8}")
        lines = [head]
        naive = {r.model: r.timing.median for r in self.results if r.form == "naive"}
        peak = self.matmul_macs_per_s
        for r in self.results:
            speedup = f"{naive[r.model] / r.timing.median:.2f}x" if r.model in naive else "-"
            lines.append(
                f"{r.model:<18} {r.form:<12} {r.batch:>5} {r.timing.median * 1e3:>11.3f} "
                f"{r.timing.iqr * 1e3:>8.3f} {r.images_per_s:>9.1f} "
                f"{r.macs_per_s / 1e9:>7.2f} {r.macs_per_s / peak:>6.1%} {speedup:>8}")
        lines.append(f"dense matmul ceiling: torch.mm {MATMUL_SIZE}x{MATMUL_SIZE}, "
                     f"{peak / 1e9:.1f} GMAC/s, {self.threads} thread(s), same rounds")
        if self.load_before is not None:
            lines.append(f"load average before {self.load_before[0]:.2f}, after "
                         f"{self.load_after[0]:.2f} (1 min)")
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)


def _loadavg() -> tuple[float, float, float] | None:
    try:
        return os.getloadavg()
    except OSError:  # pragma: no cover - platform without it
        return None


def onnxruntime_runner(model: torch.nn.Module, x: torch.Tensor,
                       threads: int | None = None) -> Callable[[], object]:
    """A zero-argument call that runs ``model`` exported to ONNX on ``x`` with
    onnxruntime; the model is serialised in memory (no temporary files)."""
    session = onnx_session(onnx_bytes(model, x.shape[1], x.shape[-1], x.shape[0]), threads)
    feed = {session.get_inputs()[0].name: x.numpy()}
    return lambda: session.run(None, feed)


#: OpenVINO inference precisions igc asks for: ``f32`` (the default: the same arithmetic as
#: every other form) or ``bf16`` (OpenVINO's own default on CPUs with AVX512-BF16 or AMX,
#: about 1e-2 relative error; never compared with the float32 forms as if it were one).
OPENVINO_PRECISIONS = ("f32", "bf16")


def openvino_runner(model: torch.nn.Module, x: torch.Tensor, threads: int | None = None,
                    precision: str = "f32") -> Callable[[], object]:
    """A zero-argument call that runs ``model``, exported to ONNX in memory, on ``x`` with
    OpenVINO's CPU plugin (``threads`` inference threads, latency hint) at ``precision``
    (:data:`OPENVINO_PRECISIONS`). The precision is always set: left alone, OpenVINO runs
    in bfloat16 wherever the CPU has AVX512-BF16 or AMX."""
    if precision not in OPENVINO_PRECISIONS:
        raise IGCError(f"OpenVINO precision must be one of {', '.join(OPENVINO_PRECISIONS)}, "
                       f"got {precision!r}")
    import openvino as ov

    core = ov.Core()
    config: dict[str, object] = {"PERFORMANCE_HINT": "LATENCY",
                                 "INFERENCE_PRECISION_HINT": precision}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    compiled = core.compile_model(
        core.read_model(onnx_bytes(model, x.shape[1], x.shape[-1], x.shape[0])), "CPU", config)
    request = compiled.create_infer_request()
    feed = {0: x.numpy()}
    return lambda: request.infer(feed)


def _caller(model: Callable[[torch.Tensor], object], x: torch.Tensor) -> Callable[[], object]:
    return lambda: model(x)


def available_forms(forms: list[str]) -> tuple[list[str], list[str]]:
    """The requested forms this machine can run, and a note for each one it cannot."""
    import importlib.util
    import shutil

    keep, notes = [], []
    for form in forms:
        if form == "onnxruntime" and (importlib.util.find_spec("onnxruntime") is None
                                      or importlib.util.find_spec("onnx") is None):
            notes.append("onnxruntime form skipped: onnx/onnxruntime not installed "
                         "(pip install 'igc-torch[export]')")
        elif form.startswith("openvino") and (importlib.util.find_spec("openvino") is None
                                     or importlib.util.find_spec("onnx") is None):
            notes.append(f"{form} form skipped: openvino/onnx not installed "
                         "(pip install 'igc-torch[openvino]')")
        elif form == "compiled" and shutil.which("g++") is None and shutil.which("c++") is None:
            notes.append("compiled form skipped: torch.compile (inductor) needs a C++ compiler")
        elif form == "fused" and _no_native():
            notes.append(f"fused form skipped: {_no_native()}")
        else:
            keep.append(form)
    return keep, notes


def _no_native() -> str:
    """Why the fused kernel cannot run here (``""`` when it can)."""
    return "" if native() is not None else f"no native kernel ({native_reason()})"


def bench_models(names: list[str], batch: int = 1, input_size: int | None = None,
                 threads: int | None = None, forms: list[str] | None = None,
                 repeats: int = 20, warmup: int = 2,
                 log: Callable[[str], None] | None = None) -> BenchReport:
    """Latency of each registered model in each form, interleaved, with the dense matmul
    rate timed in the same rounds. MACs come from :func:`igc.analysis.count.count_macs`.
    ``threads`` applies while this runs; the previous thread count is restored after."""
    with num_threads(threads) as used:
        return _bench(names, batch, input_size, used, forms, repeats, warmup, log)


def _bench(names: list[str], batch: int, input_size: int | None, threads: int,
           forms: list[str] | None, repeats: int, warmup: int,
           log: Callable[[str], None] | None) -> BenchReport:
    say = log or (lambda _msg: None)
    forms = list(forms or DEFAULT_BENCH_FORMS)
    for f in forms:
        if f not in BENCH_FORMS:
            raise IGCError(f"unknown form {f!r}; use some of {', '.join(BENCH_FORMS)}")
    if not names:
        raise IGCError("give at least one model name")
    check_int(batch, "batch", 1, MAX_DEPLOY_BATCH)
    check_int(repeats, "repeats", 1, 10000)
    check_int(warmup, "warm-up calls", 0, 10000)
    entries = [model_entry(name) for name in names]  # every name checked before any work
    forms, notes = available_forms(forms)
    load_before = _loadavg()
    cores = os.cpu_count() or 1
    if load_before is not None and load_before[0] + threads > cores + 0.5:
        notes.append(f"machine busy (load average {load_before[0]:.2f} on {cores} cores): with "
                     f"{threads} thread(s) wall times include waits for descheduled threads; "
                     "compare ratios within this run only")
    candidates: dict[str, Callable[[], object]] = {}
    meta: dict[str, tuple[str, str, int, float]] = {}
    sizes: dict[str, int] = {}
    for name, entry in zip(names, entries):
        size = entry.input_size if input_size is None else input_size
        sizes[name] = size
        model = create_model(name).eval()
        check_input(model, entry.in_chans, size, batch, name)
        macs = count_macs(model, size, entry.in_chans, method="hooks") * batch
        x = torch.randn(batch, entry.in_chans, size, size)
        optimized = None
        for form in forms:
            say(f"preparing {name} ({form})")
            start = time.perf_counter()
            if form == "naive":
                fn = _caller(model, x)
            else:
                optimized = optimized or optimize(model, batch=batch)
                if form == "optimized":
                    fn = _caller(optimized, x)
                elif form == "fused":
                    fn = _caller(optimize(model, "fused", batch=batch), x)
                elif form == "compiled":
                    compiled = torch.compile(optimized)
                    with torch.inference_mode():
                        compiled(x)  # compile now, not in the timed rounds
                    fn = _caller(compiled, x)
                elif form.startswith("openvino"):  # dense where small: OPENVINO_FORM
                    fn = openvino_runner(optimize(model, OPENVINO_FORM), x, threads,
                                         "bf16" if form == "openvino-bf16" else "f32")
                else:  # onnxruntime runs grouped convolutions best: export that form
                    fn = onnxruntime_runner(optimize(model, ONNX_FORM), x, threads)
            setup = time.perf_counter() - start
            key = f"{name}/{form}"
            candidates[key] = fn
            meta[key] = (name, form, macs, setup)
    a = torch.randn(MATMUL_SIZE, MATMUL_SIZE)
    b = torch.randn(MATMUL_SIZE, MATMUL_SIZE)
    candidates["matmul"] = lambda: torch.mm(a, b)
    say(f"timing {len(candidates)} candidates x {repeats} rounds")
    with torch.inference_mode():
        timing = time_interleaved(candidates, repeats=repeats, warmup=warmup)
    results = [FormResult(meta[k][0], meta[k][1], batch, timing[k], meta[k][2], meta[k][3])
               for k in candidates if k != "matmul"]
    return BenchReport(results, timing["matmul"], threads, sizes, load_before, _loadavg(),
                       notes)


__all__ = ["BENCH_FORMS", "MATMUL_SIZE", "OPENVINO_PRECISIONS", "BenchReport", "FormResult",
           "available_forms", "bench_models", "onnxruntime_runner", "openvino_runner"]
