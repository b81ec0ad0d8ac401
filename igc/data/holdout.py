"""The validation split: a fixed, stratified, seeded part of the training set held out.

Every choice igc makes from accuracy (recipe trials, checkpoint selection) uses this split,
never the test set. :func:`stratified_holdout` picks ``n`` training images so that each
class gives ``n * count_c / N`` of them (largest remainders round, so the total is exactly
``n``; Fashion-MNIST's 6,000 images per class give 500 each for ``n = 5,000``), drawn with
``torch.Generator().manual_seed(seed)``: the same images on every machine and in every
run of the same seed. :func:`with_validation` returns the data set with ``val`` set and the
held-out images removed from ``train``.

Defaults (recipe key ``val_images = -1``, :func:`resolve_val_images`): 5,000 images for
Fashion-MNIST, MNIST, CIFAR-10 and CIFAR-100; none for data sets that ship a validation
set (Tiny ImageNet, image folders: their ``val`` folder is already igc's evaluation split,
and holding out more is refused), and none for a training split smaller than four times
the default (a subset such as a reproduction budget's, or a test's tiny data).
"""

from __future__ import annotations

import torch

from igc.data.base import DatasetSplits, TensorImageDataset
from igc.errors import IGCError

#: Held-out images per data set when the recipe says ``val_images = -1``.
DEFAULT_VAL_IMAGES = {"fashion-mnist": 5000, "mnist": 5000, "cifar10": 5000,
                      "cifar100": 5000}
#: Data sets that ship their own validation set (igc evaluates on it): no held-out split.
SHIPS_VALIDATION = ("tiny-imagenet", "imagefolder")


def resolve_val_images(requested: int, name: str, train_size: int) -> int:
    """How many training images to hold out for ``requested`` (-1: the data set's default,
    else the number itself). IGCError for a negative number other than -1, for as many
    images as the training split has or more, and for a number > 0 on a data set that
    ships a validation set."""
    if isinstance(requested, bool) or not isinstance(requested, int) or requested < -1:
        raise IGCError(f"--val must be a number of images >= 0, got {requested!r}")
    if name in SHIPS_VALIDATION:
        if requested > 0:
            raise IGCError(f"{name} ships its own validation set (igc evaluates on it); "
                           f"--val {requested} cannot hold out more: use --val 0 or drop it")
        return 0
    if requested == -1:
        default = DEFAULT_VAL_IMAGES.get(name, 0)
        return default if train_size >= 4 * default else 0
    if requested >= train_size:
        raise IGCError(f"--val {requested:,} holds out at least the whole training split of "
                       f"{name} ({train_size:,} images); use a smaller number")
    return requested


def stratified_holdout(labels: torch.Tensor, n: int, seed: int) -> tuple[torch.Tensor,
                                                                         torch.Tensor]:
    """``(train_index, val_index)``: sorted int64 indices into ``labels`` (shape ``(N,)``),
    disjoint, covering every index; ``val_index`` has exactly ``n`` entries, class ``c``
    giving ``floor(n * count_c / N)`` of them plus one for the classes with the largest
    remainders (ties: the smaller class index). Requires ``0 <= n < N``."""
    labels = labels.to(torch.int64).flatten()
    total = labels.numel()
    if not 0 <= n < total:
        raise IGCError(f"cannot hold out {n} of {total} images")
    classes, counts = torch.unique(labels, return_counts=True)
    exact = counts.to(torch.float64) * n / total
    take = exact.floor().to(torch.int64)
    short = n - int(take.sum())
    if short:
        remainder = exact - take
        order = sorted(range(len(classes)), key=lambda i: (-float(remainder[i]), i))
        take[order[:short]] += 1
    gen = torch.Generator().manual_seed(seed)
    chosen = []
    for c, k in zip(classes.tolist(), take.tolist()):
        members = torch.nonzero(labels == c).flatten()
        chosen.append(members[torch.randperm(len(members), generator=gen)[:k]])
    val = torch.cat(chosen).sort().values if chosen else torch.empty(0, dtype=torch.int64)
    keep = torch.ones(total, dtype=torch.bool)
    keep[val] = False
    return torch.nonzero(keep).flatten(), val


def with_validation(splits: DatasetSplits, n: int, seed: int) -> DatasetSplits:
    """``splits`` with ``n`` training images moved to ``val`` (:func:`stratified_holdout`);
    ``splits`` itself when ``n == 0``. The training split must be in memory."""
    if n == 0:
        return splits
    train = splits.train
    if not isinstance(train, TensorImageDataset):
        raise IGCError(f"a validation split is held out of in-memory data sets only; "
                       f"{splits.name} is file-backed: use --val 0")
    keep, val = stratified_holdout(train.labels, n, seed)
    return DatasetSplits(
        splits.name, TensorImageDataset(train.images[keep], train.labels[keep]), splits.test,
        list(splits.classes), splits.in_channels, splits.image_size, splits.mean, splits.std,
        splits.origin, val=TensorImageDataset(train.images[val], train.labels[val]))


__all__ = ["DEFAULT_VAL_IMAGES", "SHIPS_VALIDATION", "resolve_val_images",
           "stratified_holdout", "with_validation"]
