"""The results of an empirical target, computed from its cached runs.

Per network (:class:`ArmResult`): top-1 of every finished seed, mean ± sample std, the
learning curve (mean over seeds per evaluated epoch), wall time and size. Per target
(:class:`TargetResult`): the networks, how many runs are finished, which cached runs are
corrupt, and the test of every claim of the paper about them
(:func:`igc.reproduce.claims.check_claim`). :mod:`igc.reproduce.render` writes them.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import igc.reproduce.cache as cache
from igc.provenance import describe
from igc.reproduce.arms import Arm, paper_accuracy
from igc.reproduce.cache import RunState
from igc.reproduce.claims import ClaimTest, check_claim
from igc.reproduce.config import Config
from igc.reproduce.registry import Target
from igc.reproduce.stats import mean_std
from igc.reproduce.targets import get_target


@dataclass
class ArmResult:
    """One network's finished runs (``runs``: seed -> ``result.json``)."""

    arm: Arm
    runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    expected: int = 0  # runs planned for this network

    @property
    def seeds(self) -> list[int]:
        return sorted(self.runs)

    @property
    def top1(self) -> list[float]:
        return [float(self.runs[s]["top1"]) for s in self.seeds]

    @property
    def mean(self) -> float | None:
        return mean_std(self.top1)[0]

    @property
    def std(self) -> float | None:
        return mean_std(self.top1)[1]

    @property
    def seconds(self) -> list[float]:
        """Wall time of every finished run, summed over its sessions."""
        return [float(self.runs[s]["seconds"]) for s in self.seeds]

    @property
    def budget_seconds(self) -> list[float]:
        """Wall time of the runs that kept the budget's threads per run (the mean wall
        time per run leaves the others out)."""
        return [float(self.runs[s]["seconds"]) for s in self.seeds
                if not self.runs[s].get("threads_over")]

    @property
    def params(self) -> int | None:
        return next((r.get("params") for r in self.runs.values()), None)

    @property
    def macs(self) -> int | None:
        return next((r.get("macs") for r in self.runs.values()), None)

    def curve(self) -> list[float]:
        """Mean test top-1 over seeds after each evaluated epoch (seeds with the full
        curve)."""
        curves = [r.get("curve") or [] for r in self.runs.values()]
        length = max((len(c) for c in curves), default=0)
        full = [c for c in curves if len(c) == length]
        return [statistics.fmean(c[i] for c in full) for i in range(length)] if full else []


@dataclass
class TargetResult:
    """An empirical target's results at a configuration."""

    spec: Target  # the empirical target
    config: Config
    arms: list[ArmResult]
    problems: list[str]  # cached runs not used (corrupt, stale, being trained)
    tests: list[ClaimTest]
    flags: list[str] = field(default_factory=list)  # runs used, with what to know of them

    @property
    def target(self) -> str:
        return self.spec.target

    @property
    def total_runs(self) -> int:
        return sum(a.expected for a in self.arms)

    @property
    def done_runs(self) -> int:
        return sum(len(a.runs) for a in self.arms)

    @property
    def wall_seconds(self) -> float:
        return sum(sum(a.seconds) for a in self.arms)

    def machines(self) -> dict[str, int]:
        """Machine descriptions of the finished runs, with how many runs each."""
        count: dict[str, int] = {}
        for a in self.arms:
            for r in a.runs.values():
                name = describe(r["machine"])
                count[name] = count.get(name, 0) + 1
        return count

    def commits(self) -> list[str]:
        """The distinct commits the finished runs were trained with."""
        return sorted({str(c) for a in self.arms for r in a.runs.values()
                       for c in (r.get("commits") or [r.get("commit")]) if c})


def collect(target: str | Target, config: Config, states: Sequence[RunState]
            ) -> TargetResult:
    """The results of ``target`` (a shipped target's name, or a target) from the cache
    states of its runs (in plan order), with the test of each of its claims."""
    spec = get_target(target) if isinstance(target, str) else target
    target = spec.name
    by_arm: dict[str, ArmResult] = {}
    problems: list[str] = []
    flags: list[str] = []
    for s in states:
        if s.spec.target != target:
            continue
        res = by_arm.setdefault(s.spec.arm.id, ArmResult(s.spec.arm))
        res.expected += 1
        if s.state == cache.DONE and s.result is not None:
            res.runs[s.spec.seed] = accounted(s.result, s.spec.path, s.spec.name,
                                              config.budget.threads, flags)
        elif s.state in (cache.CORRUPT, cache.STALE, cache.LOCKED):
            problems.append(f"{s.spec.name}: {s.state} ({s.problem})")
    arms = list(by_arm.values())
    results = {a.arm.id: a for a in arms}
    tests = []
    for claim in spec.claims():
        paper = {}
        for a in arms:
            acc = paper_accuracy(a.arm, claim.paper) if claim.paper else None
            if acc is not None:
                paper[a.arm.id] = acc[0]
        test = check_claim(claim, results, paper)
        if test is not None:
            tests.append(test)
    return TargetResult(spec, config, arms, problems, tests, flags)


def accounted(record: dict[str, Any], path: Path, name: str, threads: int,
              flags: list[str]) -> dict[str, Any]:
    """``record`` (a run's ``result.json``) with honest accounting, and a line in
    ``flags`` for each correction: a resumed run recorded before runs kept their sessions
    (no ``sessions`` field) counted only its last session's wall time, so its ``seconds``
    become the sum of the per-epoch training and evaluation times of ``metrics.jsonl``
    (all sessions; start-up not included) when that is larger; a run that used more
    torch threads than the budget's ``threads`` (> 0) is marked ``threads_over``."""
    out = dict(record)
    if out.get("resumed") and "sessions" not in out:
        epochs = cache.read_metrics_seconds(path)
        if epochs > float(out["seconds"]):
            flags.append(f"{name} was resumed and its record counts only its last "
                         f"session ({float(out['seconds']):,.0f} s); its per-epoch times "
                         f"over all sessions sum to {epochs:,.0f} s, used here; the commits "
                         "of its earlier sessions were not recorded (only "
                         f"{str(out.get('commit'))[:12]})")
            out["session_seconds"], out["seconds"] = out["seconds"], epochs
    used = out.get("threads")
    if threads and isinstance(used, int) and used > threads:
        out["threads_over"] = True
        flags.append(f"{name} trained with {used} threads, but the budget says {threads} "
                     "per run: its accuracy is used (threads change only float rounding), "
                     "its wall time is left out of the mean wall time per run")
    return out
