"""CIFAR-10 and CIFAR-100 from the official python-pickle archives.

Each batch file is a pickled dict with ``data``: uint8 ``(N, 3072)`` (the red, green, blue
32x32 planes of each image) and ``labels`` (CIFAR-10) or ``fine_labels`` (CIFAR-100).
Pickles are read only from checksum-verified files (the archive, or extracted members
with the official MD5s), since unpickling runs code.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from igc.data.archive import Tree, dataset_tree
from igc.data.base import DatasetSplits, TensorImageDataset
from igc.errors import IGCError


@dataclass(frozen=True)
class _Layout:
    folder: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    meta: str
    label_key: str
    names_key: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


# mean/std: per-channel pixel statistics of the training images (0..1 scale)
_LAYOUTS = {
    "cifar10": _Layout("cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)),
                       ("test_batch",), "batches.meta", "labels", "label_names",
                       (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": _Layout("cifar-100-python", ("train",), ("test",), "meta", "fine_labels",
                        "fine_label_names", (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


def _unpickle(tree: Tree, name: str) -> dict[str, Any]:
    data = tree.read(name)
    try:
        entry = pickle.loads(data, encoding="latin1")
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise IGCError(f"corrupt CIFAR file {name} in {tree.label} ({err}); delete it and "
                       "download the archive again") from err
    if not isinstance(entry, dict):
        raise IGCError(f"{name} in {tree.label} is not a CIFAR batch; pass the python version "
                       "of the archive (cifar-*-python.tar.gz)")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in entry.items()}


def _load_split(tree: Tree, files: tuple[str, ...], label_key: str) -> TensorImageDataset:
    images, labels = [], []
    for name in files:
        entry = _unpickle(tree, name)
        if "data" not in entry or label_key not in entry:
            raise IGCError(f"{name} in {tree.label} lacks 'data' or '{label_key}'; pass the "
                           "official python version of the archive")
        data = np.asarray(entry["data"], dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(entry[label_key]) != len(data):
            raise IGCError(f"{name} in {tree.label} has data of shape {data.shape} and "
                           f"{len(entry[label_key])} labels; expected (N, 3072) and N labels")
        images.append(torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()))
        labels.append(torch.as_tensor(np.asarray(entry[label_key], dtype=np.int64)))
    return TensorImageDataset(torch.cat(images), torch.cat(labels))


def load_cifar(name: str, data_dir: str | Path | None = None,
               download: bool = True) -> DatasetSplits:
    """Load ``cifar10`` or ``cifar100`` from the archive or its extracted folder.

    Splits hold images ``(N, 3, 32, 32)`` uint8 (RGB) and labels ``(N,)`` int64
    (CIFAR-100: the 100 fine labels).
    """
    layout = _LAYOUTS[name]
    tree = dataset_tree(name, layout.folder, layout.meta, data_dir, download)
    classes = [c.decode() if isinstance(c, bytes) else str(c)
               for c in _unpickle(tree, layout.meta).get(layout.names_key, [])]
    train = _load_split(tree, layout.train, layout.label_key)
    test = _load_split(tree, layout.test, layout.label_key)
    top = int(max(train.labels.max(), test.labels.max()))
    if len(classes) <= top:
        raise IGCError(f"{layout.meta} in {tree.label} names {len(classes)} classes but labels "
                       f"go up to {top}; pass the official archive")
    return DatasetSplits(name, train, test, classes, in_channels=3, image_size=32,
                         mean=layout.mean, std=layout.std, origin=tree.label)
