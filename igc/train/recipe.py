"""Training recipes: TOML data files, validated, overridable from the command line.

A recipe is one flat TOML table (see ``igc/recipes/*.toml``); every key has a default here,
so a recipe file states only what differs. Keys (type, default):

=================  ======================================================================
key                meaning
=================  ======================================================================
description        one line shown by ``igc train``
model              default model name for ``igc train`` without ``--model`` ("" = none)
model_args         table of overrides passed to the model builder (e.g. ``stem_stride = 2``)
data               default data set name for ``igc train`` without ``--data`` ("" = none)
epochs             number of training epochs
batch_size         GLOBAL batch (split evenly over the processes of a distributed run)
eval_batch_size    batch size of evaluation (per process)
lr                 peak learning rate (for ``reference_batch`` when scaling)
lr_scaling         ``none`` | ``linear`` | ``sqrt``: scale ``lr`` by the ratio of
                   ``batch_size`` to ``reference_batch``
reference_batch    the batch ``lr`` was tuned for (0 or absent: the file's own batch_size)
momentum, nesterov SGD momentum and Nesterov flag
weight_decay       L2 weight decay
decay_bn_bias      false: no weight decay on BatchNorm weights and biases (1-d parameters)
schedule           ``multistep`` (x ``gamma`` at each of ``milestones``), ``cosine`` (to
                   ``min_lr``), ``exponential`` (x ``gamma`` every epoch), ``constant``
milestones, gamma  see ``schedule``
warmup_epochs      linear warm-up from ``warmup_factor * lr`` (fractional epochs allowed)
min_lr             the floor of ``cosine``
label_smoothing    cross-entropy label smoothing
train_augment      augmentation spec of training batches (:class:`igc.data.BatchAugment`)
eval_augment       augmentation spec of evaluation batches (e.g. ``["normalize"]``)
image_size         image folders: training crop / evaluation centre crop (0 = data default)
resize_size        image folders: evaluation resize before the centre crop (0 = 8/7 crop)
eval_every         evaluate every N epochs (0 = only after the last epoch; the last
                   epoch is always evaluated)
drop_last          drop the incomplete last training batch of an epoch
amp, channels_last, compile, sync_bn
                   mixed precision, channels-last memory, ``torch.compile``, SyncBatchNorm
training_form      how the IGC blocks compute while training (:mod:`igc.layers.forms`):
                   ``auto`` (shuffles absorbed into adjacent 1x1 factors where that is
                   measured to be cheaper), ``grouped`` (grouped convolutions and shuffle
                   copies) or ``absorbed``; the same function and parameters in every form
threads            ``torch.set_num_threads``; 0 = the cores other processes leave free
                   when the run starts (:mod:`igc.train.threads`; in a distributed run:
                   the cores per process)
adaptive_threads   with ``threads = 0``: switch to one thread while other processes keep
                   the machine busy and back when it is idle (true; false keeps the first
                   choice, so that the run does not depend on the machine's load)
seed               the random seed (weights, data order, augmentation)
val_images         training images held out as the validation split (stratified by
                   class, :mod:`igc.data.holdout`): evaluated every ``eval_every``
                   epochs, the test split only after the last; 0 = none (the test split
                   is then evaluated every ``eval_every`` epochs); -1 = the data set's
                   default (5,000 for Fashion-MNIST, MNIST and CIFAR; none for data sets
                   that ship a validation set). ``run.json`` and ``recipe.toml`` record
                   the number resolved
val_seed           the seed of the held-out images (fixed: 0, the same split for every
                   training seed)
grad_clip          clip the gradient norm (0 = off)
log_every          steps between progress updates and loss checks
ema                keep an exponential moving average of the weights (and BatchNorm
                   buffers) with ``torch.optim.swa_utils.AveragedModel``; it is evaluated
                   beside the trained weights (``ema_top1``...) and checkpointed
ema_decay          the average's decay per optimizer step (e.g. 0.999)
=================  ======================================================================

``--set key=value`` overrides any key (``value`` in TOML syntax; a bare word is a string;
``model_args.width=48`` sets one entry of a table).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

from igc import checks
from igc.errors import IGCError, unknown_name
from igc.files.atomic import not_a_file
from igc.files.schema import check_plain
from igc.files.tomlfile import dumps_toml, parse_toml, read_toml, toml_value, write_toml
from igc.names import TRAINING_FORMS

SCHEDULES = ("multistep", "cosine", "exponential", "constant")
#: The data set ``igc train`` uses when none is given, and the recipe used for a data set
#: when none is given.
DEFAULT_DATA = "fashion-mnist"
DEFAULT_RECIPE = {"fashion-mnist": "fashion-mnist-cpu", "mnist": "fashion-mnist-cpu",
                  "cifar10": "cifar", "cifar100": "cifar", "tiny-imagenet": "tiny-imagenet",
                  "imagefolder": "imagenet"}
LR_SCALINGS = ("none", "linear", "sqrt")


@dataclass
class Recipe:
    """A resolved training recipe (see the module docstring for every key)."""

    name: str = "custom"
    description: str = ""
    model: str = ""
    model_args: dict = field(default_factory=dict)
    data: str = ""
    epochs: int = 1
    batch_size: int = 128
    eval_batch_size: int = 256
    lr: float = 0.1
    lr_scaling: str = "none"
    reference_batch: int = 0
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4
    decay_bn_bias: bool = True
    schedule: str = "multistep"
    milestones: list = field(default_factory=list)
    gamma: float = 0.1
    warmup_epochs: float = 0.0
    warmup_factor: float = 0.1
    min_lr: float = 0.0
    label_smoothing: float = 0.0
    train_augment: list = field(default_factory=lambda: ["normalize"])
    eval_augment: list = field(default_factory=lambda: ["normalize"])
    image_size: int = 0
    resize_size: int = 0
    eval_every: int = 1
    drop_last: bool = True
    amp: bool = False
    channels_last: bool = False
    compile: bool = False
    sync_bn: bool = False
    training_form: str = "auto"
    threads: int = 0
    adaptive_threads: bool = True
    seed: int = 0
    val_images: int = -1
    val_seed: int = 0
    grad_clip: float = 0.0
    log_every: int = 20
    ema: bool = False
    ema_decay: float = 0.999

    # ---------------------------------------------------------------- derived values
    def scaled_lr(self) -> float:
        """``lr`` scaled for ``batch_size`` as ``lr_scaling`` says."""
        ref = self.reference_batch or self.batch_size
        ratio = self.batch_size / ref
        if self.lr_scaling == "linear":
            return self.lr * ratio
        if self.lr_scaling == "sqrt":
            return self.lr * math.sqrt(ratio)
        return self.lr

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_toml(self) -> str:
        """The recipe as TOML (readable again by :func:`load_recipe`)."""
        return dumps_toml(self.to_dict(), f"igc training recipe {self.name!r}, resolved")

    def save(self, path: str | Path) -> None:
        """Write the recipe as TOML to ``path`` atomically."""
        write_toml(path, self.to_dict(), f"igc training recipe {self.name!r}, resolved",
                   "recipe")


_TYPES = {f.name: f.type for f in fields(Recipe)}
_DEFAULTS = Recipe()


# ------------------------------------------------------------------------------ validation
def _coerce(key: str, value: Any) -> Any:
    """``value`` as the type of recipe field ``key``, or IGCError."""
    kind = _TYPES[key]
    bad = IGCError(f"recipe key {key!r} must be {_kind_name(kind)}, got {value!r}")
    if kind == "bool":
        if not isinstance(value, bool):
            raise bad
        return value
    if kind == "int":
        if isinstance(value, bool):
            raise bad
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int):
            raise bad
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad
        return float(value)
    if kind == "str":
        if not isinstance(value, str):
            raise bad
        return value
    if kind == "list":
        if isinstance(value, str) and key.endswith("augment"):
            value = [value]
        if not isinstance(value, list | tuple):
            raise bad
        return list(value)
    if kind == "dict":
        if not isinstance(value, Mapping):
            raise bad
        return dict(value)
    raise AssertionError(kind)


def _kind_name(kind: str) -> str:
    return {"bool": "true or false", "int": "an integer", "float": "a number",
            "str": "a string", "list": "a list", "dict": "a table"}[kind]


def validate(recipe: Recipe) -> Recipe:
    """Check the values of ``recipe`` (types are checked on the way in); returns it.

    Ranges use the shared limits of :mod:`igc.checks` (e.g. batch sizes up to
    ``MAX_BATCH``, seeds up to ``MAX_SEED``)."""
    def need(ok: bool, message: str) -> None:
        if not ok:
            raise IGCError(f"recipe {recipe.name!r}: {message}")

    def within(value: float, key: str, lo: float, hi: float, label: str = "") -> None:
        def show(x: float) -> str:
            return f"{x:,}" if isinstance(x, int) else f"{x:g}"

        label = label or key
        need(value >= lo, f"{label} must be at least {show(lo)}, got {show(value)}")
        need(value <= hi, f"{label} must be at most {show(hi)}, got {show(value)}")

    r = recipe
    need(len(r.name) <= checks.MAX_NAME and len(r.description) <= checks.MAX_TEXT,
         "name and description must be at most 200 and 2000 characters")
    within(r.epochs, "epochs", 1, checks.MAX_EPOCHS)
    within(r.batch_size, "batch_size", 1, checks.MAX_BATCH, "batch size")
    within(r.eval_batch_size, "eval_batch_size", 1, checks.MAX_BATCH)
    need(all(math.isfinite(getattr(r, k)) for k, t in _TYPES.items() if t == "float"),
         "every number must be finite")
    need(r.lr > 0, f"lr must be a positive number, got {r.lr}")
    within(r.lr, "lr", 0, checks.MAX_LR)
    need(r.lr_scaling in LR_SCALINGS,
         f"lr_scaling must be one of {', '.join(LR_SCALINGS)}, got {r.lr_scaling!r}")
    within(r.reference_batch, "reference_batch", 0, checks.MAX_BATCH)
    need(0 <= r.momentum < 1, f"momentum must be in [0, 1), got {r.momentum}")
    need(not r.nesterov or r.momentum > 0, "nesterov needs a momentum > 0")
    need(r.weight_decay >= 0, f"weight_decay must be >= 0, got {r.weight_decay}")
    within(r.weight_decay, "weight_decay", 0, 1)
    if r.schedule not in SCHEDULES:
        raise unknown_name("schedule", r.schedule, SCHEDULES)
    need(all(isinstance(m, int) and not isinstance(m, bool) and 0 < m <= checks.MAX_EPOCHS
             for m in r.milestones) and len(r.milestones) <= 1000,
         f"milestones must be positive integers (epochs), got {r.milestones}")
    need(list(r.milestones) == sorted(r.milestones), "milestones must increase")
    need(0 < r.gamma <= 1, f"gamma must be in (0, 1], got {r.gamma}")
    within(r.warmup_epochs, "warmup_epochs", 0, checks.MAX_EPOCHS)
    need(0 <= r.warmup_factor <= 1, "warmup_factor must be in [0, 1]")
    need(r.min_lr >= 0, "min_lr must be >= 0")
    within(r.min_lr, "min_lr", 0, checks.MAX_LR)
    need(0 <= r.label_smoothing < 1, "label_smoothing must be in [0, 1)")
    need(r.image_size >= 0 and r.resize_size >= 0, "image sizes must be >= 0")
    within(r.image_size, "image_size", 0, checks.MAX_IMAGE_SIZE)
    within(r.resize_size, "resize_size", 0, checks.MAX_IMAGE_SIZE)
    within(r.eval_every, "eval_every", 0, checks.MAX_EPOCHS)
    within(r.threads, "threads", 0, checks.MAX_THREADS)
    need(r.training_form in TRAINING_FORMS, f"training_form must be one of "
         f"{', '.join(TRAINING_FORMS)}, got {r.training_form!r}")
    need(r.seed >= 0, f"seed must be >= 0, got {r.seed}")
    within(r.seed, "seed", 0, checks.MAX_SEED)
    within(r.val_images, "val_images", -1, 10**9, "val_images (-1: the data set's default)")
    within(r.val_seed, "val_seed", 0, checks.MAX_SEED)
    need(r.grad_clip >= 0, "grad_clip must be >= 0")
    within(r.log_every, "log_every", 1, 1 << 30)
    need(0 < r.ema_decay < 1, f"ema_decay must be in (0, 1), got {r.ema_decay}")
    check_plain(r.model_args, f"recipe {r.name!r}: model_args", "model options are widths, "
                "depths and branch sizes: fix the value", max_number=checks.MAX_OPTION)
    taken = sorted({"num_classes", "in_chans"} & set(r.model_args))
    need(not taken, f"model_args cannot set {', '.join(taken)}: the data set decides "
         "the classes and channels (choose the data set with --data)")
    check_plain(r.train_augment + r.eval_augment, f"recipe {r.name!r}: augment",
                "fix the recipe", size=64)
    from igc.data import BatchAugment  # torch: the CLI imports this module before parsing

    for key in ("train_augment", "eval_augment"):
        try:
            BatchAugment(getattr(r, key), (0.0,), (1.0,))
        except IGCError as exc:
            raise IGCError(f"recipe {r.name!r} {key}: {exc}") from None
    return recipe


def from_mapping(data: Mapping[str, Any], name: str = "custom") -> Recipe:
    """A validated :class:`Recipe` from a table (unknown keys suggest the nearest)."""
    values: dict[str, Any] = {"name": name}
    for key, value in data.items():
        if key not in _TYPES:
            raise unknown_name("recipe key", key, _TYPES)
        values[key] = _coerce(key, value)
    recipe = Recipe(**values)
    if recipe.reference_batch == 0:  # the batch this recipe's lr was written for
        recipe.reference_batch = recipe.batch_size
    return validate(recipe)


# ------------------------------------------------------------------------------ files
def _recipe_dir():
    return resources.files("igc").joinpath("recipes")


def list_recipes() -> list[str]:
    """Names of the shipped recipes (``igc/recipes/*.toml``)."""
    return sorted(p.name[:-5] for p in _recipe_dir().iterdir() if p.name.endswith(".toml"))


def load_recipe(name_or_path: str | Path) -> Recipe:
    """A shipped recipe by name (``cifar``) or a TOML file (``runs/x/recipe.toml``)."""
    text = str(name_or_path)
    if not text.strip():
        raise IGCError("the recipe name is empty; give a shipped recipe name "
                       f"({', '.join(list_recipes())}) or a .toml file")
    path = checks.check_path(text, "recipe file")
    if text.endswith(".toml") or path.is_file() or "/" in text:
        if not path.is_file():
            raise IGCError(f"{not_a_file(path, 'recipe file')}; give a shipped recipe name "
                           f"({', '.join(list_recipes())}) or an existing .toml file")
        data = read_toml(path, "recipe")
        name = data.pop("name", path.stem)
        return from_mapping(data, checks.check_name(str(name), f"recipe {path} name"))
    names = list_recipes()
    if text not in names:
        raise unknown_name("recipe", text, names)
    data = parse_toml(_recipe_dir().joinpath(f"{text}.toml").read_text("utf-8"),
                      f"recipe {text}")
    data.pop("name", None)
    return from_mapping(data, text)


# ------------------------------------------------------------------------------ overrides
def parse_value(text: str) -> Any:
    """A ``--set`` value: TOML syntax (``0.1``, ``true``, ``[1, 2]``, ``"a b"``), else the
    bare text as a string."""
    try:
        return toml_value(text)
    except ValueError:
        return text.strip()


def parse_assignment(item: str) -> tuple[str, Any]:
    key, sep, value = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise IGCError(f"--set expects KEY=VALUE (e.g. --set lr=0.05), got {item!r}")
    return key, parse_value(value.strip())


def override(recipe: Recipe, assignments: Iterable[str | tuple[str, Any]]) -> Recipe:
    """A copy of ``recipe`` with ``key=value`` assignments applied and validated."""
    data = recipe.to_dict()
    name = data.pop("name")
    for item in assignments:
        key, value = parse_assignment(item) if isinstance(item, str) else item
        table, dot, sub = key.partition(".")
        if dot:
            if table not in _TYPES or _TYPES[table] != "dict":
                tables = [k for k, t in _TYPES.items() if t == "dict"]
                raise IGCError(f"--set {key}: only tables ({', '.join(tables)}) take a "
                               "dotted key")
            data[table] = {**data[table], sub: value}
        else:
            if key not in _TYPES or key == "name":
                raise unknown_name("recipe key", key, [k for k in _TYPES if k != "name"])
            data[key] = value
    return from_mapping(data, name)
