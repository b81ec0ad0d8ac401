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
threads            ``torch.set_num_threads``; 0 = every core, dropping to one thread
                   while other processes keep the machine busy (:mod:`igc.train.threads`;
                   in a distributed run: the cores per process)
seed               the random seed (weights, data order, augmentation)
grad_clip          clip the gradient norm (0 = off)
log_every          steps between progress updates and loss checks
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

from igc.errors import IGCError, unknown_name

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

SCHEDULES = ("multistep", "cosine", "exponential", "constant")
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
    threads: int = 0
    seed: int = 0
    grad_clip: float = 0.0
    log_every: int = 20

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
        lines = [f"# igc training recipe {self.name!r}, resolved", ""]
        tables = []
        for key, value in self.to_dict().items():
            if isinstance(value, dict):
                tables.append((key, value))
            else:
                lines.append(f"{key} = {toml_value(value)}")
        for key, table in tables:
            lines += ["", f"[{key}]"] + [f"{k} = {toml_value(v)}" for k, v in table.items()]
        return "\n".join(lines) + "\n"

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_toml(), encoding="utf-8")


_TYPES = {f.name: f.type for f in fields(Recipe)}
_DEFAULTS = Recipe()


def toml_value(value: Any) -> str:
    """A TOML literal for a str, bool, int, float, list or table value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise IGCError(f"cannot write {value!r} into a recipe")


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else toml_value(key)


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
    """Check the values of ``recipe`` (types are checked on the way in); returns it."""
    def need(ok: bool, message: str) -> None:
        if not ok:
            raise IGCError(f"recipe {recipe.name!r}: {message}")

    need(recipe.epochs >= 1, f"epochs must be at least 1, got {recipe.epochs}")
    need(recipe.batch_size >= 1, f"batch size must be at least 1, got {recipe.batch_size}")
    need(recipe.eval_batch_size >= 1,
         f"eval_batch_size must be at least 1, got {recipe.eval_batch_size}")
    need(math.isfinite(recipe.lr) and recipe.lr > 0, f"lr must be a positive number, got "
         f"{recipe.lr}")
    need(recipe.lr_scaling in LR_SCALINGS,
         f"lr_scaling must be one of {', '.join(LR_SCALINGS)}, got {recipe.lr_scaling!r}")
    need(recipe.reference_batch >= 0, "reference_batch must be >= 0")
    need(0 <= recipe.momentum < 1, f"momentum must be in [0, 1), got {recipe.momentum}")
    need(not recipe.nesterov or recipe.momentum > 0, "nesterov needs a momentum > 0")
    need(recipe.weight_decay >= 0, f"weight_decay must be >= 0, got {recipe.weight_decay}")
    if recipe.schedule not in SCHEDULES:
        raise unknown_name("schedule", recipe.schedule, SCHEDULES)
    need(all(isinstance(m, int) and not isinstance(m, bool) and m > 0
             for m in recipe.milestones),
         f"milestones must be positive integers (epochs), got {recipe.milestones}")
    need(list(recipe.milestones) == sorted(recipe.milestones), "milestones must increase")
    need(0 < recipe.gamma <= 1, f"gamma must be in (0, 1], got {recipe.gamma}")
    need(recipe.warmup_epochs >= 0, "warmup_epochs must be >= 0")
    need(0 <= recipe.warmup_factor <= 1, "warmup_factor must be in [0, 1]")
    need(recipe.min_lr >= 0, "min_lr must be >= 0")
    need(0 <= recipe.label_smoothing < 1, "label_smoothing must be in [0, 1)")
    need(recipe.image_size >= 0 and recipe.resize_size >= 0, "image sizes must be >= 0")
    need(recipe.eval_every >= 0, "eval_every must be >= 0")
    need(recipe.threads >= 0, "threads must be >= 0")
    need(recipe.seed >= 0, f"seed must be >= 0, got {recipe.seed}")
    need(recipe.grad_clip >= 0, "grad_clip must be >= 0")
    need(recipe.log_every >= 1, "log_every must be >= 1")
    from igc.data import BatchAugment

    for key in ("train_augment", "eval_augment"):
        try:
            BatchAugment(getattr(recipe, key), (0.0,), (1.0,))
        except IGCError as exc:
            raise IGCError(f"recipe {recipe.name!r} {key}: {exc}") from None
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


def _parse_toml(text: str, origin: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise IGCError(f"recipe {origin} is not valid TOML ({exc}); fix the file") from None


def load_recipe(name_or_path: str | Path) -> Recipe:
    """A shipped recipe by name (``cifar``) or a TOML file (``runs/x/recipe.toml``)."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    if text.endswith(".toml") or path.is_file() or "/" in text:
        if not path.is_file():
            raise IGCError(f"recipe file {path} does not exist; give a shipped recipe name "
                           f"({', '.join(list_recipes())}) or an existing .toml file")
        try:
            content = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise IGCError(f"cannot read recipe {path} ({exc})") from None
        data = _parse_toml(content, str(path))
        return from_mapping(data, str(data.pop("name", path.stem)))
    names = list_recipes()
    if text not in names:
        raise unknown_name("recipe", text, names)
    data = _parse_toml(_recipe_dir().joinpath(f"{text}.toml").read_text("utf-8"), text)
    data.pop("name", None)
    return from_mapping(data, text)


# ------------------------------------------------------------------------------ overrides
def parse_value(text: str) -> Any:
    """A ``--set`` value: TOML syntax (``0.1``, ``true``, ``[1, 2]``, ``"a b"``), else the
    bare text as a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
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
