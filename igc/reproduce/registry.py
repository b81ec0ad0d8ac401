"""A registry of reproduction targets: each target is one :class:`Target` object that
knows how to compute and render itself (analytic), or which networks it trains at a
budget and how its results are presented (empirical), and which of the paper's claims
it tests.

Budgets (``budgets.toml``) and claims (``claims.toml``) stay data, keyed by the target's
name: a :class:`Registry` parses its claims file against its own empirical targets.
The shipped targets are the registry of :mod:`igc.reproduce.targets`; a test or a user
builds its own ``Registry()`` and adds targets to it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from igc.errors import IGCError, unknown_name
from igc.reproduce.claims import CLAIMS_FILE, PAPER_COLUMNS, Claim, parse_claims

if TYPE_CHECKING:
    from igc.reproduce.arms import Arm
    from igc.reproduce.budgets import Budget
    from igc.reproduce.report import Section

ANALYTIC, EMPIRICAL = "analytic", "empirical"
#: How an empirical target is drawn (:data:`igc.reproduce.plots.EMPIRICAL`).
PLOTS = ("pareto", "bars", "curve")


@dataclass(frozen=True)
class Target:
    """One reproducible result of the paper.

    Every target: ``name``, ``kind`` (:data:`ANALYTIC` or :data:`EMPIRICAL`), ``paper``
    (where it is in the paper, e.g. ``"Table 2"``) and ``summary`` (one line for ``igc
    reproduce --list``). An analytic target: ``compute()`` returns its result (a
    dataclass) and ``render(result)`` its :class:`~igc.reproduce.report.Section`. An
    empirical target: ``arms(budget)`` lists the networks it trains
    (:class:`~igc.reproduce.arms.Arm`), ``title`` and ``intro`` head its section,
    ``paper_datasets`` are the paper's accuracy columns shown beside ours, ``plot`` one of
    :data:`PLOTS`. :meth:`claims` are the claims of its registry's claims file about it.
    """

    name: str
    kind: str
    paper: str
    summary: str
    compute: Callable[[], Any] | None = None
    render: Callable[[Any], Section] | None = None
    arms: Callable[[Budget], list[Arm]] | None = None
    title: str = ""
    intro: str = ""
    paper_datasets: tuple[str, ...] = ()
    plot: str = ""
    registry: Registry | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.name or self.name != self.name.strip().lower():
            raise IGCError(f"a target name must be lower case, got {self.name!r}")
        if self.kind == ANALYTIC:
            if self.compute is None or self.render is None:
                raise IGCError(f"analytic target {self.name} needs compute and render")
        elif self.kind == EMPIRICAL:
            if self.arms is None or not self.title or self.plot not in PLOTS:
                raise IGCError(f"empirical target {self.name} needs arms, a title and a "
                               f"plot ({', '.join(PLOTS)})")
            if not set(self.paper_datasets) <= set(PAPER_COLUMNS):
                raise IGCError(f"empirical target {self.name}: paper_datasets must be among "
                               f"{', '.join(PAPER_COLUMNS)}")
        else:
            raise IGCError(f"target {self.name}: kind must be {ANALYTIC} or {EMPIRICAL}")

    @property
    def target(self) -> str:
        """The name (what an empirical result calls its target)."""
        return self.name

    def section(self) -> Section:
        """The analytic target's rendered section."""
        if self.compute is None or self.render is None:
            raise IGCError(f"{self.name} is an empirical target: it has no section without "
                           "its runs")
        return self.render(self.compute())

    def claims(self) -> tuple[Claim, ...]:
        """The claims of the registry's claims file about this target."""
        return () if self.registry is None else self.registry.claims(self.name)


class Registry:
    """Targets by name, in the order they were added (the document's order).

    ``claims``: the text of the claims file (default none); it is parsed, against the
    registry's empirical targets, the first time a claim is asked for."""

    def __init__(self, claims: str | Callable[[], str] = "",
                 claims_origin: str = CLAIMS_FILE) -> None:
        self._targets: dict[str, Target] = {}
        self._claims_text = claims
        self._claims_origin = claims_origin
        self._claims: tuple[Claim, ...] | None = None

    def add(self, target: Target) -> Target:
        """Add ``target`` (IGCError when its name is taken); returns it, bound to this
        registry."""
        if target.name in self._targets or target.name in (
                "all", ANALYTIC, EMPIRICAL):
            raise IGCError(f"a reproduction target named {target.name!r} already exists")
        bound = replace(target, registry=self)
        self._targets[target.name] = bound
        self._claims = None
        return bound

    @property
    def targets(self) -> Mapping[str, Target]:
        """Name -> target, read-only."""
        return MappingProxyType(self._targets)

    def groups(self) -> dict[str, list[str]]:
        """``all``, ``analytic``, ``empirical`` -> target names."""
        return {"all": list(self._targets),
                ANALYTIC: [n for n, t in self._targets.items() if t.kind == ANALYTIC],
                EMPIRICAL: [n for n, t in self._targets.items() if t.kind == EMPIRICAL]}

    def get(self, name: str) -> Target:
        try:
            return self._targets[name]
        except KeyError:
            raise unknown_name("reproduction target", name,
                               [*self._targets, *self.groups()]) from None

    def resolve(self, names: Iterable[str], empirical: Sequence[str] | None = None
                ) -> list[Target]:
        """Targets named by ``names`` (names or group names), in registry order, no
        repeats; ``empirical``: the empirical targets that the groups ``all`` and
        ``empirical`` stand for (a budget's own list; default every one)."""
        groups = self.groups()
        if empirical is not None:
            for name in empirical:
                self.get(name)
            groups["all"] = [*groups[ANALYTIC], *empirical]
            groups[EMPIRICAL] = list(empirical)
        wanted: list[str] = []
        for name in names:
            key = name.strip().lower()
            members = groups[key] if key in groups else [self.get(key).name]
            wanted += [m for m in members if m not in wanted]
        if not wanted:
            raise IGCError("name a target to reproduce (see `igc reproduce --list`)")
        order = list(self._targets)
        return [self._targets[n] for n in sorted(wanted, key=order.index)]

    def claims(self, target: str | None = None) -> tuple[Claim, ...]:
        """Every claim of the claims file, or those about ``target``."""
        if self._claims is None:
            text = self._claims_text if isinstance(self._claims_text, str) \
                else self._claims_text()
            self._claims = tuple(parse_claims(text, self.groups()[EMPIRICAL],
                                              self._claims_origin)) if text.strip() else ()
        return self._claims if target is None else \
            tuple(c for c in self._claims if c.target == target)

    def listing(self, budget_names: Sequence[str]) -> str:
        """The text of ``igc reproduce --list`` (``budget_names``: the ``--budget``
        choices)."""
        width = max(map(len, self._targets))
        names = "|".join(budget_names)
        lines = []
        for kind in (ANALYTIC, EMPIRICAL):
            lines.append(f"{kind} targets" + (" (exact, no training):" if kind == ANALYTIC
                                                else f" (training; --budget {names}):"))
            for t in self._targets.values():
                if t.kind == kind:
                    lines.append(f"  {t.name:<{width}}  {t.paper}: {t.summary}")
        lines.append("groups: all, analytic, empirical (at a budget that lists its targets, "
                     "all and empirical mean those)")
        return "\n".join(lines)


__all__ = ["ANALYTIC", "EMPIRICAL", "PLOTS", "Registry", "Target"]
