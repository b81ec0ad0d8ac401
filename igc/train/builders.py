"""The named builders of a training run: process, run folder, recipe, model, loaders,
optimiser, and the :class:`~igc.train.state.TrainState` that holds what training changes.

:meth:`igc.train.trainer.Trainer.setup` calls them in this order. Each takes what it needs
and returns what it builds (nothing is written to disk: the run folder is only checked
here and made with the first checkpoint), so a script or a test can build one piece alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from igc.analysis.probe import device_memory, memory_limit
from igc.data import BatchAugment, DatasetSplits, make_loader
from igc.data.holdout import resolve_val_images, with_validation
from igc.errors import IGCError
from igc.files.run_dir import RunFolder
from igc.formatting import shorten
from igc.layers.chain import set_training_form
from igc.train import distributed as D
from igc.train.checkpoint import check_resumable, load_checkpoint
from igc.train.config import RunConfig
from igc.train.devices import pick_device
from igc.train.evaluate import eval_loader
from igc.train.network import build_model
from igc.train.optim import build_ema, build_optimizer, build_scheduler
from igc.train.probe import probe
from igc.train.recipe import Recipe, from_mapping, override
from igc.train.splits import load_splits
from igc.train.state import TrainState, position_samples


# ------------------------------------------------------------------------------ process
def build_process(config: RunConfig) -> tuple[torch.device, D.DistInfo]:
    """The device and this process's place in a distributed job."""
    device = pick_device(config.device)
    dist = D.setup(device.type)
    if dist.enabled and device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
    return device, dist


def open_run_folder(config: RunConfig, dist: D.DistInfo) -> RunFolder | None:
    """Rank 0's checked :class:`RunFolder` (the others get None); every rank raises the
    same error when the folder cannot be used."""
    folder, error = None, None
    if dist.is_main:
        try:
            folder = RunFolder.open(config.out, resume=config.resume, force=config.force)
        except IGCError as exc:
            error = str(exc)
    D.agree(error, dist)
    return folder


def load_resume_state(config: RunConfig, dist: D.DistInfo) -> dict | None:
    """The checkpoint to resume (read on rank 0, sent to the others), checked for every
    field a resume uses; None for a new run."""
    if not config.resume:
        return None
    loaded: tuple[dict | None, str | None] = (None, None)
    if dist.is_main:
        try:
            loaded = (check_resumable(load_checkpoint(config.out)), None)
        except IGCError as exc:
            loaded = (None, str(exc))
    state, error = D.broadcast(loaded, dist)
    if error:
        raise IGCError(error)
    return state


# ------------------------------------------------------------------------------ recipe
def build_recipe(config: RunConfig, state: dict | None,
                 dist: D.DistInfo) -> tuple[Recipe, list[str]]:
    """The run's recipe and, on resume, the changes against the checkpoint's (``"key old
    -> new"``). A resume must keep the model and data set, and may change the batch size
    or the number of processes only at an epoch boundary (the position inside an epoch
    is counted in the checkpoint's batches)."""
    if state is None:
        return config.recipe, []
    where = state["path"]
    if state["model"] != config.model:
        raise IGCError(f"the checkpoint in {config.out} is of model {state['model']!r}, not "
                       f"{config.model!r}; resume with --model {state['model']} or choose "
                       "another --out")
    if state.get("data") and state["data"] != config.data:
        raise IGCError(f"the checkpoint in {config.out} was trained on {state['data']}, not "
                       f"{config.data}; resume with --data {state['data']}")
    try:
        held = {k: v for k, v in state["recipe"].items() if k != "name"}
        held.setdefault("val_images", 0)  # a checkpoint older than the validation split
        saved = from_mapping(held, str(state["recipe"].get("name", "custom")))
    except IGCError as exc:
        raise IGCError(f"checkpoint {where} holds a bad recipe ({exc}); it cannot be "
                       "resumed") from None
    recipe = override(saved, config.overrides) if config.overrides else saved
    for key in ("val_images", "val_seed"):  # the split decides which images train
        if getattr(recipe, key) != getattr(saved, key):
            raise IGCError(f"the run in {config.out} was trained with {key} = "
                           f"{getattr(saved, key)}; a resume cannot change its validation "
                           f"split: drop --val / --set {key}, or start a new run")
    before, after = saved.to_dict(), recipe.to_dict()
    changes = [f"{k} {shorten(repr(before[k]), 40)} -> {shorten(repr(v), 40)}"
               for k, v in after.items() if before[k] != v]
    loader = state.get("loader") or {}
    old_world = int(loader.get("world_size", 1))
    if old_world != dist.world_size:
        changes.append(f"processes {old_world} -> {dist.world_size}")
    samples = position_samples(state, saved.batch_size)
    if samples and (recipe.batch_size != saved.batch_size or old_world != dist.world_size):
        raise IGCError(
            f"the checkpoint stopped inside epoch {state['epoch'] + 1} after {samples:,} "
            f"images at batch {saved.batch_size} on {old_world} process(es); a new batch "
            f"size or process count can only take over at an epoch boundary: resume with "
            f"--batch-size {saved.batch_size} on {old_world} process(es) to finish the epoch")
    return recipe, changes


# ------------------------------------------------------------------------------ model
def build_network(config: RunConfig, splits: DatasetSplits, recipe: Recipe,
                  device: torch.device, dist: D.DistInfo) -> tuple[nn.Module, int, int | None]:
    """The model on ``device`` (SyncBatchNorm, channels-last as the recipe says) with its
    parameter and multiply-add counts; the weights are drawn from ``recipe.seed``."""
    torch.manual_seed(recipe.seed)
    side = BatchAugment(recipe.train_augment, splits.mean, splits.std).plan(
        splits.in_channels, splits.image_size, splits.image_size)[0]  # what training feeds
    model = build_model(config.model, splits, recipe.model_args,
                        batch=recipe.batch_size // dist.world_size,
                        memory=device_memory(device), size=max(side, splits.image_size))
    params, macs = probe(model, splits, config.model)
    if dist.enabled and recipe.sync_bn:
        if device.type != "cuda":
            raise IGCError("--sync-bn needs CUDA: PyTorch's SyncBatchNorm does not run on "
                           "CPU; drop --sync-bn for CPU processes")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    set_training_form(model, recipe.training_form)
    model = model.to(device)
    if recipe.channels_last:
        model.to(memory_format=torch.channels_last)
    return model, params, macs


def build_splits(config: RunConfig, recipe: Recipe,
                 splits: DatasetSplits | None) -> tuple[DatasetSplits, int]:
    """The data set (``splits`` when given), checked, with ``recipe.val_images`` training
    images held out as its ``val`` split (:mod:`igc.data.holdout`; none when ``splits``
    already has one), and that number resolved."""
    loaded = (splits or load_splits(config.data, config.data_dir, config.download,
                                    recipe)).check()
    if loaded.val is not None:
        return loaded, len(loaded.val)
    n = resolve_val_images(recipe.val_images, loaded.name, len(loaded.train))
    return with_validation(loaded, n, recipe.val_seed).check(), n


# ------------------------------------------------------------------------------ loaders
def build_loaders(config: RunConfig, splits: DatasetSplits, recipe: Recipe,
                  device: torch.device, dist: D.DistInfo) -> tuple[Any, Any]:
    """The training loader (this rank's shard of the global batch, augmented) and the
    evaluation loader (this rank's disjoint part of the test split)."""
    if recipe.batch_size % dist.world_size:
        raise IGCError(f"the global batch size {recipe.batch_size} does not split evenly "
                       f"over {dist.world_size} processes; use a multiple of "
                       f"{dist.world_size}")
    augment = BatchAugment(recipe.train_augment, splits.mean, splits.std)
    augment.check_batch(recipe.batch_size // dist.world_size, splits.in_channels,
                        splits.image_size, memory_limit(device))
    train = make_loader(
        splits.train, recipe.batch_size // dist.world_size, shuffle=True,
        drop_last=recipe.drop_last, augment=augment, seed=recipe.seed, rank=dist.rank,
        world_size=dist.world_size, num_workers=config.num_workers,
        device=device if device.type == "cuda" else None)
    if len(train) == 0:
        raise IGCError(f"the training split has too few images ({len(splits.train)}) for "
                       f"one batch of {recipe.batch_size}; lower --batch-size")
    BatchAugment(recipe.eval_augment, splits.mean, splits.std).check_batch(
        recipe.eval_batch_size, splits.in_channels, splits.image_size, memory_limit(device),
        "eval_augment")
    test = eval_loader(splits, recipe.eval_augment, recipe.eval_batch_size, device, dist,
                       config.num_workers)
    return train, test


def build_val_loader(config: RunConfig, splits: DatasetSplits, recipe: Recipe,
                     device: torch.device, dist: D.DistInfo) -> Any:
    """The evaluation loader of the validation split (this rank's part), or None when the
    data set has none."""
    if splits.val is None:
        return None
    return eval_loader(splits, recipe.eval_augment, recipe.eval_batch_size, device, dist,
                       config.num_workers, split="val")


# ------------------------------------------------------------------------------ optimiser
@dataclass
class Optimisation:
    """What updates the weights: optimizer, gradient scaler, loss, the moving average of
    the weights (``None`` unless ``recipe.ema``) and the peak learning rate."""

    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    criterion: nn.Module
    ema: nn.Module | None
    lr: float


def build_optimiser(model: nn.Module, recipe: Recipe, device: torch.device) -> Optimisation:
    """SGD with the recipe's (batch-scaled) learning rate, the AMP gradient scaler (CUDA),
    label-smoothed cross-entropy and the EMA of the weights."""
    lr = recipe.scaled_lr()
    return Optimisation(
        optimizer=build_optimizer(model, recipe, lr),
        scaler=torch.amp.GradScaler("cuda", enabled=recipe.amp and device.type == "cuda"),
        criterion=nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing),
        ema=build_ema(model, recipe.ema_decay) if recipe.ema else None, lr=lr)


def build_state(model: nn.Module, opt: Optimisation, recipe: Recipe, dist: D.DistInfo,
                steps_per_epoch: int, resume: dict | None = None) -> TrainState:
    """The run's :class:`TrainState` around ``model`` and ``opt``: loaded from the checkpoint
    ``resume`` (checked, resumable) when given, and its learning-rate schedule positioned
    at the step it stopped at (``steps_per_epoch`` at the recipe's batch size)."""
    state = TrainState(model, opt.optimizer, opt.scaler, opt.ema, recipe.batch_size, dist)
    if resume is not None:
        state.load_state_dict(resume)
    state.scheduler = build_scheduler(opt.optimizer, recipe, opt.lr, steps_per_epoch,
                                      state.steps_done(steps_per_epoch))
    return state


__all__ = ["Optimisation", "build_loaders", "build_network", "build_optimiser",
           "build_process", "build_recipe", "build_splits", "build_state", "build_val_loader",
           "load_resume_state", "open_run_folder"]
