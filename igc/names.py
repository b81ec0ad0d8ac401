"""Every list of names a user may type, in one torch-free module.

The command line offers these as choices (``igc export --format``, ``igc bench --forms``,
``--device``, ``--data``) without importing torch; the library modules that act on them
(:mod:`igc.data`, :mod:`igc.layers.forms`, :mod:`igc.train.recipe`, :mod:`igc.deploy.chain`,
:mod:`igc.deploy.optimize`, :mod:`igc.deploy.pipeline`, :mod:`igc.deploy.bench`,
:mod:`igc.deploy.export`) import them
from here, so a list is written once. The words: docs/glossary.md.
"""

from __future__ import annotations

#: Data sets :func:`igc.data.load_dataset` loads.
DATASETS = ["fashion-mnist", "mnist", "cifar10", "cifar100", "tiny-imagenet", "imagefolder"]
#: Devices: ``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:N`` (the N-th GPU).
DEVICES = ("auto", "cpu", "cuda", "cuda:N")

#: Picture files igc draws (``igc design --draw``), by suffix.
PICTURE_SUFFIXES = (".png", ".svg", ".pdf")

#: Training forms of a factor chain (:mod:`igc.layers.forms`; the recipe's ``training_form``).
TRAINING_FORMS = ("auto", "grouped", "absorbed")
#: Segment kernels: how a 1x1 chain segment is computed (:mod:`igc.deploy.chain.modules`).
FORMS = ("dense", "structured", "grouped")
#: How a chain's kernels are chosen: the cost rule, one kernel everywhere, dense where the
#: dense product is small and grouped elsewhere (the graph OpenVINO runs fastest,
#: :mod:`igc.deploy.chain.small_dense`), per-segment timing.
CHAIN_MODES = ("auto", *FORMS, "small-dense", "measure")
#: ``optimize`` modes: the chain modes, every block as one native kernel call where it can
#: be (``fused``, :mod:`igc.deploy.chain.fused`), or BN folding only (grouped convolutions
#: and shuffle copies kept: the trained form, folded).
MODES = ("auto", *FORMS, "small-dense", "fused", "measure", "fold")
#: File formats ``export_model`` writes: ONNX, a ``torch.export`` program, or the weights
#: as a ``.safetensors`` file (with igc's header; :mod:`igc.files.safetensors`).
EXPORT_FORMATS = ("onnx", "pt2", "safetensors")
#: Forms ``export_model`` accepts: the ``optimize`` modes, or ``"none"`` (the eval model).
EXPORT_FORMS = (*MODES, "none")
#: Forms ``bench_models`` knows: the eval-mode model as trained (NCHW input), the
#: ``optimize()`` form, ``optimize(mode="fused")`` (one native kernel per block), the
#: ``optimize()`` form under ``torch.compile`` (inductor), the model exported to ONNX
#: (in the form :data:`igc.deploy.export.ONNX_FORM`) and run by onnxruntime, and exported
#: in the form :data:`igc.deploy.export.OPENVINO_FORM` and run by OpenVINO's CPU plugin in
#: float32 (``openvino``) or bfloat16 (``openvino-bf16``: lower precision, asked for by name
#: only, so it is never the default nor compared with the float32 forms unawares).
BENCH_FORMS = ("naive", "optimized", "fused", "compiled", "onnxruntime", "openvino",
               "openvino-bf16")
#: The forms ``igc bench`` times when none are named: every float32 form.
DEFAULT_BENCH_FORMS = tuple(f for f in BENCH_FORMS if f != "openvino-bf16")
#: Opsets of PyTorch's TorchScript ONNX exporter (further capped by the installed onnx).
ONNX_OPSETS = (7, 20)
DEFAULT_OPSET = 17
#: What ``igc design --rank`` orders designs by: parameters (eq. 7) or latency here.
DESIGN_RANKS = ("params", "latency")
#: Where ``igc design --rank latency`` takes latency from: the cost model, or timing.
LATENCY_SOURCES = ("model", "measure")

__all__ = ["BENCH_FORMS", "CHAIN_MODES", "DATASETS", "DEFAULT_BENCH_FORMS", "DEFAULT_OPSET",
           "DESIGN_RANKS", "DEVICES", "EXPORT_FORMATS", "EXPORT_FORMS", "FORMS",
           "LATENCY_SOURCES", "MODES", "ONNX_OPSETS", "PICTURE_SUFFIXES", "TRAINING_FORMS"]
