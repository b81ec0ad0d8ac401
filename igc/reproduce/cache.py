"""The run cache of a reproduction: one folder per (target, network, seed) under ``OUT``.

Layout (the budget and data set are the folder's: ``OUT/reproduce.json``)::

    OUT/reproduce.json                        the configuration (config.check_out_dir)
    OUT/<target>/<arm id>/seed-<s>/           the trainer's run folder: recipe.toml,
                                              run.json, metrics.jsonl, checkpoint.pt,
                                              summary.json
    OUT/<target>/<arm id>/seed-<s>/identity.json   what this run is (written first)
    OUT/<target>/<arm id>/seed-<s>/result.json     the finished run (written last): top-1,
                                              learning curve, wall time, machine, commit
    OUT/<target>/<arm id>/seed-<s>/.lock      held while a process trains the run

A run is *done* when ``result.json`` is valid and agrees with the trainer's
``summary.json``; *resumable* when its checkpoint exists; *corrupt* when a file of it is
damaged or disagrees, *stale* when it was made for another definition of the network.
Corrupt and stale runs are reported by name, moved aside (``seed-<s>.bad-<n>``) and
trained again; they are never read as results.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from igc.errors import IGCError, unknown_name
from igc.files.atomic import atomic_write
from igc.reproduce.arms import Arm
from igc.reproduce.config import LAYOUT, Config
from igc.reproduce.registry import Target
from igc.reproduce.targets import get_target

RESULT, IDENTITY, LOCK = "result.json", "identity.json", ".lock"
SUMMARY, METRICS, CHECKPOINT = "summary.json", "metrics.jsonl", "checkpoint.pt"
#: The states of a run (see :func:`inspect`).
DONE, RESUME, NEW, CORRUPT, STALE, LOCKED, RECOVER = (
    "done", "resume", "new", "corrupt", "stale", "locked", "recover")


@dataclass(frozen=True)
class RunSpec:
    """One run of a reproduction: target, network, seed, its key and its folder."""

    target: str
    arm: Arm
    seed: int
    key: str
    path: Path

    @property
    def name(self) -> str:
        """``target/arm/seed-s``: how messages name the run."""
        return f"{self.target}/{self.arm.id}/seed-{self.seed}"


def run_key(target: str, arm: Arm, config: Config, seed: int) -> str:
    """A hash of everything that determines a run's result."""
    payload = {"layout": LAYOUT, "target": target, "arm": arm.id, "model": arm.model,
               "model_args": arm.args, "seed": seed, "config": config.identity()}
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def plan(targets: Sequence[str | Target], config: Config, out: Path) -> list[RunSpec]:
    """Every run of ``targets`` (shipped targets' names, or targets), seed-major (each
    seed's full comparison before the next seed), in a fixed order: shards split this
    list."""
    arms: dict[str, list[Arm]] = {}
    for named in [t for t, _ in config.budget.target_seeds] + [
            t for t, _, _ in config.budget.arm_seeds]:
        get_target(named)  # a budget naming no target is an error, not a silent no-op
    for t in targets:
        target = get_target(t) if isinstance(t, str) else t
        if target.arms is None:
            raise IGCError(f"{target.name} is not an empirical target: it trains nothing")
        arms[target.name] = target.arms(config.budget)
        unknown = set(config.budget.arms_with_seeds(target.name)) - {
            a.id for a in arms[target.name]}
        if unknown:
            raise unknown_name(f"network of {target.name} in arm_seeds of budget "
                               f"{config.budget.name!r}", min(unknown),
                               [a.id for a in arms[target.name]])
    most = max((config.seeds_for(t, a.id) for t in arms for a in arms[t]), default=0)
    return [RunSpec(t, arm, seed, run_key(t, arm, config, seed),
                    out / t / arm.id / f"seed-{seed}")
            for seed in range(most) for t in arms
            for arm in arms[t] if seed < config.seeds_for(t, arm.id)]


def shard(specs: Sequence[RunSpec], index: int, count: int) -> list[RunSpec]:
    """The runs of shard ``index`` of ``count`` (1-based): round robin over each seed's
    runs, shifted by one per seed, so that every network's seeds spread over the shards
    (the same split on every machine, from the plan alone)."""
    position: dict[int, int] = {}
    out = []
    for s in specs:
        p = position[s.seed] = position.get(s.seed, -1) + 1
        if (p + s.seed) % count == index - 1:
            out.append(s)
    return out


# ------------------------------------------------------------------------------ reading

def read_json(path: Path) -> Any:
    """A JSON file's content; ``ValueError`` naming the problem when it cannot be read."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"{path.name} cannot be read ({exc.strerror or exc})") from None
    except ValueError:
        raise ValueError(f"{path.name} is not valid JSON") from None


def _number(value: Any, low: float, high: float = math.inf) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and low <= value <= high)


def check_result(data: Any, spec: RunSpec) -> str | None:
    """The problem of a run's ``result.json`` content (and its ``summary.json``), or None."""
    if not isinstance(data, dict):
        return f"{RESULT} is not an object"
    for key, want in (("key", spec.key), ("seed", spec.seed), ("model", spec.arm.model),
                      ("target", spec.target)):
        if data.get(key) != want:
            return f"{RESULT} has {key} {data.get(key)!r}, expected {want!r}"
    checks = (("top1", 0, 100), ("seconds", 0, math.inf), ("params", 1, math.inf),
              ("epochs", 1, math.inf))
    for key, low, high in checks:
        if not _number(data.get(key), low, high):
            return f"{RESULT}: {key} is missing or out of range ({data.get(key)!r})"
    curve = data.get("curve", [])
    if not isinstance(curve, list) or not all(_number(v, 0, 100) for v in curve):
        return f"{RESULT}: curve must be a list of accuracies"
    if not isinstance(data.get("machine"), dict):
        return f"{RESULT}: machine is missing"
    try:
        summary = read_json(spec.path / SUMMARY)
    except ValueError as exc:
        return str(exc)
    if not isinstance(summary, dict) or summary.get("top1") != data["top1"] \
            or summary.get("epochs") != data["epochs"]:
        return f"{RESULT} disagrees with the trainer's {SUMMARY}"
    return None


def read_curve(path: Path) -> list[float]:
    """Test top-1 after each evaluated epoch, from the trainer's ``metrics.jsonl``."""
    curve = []
    try:
        lines = (path / METRICS).read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and _number(record.get("top1"), 0, 100):
            curve.append(float(record["top1"]))
    return curve


def read_metrics_seconds(path: Path) -> float:
    """The training plus evaluation seconds of every epoch in ``metrics.jsonl`` (summed
    over all the sessions that trained the run; 0 when unreadable)."""
    total = 0.0
    try:
        lines = (path / METRICS).read_text(encoding="utf-8").splitlines()
    except OSError:
        return 0.0
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            for key in ("seconds", "eval_seconds"):
                if _number(record.get(key), 0):
                    total += float(record[key])
    return total


def epochs_done(path: Path) -> int:
    """Epochs a partial run has finished (lines of its ``metrics.jsonl``)."""
    try:
        return sum(1 for line in (path / METRICS).read_text(encoding="utf-8").splitlines()
                   if line.strip())
    except OSError:
        return 0


@dataclass
class RunState:
    """What the cache holds of one run: its state, the finished result (``DONE``) and the
    problem (``CORRUPT`` / ``STALE`` / ``LOCKED``)."""

    spec: RunSpec
    state: str
    result: dict[str, Any] | None = None
    problem: str = ""


def inspect(spec: RunSpec) -> RunState:
    """The state of ``spec``'s folder (reads, never writes)."""
    path = spec.path
    if not path.is_dir():
        return RunState(spec, NEW)
    holder = lock_holder(path)
    if holder:
        return RunState(spec, LOCKED, problem=f"being trained by {holder}")
    if (path / IDENTITY).exists():
        try:
            identity = read_json(path / IDENTITY)
        except ValueError as exc:
            return RunState(spec, CORRUPT, problem=str(exc))
        if not isinstance(identity, dict) or identity.get("key") != spec.key:
            return RunState(spec, STALE, problem="made for another definition of this "
                            "network or configuration")
    if (path / RESULT).exists():
        try:
            data = read_json(path / RESULT)
        except ValueError as exc:
            return RunState(spec, CORRUPT, problem=str(exc))
        problem = check_result(data, spec)
        if problem:
            return RunState(spec, CORRUPT, problem=problem)
        return RunState(spec, DONE, data)
    if not (path / IDENTITY).exists():
        if any(path.iterdir()):
            return RunState(spec, CORRUPT, problem=f"files without {IDENTITY}")
        return RunState(spec, NEW)
    if (path / SUMMARY).exists():
        return RunState(spec, RECOVER)  # trained; the result record was not written
    if (path / CHECKPOINT).exists():
        return RunState(spec, RESUME)
    return RunState(spec, NEW)


# ------------------------------------------------------------------------------ writing

def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON atomically (:func:`igc.files.atomic.atomic_write`)."""
    atomic_write(path, json.dumps(data, indent=2, default=str) + "\n", "run record")


def identity(spec: RunSpec) -> dict[str, Any]:
    """The ``identity.json`` of a run."""
    return {"key": spec.key, "target": spec.target, "arm": spec.arm.id,
            "label": spec.arm.label, "model": spec.arm.model, "model_args": spec.arm.args,
            "seed": spec.seed}


def quarantine(spec: RunSpec) -> Path:
    """Move a corrupt or stale run folder aside (``seed-<s>.bad-<n>``); return the new
    path."""
    n = 1
    while (target := spec.path.with_name(f"{spec.path.name}.bad-{n}")).exists():
        n += 1
    os.replace(spec.path, target)
    return target


# -------------------------------------------------------------------------------- locks

def _this_host() -> str:
    return socket.gethostname()


def lock_holder(path: Path) -> str | None:
    """Who holds the run's lock ("host pid N"), or None when it is free or its holder on
    this host has died."""
    try:
        host, pid = (path / LOCK).read_text(encoding="utf-8").split()
        pid_n = int(pid)
    except (OSError, ValueError):
        return None
    if host == _this_host():
        try:
            os.kill(pid_n, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
    return f"{host} pid {pid_n}"


def acquire(path: Path) -> bool:
    """Take the run's lock (a dead holder's lock on this host is taken over)."""
    path.mkdir(parents=True, exist_ok=True)
    lock = path / LOCK
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            if lock_holder(path):
                return False
            lock.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as handle:
            handle.write(f"{_this_host()} {os.getpid()}\n")
        return True
    return False


def release(path: Path) -> None:
    """Give the run's lock back (only a lock this process holds)."""
    try:
        host, pid = (path / LOCK).read_text(encoding="utf-8").split()
    except (OSError, ValueError):
        return
    if host == _this_host() and pid == str(os.getpid()):
        (path / LOCK).unlink(missing_ok=True)
