"""The paper's claimed orderings (data: ``claims.toml``) and their test on our runs.

A claim says that the networks ``better`` beat the networks ``worse`` of one empirical
target. With one network on each side it is a plain ordering; with several, the best of each
side (highest mean over seeds) is shown (e.g. "the best K of Figure 2 is the
complementary one or next to it"). The test of a plain ordering is Welch's 95 % interval
for the difference of the two means over seeds (:mod:`igc.reproduce.stats`), or the paired
interval over common seeds for a claim marked ``paired``, and its verdict.

A set claim is tested over every pair (b, w) of a ``better`` and a ``worse`` network,
with Holm's correction over all of them (family-wise error 5 %), which also covers the
choice of which network is best: it **agrees** when one ``better`` network beats every
``worse`` one (Holm-adjusted p < 0.05 and a positive difference for each of its pairs),
**contradicts** when one ``worse`` network beats every ``better`` one, and is otherwise
**not resolved**.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import igc.reproduce.stats as stats
from igc.errors import IGCError, unknown_name
from igc.files.tomlfile import parse_toml

CLAIMS_FILE = "claims.toml"
#: Words that stand for the inner points / the two end points of a sweep (in arm order).
INTERIOR, ENDS = "interior", "ends"
_KEYS = {"target", "better", "worse", "claim", "where", "paper", "paired"}
#: Family-wise error rate of a set claim's pairs (Holm).
ALPHA = 0.05
#: The paper's data sets whose accuracy a claim (``paper``) or a target's columns
#: (``paper_datasets``) may show beside ours, with their names in the document.
PAPER_COLUMNS = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100",
                 "tiny-imagenet": "Tiny ImageNet"}


@dataclass(frozen=True)
class Claim:
    """One ordering the paper claims (see ``claims.toml``)."""

    target: str
    better: tuple[str, ...]
    worse: tuple[str, ...]
    claim: str
    where: str
    paper: str | None = None
    paired: bool = False

    @property
    def pairwise(self) -> bool:
        return len(self.better) == 1 and len(self.worse) == 1 and not self._special

    @property
    def _special(self) -> bool:
        return bool({INTERIOR, ENDS} & {*self.better, *self.worse})


def parse_claims(text: str, targets: Sequence[str], origin: str = CLAIMS_FILE) -> list[Claim]:
    """Parse and check a claims file's text (``targets``: the empirical target names)."""
    data = parse_toml(text, origin)
    rows = data.get("claim")
    if not isinstance(rows, list) or not rows or set(data) != {"claim"}:
        raise IGCError(f"{origin} must hold [[claim]] tables and nothing else")
    out = []
    for i, row in enumerate(rows, 1):
        where = f"{origin} claim {i}"
        if not isinstance(row, dict):
            raise IGCError(f"{where} is not a table")
        extra = sorted(set(row) - _KEYS)
        if extra:
            raise unknown_name(f"key of {where}", extra[0], _KEYS)
        for key in ("target", "claim", "where"):
            if not isinstance(row.get(key), str) or not row[key].strip():
                raise IGCError(f"{where}: {key} must be a non-empty string")
        if row["target"] not in targets:
            raise unknown_name(f"empirical target of {where}", row["target"], targets)
        sides = []
        for key in ("better", "worse"):
            ids = row.get(key)
            if (not isinstance(ids, list) or not ids
                    or not all(isinstance(x, str) and x for x in ids)):
                raise IGCError(f"{where}: {key} must be a non-empty list of arm ids")
            sides.append(tuple(ids))
        if set(sides[0]) & set(sides[1]):
            raise IGCError(f"{where}: a network is on both sides of the claim")
        paper = row.get("paper")
        if paper is not None and paper not in PAPER_COLUMNS:
            raise IGCError(f"{where}: paper must be one of {', '.join(PAPER_COLUMNS)}")
        if not isinstance(row.get("paired", False), bool) or (
                row.get("paired") and (len(sides[0]) != 1 or len(sides[1]) != 1)):
            raise IGCError(f"{where}: paired must be true or false, and only for one "
                           "network on each side")
        out.append(Claim(row["target"], sides[0], sides[1], row["claim"], row["where"], paper,
                         bool(row.get("paired", False))))
    return out


def claims() -> tuple[Claim, ...]:
    """Every claim of the shipped ``claims.toml`` (the shipped registry's claims)."""
    # the registry parses claims with this module: resolved at call time (a cycle)
    from igc.reproduce.targets import REGISTRY

    return REGISTRY.claims()


class Result(Protocol):
    """What a claim needs of one network's results (an ``empirical.ArmResult``)."""

    @property
    def top1(self) -> list[float]: ...

    @property
    def seeds(self) -> list[int]:  # in the order of top1
        ...

    @property
    def runs(self) -> Mapping[int, Mapping[str, Any]]:  # seed -> its result ("top1")
        ...

    @property
    def mean(self) -> float | None: ...


@dataclass(frozen=True)
class PairTest:
    """One pair of a set claim: ``better - worse`` (arm ids), Welch's interval, its
    p-value and the Holm-adjusted one over the claim's pairs."""

    better: str
    worse: str
    interval: stats.Welch
    p: float
    p_holm: float


@dataclass
class ClaimTest:
    """A claim tested on our runs: the two networks compared, Welch's interval for
    ``better - worse`` and the verdict."""

    claim: Claim
    better: Any  # the Result compared on the "better" side (the best of it)
    worse: Any
    interval: stats.Welch | None
    verdict: str
    paper_diff: float | None = None  # the paper's better - worse, on claim.paper
    pairs: list[PairTest] | None = None  # a set claim's pairs (Holm)


def _side(ids: Sequence[str], arms: Sequence[str]) -> list[str] | None:
    """Arm ids of one side (``interior`` / ``ends`` resolved in ``arms``' order), or None
    when a network of the side was not trained at this budget."""
    out: list[str] = []
    for x in ids:
        if x == INTERIOR:
            out += list(arms[1:-1])
        elif x == ENDS:
            out += [arms[0], arms[-1]] if len(arms) > 1 else list(arms)
        elif x in arms:
            out.append(x)
        else:
            return None
    return out or None


def check_claim(claim: Claim, results: Mapping[str, Result],
               paper: Mapping[str, float] | None = None) -> ClaimTest | None:
    """Test ``claim`` on ``results`` (arm id -> results, in the target's order); None when
    the budget did not train its networks. ``paper``: arm id -> the paper's accuracy."""
    order = list(results)
    better, worse = _side(claim.better, order), _side(claim.worse, order)
    if better is None or worse is None or (len(order) < 3 and claim._special):
        return None

    def best(ids: list[str]) -> Result:
        done = [results[i] for i in ids if results[i].mean is not None]
        return max(done, key=lambda r: r.mean or 0.0) if done else results[ids[0]]

    b, w = best(better), best(worse)
    paper_diff = None
    if claim.pairwise and paper and better[0] in paper and worse[0] in paper:
        paper_diff = paper[better[0]] - paper[worse[0]]
    if not b.top1 or not w.top1 or any(results[i].mean is None for i in better + worse):
        return ClaimTest(claim, b, w, None, stats.NOT_RUN, paper_diff)
    if any(len(results[i].top1) < 2 for i in better + worse):
        return ClaimTest(claim, b, w, None, stats.UNTESTED, paper_diff)
    if claim.paired:
        common = sorted(set(b.seeds) & set(w.seeds))
        if len(common) < 2:
            return ClaimTest(claim, b, w, None, stats.UNTESTED, paper_diff)
        interval = stats.paired([b.runs[s]["top1"] for s in common],
                                [w.runs[s]["top1"] for s in common])
    else:
        interval = stats.welch(b.top1, w.top1)
    if len(better) == 1 and len(worse) == 1:
        return ClaimTest(claim, b, w, interval, stats.verdict(interval), paper_diff)
    pairs = holm_pairs(better, worse, results)
    return ClaimTest(claim, b, w, interval, set_verdict(pairs, better, worse), paper_diff,
                     pairs)


def holm_pairs(better: Sequence[str], worse: Sequence[str],
               results: Mapping[str, Result]) -> list[PairTest]:
    """Welch's interval and p-value of every pair (b, w), Holm-adjusted over them all."""
    intervals = [(x, y, stats.welch(results[x].top1, results[y].top1))
                 for x in better for y in worse]
    p = [stats.p_value(i) for _, _, i in intervals]
    return [PairTest(x, y, i, pv, adj)
            for (x, y, i), pv, adj in zip(intervals, p, stats.holm(p))]


def set_verdict(pairs: Sequence[PairTest], better: Sequence[str],
                worse: Sequence[str]) -> str:
    """The verdict of a set claim from its Holm-adjusted pairs (module docstring)."""
    won = {(t.better, t.worse) for t in pairs if t.p_holm < ALPHA and t.interval.diff > 0}
    lost = {(t.better, t.worse) for t in pairs if t.p_holm < ALPHA and t.interval.diff < 0}
    if any(all((x, y) in won for y in worse) for x in better):
        return stats.AGREES
    if any(all((x, y) in lost for x in better) for y in worse):
        return stats.CONTRADICTS
    return stats.UNRESOLVED
