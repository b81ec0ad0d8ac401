"""Data sets, batch augmentation and loaders (no torchvision needed).

``load_dataset(name, data_dir, download)`` returns :class:`DatasetSplits`. Files are looked
up in ``data_dir``, system package directories, the cache ``$IGC_DATA`` (default
``~/.cache/igc``), then downloaded from the official addresses; every file is checked
against its official MD5 (see :mod:`igc.data.sources`).
"""

from __future__ import annotations

from pathlib import Path

from igc.data import cifar, folder, mnist, tiny_imagenet
from igc.data.augment import BatchAugment, center_crop, hflip, normalize, pad_crop, scale_crop
from igc.data.base import DatasetSplits, TensorImageDataset
from igc.data.cifar import load_cifar
from igc.data.folder import load_image_folder
from igc.data.loader import FileBatchLoader, TensorBatchLoader, make_loader
from igc.data.mnist import load_mnist_family
from igc.data.tiny_imagenet import load_tiny_imagenet
from igc.errors import IGCError, unknown_name
from igc.formatting import shorten
from igc.names import DATASETS

__all__ = [
    "DATASETS", "BatchAugment", "DatasetSplits", "FileBatchLoader", "TensorBatchLoader",
    "TensorImageDataset", "center_crop", "hflip", "load_dataset", "make_loader", "normalization",
    "normalize", "pad_crop", "scale_crop",
]


def canonical_name(name: str) -> str:
    """``name`` in the form of :data:`DATASETS` (case and ``_`` forgiven); IGCError if
    unknown."""
    key = name.strip().lower().replace("_", "-")
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        raise IGCError(f"the data set name must be one of {', '.join(DATASETS)}, got "
                       f"{shorten(repr(name), 60)}")
    key = {"fashionmnist": "fashion-mnist", "tinyimagenet": "tiny-imagenet",
           "cifar-10": "cifar10", "cifar-100": "cifar100", "image-folder": "imagefolder"}.get(
               key, key)
    if key not in DATASETS:
        raise unknown_name("data set", name, DATASETS)
    return key


def load_dataset(name: str, data_dir: str | Path | None = None, download: bool = True, *,
                 image_size: int = 224, resize_size: int | None = None) -> DatasetSplits:
    """Load data set ``name`` (one of :data:`DATASETS`).

    ``data_dir``: a directory holding the official files (searched first; required for
    ``imagefolder``). ``download``: fetch missing files into the cache. ``image_size`` and
    ``resize_size`` apply to ``imagefolder`` only (train crop / val resize-then-crop sizes).
    Raises :class:`IGCError` for unknown names and missing, truncated or corrupt files.
    """
    key = canonical_name(name)
    if key in ("mnist", "fashion-mnist"):
        return load_mnist_family(key, data_dir, download).check()
    if key in ("cifar10", "cifar100"):
        return load_cifar(key, data_dir, download).check()
    if key == "tiny-imagenet":
        return load_tiny_imagenet(data_dir, download).check()
    if data_dir is None:
        raise IGCError("the imagefolder data set needs --data-dir DIR holding train/<class>/ "
                       "and val/<class>/ image folders")
    return load_image_folder(data_dir, image_size, resize_size).check()


def normalization(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel ``(mean, std)`` on the 0..1 scale with which data set ``name``'s loader
    normalises its images (ImageNet's for ``imagefolder``); IGCError if unknown."""
    key = canonical_name(name)
    if key in ("mnist", "fashion-mnist"):
        _, mean, std = mnist._META[key]
        return tuple(mean), tuple(std)
    if key in ("cifar10", "cifar100"):
        layout = cifar._LAYOUTS[key]
        return layout.mean, layout.std
    if key == "tiny-imagenet":
        return tiny_imagenet.MEAN, tiny_imagenet.STD
    return folder.IMAGENET_MEAN, folder.IMAGENET_STD
