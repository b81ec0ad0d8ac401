"""How long the runs left will take, told before a reproduction starts, from what is
recorded and the cost model: nothing is timed, so the answer does not depend on how
loaded the machine is while it is asked.

A network with finished runs is estimated from their recorded wall time (a resumable run
from the epochs it has left). One without is scaled by its work, multiply-adds of one
image times the images its run processes (an evaluation image at :data:`EVAL_FRACTION`
of a training one), at the seconds per unit of work of the finished runs of the other
networks (their median); when no run is finished yet, at the cost model's rate
(:func:`igc.deploy.chain.cost_model`: :data:`TRAIN_FACTOR` multiply-adds per forward one
at its dense rate, an optimistic bound: small group convolutions train slower). The
total is divided among the worker processes.
"""

from __future__ import annotations

import functools
import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import torch

import igc.reproduce.cache as cache
from igc.analysis.count import count_macs
from igc.deploy.chain import cost_model
from igc.errors import IGCError
from igc.models import create_model
from igc.reproduce.cache import RunState
from igc.reproduce.config import Config

#: An evaluation step (no backward) costs about this fraction of a training step.
EVAL_FRACTION = 1 / 3
#: Multiply-adds of a training step per multiply-add of the forward pass (the forward,
#: and the backward's two products: gradients of the input and of the weights).
TRAIN_FACTOR = 3


@dataclass
class Estimate:
    """Seconds of training left (``total``: summed over runs; ``wall``: with the jobs),
    and how many networks were estimated from their own recorded runs (``measured``),
    scaled by their work from the recorded runs of others (``scaled``), or from the cost
    model (``modelled``, no run recorded yet)."""

    total: float
    wall: float
    measured: int
    scaled: int = 0
    modelled: int = 0
    rate_source: str = ""  # where the seconds per unit of work came from


@functools.cache
def _macs(model_name: str, args_json: str, in_chans: int, size: int, num_classes: int
          ) -> int:
    with torch.inference_mode():
        model = create_model(model_name, num_classes=num_classes, in_chans=in_chans,
                             **json.loads(args_json))
        return count_macs(model, size, in_chans, method="hooks")


def macs(model_name: str, model_args: dict, in_chans: int, size: int,
         num_classes: int) -> int:
    """Multiply-adds of one image through the network (one forward pass of one image on
    the CPU, far faster than on the meta device; remembered per network)."""
    return _macs(model_name, json.dumps(model_args, sort_keys=True), in_chans, size,
                 num_classes)


def run_device(name: str) -> torch.device:
    """The torch device of ``--device`` (auto: CUDA when there is one)."""
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


def estimate(states: Sequence[RunState], config: Config, jobs: int, splits) -> Estimate:
    """The time left for the runs of ``states`` that are not done (see the module doc)."""
    recipe = config.recipe()
    epochs = recipe.epochs
    evals = epochs if not recipe.eval_every else math.ceil(epochs / recipe.eval_every)
    images = epochs * len(splits.train) + evals * len(splits.test) * EVAL_FRACTION
    shape = (splits.in_channels, splits.image_size, splits.num_classes)

    def work(s: RunState) -> float:
        """Multiply-adds of the run's images through its network."""
        return macs(s.spec.arm.model, s.spec.arm.args, *shape) * images

    measured: dict[tuple[str, str], list[float]] = {}
    done: dict[tuple[str, str], RunState] = {}
    for s in states:
        if s.state == cache.DONE and s.result is not None:
            key = (s.spec.target, s.spec.arm.id)
            measured.setdefault(key, []).append(float(s.result["seconds"]))
            done.setdefault(key, s)
    per_arm = {k: statistics.fmean(v) for k, v in measured.items()}
    left_keys = {(s.spec.target, s.spec.arm.id) for s in states if s.state != cache.DONE}
    rate, source = 0.0, ""
    if left_keys - set(per_arm):
        if per_arm:
            rate = statistics.median(per_arm[k] / max(1.0, work(done[k])) for k in per_arm)
            source = "the recorded runs"
        else:
            model = cost_model(run_device(config.device))
            rate = TRAIN_FACTOR / model.dense_rate
            source = f"the cost model ({model.source})"
    total, left, scaled, modelled = 0.0, 0, 0, 0
    for s in states:
        if s.state == cache.DONE:
            continue
        arm_key = (s.spec.target, s.spec.arm.id)
        if arm_key not in per_arm:
            per_arm[arm_key] = rate * work(s)
            if measured:
                scaled += 1
            else:
                modelled += 1
        fraction = 1.0
        if s.state == cache.RESUME:
            fraction = max(0.0, 1.0 - cache.epochs_done(s.spec.path) / epochs)
        total += per_arm[arm_key] * fraction
        left += 1
    wall = total / max(1, min(jobs, left))
    return Estimate(total, wall, len(measured), scaled, modelled,
                    source if scaled or modelled else "")


def duration(seconds: float) -> str:
    """``1 h 05 min`` / ``12 min`` / ``40 s``."""
    if seconds >= 3600:
        return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"
    if seconds >= 60:
        return f"{round(seconds / 60)} min"
    return f"{round(seconds)} s"
