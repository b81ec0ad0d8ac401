"""Evaluation: loss, top-1, top-5 and per-class accuracy of a model on a split, and the
evaluation of a saved checkpoint (``igc eval``)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Subset

from igc import checks
from igc.data import BatchAugment, TensorImageDataset, make_loader
from igc.data.base import DatasetSplits
from igc.errors import IGCError
from igc.runtime import num_threads
from igc.train.checkpoint import model_from_checkpoint
from igc.train.devices import pick_device, set_threads
from igc.train.distributed import DistInfo, all_reduce_sum
from igc.train.metrics import topk_correct
from igc.train.recipe import from_mapping
from igc.train.splits import load_splits


@dataclass
class EvalResult:
    """Evaluation of one split: mean loss, top-1/top-5 in percent, per-class counts."""

    loss: float
    top1: float
    top5: float
    count: int
    seconds: float
    class_correct: list[int] = field(default_factory=list)
    class_total: list[int] = field(default_factory=list)

    @property
    def per_class(self) -> list[float | None]:
        """Accuracy in percent of each class (``None`` where the split has none)."""
        return [100.0 * c / t if t else None
                for c, t in zip(self.class_correct, self.class_total)]

    @property
    def images_per_s(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else float("nan")


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on CPU, fp16 on CUDA; a null context when disabled."""
    if not enabled:
        return contextlib.nullcontext()
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return torch.autocast(device.type, dtype=dtype)


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
             num_classes: int, device: torch.device, *, channels_last: bool = False,
             amp: bool = False, dist: DistInfo | None = None) -> EvalResult:
    """Evaluate ``model`` (set to eval mode, restored after) on ``batches``.

    In a distributed run each rank passes its own disjoint part of the split; the sums are
    added over ranks, so every rank returns the result for the whole split.
    """
    was_training = model.training
    model.eval()
    start = time.perf_counter()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    hits = torch.zeros(2, dtype=torch.int64, device=device)
    class_correct = torch.zeros(num_classes, dtype=torch.int64, device=device)
    class_total = torch.zeros(num_classes, dtype=torch.int64, device=device)
    try:
        for x, y in batches:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(device, amp):
                logits = model(x)
            logits = logits.float()
            loss_sum += F.cross_entropy(logits, y, reduction="sum").double()
            top1, top5 = topk_correct(logits, y)
            hits += torch.stack([top1, top5])
            pred = logits.argmax(dim=1)
            class_total += torch.bincount(y, minlength=num_classes)[:num_classes]
            class_correct += torch.bincount(y[pred == y], minlength=num_classes)[:num_classes]
    finally:
        model.train(was_training)
    if dist is not None and dist.enabled:
        packed = torch.cat([loss_sum.view(1), hits.double(), class_correct.double(),
                            class_total.double()])
        all_reduce_sum(packed, dist)
        loss_sum, hits = packed[0], packed[1:3].long()
        class_correct = packed[3:3 + num_classes].long()
        class_total = packed[3 + num_classes:].long()
    count = int(class_total.sum().item())
    denom = max(count, 1)
    return EvalResult(
        loss=float(loss_sum.item()) / denom, top1=100.0 * hits[0].item() / denom,
        top5=100.0 * hits[1].item() / denom, count=count,
        seconds=time.perf_counter() - start, class_correct=class_correct.tolist(),
        class_total=class_total.tolist())


def eval_loader(splits: DatasetSplits, augment_spec: list, batch_size: int,
                device: torch.device, dist: DistInfo | None = None, num_workers: int = 0,
                split: str = "test"):
    """Batches of the ``test`` (or ``val``) split for evaluation, this rank's disjoint part
    of it (no padding, so every image counts once)."""
    test = splits.val if split == "val" else splits.test
    if test is None:
        raise IGCError(f"{splits.name} has no {split} split")
    rank, world = (dist.rank, dist.world_size) if dist is not None else (0, 1)
    if world > 1:
        if isinstance(test, TensorImageDataset):
            test = TensorImageDataset(test.images[rank::world], test.labels[rank::world])
        else:
            test = Subset(test, range(rank, len(test), world))
    augment = BatchAugment(augment_spec, splits.mean, splits.std)
    on_gpu = device if device.type == "cuda" else None
    return make_loader(test, batch_size, augment=augment, num_workers=num_workers,
                       device=on_gpu)


def evaluate_checkpoint(path: str | Path, data: str | None = None,
                        data_dir: str | None = None, device: str = "auto",
                        batch_size: int | None = None, download: bool = True,
                        quiet: bool = True, ema: bool = False) -> dict:
    """Evaluate a saved checkpoint on its data set's test split (or on ``data``).

    ``ema``: evaluate the moving average of the weights (runs with ``ema = true``).
    Returns a JSON-ready dict: model, data set, checkpoint epoch, loss, top-1, top-5,
    per-class accuracies with the class names, images/s. Every argument is range-checked
    as ``igc eval`` checks it; the caller's torch thread count is restored.
    """
    checks.check_existing(path, "checkpoint")
    if batch_size is not None:
        checks.check_int(batch_size, "batch size", 1, checks.MAX_BATCH)
    if data_dir is not None:
        checks.check_existing(data_dir, "--data-dir", "dir")
    dev = pick_device(device)
    with num_threads():
        set_threads(0, 1)
        loaded = model_from_checkpoint(path, ema=ema)
        state = loaded.state
        try:
            recipe = from_mapping({k: v for k, v in loaded.recipe.items() if k != "name"})
        except IGCError as exc:
            raise IGCError(f"checkpoint {loaded.path} holds a bad recipe ({exc})") from None
        data_name = data or loaded.data
        if not data_name:
            raise IGCError("the checkpoint does not name its data set; pass --data NAME")
        splits = load_splits(data_name, data_dir, download, recipe).check()
        if splits.num_classes != loaded.num_classes or splits.in_channels != loaded.in_chans:
            raise IGCError(
                f"{splits.name} has {splits.num_classes} classes and {splits.in_channels} "
                f"channels, but the checkpoint's model was built for {loaded.num_classes} "
                f"classes and {loaded.in_chans} channels; evaluate it on its own data set "
                f"({loaded.data})")
        model = loaded.model
        channels_last = recipe.channels_last or dev.type == "cpu"
        model.to(dev)
        if channels_last:
            model.to(memory_format=torch.channels_last)
        loader = eval_loader(splits, recipe.eval_augment,
                             batch_size or recipe.eval_batch_size, dev)
        result = evaluate(model, loader, splits.num_classes, dev, channels_last=channels_last,
                          amp=recipe.amp and dev.type == "cuda")
    return {
        "checkpoint": loaded.path, "model": loaded.name, "data": splits.name,
        "data_files": splits.origin, "weights": "ema" if ema else "trained",
        "epoch": state["epoch"], "epochs": recipe.epochs, "images": result.count,
        "loss": result.loss, "top1": result.top1, "top5": result.top5,
        "per_class": {name: acc for name, acc in zip(splits.classes, result.per_class)},
        "eval_augment": recipe.eval_augment, "seconds": result.seconds,
        "images_per_s": result.images_per_s,
    }
