"""The pieces of a training run around the loop: its configuration and result, the
device and thread choice, the data set and model (with the checks that turn bad input into
one-line errors) and the SIGINT/SIGTERM flag. Run-folder rules: :mod:`igc.files.run_dir`."""

from __future__ import annotations

import shlex
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from igc import checks
from igc.analysis.probe import measure
from igc.data import DatasetSplits, load_dataset
from igc.errors import IGCError
from igc.formatting import count, duration, pct
from igc.runtime import available_cores
from igc.train.recipe import Recipe, validate

#: The most parameters a network may have before it is built (4 GB of float32 weights).
MAX_PARAMS = 10**9
#: The most elements of one activation tensor for one image (1 GiB of float32).
MAX_ACTIVATION = 2**28


class TrainingDiverged(IGCError):
    """The loss became NaN or infinite."""


class Interrupted(Exception):
    """SIGINT/SIGTERM stopped the run after saving a checkpoint; ``code`` is 130 or 143."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class RunConfig:
    """Everything about a run that is not in the recipe."""

    model: str
    data: str
    recipe: Recipe
    out: Path
    data_dir: str | None = None
    device: str = "auto"
    resume: bool = False
    force: bool = False
    quiet: bool = False
    download: bool = True
    num_workers: int = 0
    overrides: list = field(default_factory=list)  # applied on top of a resumed recipe
    command: str = ""

    def check(self) -> RunConfig:
        """``self`` with every field range-checked (the API accepts what the CLI does)."""
        checks.check_name(self.model, "model")
        checks.check_name(self.data, "data set")
        if not isinstance(self.recipe, Recipe):
            raise IGCError(f"recipe must be a Recipe (see igc.train.load_recipe), got "
                           f"{type(self.recipe).__name__}")
        validate(self.recipe)
        self.out = checks.check_path(self.out, "--out")
        if self.data_dir is not None:  # stored absolute: a resume from elsewhere finds it
            self.data_dir = str(checks.check_existing(self.data_dir, "--data-dir",
                                                      "dir").absolute())
        checks.check_name(self.device, "device", 40)
        checks.check_int(self.num_workers, "--workers", 0, checks.MAX_WORKERS)
        if len(self.command) > 100_000:
            raise IGCError("the command line recorded for the run is over 100,000 characters")
        return self

    def resume_command(self) -> str:
        """The ``igc train`` command that continues this run (every option it needs)."""
        parts = ["igc", "train", "--model", self.model, "--data", self.data, "--out",
                 str(self.out)]
        if self.data_dir is not None:
            parts += ["--data-dir", str(self.data_dir)]
        if self.device not in ("auto", ""):
            parts += ["--device", self.device]
        if self.num_workers:
            parts += ["--workers", str(self.num_workers)]
        if not self.download:
            parts.append("--no-download")
        return " ".join(shlex.quote(p) for p in [*parts, "--resume"])


@dataclass
class RunResult:
    """The outcome of :func:`train` (also written to ``summary.json``): ``top1``,
    ``top5`` and ``test_loss`` are the test split's after the last epoch; ``val_*`` the
    validation split's (``val_images`` held out of the training set; None without one).
    ``seconds`` is the wall time summed over every session that trained the run (a resumed
    run has several: ``sessions``, each with its commit, threads and seconds;
    ``session_seconds`` the last one's); ``commits``: every commit that trained part of it."""

    model: str
    data: str
    out: str
    params: int
    macs: int | None
    epochs: int
    top1: float | None
    top5: float | None
    test_loss: float | None
    train_loss: float | None
    seconds: float
    train_seconds: float
    images_per_s: float
    seed: int
    world_size: int
    device: str
    threads: int
    recipe: str = ""
    thread_steps: dict = field(default_factory=dict)
    ema_top1: float | None = None
    ema_top5: float | None = None
    val_images: int = 0
    val_top1: float | None = None
    val_top5: float | None = None
    val_loss: float | None = None
    ema_val_top1: float | None = None
    session_seconds: float | None = None
    sessions: list = field(default_factory=list)
    commits: list = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def summary_line(self) -> str:
        val = (f"; validation {pct(self.val_top1)} on {self.val_images:,} held-out images"
               if self.val_top1 is not None else "")
        return (f"{self.model} on {self.data}: {self.params:,} parameters, "
                f"{count(self.macs)} multiply-adds, top-1 {pct(self.top1)} (test{val}), "
                f"top-5 {pct(self.top5)}, {self.epochs} epochs in {duration(self.seconds)} "
                f"(training {duration(self.train_seconds)}), "
                f"{self.images_per_s:,.0f} images/s")


# ------------------------------------------------------------------------------ helpers
def pick_device(name: str) -> torch.device:
    """``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``."""
    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise IGCError("--device cuda asked for, but no CUDA GPU is available; use "
                           "--device cpu or auto")
        return torch.device(name)
    raise IGCError(f"unknown device {name!r}; use auto, cpu or cuda")


def set_threads(threads: int, procs_per_node: int) -> int:
    """``torch.set_num_threads``: ``threads`` or the cores shared among the processes."""
    n = threads or max(1, available_cores() // max(1, procs_per_node))
    torch.set_num_threads(n)
    return n


def thread_governor(threads: int, procs_per_node: int, device: torch.device,
                    switching: bool = False):
    """A :class:`~igc.train.threads.ThreadGovernor`: for ``threads = 0`` in a single CPU
    process the free cores (``switching``: re-decided during the run), else fixed at
    ``threads`` (or the cores per process)."""
    from igc.train.threads import ThreadGovernor

    n = set_threads(threads, procs_per_node)
    auto = threads == 0 and procs_per_node == 1 and device.type == "cpu"
    return ThreadGovernor(n, auto=auto, switching=auto and switching)


def load_splits(data: str, data_dir: str | None, download: bool,
                recipe: Recipe | dict) -> DatasetSplits:
    get = recipe.get if isinstance(recipe, dict) else lambda k, d=None: getattr(recipe, k, d)
    options = {}
    if get("image_size"):
        options["image_size"] = int(get("image_size"))
    if get("resize_size"):
        options["resize_size"] = int(get("resize_size"))
    return load_dataset(data, data_dir, download, **options)


def build_model(name: str, splits: DatasetSplits, model_args: dict, batch: int = 1,
                memory: int | None = None, size: int | None = None) -> nn.Module:
    """The registry's ``name`` for the data set's classes and channels. Measured on the
    meta device first (nothing allocated), it is refused with IGCError when it has more
    than :data:`MAX_PARAMS` parameters, an activation over :data:`MAX_ACTIVATION` values
    per image, or (given ``memory`` bytes) activations for a training ``batch`` that do
    not fit in that memory; ``size``: the side of the images training feeds it (after the
    augmentations; default the data set's)."""
    from igc.models.registry import create_model

    def build() -> nn.Module:
        return create_model(name, num_classes=splits.num_classes,
                            in_chans=splits.in_channels, **model_args)

    try:
        with torch.device("meta"):
            meta = build()
    except IGCError:
        raise
    except Exception:  # a builder that cannot run on the meta device: no estimate
        return build()
    params = sum(p.numel() for p in meta.parameters())
    try:  # shapes that do not fit are reported by probe()
        acts = measure(meta, splits.in_channels, size or splits.image_size)
        largest, total = acts.largest_leaf, acts.leaves
    except IGCError:
        largest, total = 0, 0
    options = f"{name!r} with {splits.num_classes} classes and options {model_args}"
    if params > MAX_PARAMS:
        raise IGCError(f"model {options} has {params:,} parameters, over the limit of "
                       f"{MAX_PARAMS:,}; check --set model_args and the data set")
    if largest is not None and largest > MAX_ACTIVATION:
        raise IGCError(f"model {options} makes an activation of {largest:,} values per "
                       f"{size or splits.image_size}x{size or splits.image_size} image, "
                       "over the limit of "
                       f"{MAX_ACTIVATION:,}; check --set model_args and the image size")
    need = 4 * total * batch
    if memory is not None and need > memory:
        raise IGCError(f"training {name!r} at batch {batch} keeps about {need / 2**30:,.1f} "
                       f"GiB of activations, more than the {memory / 2**30:,.1f} GiB of "
                       "memory here; lower --batch-size or the model's width")
    return build()


def probe(model: nn.Module, splits: DatasetSplits, name: str) -> tuple[int, int | None]:
    """Parameters and multiply-adds of ``model`` for the data set's images; IGCError when
    the model cannot take them (:func:`igc.analysis.probe.measure`)."""
    size, chans = splits.image_size, splits.in_channels
    params = sum(p.numel() for p in model.parameters())
    shape = measure(model, chans, size, 1, f"model {name!r}", "pick a model for this input "
                    "size", f"{size}x{size} images with {chans} channel(s)").output_shape
    if len(shape) != 2 or shape[1] != splits.num_classes:
        raise IGCError(f"model {name!r} gives outputs of shape {shape} for "
                       f"{size}x{size} images, not (1, {splits.num_classes})")
    from igc.analysis.count import count_macs

    return params, int(count_macs(model, size, chans))


class StopFlag:
    """Set by SIGINT/SIGTERM (the step in progress finishes, then the run saves and stops);
    a second SIGINT interrupts at once."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> StopFlag:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)

    def _handle(self, signum: int, frame: object) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    def request(self, signum: int = signal.SIGINT) -> None:
        self.signum = signum
