"""One ``igc reproduce`` command's empirical work: plan the runs, say what is done and how
long the rest will take, put corrupt runs aside, train (this shard's share, with the jobs
asked for), and collect the results.

The status line before training names every run that cannot be used (corrupt, stale,
being trained elsewhere); the estimate comes from :mod:`igc.reproduce.estimate`. Partial
sections are rewritten as runs finish, at most every :data:`PARTIAL_EVERY` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import igc.reproduce.cache as cache
import igc.reproduce.runner as runner
from igc.reproduce.cache import RunSpec, RunState
from igc.reproduce.config import Config, load_data
from igc.reproduce.empirical import TargetResult, collect
from igc.reproduce.estimate import duration, estimate
from igc.reproduce.render_empirical import render_target
from igc.reproduce.report import Section, write_section
from igc.reproduce.runner import Outcome, Task, log

#: Seconds between partial reports of an empirical target while its runs finish.
PARTIAL_EVERY = 30.0


class Session:
    """The runs of ``targets`` at ``config`` in ``out`` (``shard``: (i, n) or None)."""

    def __init__(self, targets: Sequence[str], config: Config, out: Path, command: str,
                 jobs: int = 1, shard: tuple[int, int] | None = None) -> None:
        self.targets, self.config, self.out = list(targets), config, out
        self.command, self.jobs, self.shard = command, jobs, shard
        self.specs = cache.plan(self.targets, config, out)
        self.mine = self.specs if shard is None else cache.shard(self.specs, *shard)
        self._last_write = time.monotonic()

    def states(self, specs: Sequence[RunSpec] | None = None) -> list[RunState]:
        return [cache.inspect(s) for s in (self.specs if specs is None else specs)]

    def results(self) -> list[TargetResult]:
        states = self.states()
        return [collect(t, self.config, states) for t in self.targets]

    def section(self, result: TargetResult) -> Section:
        return render_target(result, self.command)

    # ---------------------------------------------------------------------- status
    def _status(self, states: Sequence[RunState], mine: set[str]) -> str:
        done = sum(s.state == cache.DONE for s in states)
        text = f"{done} of {len(states)} runs done"
        if self.shard is not None:
            own = [s for s in states if s.spec.key in mine]
            text += (f"; shard {self.shard[0]}/{self.shard[1]}: "
                     f"{sum(s.state == cache.DONE for s in own)} of {len(own)} done")
        resume = sum(s.state == cache.RESUME for s in states if s.spec.key in mine)
        if resume:
            text += f"; {resume} to resume from a checkpoint"
        return text

    def _repair(self, states: list[RunState], train: bool) -> list[RunState]:
        """Report unusable runs by name; when training, move corrupt and stale ones aside
        and write the missing records of finished ones."""
        out = []
        for s in states:
            if s.state == cache.RECOVER and train:
                try:
                    s = RunState(s.spec, cache.DONE, runner.recover(s.spec, self.config))
                    log(f"run {s.spec.name}: finished without its record; recovered it "
                        f"from the trainer's {cache.SUMMARY}")
                except (ValueError, OSError) as exc:
                    s = RunState(s.spec, cache.CORRUPT, problem=str(exc))
            if s.state in (cache.CORRUPT, cache.STALE):
                if train:
                    bad = cache.quarantine(s.spec)
                    log(f"run {s.spec.name} is {s.state} ({s.problem}); moved to {bad.name}, "
                        "training it again")
                    s = RunState(s.spec, cache.NEW)
                else:
                    log(f"run {s.spec.name} is {s.state} ({s.problem}); not used")
            elif s.state == cache.LOCKED:
                log(f"run {s.spec.name} is {s.problem}; skipped")
            elif s.state == cache.RECOVER:
                log(f"run {s.spec.name} finished without its record; run without "
                    "--report-only to recover it")
            out.append(s)
        return out

    # ------------------------------------------------------------------------ run
    def run(self, train: bool = True) -> tuple[list[TargetResult], Outcome | None, list[str]]:
        """Train what is missing (``train``) and collect the results; returns them, the
        interruption (or None) and the failure messages."""
        mine = {s.key for s in self.mine}
        states = self.states()
        todo: list[RunState] = []
        if train:
            todo = self._repair([s for s in states if s.spec.key in mine], train=True)
            todo = [s for s in todo if s.state in (cache.NEW, cache.RESUME)]
            states = self.states()
        else:
            self._repair(states, train=False)
        log(self._status(states, mine))
        stopped, failures = None, []
        if todo:
            self._announce(states, todo)
            tasks = [Task(s.spec, self.config, s.state == cache.RESUME, self.command)
                     for s in todo]
            outcomes = runner.execute(tasks, self.jobs, self._on_done)
            for o in outcomes:
                for note in o.notes:
                    log(note)
                if o.status == runner.INTERRUPTED and stopped is None:
                    stopped = o
                elif o.status in (runner.FAILED, runner.BUSY):
                    failures.append(o.message)
        return self.results(), stopped, failures

    def estimate_only(self) -> None:
        """Log what is done and the estimate of the time left; train and write nothing."""
        mine = {s.key for s in self.mine}
        states = self.states()
        self._repair(states, train=False)
        log(self._status(states, mine))
        todo = [s for s in states if s.spec.key in mine
                and s.state in (cache.NEW, cache.RESUME, cache.CORRUPT, cache.STALE)]
        if todo:
            self._announce(states, todo)

    def _announce(self, states: Sequence[RunState], todo: Sequence[RunState]) -> None:
        """Log the estimate of the time left before training starts."""
        splits = load_data(self.config)
        mine = {s.spec.key for s in todo}
        est = estimate([s for s in states if s.state == cache.DONE or s.spec.key in mine],
                       self.config, self.jobs, splits)
        sources = []
        if est.measured:
            sources.append(f"recorded runs of {est.measured} network(s)")
        if est.scaled or est.modelled:
            sources.append(f"{est.scaled + est.modelled} scaled by their multiply-adds at "
                           f"the rate of {est.rate_source}")
        log(f"{len(todo)} run(s) to train with {self.jobs} job(s) x "
            f"{self.config.num_threads or 'all'} thread(s): about {duration(est.wall)} left "
            f"({duration(est.total)} of runs; from {' and '.join(sources)})")

    def _on_done(self, outcome: Outcome) -> None:
        if outcome.status == runner.TRAINED and outcome.result is not None:
            log(f"run {outcome.spec.name}: top-1 {outcome.result['top1']:.2f}% in "
                f"{outcome.result['seconds']:.0f} s")
        elif outcome.status in (runner.FAILED, runner.BUSY):
            log(outcome.message)
        if time.monotonic() - self._last_write >= PARTIAL_EVERY:
            target = outcome.spec.target
            specs = [s for s in self.specs if s.target == target]
            write_section(self.section(collect(target, self.config, self.states(specs))),
                          self.out)
            self._last_write = time.monotonic()
