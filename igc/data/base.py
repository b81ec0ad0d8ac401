"""Containers shared by every data set loader.

A loader returns :class:`DatasetSplits`: a train and a test split (and optionally a
validation split held out of the training set, :mod:`igc.data.holdout`) plus what a model
and an input pipeline need to know (classes, channels, image size, per-channel mean and std).
Small data sets are held in memory as :class:`TensorImageDataset` (uint8 images); large image
folders are file-backed ``torch.utils.data.Dataset`` objects that return the same
``(uint8 image (C, H, W), label)`` pairs.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from igc.errors import IGCError
from igc.formatting import first_line

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def is_image_file(name: str) -> bool:
    """Whether ``name`` has an image extension (jpg, jpeg, png, bmp, webp; any case)."""
    return name.lower().endswith(IMAGE_EXTENSIONS)


class TensorImageDataset(Dataset):
    """An in-memory image classification split.

    ``images``: ``torch.uint8`` tensor of shape ``(N, C, H, W)``, pixel values 0..255.
    ``labels``: ``torch.int64`` tensor of shape ``(N,)``, class indices.
    Items are ``(images[i], labels[i])``: a uint8 ``(C, H, W)`` tensor and an int64 scalar.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {images.dtype} "
                             f"{tuple(images.shape)}")
        if labels.dim() != 1 or labels.shape[0] != images.shape[0]:
            raise ValueError(f"labels must be ({images.shape[0]},), got {tuple(labels.shape)}")
        self.images = images
        self.labels = labels.to(torch.int64)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.labels[index]


@dataclass
class DatasetSplits:
    """The train and test splits of one data set and its metadata.

    ``train``/``test`` are :class:`TensorImageDataset` (in memory) or file-backed datasets
    yielding ``(uint8 (C, H, W) tensor, int label)``. ``mean``/``std`` are per-channel
    statistics on the 0..1 pixel scale; ``image_size`` is the (square) side fed to the model.
    ``origin`` says where the files were read from ("" when made in memory). ``val`` is the
    validation split held out of the training set (:mod:`igc.data.holdout`), or None.
    """

    name: str
    train: Dataset
    test: Dataset
    classes: list[str]
    in_channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    origin: str = ""
    val: Dataset | None = None

    @property
    def num_classes(self) -> int:
        """How many classes the labels index (``len(classes)``)."""
        return len(self.classes)

    def check(self) -> DatasetSplits:
        """``self`` if its metadata agree and every in-memory label indexes a class;
        IGCError naming the split otherwise (a bad label would fail deep in a loss)."""
        where = f"data set {self.name}" + (f" ({self.origin})" if self.origin else "")
        if not self.classes or self.in_channels < 1 or self.image_size < 1:
            raise IGCError(f"{where} has {len(self.classes)} classes, {self.in_channels} "
                           f"channels, image size {self.image_size}; all must be positive")
        if len(self.mean) != self.in_channels or len(self.std) != self.in_channels or \
                min(self.std) <= 0:
            raise IGCError(f"{where}: mean and std need {self.in_channels} entries and a "
                           "positive std")
        named = [("train", self.train), ("test", self.test)]
        for split_name, split in named + ([("val", self.val)] if self.val is not None else []):
            if len(split) == 0:
                raise IGCError(f"{where} has an empty {split_name} split")
            if isinstance(split, TensorImageDataset):
                low, high = int(split.labels.min()), int(split.labels.max())
                if low < 0 or high >= self.num_classes:
                    raise IGCError(f"{where} {split_name} split has label "
                                   f"{low if low < 0 else high}, outside the "
                                   f"{self.num_classes} classes; replace the damaged file")
                if split.images.shape[1] != self.in_channels:
                    raise IGCError(f"{where} {split_name} split has {split.images.shape[1]}"
                                   f"-channel images, not {self.in_channels}")
        return self

    @property
    def in_memory(self) -> bool:
        """Whether both splits are uint8 tensors in memory (fast batch loading applies)."""
        return isinstance(self.train, TensorImageDataset) and isinstance(
            self.test, TensorImageDataset)


def decode_rgb(data: bytes | Path, name: str | None = None) -> Image.Image:
    """Decode an image file (path or encoded bytes) with Pillow as an RGB image.

    Grayscale, palette and CMYK images are converted to RGB. An undecodable file raises
    :class:`IGCError` naming it (``name`` overrides the name shown for bytes input).
    """
    label = name or str(data if isinstance(data, Path) else "<bytes>")
    try:
        with Image.open(data if isinstance(data, Path) else io.BytesIO(data)) as img:
            return img.convert("RGB")
    except Exception as err:  # Pillow raises many types (even SyntaxError) for a bad file
        raise IGCError(f"cannot decode image {label} ({first_line(err, 100)}); delete or "
                       "replace the file") from None


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """A Pillow RGB image as a contiguous ``torch.uint8`` tensor of shape ``(3, H, W)``."""
    array = np.asarray(img, dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


_MASK64 = (1 << 64) - 1


def mix_seed(*values: int) -> int:
    """A well-mixed 63-bit seed from integers (e.g. ``(seed, epoch, rank)``), stable across
    runs and platforms (splitmix64 steps)."""
    x = 0x9E3779B97F4A7C15
    for value in values:
        x = ((x ^ (value & _MASK64)) + 0x9E3779B97F4A7C15) & _MASK64
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
        x ^= x >> 31
    return x >> 1
