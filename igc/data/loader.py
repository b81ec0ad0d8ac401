"""Batch loaders yielding ``(float32 images (B, C, H, W), int64 labels (B,))``.

:class:`TensorBatchLoader` serves in-memory uint8 data sets: it indexes whole batches with
a permutation and augments them as tensors (no per-image Python work). :class:`FileBatchLoader`
wraps a ``DataLoader`` for file-backed data sets. Both shard like ``DistributedSampler``
(rank ``r`` takes every ``world_size``-th index of the epoch's permutation, padded so every
rank has the same number of batches), and both are reproducible: the order and the
augmentation of an epoch depend only on ``(seed, epoch, rank)``; call :meth:`set_epoch`
before each epoch (resuming = constructing with the same seed and calling ``set_epoch``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from igc.checks import MAX_BATCH, MAX_WORKERS, check_int
from igc.data.augment import BatchAugment
from igc.data.base import TensorImageDataset, mix_seed
from igc.errors import IGCError

Batch = tuple[torch.Tensor, torch.Tensor]


def _to_float(x: torch.Tensor, augment: BatchAugment | None,
              generator: torch.Generator) -> torch.Tensor:
    if augment is not None:
        return augment(x, generator)
    return x.float() if x.is_floating_point() else x.float().div_(255)


def _check_shard(batch_size: int, rank: int, world_size: int) -> None:
    check_int(batch_size, "batch size", 1, MAX_BATCH)
    if world_size < 1 or not 0 <= rank < world_size:
        raise IGCError(f"rank {rank} is not in 0..{world_size - 1}; fix the distributed setup")


class TensorBatchLoader:
    """Batches of an in-memory data set: ``images`` uint8 ``(N, C, H, W)`` (CPU or device),
    ``labels`` int64 ``(N,)``.

    ``generator``: a ``torch.Generator`` (its ``initial_seed()`` is used) or an int seed.
    ``augment`` maps each uint8 batch to float32 (default: scale to 0..1). ``device``, if
    given, is where batches are moved before augmentation.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int,
                 shuffle: bool = False, drop_last: bool = False,
                 augment: BatchAugment | None = None,
                 generator: torch.Generator | int | None = None, sampler_rank: int = 0,
                 world_size: int = 1, device: torch.device | str | None = None) -> None:
        _check_shard(batch_size, sampler_rank, world_size)
        if labels.shape[0] != images.shape[0]:
            raise ValueError(f"{images.shape[0]} images but {labels.shape[0]} labels")
        self.images, self.labels = images, labels
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.augment, self.rank, self.world_size = augment, sampler_rank, world_size
        self.device = torch.device(device) if device is not None else None
        if isinstance(generator, torch.Generator):
            generator = generator.initial_seed()
        self.seed = int(generator or 0)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order and augmentation the next iteration yields."""
        self.epoch = epoch

    @property
    def num_samples(self) -> int:
        """Samples per rank per epoch (including the padding repeats)."""
        return math.ceil(self.labels.shape[0] / self.world_size)

    def indices(self) -> torch.Tensor:
        """This rank's int64 sample indices for the current epoch, ``(num_samples,)``."""
        n = self.labels.shape[0]
        if self.shuffle:
            g = torch.Generator().manual_seed(mix_seed(self.seed, self.epoch))
            order = torch.randperm(n, generator=g)
        else:
            order = torch.arange(n)
        total = self.num_samples * self.world_size
        if total > n:
            order = torch.cat([order, order.repeat(math.ceil(total / n))[: total - n]])
        return order[self.rank::self.world_size]

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_samples // self.batch_size
        return math.ceil(self.num_samples / self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        order = self.indices().to(self.images.device)
        g = torch.Generator().manual_seed(mix_seed(self.seed, self.epoch, self.rank, 1))
        for b in range(len(self)):
            index = order[b * self.batch_size:(b + 1) * self.batch_size]
            x, y = self.images[index], self.labels[index.to(self.labels.device)]
            if self.device is not None:
                x = x.to(self.device, non_blocking=True)
                y = y.to(self.device, non_blocking=True)
            yield _to_float(x, self.augment, g), y


class FileBatchLoader:
    """Batches of a file-backed data set through a ``DataLoader`` with a
    ``DistributedSampler``, uint8 batches augmented as tensors (on ``device`` if given)."""

    def __init__(self, dataset: Dataset, batch_size: int, shuffle: bool = False,
                 drop_last: bool = False, augment: BatchAugment | None = None, seed: int = 0,
                 rank: int = 0, world_size: int = 1, num_workers: int = 0,
                 device: torch.device | str | None = None) -> None:
        _check_shard(batch_size, rank, world_size)
        check_int(num_workers, "the number of loader workers", 0, MAX_WORKERS)
        self.dataset, self.augment, self.seed, self.rank = dataset, augment, seed, rank
        self.device = torch.device(device) if device is not None else None
        self.sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank,
                                          shuffle=shuffle, seed=seed)
        self.loader = DataLoader(dataset, batch_size=batch_size, sampler=self.sampler,
                                 num_workers=num_workers, drop_last=drop_last,
                                 pin_memory=self.device is not None and self.device.type == "cuda")
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order and augmentation the next iteration yields."""
        self.epoch = epoch
        self.sampler.set_epoch(epoch)
        if hasattr(self.dataset, "set_seed"):
            self.dataset.set_seed(mix_seed(self.seed, epoch))

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Batch]:
        g = torch.Generator().manual_seed(mix_seed(self.seed, self.epoch, self.rank, 1))
        batches = iter(self.loader)
        try:
            for x, y in batches:
                if self.device is not None:
                    x = x.to(self.device, non_blocking=True)
                    y = y.to(self.device, non_blocking=True)
                yield _to_float(x, self.augment, g), y
        except IGCError as exc:
            raise worker_error(exc) from None
        finally:  # stop the worker processes now, not when the iterator is collected
            stop = getattr(batches, "_shutdown_workers", None)
            if stop is not None:
                stop()


def worker_error(exc: IGCError) -> IGCError:
    """A user error raised in a ``DataLoader`` worker, as its one line again (the loader
    re-raises it with the worker's whole traceback in the message)."""
    text = str(exc)
    if "Traceback" not in text:
        return exc
    lines = [line for line in text.splitlines() if line.strip()]
    _, found, message = lines[-1].partition("IGCError: ")
    return IGCError(message.strip() if found else lines[0].strip())


def make_loader(dataset: Dataset, batch_size: int, *, shuffle: bool = False,
                drop_last: bool = False, augment: BatchAugment | None = None, seed: int = 0,
                rank: int = 0, world_size: int = 1, num_workers: int = 0,
                device: torch.device | str | None = None) -> TensorBatchLoader | FileBatchLoader:
    """The loader for one split: :class:`TensorBatchLoader` for an in-memory
    :class:`TensorImageDataset`, else :class:`FileBatchLoader` (``num_workers`` processes)."""
    if isinstance(dataset, TensorImageDataset):
        return TensorBatchLoader(dataset.images, dataset.labels, batch_size, shuffle, drop_last,
                                 augment, seed, rank, world_size, device)
    return FileBatchLoader(dataset, batch_size, shuffle, drop_last, augment, seed, rank,
                           world_size, num_workers, device)
