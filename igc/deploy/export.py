"""Export a network to ONNX or to a ``torch.export`` program (``.pt2``) and check the file
against the PyTorch model.

* :func:`onnx_bytes` / :func:`export_onnx` serialise ``model`` with a dynamic batch
  dimension (checked with ``onnx.checker``) and :func:`export_pt2` writes a
  ``torch.export`` program; files are written atomically, so a failed export leaves no
  file behind.
* :func:`check_onnx` / :func:`check_pt2` load the file back (onnxruntime,
  ``torch.export.load``) and return the largest absolute and relative difference from the
  PyTorch model over random inputs at several batch sizes (:class:`Difference`).

``onnx`` and ``onnxruntime`` are optional: :func:`require_onnx` turns their absence into one
clear line.
"""

from __future__ import annotations

import importlib
import io
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from igc.checks import check_int
from igc.deploy.inputs import MAX_DEPLOY_BATCH
from igc.errors import IGCError
from igc.files.atomic import atomic_write
from igc.files.safetensors import write_safetensors
from igc.files.weights import read_weights
from igc.formatting import first_line
from igc.models.registry import create_model
from igc.names import DEFAULT_OPSET, ONNX_OPSETS

EXPORT_HINT = "pip install 'igc-torch[export]'"
#: Batch sizes every exported file is checked at (the dynamic dimension really varies).
CHECK_BATCHES = (1, 3)
#: The ``optimize`` mode exported for onnxruntime: BN folded, grouped convolutions and
#: shuffles kept as ONNX Conv/Reshape/Transpose, which onnxruntime's own fused
#: convolutions run faster than the MatMul graph of the structured form (measured 22 ms
#: vs 27-30 ms for IGCV2-1.0 at batch 1 on one thread).
ONNX_FORM = "grouped"
#: The ``optimize`` mode exported for OpenVINO, whose CPU plugin runs small dense 1x1
#: convolutions far faster than grouped ones (:mod:`igc.deploy.chain.small_dense`).
OPENVINO_FORM = "small-dense"


def require_onnx(what: str = "ONNX export") -> tuple[object, object]:
    """``(onnx, onnxruntime)``, or IGCError naming the install command."""
    missing = []
    modules = []
    for name in ("onnx", "onnxruntime"):
        try:
            modules.append(importlib.import_module(name))
        except ImportError:
            missing.append(name)
    if missing:
        raise IGCError(f"{what} needs {' and '.join(missing)}, which are not installed: "
                       f"{EXPORT_HINT}")
    return modules[0], modules[1]


def check_opset(opset: int) -> int:
    """``opset`` if both the exporter and the installed onnx have it, else IGCError with
    the range."""
    onnx, _ = require_onnx()
    high = min(ONNX_OPSETS[1], onnx.defs.onnx_opset_version())
    return check_int(opset, "ONNX opset", ONNX_OPSETS[0], high)


def onnx_bytes(model: nn.Module, in_chans: int, size: int, batch: int = 1,
               opset: int = DEFAULT_OPSET) -> bytes:
    """``model`` serialised as ONNX with a dynamic batch dimension (input ``input``,
    output ``logits``), checked with ``onnx.checker``."""
    onnx, _ = require_onnx()
    check_opset(opset)
    check_int(batch, "batch", 1, MAX_DEPLOY_BATCH)
    example = torch.randn(batch, in_chans, size, size)
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notices
        try:
            torch.onnx.export(model.eval(), (example,), buffer, input_names=["input"],
                              output_names=["logits"],
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                              opset_version=opset, dynamo=False)
        except Exception as exc:  # the exporter raises many internal error types
            raise IGCError(f"ONNX export at opset {opset} failed: {first_line(exc)}; try "
                           f"--opset {DEFAULT_OPSET}") from None
    blob = buffer.getvalue()
    try:
        onnx.checker.check_model(onnx.load_from_string(blob), full_check=True)
    except Exception as exc:  # onnx raises its own ValidationError types
        raise IGCError(f"the exported ONNX model fails onnx.checker: {first_line(exc)}") \
            from None
    return blob


def export_onnx(model: nn.Module, path: str | Path, in_chans: int, size: int,
                batch: int = 1, opset: int = DEFAULT_OPSET) -> Path:
    """Write :func:`onnx_bytes` to ``path`` atomically (nothing is written on failure)."""
    return atomic_write(path, onnx_bytes(model, in_chans, size, batch, opset), "ONNX file",
                        parents=True)


def onnx_session(model: str | Path | bytes, threads: int | None = None):
    """An onnxruntime CPU session for an ONNX file or serialised model."""
    _, ort = require_onnx("running ONNX models")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def export_pt2(model: nn.Module, path: str | Path, in_chans: int, size: int,
               batch: int = 2) -> Path:
    """Write a ``torch.export`` program with a dynamic batch dimension, atomically."""
    check_int(batch, "batch", 1, MAX_DEPLOY_BATCH)
    example = torch.randn(max(batch, 2), in_chans, size, size)
    batch_dim = torch.export.Dim("batch", min=1, max=MAX_DEPLOY_BATCH)
    try:
        program = torch.export.export(model.eval(), (example,),
                                      dynamic_shapes=({0: batch_dim},))
    except Exception as exc:  # torch.export raises many internal error types
        raise IGCError(f"torch.export failed: {first_line(exc, 200)}") from None
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # a storage-grouping notice of the archive writer
        warnings.filterwarnings("ignore", message="No complete tensor found")
        torch.export.save(program, buffer)
    return atomic_write(path, buffer.getvalue(), "torch.export program", parents=True)


# ---------------------------------------------------------------------------------------
# Checking a file against the model
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Difference:
    """Largest difference between an exported model and PyTorch over the checked
    batches: absolute, and relative to the largest PyTorch output of the same batch."""

    max_abs: float
    max_rel: float
    batches: tuple[int, ...]


def compare(reference: nn.Module, run: Callable[[torch.Tensor], object], in_chans: int,
            size: int, batches: Iterable[int] = CHECK_BATCHES, seed: int = 0) -> Difference:
    """:class:`Difference` between ``reference(x)`` and ``run(x)`` on random inputs at each
    batch size."""
    g = torch.Generator().manual_seed(seed)
    worst_abs = worst_rel = 0.0
    batches = tuple(batches)
    for b in batches:
        x = torch.randn(b, in_chans, size, size, generator=g)
        with torch.inference_mode():
            expected = reference(x).float()
        got = torch.as_tensor(np.asarray(run(x))).float()
        if got.shape != expected.shape:
            raise IGCError(f"exported model gives shape {tuple(got.shape)} for batch {b}, "
                           f"PyTorch {tuple(expected.shape)}")
        diff = float((got - expected).abs().max())
        worst_abs = max(worst_abs, diff)
        worst_rel = max(worst_rel, diff / max(float(expected.abs().max()), 1e-30))
    return Difference(worst_abs, worst_rel, batches)


def check_onnx(path: str | Path, reference: nn.Module, in_chans: int, size: int,
               batches: Iterable[int] = CHECK_BATCHES) -> Difference:
    """Run the ONNX file with onnxruntime against ``reference``."""
    session = onnx_session(path)
    name = session.get_inputs()[0].name
    return compare(reference, lambda x: session.run(None, {name: x.numpy()})[0], in_chans,
                   size, batches)


def check_pt2(path: str | Path, reference: nn.Module, in_chans: int, size: int,
              batches: Iterable[int] = CHECK_BATCHES) -> Difference:
    """Load the ``torch.export`` program and run it against ``reference``."""
    module = torch.export.load(str(path)).module()
    return compare(reference, lambda x: module(x).detach(), in_chans, size, batches)


def export_safetensors(model: nn.Module, path: str | Path, header: dict) -> Path:
    """Write ``model``'s state dict with igc's ``header`` (the fields of
    :class:`igc.files.checkpoint.WeightsHeader`) as a ``.safetensors`` file, atomically."""
    return write_safetensors(path, model.state_dict(), header)


def check_safetensors(path: str | Path, reference: nn.Module, in_chans: int, size: int,
                      batches: Iterable[int] = CHECK_BATCHES) -> Difference:
    """Load the ``.safetensors`` file back as a user would (``create_model(NAME,
    pretrained=path)``) and run it against ``reference``."""
    weights = read_weights(Path(path))
    model = create_model(str(weights.model), pretrained=weights).eval()
    return compare(reference, lambda x: model(x).detach(), in_chans, size, batches)


def verify_onnx(path: str | Path, reference: nn.Module, in_chans: int, size: int,
                batches: Iterable[int] = CHECK_BATCHES) -> float:
    """The largest absolute difference of :func:`check_onnx`."""
    return check_onnx(path, reference, in_chans, size, batches).max_abs


def verify_pt2(path: str | Path, reference: nn.Module, in_chans: int, size: int,
               batches: Iterable[int] = CHECK_BATCHES) -> float:
    """The largest absolute difference of :func:`check_pt2`."""
    return check_pt2(path, reference, in_chans, size, batches).max_abs


__all__ = [
    "CHECK_BATCHES", "DEFAULT_OPSET", "EXPORT_HINT", "ONNX_FORM", "ONNX_OPSETS", "OPENVINO_FORM",
    "Difference",
    "check_onnx", "check_opset", "check_pt2", "check_safetensors", "compare", "export_onnx",
    "export_pt2", "export_safetensors",
    "onnx_bytes", "onnx_session", "require_onnx", "verify_onnx", "verify_pt2",
]
