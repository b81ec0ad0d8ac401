"""The networks an empirical target trains (its *arms*): :class:`Arm`, and the pieces the
targets of :mod:`igc.reproduce.targets` build theirs from (the paper's rows of a table,
the stem stride a budget gives the 8-layer networks). :func:`arms_for` lists a shipped
target's arms at a budget; :func:`paper_accuracy` is the paper's number for an arm.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from igc.errors import IGCError
from igc.models.paper import paper_rows
from igc.reproduce.budgets import Budget
from igc.reproduce.registry import Target


@dataclass(frozen=True)
class Arm:
    """One network of a comparison."""

    id: str  # unique within its target, safe as a folder name (e.g. "igcv2_8l_c144")
    label: str  # the paper's name, e.g. "IGCV2 (C144)"
    model: str  # zoo name
    family: str
    group: str = ""  # arms compared with each other (a row group of the paper's table)
    model_args: tuple[tuple[str, Any], ...] = ()
    paper_model: str | None = None  # the paper_results name, when the paper reports it
    paper_table: str | None = None
    info: tuple[tuple[str, Any], ...] = ()  # extra columns (L, K, colour, ...)

    @property
    def args(self) -> dict[str, Any]:
        """The builder overrides as a plain dict (lists, not tuples)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.model_args}

    @property
    def extra(self) -> dict[str, Any]:
        return dict(self.info)


def frozen_args(args: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """``args`` as :attr:`Arm.model_args`: sorted pairs, lists as tuples."""
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in args.items()))


def eight_layer_args(budget: Budget, **args: Any) -> tuple[tuple[str, Any], ...]:
    """The model arguments of an 8-layer network at ``budget`` (its stem stride)."""
    if budget.stem_stride_8l != 1:
        args["stem_stride"] = budget.stem_stride_8l
    return frozen_args(args)


def family(name: str) -> str:
    """The family of a zoo name (``igcv2_c64_d8`` -> ``igcv2``)."""
    return name.split("_")[0]


def paper_arms(table: str, budget: Budget) -> list[Arm]:
    """The networks of Table 2 or 5 (8-layer), grouped by the paper's per-block budget."""
    seen: set[str] = set()
    arms: list[Arm] = []
    kept: list[str] = []
    for row in paper_rows(table=table):
        name = row.get("model")
        if not name or name in seen or row["dataset"] == "tiny-imagenet":
            continue
        seen.add(name)
        label = row["network"] if "(" in row["network"] else f"{row['network']} (C{row['width']})"
        group = f"≈{row['params']:,} / block"
        if group not in kept:
            if budget.groups is not None and len(kept) >= budget.groups:
                continue
            kept.append(group)
        arms.append(Arm(name, label, name, family(name), group, eight_layer_args(budget),
                        name, table))
    return arms


def arms_for(target: str, budget: Budget) -> list[Arm]:
    """The arms of the shipped empirical target ``target`` at ``budget``."""
    # the registry's target modules import this one: resolved at call time (a cycle)
    from igc.reproduce.targets import get_target

    arms = get_target(target).arms
    if arms is None:
        raise IGCError(f"{target} is not an empirical target")
    return arms(budget)


def paper_accuracy(arm: Arm, dataset: str) -> tuple[float, float | None] | None:
    """The paper's (top-1, std) of ``arm`` on ``dataset``, if it reports one."""
    if not arm.paper_model:
        return None
    name = arm.paper_model + ("_tiny" if dataset == "tiny-imagenet" else "")
    rows = paper_rows(model=name, table=arm.paper_table, dataset=dataset)
    if not rows or rows[0].get("top1") is None:
        return None
    return rows[0]["top1"], rows[0].get("top1_std")


#: The old name of an empirical :class:`~igc.reproduce.registry.Target`.
EmpiricalSpec = Target


def __getattr__(name: str) -> Any:
    """The old names: ``SPECS`` (the empirical targets) and ``table2_arms`` & co. (their
    ``arms``), which live in the registry now."""
    if name == "SPECS" or name.endswith("_arms"):
        from igc.reproduce.targets import GROUPS, TARGETS  # a cycle, as in arms_for

        if name == "SPECS":
            return {n: TARGETS[n] for n in GROUPS["empirical"]}
        if name[:-len("_arms")] in GROUPS["empirical"]:
            return TARGETS[name[:-len("_arms")]].arms
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
