"""Tiny ImageNet (200 classes, 64x64 RGB; 100000 train and 10000 val images).

Official layout below ``tiny-imagenet-200/``: ``wnids.txt`` (the class ids), optional
``words.txt`` (id, tab, names), ``train/<wnid>/images/*.JPEG`` and ``val/images/*.JPEG``
labelled by ``val/val_annotations.txt`` (filename, wnid, bbox; tab-separated). The official
val split serves as the test split (the test images are unlabelled). All images are decoded
into memory as one uint8 tensor (1.2 GB for the training set), in parallel threads.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from igc.data.archive import Tree, dataset_tree
from igc.data.base import (
    DatasetSplits,
    TensorImageDataset,
    decode_rgb,
    is_image_file,
    pil_to_tensor,
)
from igc.errors import IGCError

SIZE = 64
MEAN = (0.4802, 0.4481, 0.3975)  # per-channel pixel statistics of the training images
STD = (0.2770, 0.2691, 0.2821)


def _text(tree: Tree, name: str) -> list[str]:
    return [line for line in tree.read(name).decode("utf-8", "replace").splitlines() if line]


def _class_names(tree: Tree, wnids: list[str]) -> list[str]:
    """The first name of each wnid from ``words.txt``, or the wnid itself."""
    words = {}
    if tree.exists("words.txt"):
        for line in _text(tree, "words.txt"):
            wnid, _, names = line.partition("\t")
            words[wnid] = names.split(",")[0].strip()
    return [words.get(w) or w for w in wnids]


def _train_files(tree: Tree, index: dict[str, int]) -> list[tuple[str, int]]:
    files = []
    for name in tree.names():
        parts = name.split("/")
        if len(parts) == 4 and parts[0] == "train" and parts[2] == "images" \
                and is_image_file(name):
            if parts[1] not in index:
                raise IGCError(f"{tree.label}: class {parts[1]} of {name} is not in wnids.txt; "
                               "pass the official, unmodified data set")
            files.append((name, index[parts[1]]))
    found = {label for _, label in files}
    empty = [w for w, i in index.items() if i not in found]
    if empty:
        raise IGCError(f"{tree.label} has no train/<wnid>/images/*.JPEG for {len(empty)} classes "
                       f"(e.g. {empty[0]}); pass the complete, official tiny-imagenet-200")
    return files


def _val_files(tree: Tree, index: dict[str, int]) -> list[tuple[str, int]]:
    files = []
    for line in _text(tree, "val/val_annotations.txt"):
        fields = line.split("\t")
        if len(fields) < 2 or fields[1] not in index:
            raise IGCError(f"{tree.label}: bad line in val/val_annotations.txt: {line!r}; pass "
                           "the official, unmodified data set")
        files.append((f"val/images/{fields[0]}", index[fields[1]]))
    return files


def _decode(tree: Tree, files: list[tuple[str, int]], workers: int) -> TensorImageDataset:
    """Decode ``files`` into images ``(N, 3, 64, 64)`` uint8 and labels ``(N,)`` int64."""
    images = torch.empty((len(files), 3, SIZE, SIZE), dtype=torch.uint8)

    def decode(i: int) -> None:
        name = files[i][0]
        img = decode_rgb(tree.read(name), f"{tree.label}/{name}")
        if img.size != (SIZE, SIZE):
            raise IGCError(f"{tree.label}/{name} is {img.size[0]}x{img.size[1]}, not "
                           f"{SIZE}x{SIZE}; pass the official, unmodified data set")
        images[i] = pil_to_tensor(img)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(decode, range(len(files)), chunksize=256))
    labels = torch.tensor([label for _, label in files], dtype=torch.int64)
    return TensorImageDataset(images, labels)


def load_tiny_imagenet(data_dir: str | Path | None = None, download: bool = True,
                       workers: int | None = None) -> DatasetSplits:
    """Load Tiny ImageNet from ``tiny-imagenet-200.zip`` or its extracted folder.

    Classes are the sorted wnids. Splits hold images ``(N, 3, 64, 64)`` uint8 (grayscale
    JPEGs converted to RGB) and labels ``(N,)`` int64; ``workers`` decoding threads
    (default: the CPU count).
    """
    tree = dataset_tree("tiny-imagenet", "tiny-imagenet-200", "wnids.txt", data_dir, download)
    wnids = sorted({line.strip() for line in _text(tree, "wnids.txt") if line.strip()})
    if not wnids:
        raise IGCError(f"{tree.label}/wnids.txt lists no classes; pass the official data set")
    index = {w: i for i, w in enumerate(wnids)}
    workers = workers or os.cpu_count() or 1
    train = _decode(tree, _train_files(tree, index), workers)
    test = _decode(tree, _val_files(tree, index), workers)
    return DatasetSplits("tiny-imagenet", train, test, _class_names(tree, wnids), in_channels=3,
                         image_size=SIZE, mean=MEAN, std=STD, origin=tree.label)
