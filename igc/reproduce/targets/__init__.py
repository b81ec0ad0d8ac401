"""The shipped reproduction targets: every figure and table of the IGCV2 paper that
``igc reproduce`` regenerates, one :class:`~igc.reproduce.registry.Target` each, in the
:class:`~igc.reproduce.registry.Registry` :data:`REGISTRY`.

*Analytic* targets are exact and need no training: the mathematics of
:mod:`igc.sparsity` and parameter / multiply-add counts of modules built from the zoo.
*Empirical* targets train networks (:mod:`igc.reproduce.arms`) under a budget
(:mod:`igc.reproduce.budgets`: ``smoke``, ``short``, ``medium``, ``full``) and report
mean ± std over seeds beside the paper's CIFAR numbers, with the paper's claimed orderings
of ``claims.toml`` tested (:mod:`igc.reproduce.claims`).

A target is one module of this package that defines ``TARGET`` (or a list ``TARGETS``);
adding one is adding its module to :data:`MODULES` (the document's order). Besides the
names, ``all``, ``analytic`` and ``empirical`` select groups of targets; at a budget that
names its targets, ``all`` and ``empirical`` mean those.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from importlib import resources
from types import ModuleType

from igc.reproduce.budgets import budgets
from igc.reproduce.claims import CLAIMS_FILE
from igc.reproduce.registry import ANALYTIC, EMPIRICAL, Registry, Target
from igc.reproduce.targets import (
    count_tables,
    design,
    figure2,
    figure3,
    table2,
    table4,
    table5,
)

#: The target modules, in the order of the document.
MODULES: tuple[ModuleType, ...] = (design, count_tables, table2, table5, figure2, figure3,
                                   table4)


def _claims_text() -> str:
    return resources.files("igc.reproduce").joinpath(CLAIMS_FILE).read_text(encoding="utf-8")


def build(modules: Iterable[ModuleType] = MODULES) -> Registry:
    """A registry of the targets of ``modules``, with the shipped claims file."""
    registry = Registry(_claims_text)
    for module in modules:
        found = getattr(module, "TARGETS", None) or [module.TARGET]
        for target in found:
            registry.add(target)
    return registry


REGISTRY = build()
#: Name -> target, and the groups (``all``, ``analytic``, ``empirical``) -> names.
TARGETS = REGISTRY.targets
GROUPS = REGISTRY.groups()


def get_target(name: str) -> Target:
    """The shipped target ``name``; IGCError naming the known ones otherwise."""
    return REGISTRY.get(name)


def resolve(names: Iterable[str], empirical: Sequence[str] | None = None) -> list[Target]:
    """See :meth:`Registry.resolve <igc.reproduce.registry.Registry.resolve>`."""
    return REGISTRY.resolve(names, empirical)


def listing() -> str:
    """The text of ``igc reproduce --list``."""
    return REGISTRY.listing(list(budgets()))


__all__ = ["ANALYTIC", "EMPIRICAL", "GROUPS", "MODULES", "REGISTRY", "TARGETS", "Target",
           "build", "get_target", "listing", "resolve"]
