"""Int8 post-training quantisation of an exported ONNX model (onnxruntime static
quantisation) and what it changes.

* :func:`calibration_images` / :func:`evaluation_images`: images of the model's data set
  (normalised as its recipe's evaluation pipeline does) or random images when the data set
  is not on this machine;
* :func:`quantize_int8`: QDQ format, per-channel int8 weights, uint8 activations, MinMax
  calibration, written atomically;
* :func:`compare_int8`: top-1 before and after, top-1 agreement and the largest logit change;
* :func:`int8_export`: the three together, what ``igc export --int8`` runs.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from igc.checks import check_int
from igc.data import BatchAugment, load_dataset
from igc.deploy.export import onnx_session, require_onnx
from igc.deploy.inputs import device_memory
from igc.errors import IGCError
from igc.files.atomic import atomic_path
from igc.formatting import first_line

#: Largest number of calibration or evaluation images.
MAX_IMAGES = 1 << 20


@dataclass
class Images:
    """Normalised float32 images (and labels when known) for calibration or evaluation."""

    images: torch.Tensor
    labels: torch.Tensor | None
    source: str  # "fashion-mnist test split", "random"


def check_image_count(count: int, in_chans: int, size: int, what: str) -> int:
    """IGCError unless ``count`` images of ``in_chans x size x size`` are a positive number
    that fits in a quarter of this machine's memory."""
    check_int(count, what, 1, MAX_IMAGES)
    need = count * in_chans * size * size * 4
    memory = device_memory(torch.device("cpu"))
    if memory is not None and need > memory / 4:
        raise IGCError(f"{count} {what} of {in_chans}x{size}x{size} take "
                       f"{need / 2**30:.1f} GiB, more than a quarter of the "
                       f"{memory / 2**30:.0f} GiB here; use fewer")
    return count


def dataset_images(data: str, split: str, count: int | None, in_chans: int, size: int,
                   recipe: dict | None = None) -> Images:
    """``count`` images of ``split`` ("train" or "test") of data set ``data``, normalised as
    the recipe's evaluation pipeline does; IGCError when the data set is not available or
    its images do not fit the model."""
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
    """``count`` standard-normal images (a stand-in when no data set is at hand)."""
    check_image_count(count, in_chans, size, "random images")
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


@contextmanager
def quiet_root_logger(level: int = logging.ERROR) -> Iterator[None]:
    """Raise the root logger's level for the body (onnxruntime's quantiser logs its advice
    there) and restore it afterwards."""
    root = logging.getLogger()
    before = root.level
    root.setLevel(max(level, before))
    try:
        yield
    finally:
        root.setLevel(before)


def quantize_int8(fp32_path: str | Path, int8_path: str | Path, calibration: torch.Tensor,
                  batch: int = 32, per_channel: bool = True) -> Path:
    """Static post-training quantisation with onnxruntime (QDQ, int8 weights per channel,
    uint8 activations, MinMax calibration over ``calibration`` images), written atomically."""
    require_onnx("int8 quantisation")
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    if len(calibration) < 1:
        raise IGCError("int8 calibration needs at least one image")
    check_int(batch, "calibration batch", 1, 1 << 16)
    name = onnx_session(fp32_path).get_inputs()[0].name
    reader = _Reader(name, calibration.float(), batch)
    with atomic_path(int8_path, "int8 model", parents=True) as tmp, quiet_root_logger():
        try:
            quantize_static(str(fp32_path), str(tmp), reader, quant_format=QuantFormat.QDQ,
                            per_channel=per_channel, weight_type=QuantType.QInt8,
                            activation_type=QuantType.QUInt8,
                            calibrate_method=CalibrationMethod.MinMax)
        except (RuntimeError, ValueError) as exc:  # onnxruntime's own errors derive here
            raise IGCError(f"int8 quantisation failed: "
                           f"{first_line(exc, 160)}") from None
    return Path(int8_path)


def onnx_logits(path: str | Path, images: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """The model's outputs for ``images``, run by onnxruntime in batches."""
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
    """Top-1 of both models on ``test`` (when labelled), their agreement and the largest
    logit difference."""
    a = onnx_logits(fp32_path, test.images)
    b = onnx_logits(int8_path, test.images)
    pa, pb = a.argmax(1), b.argmax(1)
    top = (lambda p: float((p == test.labels).float().mean())) if test.labels is not None \
        else (lambda p: None)
    diff = float((a - b).abs().max()) if len(a) else math.nan
    return Int8Report(test.source, len(a), top(pa), top(pb), float((pa == pb).float().mean()),
                      diff)


@dataclass
class Int8Result:
    """What :func:`int8_export` wrote and measured."""

    file: Path
    calibration: int
    calibration_source: str
    report: Int8Report

    def to_dict(self) -> dict:
        return {"file": str(self.file), "calibration": self.calibration,
                "calibration_source": self.calibration_source, **self.report.to_dict()}


def int8_path_for(fp32: str | Path) -> Path:
    """``model.onnx -> model.int8.onnx``."""
    fp32 = Path(fp32)
    return fp32.with_name(fp32.stem + ".int8" + fp32.suffix)


def int8_export(fp32: str | Path, in_chans: int, size: int, *, data: str | None = None,
                recipe: dict | None = None, trained: bool = False, calibration: int = 256,
                eval_images: int | None = None, out: str | Path | None = None) -> Int8Result:
    """Quantise the ONNX model ``fp32`` to int8 (``out``, default :func:`int8_path_for`)
    and measure the change.

    Calibration uses ``calibration`` training images of data set ``data`` when it is on
    this machine, else random images; the change is measured on ``eval_images`` test
    images (all by default; 512 random images without the data set). Accuracy is reported
    only for ``trained`` weights (for random weights only the agreement means something).
    """
    check_image_count(calibration, in_chans, size, "calibration images")
    if eval_images is not None:
        check_image_count(eval_images, in_chans, size, "evaluation images")
    calib = test = None
    if data:  # the model's data set, when it is on this machine
        try:
            calib = dataset_images(data, "train", calibration, in_chans, size, recipe)
            test = dataset_images(data, "test", eval_images, in_chans, size, recipe)
        except IGCError:
            calib = None
        if test is not None and not trained:
            test.labels = None
    if calib is None or test is None:
        calib = random_images(calibration, in_chans, size, seed=1)
        test = random_images(eval_images or 512, in_chans, size, seed=2)
    target = Path(out) if out is not None else int8_path_for(fp32)
    quantize_int8(fp32, target, calib.images)
    return Int8Result(target, len(calib.images), calib.source,
                      compare_int8(fp32, target, test))


__all__ = ["MAX_IMAGES", "Images", "Int8Report", "Int8Result", "check_image_count",
           "compare_int8", "dataset_images", "int8_export", "int8_path_for", "onnx_logits",
           "quantize_int8", "quiet_root_logger", "random_images"]
