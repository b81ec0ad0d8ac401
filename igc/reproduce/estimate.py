"""How long the runs left will take, told before a reproduction starts.

A network with finished runs is estimated from their measured wall time (a resumable run
from the epochs it has left); one without is timed for a few training steps on this
machine (at a batch of at most :data:`PROBE_BATCH`, scaled linearly to its recipe's
batch), with the threads and device the runs will use, and scaled to the budget's steps and
evaluations; once :data:`TIMING_BUDGET_S` is spent, the networks left are estimated from
their multiply-adds at the timed ones' seconds per multiply-add. The total is divided among
the worker processes.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import igc.reproduce.cache as cache
from igc.errors import IGCError
from igc.reproduce.cache import RunState
from igc.reproduce.config import Config

#: Training steps timed per network (after WARMUP untimed ones); the median is used.
STEPS, WARMUP = 3, 2
#: An evaluation step (no backward) costs about this fraction of a training step.
EVAL_FRACTION = 1 / 3
#: Seconds spent timing networks; the networks left then are estimated from their
#: multiply-adds at the median seconds per multiply-add of those timed.
TIMING_BUDGET_S = 20.0
#: The batch a network is timed at; a step's time is scaled linearly to the recipe's batch.
PROBE_BATCH = 16


@dataclass
class Estimate:
    """Seconds of training left (``total``: summed over runs; ``wall``: with the jobs),
    and how many networks were estimated from measured runs, timed steps, or scaled from
    the timed ones by their multiply-adds (``scaled``, once :data:`TIMING_BUDGET_S` is
    spent)."""

    total: float
    wall: float
    measured: int
    timed: int
    scaled: int = 0


def step_seconds(model_name: str, model_args: dict, config: Config, batch: int,
                 in_chans: int, size: int, num_classes: int, channels_last: bool) -> float:
    """Median seconds of one SGD training step of the network on a random batch, with the
    runs' device and threads."""
    import torch

    from igc import create_model

    device = run_device(config.device)
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, config.num_threads) if config.num_threads else threads)
    try:
        model = create_model(model_name, num_classes=num_classes, in_chans=in_chans,
                             **model_args).to(device)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        model = model.to(memory_format=fmt)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        x = torch.randn(batch, in_chans, size, size, device=device).to(memory_format=fmt)
        y = torch.randint(0, num_classes, (batch,), device=device)
        times = []
        for _ in range(WARMUP + STEPS):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - t0)
        return statistics.median(times[WARMUP:])
    finally:
        torch.set_num_threads(threads)


def macs(model_name: str, model_args: dict, in_chans: int, size: int,
         num_classes: int) -> int:
    """Multiply-adds of one image through the network, counted on the meta device."""
    import torch

    from igc import create_model
    from igc.analysis.count import count_macs

    with torch.device("meta"):
        model = create_model(model_name, num_classes=num_classes, in_chans=in_chans,
                             **model_args)
    return count_macs(model, size, in_chans, method="hooks")


def run_device(name: str):
    """The torch device of ``--device`` (auto: CUDA when there is one)."""
    import torch

    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise IGCError("--device cuda asked for, but no CUDA GPU is available; use --device "
                       "cpu or auto")
    try:
        return torch.device(name)
    except RuntimeError:
        raise IGCError(f"unknown device {name!r}; use auto, cpu or cuda[:N]") from None


def estimate(states: Sequence[RunState], config: Config, jobs: int, splits,
             progress: Callable[[str], None] | None = None) -> Estimate:
    """The time left for the runs of ``states`` that are not done (see the module doc).

    ``progress(line)`` is told each network before it is timed (``timing network 3 of
    40: NAME``), so a long estimate shows that it is working."""
    recipe = config.recipe()
    epochs = recipe.epochs
    evals = epochs if not recipe.eval_every else math.ceil(epochs / recipe.eval_every)
    train_steps = len(splits.train) // recipe.batch_size or 1
    eval_steps = math.ceil(len(splits.test) / recipe.batch_size)
    measured: dict[tuple[str, str], list[float]] = {}
    for s in states:
        if s.state == cache.DONE and s.result is not None:
            measured.setdefault((s.spec.target, s.spec.arm.id), []).append(s.result["seconds"])
    per_arm: dict[tuple[str, str], float] = {k: statistics.fmean(v) for k, v in measured.items()}
    timed = 0
    total, left = 0.0, 0
    untimed = len({(s.spec.target, s.spec.arm.id) for s in states
                   if s.state != cache.DONE} - set(per_arm))
    rates: list[float] = []  # seconds per multiply-add of the networks timed
    scaled, deadline = 0, time.monotonic() + TIMING_BUDGET_S
    for s in states:
        if s.state == cache.DONE:
            continue
        arm_key = (s.spec.target, s.spec.arm.id)
        if arm_key not in per_arm:
            shape = (s.spec.arm.model, s.spec.arm.args, splits.in_channels, splits.image_size,
                     splits.num_classes)
            if rates and time.monotonic() > deadline:
                step = statistics.median(rates) * macs(*shape)
                scaled += 1
            else:
                if progress is not None:
                    progress(f"timing network {timed + 1} of {untimed} (for at most "
                             f"{TIMING_BUDGET_S:.0f} s in all): {s.spec.arm.model} "
                             f"({s.spec.target})")
                probe = min(recipe.batch_size, PROBE_BATCH)  # then scaled to the batch
                step = step_seconds(s.spec.arm.model, s.spec.arm.args, config, probe,
                                    splits.in_channels, splits.image_size,
                                    splits.num_classes, recipe.channels_last) \
                    * recipe.batch_size / probe
                rates.append(step / max(1, macs(*shape)))
                timed += 1
            per_arm[arm_key] = step * (epochs * train_steps + evals * eval_steps
                                       * EVAL_FRACTION)
        fraction = 1.0
        if s.state == cache.RESUME:
            fraction = max(0.0, 1.0 - cache.epochs_done(s.spec.path) / epochs)
        total += per_arm[arm_key] * fraction
        left += 1
    wall = total / max(1, min(jobs, left))
    return Estimate(total, wall, len(measured), timed, scaled)


def duration(seconds: float) -> str:
    """``1 h 05 min`` / ``12 min`` / ``40 s``."""
    if seconds >= 3600:
        return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"
    if seconds >= 60:
        return f"{round(seconds / 60)} min"
    return f"{round(seconds)} s"
