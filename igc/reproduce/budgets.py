"""Budgets of the empirical targets, read from the data file ``budgets.toml`` beside this
module.

One TOML table per budget; keys (type, default when absent):

==============  ==========================================================================
description     one line for the document and ``igc reproduce --help`` (required)
recipe          the shipped recipe every network trains with (required)
train_size      training images: a fixed subset of that many (absent: the whole split)
test_size       test images, likewise
epochs          epochs (absent: the recipe's); step milestones keep their fractions
seeds           seeds per network (required, >= 1)
target_seeds    a table target -> seeds for the targets that get more (or fewer) seeds
                than ``seeds``, chosen before their results were seen (e.g. ``{table4 =
                5}``); ``--seeds`` overrides both
arm_seeds       a table target -> {network -> seeds} for single networks of a target that
                get more seeds than the rest of it, chosen before their results (e.g.
                ``{table4 = {xception_c35_d8 = 12}}``); ``--seeds`` overrides it too
image_size      resize every image to this square size (absent: keep the data's)
stem_stride     stem stride of the Table 1 networks (Tables 4 and 6; 1 or 2; 1)
stem_stride_8l  stem stride of the 8-layer networks without down-sampling (1 or 2; 1)
depths          depths D of the Table 4/6 networks ([8])
figure2_panels  how many panels of Figure 2 (1-3; 1: only panel (a), L = 3)
figure3_budget  per-block parameters of the Figure 3 sweep
threads         torch threads per run unless ``--threads`` says (0: every core; 1)
groups          Tables 2 and 5: only their first N groups of rows (absent: all)
batch_size      override the recipe's batch (absent: the recipe's)
eval_every      evaluate every N epochs (0: only after the last epoch; 0)
val_images      training images held out as a validation split (0: none, every run
                trains on the whole training subset; 0)
targets         the empirical targets of ``all`` / ``empirical`` at this budget (absent:
                every empirical target)
==============  ==========================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from igc.errors import IGCError, unknown_name
from igc.files.tomlfile import parse_toml

BUDGETS_FILE = "budgets.toml"


@dataclass(frozen=True)
class Budget:
    """How much training a reproduction gets (see the module docstring for every key)."""

    name: str
    description: str
    recipe: str
    seeds: int
    train_size: int | None = None
    test_size: int | None = None
    epochs: int | None = None
    image_size: int | None = None
    stem_stride: int = 1
    stem_stride_8l: int = 1
    depths: tuple[int, ...] = (8,)
    figure2_panels: int = 1
    figure3_budget: int = 1600
    threads: int = 1
    groups: int | None = None
    batch_size: int | None = None
    eval_every: int = 0
    val_images: int = 0
    targets: tuple[str, ...] | None = None
    target_seeds: tuple[tuple[str, int], ...] = ()
    arm_seeds: tuple[tuple[str, str, int], ...] = ()

    def seeds_for(self, target: str, arm: str | None = None) -> int:
        """Seeds of network ``arm`` of ``target`` (``arm_seeds``, else ``target_seeds``,
        else ``seeds``); without ``arm``, the seeds of the target's other networks."""
        for t, a, n in self.arm_seeds:
            if (t, a) == (target, arm):
                return n
        return dict(self.target_seeds).get(target, self.seeds)

    def arms_with_seeds(self, target: str) -> dict[str, int]:
        """The networks of ``target`` that ``arm_seeds`` gives their own seed count."""
        return {a: n for t, a, n in self.arm_seeds if t == target}

    def seeds_text(self, target: str) -> str:
        """The seeds of ``target`` in words, e.g. ``5 (12 for igcv2_c64_d8, chosen before
        their results)``."""
        own = self.arms_with_seeds(target)
        more = ", ".join(f"{n} for {a}" for a, n in own.items())
        return f"{self.seeds_for(target)}" + (
            f" ({more}, chosen before their results)" if more else "")

    def summary(self, seeds: int | str | None = None) -> str:
        """One line: the data, epochs, seeds (``seeds`` when --seeds changed them) and the
        budget's other choices."""
        parts = [f"training images: {self.train_size or 'all'}",
                 f"test images: {self.test_size or 'all'}",
                 f"epochs: {self.epochs or 'as the recipe says'}",
                 f"seeds: {seeds or self._seeds_text()}"]
        if self.image_size:
            parts.append(f"images resized to {self.image_size}x{self.image_size}")
        if self.stem_stride != 1:
            parts.append(f"the Table 4/6 networks with a stride-{self.stem_stride} stem")
        if self.stem_stride_8l != 1:
            parts.append(f"the 8-layer networks with a stride-{self.stem_stride_8l} stem")
        if self.batch_size:
            parts.append(f"batch {self.batch_size}")
        if self.threads:
            parts.append(f"{self.threads} thread{'s' if self.threads > 1 else ''} per run")
        if self.groups:
            parts.append(f"Tables 2 and 5: only their first {self.groups} group(s) of rows")
        return "; ".join(parts)

    def _seeds_text(self) -> str:
        more = ", ".join([f"{n} for {t}" for t, n in self.target_seeds]
                         + [f"{n} for {t}'s {a}" for t, a, n in self.arm_seeds])
        return f"{self.seeds}" + (f" ({more}, chosen before their results)" if more else "")


#: key -> (type, smallest value) of the optional integer keys.
_INTS = {"train_size": 1, "test_size": 1, "epochs": 1, "image_size": 4,
         "stem_stride": 1, "stem_stride_8l": 1, "figure2_panels": 1, "figure3_budget": 100,
         "threads": 0,
         "groups": 1, "batch_size": 1, "eval_every": 0, "seeds": 1, "val_images": 0}
_REQUIRED = ("description", "recipe", "seeds")


def parse_budget(name: str, table: Any, origin: str = BUDGETS_FILE) -> Budget:
    """A :class:`Budget` from one TOML table, every key checked (IGCError naming it)."""
    where = f"{origin} [{name}]"
    if not isinstance(table, dict):
        raise IGCError(f"{where} is not a table; fix the file")
    known = {"description", "recipe", "depths", "targets", "target_seeds", "arm_seeds",
             *_INTS}
    extra = sorted(set(table) - known)
    if extra:
        raise unknown_name(f"key of {where}", extra[0], known)
    missing = [k for k in _REQUIRED if k not in table]
    if missing:
        raise IGCError(f"{where} lacks {', '.join(missing)}; add it")
    values: dict[str, Any] = {}
    for key in ("description", "recipe"):
        if not isinstance(table[key], str) or not table[key].strip():
            raise IGCError(f"{where}: {key} must be a non-empty string")
        values[key] = table[key]
    for key, low in _INTS.items():
        if key in table:
            value = table[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise IGCError(f"{where}: {key} must be an integer >= {low}, got {value!r}")
            values[key] = value
    for key in ("stem_stride", "stem_stride_8l"):
        if values.get(key, 1) not in (1, 2):
            raise IGCError(f"{where}: {key} must be 1 or 2")
    if values.get("figure2_panels", 1) > 3:
        raise IGCError(f"{where}: figure2_panels must be 1, 2 or 3 (Figure 2 has 3 panels)")
    if "depths" in table:
        depths = table["depths"]
        if (not isinstance(depths, list) or not depths
                or any(isinstance(d, bool) or not isinstance(d, int) or d < 5 or (d - 2) % 3
                       for d in depths)):
            raise IGCError(f"{where}: depths must be a list of D = 3B + 2 >= 5, got {depths!r}")
        values["depths"] = tuple(depths)
    if "targets" in table:
        targets = table["targets"]
        if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
            raise IGCError(f"{where}: targets must be a list of target names")
        values["targets"] = tuple(targets)
    if "target_seeds" in table:
        chosen = table["target_seeds"]
        if not isinstance(chosen, dict) or not all(_is_count(n) for n in chosen.values()):
            raise IGCError(f"{where}: target_seeds must be a table of target = seeds (>= 1)")
        values["target_seeds"] = tuple(chosen.items())
    if "arm_seeds" in table:
        values["arm_seeds"] = _arm_seeds(table["arm_seeds"], where)
    return Budget(name=name, **values)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _arm_seeds(chosen: Any, where: str) -> tuple[tuple[str, str, int], ...]:
    """``arm_seeds`` as (target, network, seeds) triples, every level checked."""
    bad = IGCError(f"{where}: arm_seeds must be a table of target = {{network = seeds "
                   "(>= 1)}}")
    if not isinstance(chosen, dict):
        raise bad
    out = []
    for target, arms in chosen.items():
        if not isinstance(arms, dict) or not arms or not all(
                _is_count(n) for n in arms.values()):
            raise bad
        out += [(target, arm, n) for arm, n in arms.items()]
    return tuple(out)


@cache
def budgets() -> dict[str, Budget]:
    """Every budget of the shipped ``budgets.toml``, in file order."""
    text = resources.files("igc.reproduce").joinpath(BUDGETS_FILE).read_text(encoding="utf-8")
    return parse_budgets(text)


def parse_budgets(text: str, origin: str = BUDGETS_FILE) -> dict[str, Budget]:
    """Parse and check a budgets file's text."""
    data = parse_toml(text, origin)
    if not data:
        raise IGCError(f"{origin} defines no budget")
    return {name: parse_budget(name, table, origin) for name, table in data.items()}


def get_budget(name: str) -> Budget:
    """The budget ``name``; IGCError naming the known ones otherwise."""
    known = budgets()
    key = str(name).strip().lower()
    if key not in known:
        raise unknown_name("budget", str(name), known)
    return known[key]
