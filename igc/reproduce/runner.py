"""Training the runs of a reproduction: one at a time, or ``jobs`` worker processes.

:func:`train_run` trains (or resumes) one run into its cache folder with the public
:func:`igc.train.train` and writes its ``result.json`` (top-1, learning curve, wall time,
machine, commit). A checkpoint that cannot be resumed is reported by name, moved aside and
trained again from the start. :func:`execute` runs a list of tasks in this process
(``jobs = 1``) or in ``jobs`` spawned worker processes; Ctrl-C stops every run after
saving its checkpoint, so that the same command resumes.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import igc.reproduce.cache as cache
from igc.errors import IGCError
from igc.formatting import first_line
from igc.provenance import git_commit, machine
from igc.reproduce.cache import RunSpec
from igc.reproduce.config import Config, load_data
from igc.train import Interrupted, RunConfig, override, train

#: Trainer callbacks added to every run of this process (``callback(trainer, event)``;
#: tests use it to stop a run in the middle).
CALLBACKS: list[Callable[..., None]] = []
#: Outcomes of :func:`train_run`.
TRAINED, FAILED, INTERRUPTED, BUSY = "trained", "failed", "interrupted", "busy"
_STOP = {"requested": False}


@dataclass(frozen=True)
class Task:
    """One run to train (picklable: it crosses to a worker process)."""

    spec: RunSpec
    config: Config
    resume: bool
    command: str = ""


@dataclass
class Outcome:
    """What became of a task: ``TRAINED`` (with its result), ``FAILED`` / ``INTERRUPTED``
    (with a message), ``BUSY`` (another process holds its lock)."""

    spec: RunSpec
    status: str
    result: dict[str, Any] | None = None
    message: str = ""
    code: int = 0
    notes: list[str] = field(default_factory=list)


def result_record(spec: RunSpec, config: Config, summary: dict[str, Any], wall: float,
                  started: float, resumed: bool, recovered: bool = False) -> dict[str, Any]:
    """The ``result.json`` of a finished run. ``wall`` is this session's wall time;
    ``seconds`` adds the earlier sessions of a resumed run (the trainer's ``sessions``),
    ``commits`` names every commit that trained part of it."""
    device = str(summary.get("device", config.device))
    found = summary.get("sessions")
    sessions: list[Any] = found if isinstance(found, list) else []
    earlier = sum(float(s.get("seconds") or 0.0) for s in sessions[:-1]
                  if isinstance(s, dict))
    commits = list(dict.fromkeys(str(c) for c in [*(summary.get("commits") or []),
                                                  git_commit()] if c))
    return {
        "key": spec.key, "target": spec.target, "arm": spec.arm.id, "label": spec.arm.label,
        "model": spec.arm.model, "model_args": spec.arm.args, "seed": spec.seed,
        "budget": config.budget.name, "data": config.data,
        "top1": summary.get("top1"), "top5": summary.get("top5"),
        "params": summary.get("params"), "macs": summary.get("macs"),
        "epochs": summary.get("epochs"), "curve": cache.read_curve(spec.path),
        "seconds": earlier + wall, "session_seconds": wall,
        "sessions": max(1, len(sessions)), "train_seconds": summary.get("train_seconds"),
        "threads": max([summary.get("threads") or 0, *(s.get("threads") or 0 for s in
                                                       sessions if isinstance(s, dict))]),
        "thread_steps": summary.get("thread_steps"), "device": device,
        "machine": machine(device, summary.get("threads")), "commit": git_commit(),
        "commits": commits,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "resumed": resumed, "recovered": recovered,
    }


def recover(spec: RunSpec, config: Config) -> dict[str, Any]:
    """Write the missing ``result.json`` of a run whose training finished (its
    ``summary.json`` is there); the wall time is the trainer's."""
    summary = cache.read_json(spec.path / cache.SUMMARY)
    if not isinstance(summary, dict):
        raise ValueError(f"{cache.SUMMARY} is not an object")
    this = summary.get("session_seconds", summary.get("seconds", 0.0))  # the last session
    record = result_record(spec, config, summary, float(this or 0.0),
                           time.time(), resumed=False, recovered=True)
    problem = _write_checked(spec, record)
    if problem:
        raise ValueError(problem)
    return record


def _write_checked(spec: RunSpec, record: dict[str, Any]) -> str | None:
    problem = cache.check_result(record, spec)
    if problem is None:
        cache.write_json(spec.path / cache.RESULT, record)
    return problem


def _train(task: Task, resume: bool, started_flag: list[bool]) -> dict[str, Any]:
    spec, config = task.spec, task.config
    recipe = override(config.recipe(), [("seed", spec.seed), ("model", spec.arm.model),
                                        ("model_args", spec.arm.args)])
    run = RunConfig(model=spec.arm.model, data=config.data, recipe=recipe, out=spec.path,
                    data_dir=config.data_dir, device=config.device, resume=resume,
                    force=not resume, quiet=True,
                    command=task.command or f"igc reproduce (run {spec.name})")
    train(run, splits=load_data(config), callbacks=list(CALLBACKS),
          on_start=lambda trainer: started_flag.append(True))
    summary = cache.read_json(spec.path / cache.SUMMARY)
    if not isinstance(summary, dict):
        raise IGCError(f"run {spec.name} finished without a valid {cache.SUMMARY}")
    return summary


def train_run(task: Task) -> Outcome:
    """Train (or resume) one run and write its ``result.json``."""
    spec = task.spec
    if _STOP["requested"]:
        return Outcome(spec, INTERRUPTED, message="stopped before it started", code=130)
    if not cache.acquire(spec.path):
        return Outcome(spec, BUSY, message=f"run {spec.name} is being trained by "
                       f"{cache.lock_holder(spec.path)}")
    notes: list[str] = []
    log(f"training {spec.name} ({spec.arm.label})" + (" (resuming)" if task.resume else ""))
    try:
        cache.write_json(spec.path / cache.IDENTITY, cache.identity(spec))
        load_data(task.config)  # loaded once per process, outside the run's wall time
        resume = task.resume
        while True:
            started: list[bool] = []
            t0 = time.time()
            try:
                summary = _train(task, resume, started)
                break
            except IGCError as exc:
                if resume and not started:  # the checkpoint could not be resumed
                    bad = _move_aside(spec)
                    notes.append(f"run {spec.name}: its checkpoint cannot be resumed "
                                 f"({exc}); moved to {bad.name}, training from the start")
                    resume = False
                    continue
                return Outcome(spec, FAILED, message=f"run {spec.name} failed: {exc}",
                               notes=notes)
            except Interrupted as exc:
                _STOP["requested"] = True
                return Outcome(spec, INTERRUPTED, message=str(exc), code=exc.code,
                               notes=notes)
        record = result_record(spec, task.config, summary, time.time() - t0, t0, resume)
        problem = _write_checked(spec, record)
        if problem:
            return Outcome(spec, FAILED, message=f"run {spec.name}: {problem}", notes=notes)
        return Outcome(spec, TRAINED, record, notes=notes)
    finally:
        cache.release(spec.path)


def _move_aside(spec: RunSpec) -> Path:
    """Quarantine the run folder but keep holding the lock in a fresh one."""
    cache.release(spec.path)
    bad = cache.quarantine(spec)
    cache.acquire(spec.path)
    cache.write_json(spec.path / cache.IDENTITY, cache.identity(spec))
    return bad


# ----------------------------------------------------------------------------- workers

def _worker_init() -> None:
    """Worker processes: SIGINT only asks to stop (the trainer saves its checkpoint)."""
    def handle(signum, frame):
        _STOP["requested"] = True

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)


def execute(tasks: Sequence[Task], jobs: int = 1,
            on_done: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Run ``tasks`` (in this process, or ``jobs`` worker processes) and return their
    outcomes; ``on_done`` sees each as it finishes. An interrupt (SIGINT/SIGTERM) lets the
    running runs save and stop, and skips the rest."""
    outcomes: list[Outcome] = []

    def done(outcome: Outcome) -> None:
        outcomes.append(outcome)
        if on_done is not None:
            on_done(outcome)

    if jobs <= 1 or len(tasks) <= 1:
        for task in tasks:
            outcome = train_run(task)
            done(outcome)
            if outcome.status == INTERRUPTED:
                break
        _STOP["requested"] = False
        return outcomes
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=min(jobs, len(tasks)), mp_context=context,
                               initializer=_worker_init)
    old_term = signal.signal(signal.SIGTERM, _raise_interrupt) if _main_thread() else None
    futures = {pool.submit(train_run, task): task for task in tasks}
    pending = set(futures)
    try:
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                done(_outcome(future, futures[future]))
    except KeyboardInterrupt:
        # SIGTERM (not a second SIGINT, which the trainer takes as "stop at once") asks
        # every worker to save its checkpoint and stop; queued runs do not start.
        for child in multiprocessing.active_children():
            if child.pid is not None:
                _signal(child.pid, signal.SIGTERM)
        for future in pending:
            future.cancel()
        for future in pending:
            if not future.cancelled():
                done(_outcome(future, futures[future]))
        if not any(o.status == INTERRUPTED for o in outcomes):
            outcomes.append(Outcome(tasks[0].spec, INTERRUPTED, message="interrupted",
                                    code=130))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
    return outcomes


def _outcome(future, task: Task) -> Outcome:
    """A worker's outcome; a crashed worker becomes a ``FAILED`` outcome."""
    try:
        return future.result()
    except Exception as exc:  # a worker that died or raised past train_run
        reason = first_line(exc, 300)
        return Outcome(task.spec, FAILED, message=f"run {task.spec.name}: the worker "
                       f"process failed ({reason})")


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(OSError):
        os.kill(pid, signum)


def log(text: str) -> None:
    """A progress line on stderr."""
    sys.stderr.write(f"igc reproduce: {text}\n")  # one write: lines of workers stay whole
    sys.stderr.flush()
