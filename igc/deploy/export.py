"""Export a network to ONNX or to a ``torch.export`` program (``.pt2``), check the file
against the PyTorch model, and quantise ONNX models to int8 after training.

* :func:`load_source` builds a network from a registered name (random weights) or from an
  ``igc`` checkpoint (the model the checkpoint names, with its weights).
* :func:`export_onnx` / :func:`export_pt2` write the file with a dynamic batch dimension;
  :func:`verify_onnx` / :func:`verify_pt2` load it back (``onnx.checker``, onnxruntime,
  ``torch.export.load``) and return the largest difference from the PyTorch model over
  random inputs at several batch sizes.
* :func:`quantize_int8` is onnxruntime's static post-training quantisation (QDQ format,
  per-channel int8 weights, uint8 activations) with a calibration reader over images of
  the model's data set (or random images when there is none); :func:`onnx_accuracy`
  measures top-1 on a test split so that the change can be reported.

``onnx`` and ``onnxruntime`` are optional: :func:`require_onnx` turns their absence into one
clear line.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from igc.errors import IGCError

EXPORT_HINT = "pip install 'igc[export]'"
#: Batch sizes every exported file is checked at (the dynamic dimension really varies).
CHECK_BATCHES = (1, 3)


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


# ---------------------------------------------------------------------------------------
# Models by name or checkpoint
# ---------------------------------------------------------------------------------------


@dataclass
class Source:
    """A network to export and what is known about its input."""

    model: nn.Module
    name: str  # the registered model name
    input_size: int
    in_chans: int
    num_classes: int
    checkpoint: str | None = None  # path, when weights came from a checkpoint
    data: str | None = None  # the data set it was trained on / registered for
    recipe: dict | None = None


def _looks_like_path(text: str) -> bool:
    return "/" in text or "\\" in text or text.endswith((".pt", ".pth", ".ckpt", ".pt2"))


def load_source(source: str) -> Source:
    """A registered model name (random weights) or a checkpoint file / run directory."""
    from igc.models.registry import create_model, list_models, model_entry

    path = Path(source)
    if path.exists() or (_looks_like_path(source) and source not in list_models()):
        from igc.train.checkpoint import load_checkpoint, load_model_weights

        state = load_checkpoint(path)
        name = state["model"]
        try:
            entry = model_entry(name)
        except IGCError:
            raise IGCError(f"checkpoint {path} names model {name!r}, which this igc does not "
                           "know") from None
        model_args = dict(state.get("model_args") or {})
        model = create_model(name, num_classes=state["num_classes"],
                             in_chans=state["in_chans"], **model_args)
        load_model_weights(model, state, name)
        recipe = state.get("recipe") or {}
        size = int(state.get("image_size") or recipe.get("image_size") or entry.input_size)
        return Source(model.eval(), name, size, int(state["in_chans"]),
                      int(state["num_classes"]), state.get("path", str(path)),
                      state.get("data") or entry.dataset, dict(recipe))
    entry = model_entry(source)  # IGCError with suggestions for unknown names
    model = create_model(source)
    return Source(model.eval(), source, entry.input_size, entry.in_chans, entry.num_classes,
                  None, entry.dataset, None)


def check_input_size(model: nn.Module, in_chans: int, size: int, name: str = "model") -> None:
    """IGCError unless ``model`` takes ``(1, in_chans, size, size)`` images."""
    if size < 1:
        raise IGCError(f"input size must be positive, got {size}")
    try:
        with torch.inference_mode():
            model.eval()(torch.zeros(1, in_chans, size, size))
    except (RuntimeError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0][:140] if str(exc).strip() else ""
        raise IGCError(f"{name} cannot take {size}x{size} inputs ({reason}); use a larger "
                       "--input-size") from None


def _random_inputs(in_chans: int, size: int, batches: Iterable[int], seed: int = 0
                   ) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, in_chans, size, size, generator=g) for b in batches]


# ---------------------------------------------------------------------------------------
# ONNX
# ---------------------------------------------------------------------------------------


def export_onnx(model: nn.Module, path: str | Path, in_chans: int, size: int,
                batch: int = 1, opset: int = 17) -> Path:
    """Write ``model`` as ONNX with a dynamic batch dimension (input ``input``, output
    ``logits``) and check it with ``onnx.checker``."""
    onnx, _ = require_onnx()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.randn(batch, in_chans, size, size)
    model = model.eval()
    import warnings

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notices
        torch.onnx.export(model, (example,), str(path), input_names=["input"],
                          output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                          opset_version=opset, dynamo=False)
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:  # onnx raises its own ValidationError types
        raise IGCError(f"the exported ONNX file {path} fails onnx.checker: "
                       f"{str(exc).splitlines()[0][:160]}") from None
    return path


def onnx_session(path: str | Path, threads: int | None = None):
    """An onnxruntime CPU session for ``path``."""
    _, ort = require_onnx("running ONNX models")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def max_difference(reference: nn.Module, run, in_chans: int, size: int,
                   batches: Iterable[int] = CHECK_BATCHES) -> float:
    """Largest absolute difference between ``reference(x)`` and ``run(x)`` over random
    inputs at each batch size."""
    worst = 0.0
    for x in _random_inputs(in_chans, size, batches):
        with torch.inference_mode():
            expected = reference(x).float()
        got = torch.as_tensor(np.asarray(run(x)))
        if got.shape != expected.shape:
            raise IGCError(f"exported model gives shape {tuple(got.shape)} for batch "
                           f"{x.shape[0]}, PyTorch {tuple(expected.shape)}")
        worst = max(worst, float((got.float() - expected).abs().max()))
    return worst


def verify_onnx(path: str | Path, reference: nn.Module, in_chans: int, size: int,
                batches: Iterable[int] = CHECK_BATCHES) -> float:
    session = onnx_session(path)
    name = session.get_inputs()[0].name
    return max_difference(reference, lambda x: session.run(None, {name: x.numpy()})[0],
                          in_chans, size, batches)


# ---------------------------------------------------------------------------------------
# torch.export
# ---------------------------------------------------------------------------------------


def export_pt2(model: nn.Module, path: str | Path, in_chans: int, size: int,
               batch: int = 2) -> Path:
    """Write a ``torch.export`` program with a dynamic batch dimension."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.randn(max(batch, 2), in_chans, size, size)
    batch_dim = torch.export.Dim("batch", min=1, max=65536)
    try:
        program = torch.export.export(model.eval(), (example,),
                                      dynamic_shapes=({0: batch_dim},))
    except Exception as exc:  # torch.export raises many internal error types
        raise IGCError(f"torch.export failed: {str(exc).strip().splitlines()[0][:200]}") \
            from None
    import warnings

    with warnings.catch_warnings():  # a storage-grouping notice of the archive writer
        warnings.filterwarnings("ignore", message="No complete tensor found")
        torch.export.save(program, str(path))
    return path


def verify_pt2(path: str | Path, reference: nn.Module, in_chans: int, size: int,
               batches: Iterable[int] = CHECK_BATCHES) -> float:
    module = torch.export.load(str(path)).module()
    return max_difference(reference, lambda x: module(x).detach(), in_chans, size, batches)


# ---------------------------------------------------------------------------------------
# int8
# ---------------------------------------------------------------------------------------


@dataclass
class Images:
    """Normalised float32 images (and labels when known) for calibration or evaluation."""

    images: torch.Tensor
    labels: torch.Tensor | None
    source: str  # "fashion-mnist test split", "random"


def dataset_images(data: str, split: str, count: int | None, in_chans: int, size: int,
                   recipe: dict | None = None) -> Images:
    """``count`` images of ``split`` ("train" or "test") of data set ``data``, normalised as
    the recipe's evaluation pipeline does; IGCError when the data set is not available or
    its images do not fit the model."""
    from igc.data import BatchAugment, load_dataset

    splits = load_dataset(data, download=False)
    dataset = splits.train if split == "train" else splits.test
    if not hasattr(dataset, "images"):
        raise IGCError(f"{splits.name} is not held in memory; int8 calibration needs an "
                       "in-memory data set")
    if splits.in_channels != in_chans:
        raise IGCError(f"{splits.name} has {splits.in_channels} channels, the model takes "
                       f"{in_chans}")
    n = len(dataset) if count is None else min(count, len(dataset))
    if split == "train":  # a spread of classes, not the first n of one order
        index = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))[:n]
    else:
        index = torch.arange(n)
    spec = (recipe or {}).get("eval_augment") or ["normalize"]
    x = BatchAugment(spec, splits.mean, splits.std)(dataset.images[index])
    if x.shape[-1] != size:
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear",
                                            align_corners=False)
    return Images(x.contiguous(), dataset.labels[index], f"{splits.name} {split} split")


def random_images(count: int, in_chans: int, size: int, seed: int = 1) -> Images:
    g = torch.Generator().manual_seed(seed)
    return Images(torch.randn(count, in_chans, size, size, generator=g), None, "random")


class _Reader:
    """onnxruntime's ``CalibrationDataReader`` protocol over a tensor of images."""

    def __init__(self, input_name: str, images: torch.Tensor, batch: int) -> None:
        self.input_name, self.images, self.batch = input_name, images, batch
        self._iter: Iterator[np.ndarray] | None = None

    def _batches(self) -> Iterator[np.ndarray]:
        for i in range(0, len(self.images), self.batch):
            yield self.images[i:i + self.batch].numpy()

    def get_next(self) -> dict | None:
        if self._iter is None:
            self._iter = self._batches()
        item = next(self._iter, None)
        return None if item is None else {self.input_name: item}

    def rewind(self) -> None:
        self._iter = None


def quantize_int8(fp32_path: str | Path, int8_path: str | Path, calibration: torch.Tensor,
                  batch: int = 32, per_channel: bool = True) -> Path:
    """Static post-training quantisation with onnxruntime (QDQ, int8 weights per channel,
    uint8 activations, MinMax calibration over ``calibration`` images)."""
    require_onnx("int8 quantisation")
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    fp32_path, int8_path = Path(fp32_path), Path(int8_path)
    name = onnx_session(fp32_path).get_inputs()[0].name
    reader = _Reader(name, calibration.float(), batch)
    import logging

    logging.getLogger("root").setLevel(logging.ERROR)
    quantize_static(str(fp32_path), str(int8_path), reader, quant_format=QuantFormat.QDQ,
                    per_channel=per_channel, weight_type=QuantType.QInt8,
                    activation_type=QuantType.QUInt8, calibrate_method=CalibrationMethod.MinMax)
    return int8_path


def onnx_logits(path: str | Path, images: torch.Tensor, batch: int = 256) -> torch.Tensor:
    session = onnx_session(path)
    name = session.get_inputs()[0].name
    out = [session.run(None, {name: images[i:i + batch].numpy()})[0]
           for i in range(0, len(images), batch)]
    return torch.as_tensor(np.concatenate(out))


@dataclass
class Int8Report:
    """What int8 quantisation changed, measured on ``data``."""

    data: str
    images: int
    fp32_top1: float | None  # None without labels
    int8_top1: float | None
    agreement: float  # fraction of images whose top-1 class is unchanged
    max_logit_diff: float

    @property
    def change(self) -> float | None:
        if self.fp32_top1 is None or self.int8_top1 is None:
            return None
        return self.int8_top1 - self.fp32_top1

    def to_dict(self) -> dict:
        return {"data": self.data, "images": self.images, "fp32_top1": self.fp32_top1,
                "int8_top1": self.int8_top1, "top1_change": self.change,
                "agreement": self.agreement, "max_logit_diff": self.max_logit_diff}


def compare_int8(fp32_path: str | Path, int8_path: str | Path, test: Images) -> Int8Report:
    a = onnx_logits(fp32_path, test.images)
    b = onnx_logits(int8_path, test.images)
    pa, pb = a.argmax(1), b.argmax(1)
    top = (lambda p: float((p == test.labels).float().mean())) if test.labels is not None \
        else (lambda p: None)
    diff = float((a - b).abs().max()) if len(a) else math.nan
    return Int8Report(test.source, len(a), top(pa), top(pb), float((pa == pb).float().mean()),
                      diff)


__all__ = [
    "CHECK_BATCHES", "EXPORT_HINT", "Images", "Int8Report", "Source", "check_input_size",
    "compare_int8", "dataset_images", "export_onnx", "export_pt2", "load_source",
    "max_difference", "onnx_logits", "onnx_session", "quantize_int8", "random_images",
    "require_onnx", "verify_onnx", "verify_pt2",
]
