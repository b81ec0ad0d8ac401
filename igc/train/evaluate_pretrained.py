"""Evaluation of a zoo network with given weights (``igc eval NAME --pretrained``): an
ImageNet-style validation folder with the network's own preprocessing, or a built-in data
set's test split.

The preprocessing comes from the network's ``pretrained_cfg`` (timm's rule): the shorter
side resized to ``round(size / crop_pct)`` (256 for 224 at ``crop_pct = 0.875``) with its
``interpolation``, the centre ``size`` x ``size`` crop, then its ``mean`` and ``std``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from igc import checks
from igc.data import BatchAugment, canonical_name, load_dataset, make_loader
from igc.data.folder import load_eval_folder
from igc.errors import IGCError
from igc.models import create_model
from igc.runtime import num_threads
from igc.train.devices import pick_device, set_threads
from igc.train.evaluate import eval_loader, evaluate

__all__ = ["eval_transform", "evaluate_pretrained"]

#: Default batch size: image folders (224 x 224) / the small built-in data sets.
FOLDER_BATCH, TENSOR_BATCH = 50, 256


def eval_transform(cfg: dict[str, Any]) -> tuple[int, int, str, tuple, tuple]:
    """``(size, resize, interpolation, mean, std)`` of a network's evaluation preprocessing
    from its ``pretrained_cfg``; IGCError when the network does not take RGB images."""
    channels, size, _ = cfg["input_size"]
    if channels != 3 or cfg.get("mean") is None or cfg.get("std") is None:
        raise IGCError(f"{cfg['architecture']} takes {channels}-channel input without an RGB "
                       "mean/std; image folders hold RGB images: evaluate it on its own data "
                       f"set ({cfg['dataset']})")
    crop_pct = float(cfg.get("crop_pct") or 1.0)
    if not 0 < crop_pct <= 1:
        raise IGCError(f"crop_pct {crop_pct} of {cfg['architecture']} is outside (0, 1]")
    return (size, round(size / crop_pct), cfg.get("interpolation") or "bilinear",
            tuple(cfg["mean"]), tuple(cfg["std"]))


def _folder_batches(model: torch.nn.Module, data_dir: str | Path, batch_size: int,
                    device: torch.device, num_workers: int):
    size, resize, interpolation, mean, std = eval_transform(model.pretrained_cfg)
    dataset = load_eval_folder(data_dir, size, resize, interpolation)
    if len(dataset.classes) != model.num_classes:
        raise IGCError(f"{data_dir} has {len(dataset.classes)} class folders, but the network "
                       f"predicts {model.num_classes} classes; the class index is the sorted "
                       "folder order, so give one folder per class (all of them)")
    loader = make_loader(dataset, batch_size, augment=BatchAugment(["normalize"], mean, std),
                         num_workers=num_workers,
                         device=device if device.type == "cuda" else None)
    preprocessing = {"resize": resize, "crop": size, "interpolation": interpolation,
                     "mean": list(mean), "std": list(std)}
    return loader, dataset.classes, str(Path(data_dir)), preprocessing


def evaluate_pretrained(name: str, pretrained: bool | str | Path = True,
                        data: str | None = None, data_dir: str | Path | None = None,
                        device: str = "auto", batch_size: int | None = None,
                        download: bool = True, hash: str | bool | None = None,
                        num_workers: int = 0) -> dict[str, Any]:
    """Top-1, top-5, loss and per-class accuracy of ``create_model(name,
    pretrained=pretrained, hash=hash)``.

    ``data``: ``"imagefolder"`` (the default for ImageNet networks) evaluates the
    validation folder ``data_dir`` (``DIR/<class>/*``, or ``DIR/val/<class>/*``) with the
    network's preprocessing (module docstring); any other data set name (default: the one
    the network is registered for) evaluates that set's test split. Returns a JSON-ready
    dict; the caller's torch thread count is restored.
    """
    if batch_size is not None:
        checks.check_int(batch_size, "batch size", 1, checks.MAX_BATCH)
    if data_dir is not None:
        checks.check_existing(data_dir, "--data-dir", "dir")
    checks.check_int(num_workers, "workers", 0, 64)
    dev = pick_device(device)
    with num_threads():
        set_threads(0, 1)
        model = create_model(name, pretrained=pretrained, hash=hash)
        cfg = model.pretrained_cfg
        data_name = canonical_name(data or ("imagefolder" if cfg["dataset"] == "imagenet"
                                            else cfg["dataset"]))
        if data_name == "imagefolder":
            if data_dir is None:
                raise IGCError("evaluating on an image folder needs --data-dir VAL_DIR "
                               "holding one folder of images per class")
            batches, classes, origin, preprocessing = _folder_batches(
                model, data_dir, batch_size or FOLDER_BATCH, dev, num_workers)
        else:
            splits = load_dataset(data_name, data_dir, download)
            if (splits.num_classes, splits.in_channels) != (model.num_classes,
                                                            cfg["input_size"][0]):
                raise IGCError(f"{splits.name} has {splits.num_classes} classes and "
                               f"{splits.in_channels} channels; {name} was built for "
                               f"{model.num_classes} and {cfg['input_size'][0]}: evaluate it "
                               f"on {cfg['dataset']}")
            batches = eval_loader(splits, ["normalize"], batch_size or TENSOR_BATCH, dev)
            classes, origin = splits.classes, splits.origin
            preprocessing = {"mean": list(splits.mean), "std": list(splits.std)}
        model.to(dev)
        result = evaluate(model, batches, model.num_classes, dev)
    weights = cfg.get("weights") or {}
    return {
        "model": cfg["architecture"], "weights": weights.get("url") or weights.get("file"),
        "converted_from": weights.get("converted_from"), "data": data_name,
        "data_files": origin, "preprocessing": preprocessing, "images": result.count,
        "loss": result.loss, "top1": result.top1, "top5": result.top5,
        "per_class": dict(zip(classes, result.per_class)), "seconds": result.seconds,
        "images_per_s": result.images_per_s,
    }
