"""MNIST and Fashion-MNIST: 28x28 grayscale, 10 classes, 60000 train / 10000 test images."""

from __future__ import annotations

from pathlib import Path

from igc.data.base import DatasetSplits
from igc.data.idx import read_idx_split
from igc.data.sources import describe_origin, locate

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot"]

# name -> (classes, mean, std); statistics of the training images on the 0..1 scale
_META = {
    "mnist": ([str(d) for d in range(10)], (0.1307,), (0.3081,)),
    "fashion-mnist": (FASHION_CLASSES, (0.2860,), (0.3530,)),
}


def load_mnist_family(name: str, data_dir: str | Path | None = None,
                      download: bool = True) -> DatasetSplits:
    """Load ``mnist`` or ``fashion-mnist`` from its four IDX files.

    Splits hold images ``(N, 1, 28, 28)`` uint8 and labels ``(N,)`` int64.
    """
    files = locate(name, data_dir, download)
    train = read_idx_split(files["train-images-idx3-ubyte.gz"],
                           files["train-labels-idx1-ubyte.gz"])
    test = read_idx_split(files["t10k-images-idx3-ubyte.gz"], files["t10k-labels-idx1-ubyte.gz"])
    classes, mean, std = _META[name]
    return DatasetSplits(name, train, test, list(classes), in_channels=1,
                         image_size=train.images.shape[-1], mean=mean, std=std,
                         origin=describe_origin(list(files.values())))
