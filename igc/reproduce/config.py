"""What identifies a reproduction's results: the data set, the budget and the resolved
recipe (:class:`Config`), the output folder that holds them, and the budget's data.

An output folder belongs to one configuration: ``OUT/reproduce.json`` records it, and a
command with another configuration (data set, budget, epochs, subset, recipe) is refused
with one line instead of mixing runs. Seeds, threads, the device and the targets are not
part of the identity: more seeds or targets can be added to a folder later, and runs may
be spread over machines.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from igc.data import DatasetSplits, TensorImageDataset, canonical_name, load_dataset
from igc.errors import IGCError
from igc.files.atomic import atomic_write
from igc.files.lock import FolderLock
from igc.reproduce.budgets import Budget
from igc.train import load_recipe, override

#: Version of the run layout and configuration format (bump to refuse old caches).
LAYOUT = 2
CONFIG_FILE = "reproduce.json"


@dataclass(frozen=True)
class Config:
    """Everything that identifies a reproduction's results (not the seeds or targets), and
    how runs are executed (device, threads)."""

    data: str
    budget: Budget
    epochs: int | None = None  # --epochs
    data_dir: str | None = None
    seeds: int | None = None  # --seeds
    device: str = "auto"
    threads: int | None = None  # --threads (None: the budget's)

    @property
    def num_seeds(self) -> int:
        return self.seeds or self.budget.seeds

    def seeds_for(self, target: str, arm: str | None = None) -> int:
        """Seeds of network ``arm`` of ``target`` (without ``arm``: of its other
        networks): ``--seeds``, else the budget's for it."""
        return self.seeds or self.budget.seeds_for(target, arm)

    def seeds_text(self, target: str) -> str:
        """The seeds of ``target``'s networks in words (``--seeds``, else the budget's)."""
        return str(self.seeds) if self.seeds else self.budget.seeds_text(target)

    @property
    def num_threads(self) -> int:
        return self.budget.threads if self.threads is None else self.threads

    def recipe(self):
        """The resolved base recipe (seed 0); each run sets its own seed and model."""
        b = self.budget
        base = load_recipe(b.recipe)
        changes: list[tuple[str, Any]] = [("eval_every", b.eval_every), ("seed", 0),
                                          ("data", self.data), ("model", ""),
                                          ("model_args", {}), ("threads", self.num_threads),
                                          ("val_images", b.val_images)]
        epochs = self.epochs or b.epochs
        if epochs:
            changes.append(("epochs", epochs))
            if base.schedule == "multistep" and base.milestones:
                # keep the milestones at the same fractions of training
                scaled = sorted({max(1, round(m * epochs / base.epochs))
                                 for m in base.milestones if m < base.epochs})
                changes.append(("milestones", [m for m in scaled if m < epochs] or []))
        batch = b.batch_size or base.batch_size
        if b.train_size is not None and b.train_size < batch:
            batch = max(1, b.train_size // 2)
        if batch != base.batch_size:
            changes.append(("batch_size", batch))
        return override(base, changes)

    def identity(self) -> dict[str, Any]:
        """What must agree for two reproductions to share an output folder."""
        recipe = self.recipe().to_dict()
        for key in ("seed", "name", "threads", "adaptive_threads"):  # speed only
            recipe.pop(key, None)
        if recipe.get("val_images") == 0:  # no held-out split: as before the key existed
            recipe.pop("val_images", None)
            recipe.pop("val_seed", None)
        return {"format": LAYOUT, "data": canonical_name(self.data),
                "budget": self.budget.name, "train_size": self.budget.train_size,
                "test_size": self.budget.test_size, "image_size": self.budget.image_size,
                "stem_stride": self.budget.stem_stride,
                "stem_stride_8l": self.budget.stem_stride_8l, "recipe": recipe}


def check_out_dir(out: Path, config: Config, create: bool = True) -> None:
    """Create ``out`` for ``config`` or check that it already belongs to it (IGCError with
    one line otherwise). ``create=False``: check only, write nothing."""
    identity = config.identity()
    path = out / CONFIG_FILE
    if out.exists() and not out.is_dir():
        raise IGCError(f"--out {out} is a file, not a directory; choose another --out")
    if path.is_file():
        try:
            held = json.loads(path.read_text(encoding="utf-8"))["config"]
            if not isinstance(held, dict):
                raise TypeError
        except (OSError, ValueError, KeyError, TypeError):
            raise IGCError(f"{path} is damaged; delete {out} or choose another --out") from None
        if held != identity:
            diff = [k for k in sorted(set(held) | set(identity))
                    if held.get(k) != identity.get(k)]
            shown = ", ".join(f"{k}: {_short(held.get(k))} there, {_short(identity.get(k))} "
                              f"now" for k in diff[:3])
            raise IGCError(f"{out} holds results of another configuration ({shown}); use "
                           f"another --out or delete {out}")
        return
    if out.is_dir() and any((out / name).is_dir() for name in _run_folders()):
        raise IGCError(f"{out} holds runs but no {CONFIG_FILE}; use another --out or delete "
                       f"{out}")
    if not create:
        return
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise IGCError(f"cannot write to --out {out} ({exc.strerror or exc})") from None
    atomic_write(path, json.dumps({"config": identity}, indent=2) + "\n", "--out configuration")


@contextmanager
def own_out_dir(out: Path, config: Config, shared: bool = False) -> Iterator[None]:
    """Hold ``out``'s lock while the block runs, after :func:`check_out_dir` (IGCError
    naming the holder's PID when another process holds it). If the block fails before any
    run folder holds something, the ``reproduce.json`` this call wrote is removed (and
    ``out`` too when this call made it and it is empty), so the corrected command is not
    refused as "another configuration". ``shared``: shards (``--shard i/n``) share the
    folder with each other (each run has its own lock), not with an unsharded run."""
    path = out / CONFIG_FILE
    with FolderLock(out, shared=shared):
        fresh = not path.exists()
        check_out_dir(out, config)
        try:
            yield
        except BaseException:
            if fresh and not any(_holds(out / name) for name in _run_folders()):
                path.unlink(missing_ok=True)
            raise


def _holds(folder: Path) -> bool:
    try:
        return folder.is_dir() and any(folder.iterdir())
    except OSError:
        return True


def _run_folders() -> list[str]:
    """Folders of a reproduction's runs: one per empirical target (``runs``: layout 1)."""
    # the registry imports the zoo (torch): not needed to check an output folder
    from igc.reproduce.targets import GROUPS

    return ["runs", *GROUPS["empirical"]]


def _short(value: Any) -> str:
    if isinstance(value, dict):
        return "a different recipe"
    return str(value)


# ---------------------------------------------------------------------------------- data

_DATA_CACHE: dict[tuple, Any] = {}


def load_data(config: Config):
    """The data set of ``config``, cut to the budget's fixed subset (and image size)."""

    b = config.budget
    key = (config.data, config.data_dir, b.train_size, b.test_size, b.image_size)
    if key in _DATA_CACHE:
        return _DATA_CACHE[key]
    splits = load_dataset(config.data, config.data_dir)

    def cut(split, size: int | None, salt: int):
        if not isinstance(split, TensorImageDataset):
            if size is None and not b.image_size:
                return split
            raise IGCError(f"the {b.name} budget takes a subset of an in-memory data set; "
                           f"{config.data} is file-backed: use --budget full")
        images, labels = split.images, split.labels
        if size is not None and size < len(labels):
            gen = torch.Generator().manual_seed(1234 + salt)
            index = torch.randperm(len(labels), generator=gen)[:size].sort().values
            images, labels = images[index], labels[index]
        if b.image_size and images.shape[-1] != b.image_size:
            images = torch.nn.functional.interpolate(
                images.float(), size=(b.image_size, b.image_size), mode="area"
            ).round().clamp(0, 255).to(torch.uint8)
        return TensorImageDataset(images.contiguous(), labels)

    out = DatasetSplits(splits.name, cut(splits.train, b.train_size, 0),
                        cut(splits.test, b.test_size, 1), list(splits.classes),
                        splits.in_channels, b.image_size or splits.image_size, splits.mean,
                        splits.std)
    _DATA_CACHE[key] = out
    return out
