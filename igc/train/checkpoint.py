"""Checkpoints in training: the RNG states, loading weights, and the model of a checkpoint.

The file format itself (atomic writes, weights-only reads, field validation) lives in
:mod:`igc.files.checkpoint`; its names are re-exported here. :func:`model_from_checkpoint`
is the one way to rebuild the network a checkpoint holds (``igc eval``, ``igc export``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from igc.errors import IGCError
from igc.files.checkpoint import (
    CHECKPOINT,
    FORMAT,
    VERSION,
    check_resumable,
    load_checkpoint,
    save_checkpoint,
)
from igc.files.weights import load_weights, weights_from_table
from igc.formatting import first_line
from igc.models.registry import create_model


def rng_state() -> dict[str, Any]:
    """The RNG states a training step can touch (torch CPU and CUDA, Python)."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], origin: str = "the checkpoint") -> None:
    """Restore :func:`rng_state`'s output; IGCError when it is malformed."""
    try:
        torch.set_rng_state(state["torch"].cpu())
        if "python" in state:
            version, internal, gauss = state["python"]
            random.setstate((version, tuple(internal), gauss))
        if "cuda" in state and torch.cuda.is_available():
            cuda = [s.cpu() for s in state["cuda"]]
            if len(cuda) == torch.cuda.device_count():
                torch.cuda.set_rng_state_all(cuda)
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
        raise IGCError(f"the random-number state in {origin} is malformed "
                       f"({first_line(exc, 80)}); it cannot be resumed exactly: start a new "
                       "run") from None


def load_model_weights(model: nn.Module, state: dict, name: str,
                       key: str = "state_dict") -> None:
    """Load ``state[key]`` (a checked checkpoint's weights, or its moving average for
    ``key="ema_state_dict"``) into ``model``, strictly, through the weights pipeline
    (:func:`igc.files.weights.load_weights`); IGCError naming the first mismatch."""
    weights = weights_from_table(state, state.get("path", ""), "checkpoint",
                                 ema=key == "ema_state_dict")
    load_weights(model, weights, strict=True, name=name, record=False)


@dataclass
class CheckpointModel:
    """A network rebuilt from a checkpoint, with what the checkpoint says about it."""

    model: nn.Module
    state: dict
    name: str
    num_classes: int
    in_chans: int
    image_size: int | None
    data: str | None
    recipe: dict
    path: str


def model_from_checkpoint(source: str | Path | dict, ema: bool = False) -> CheckpointModel:
    """The network of a checkpoint (a file, a run folder, or a loaded checkpoint table),
    built with ``create_model`` for its classes and channels and loaded with its weights
    (``ema``: the moving average of the weights, when the run kept one). In eval mode.
    Raises IGCError for a bad file, an unknown model or weights that do not fit it."""
    state = source if isinstance(source, dict) else load_checkpoint(source)
    name, path = state["model"], str(state.get("path", ""))
    try:
        weights = weights_from_table(state, path, "checkpoint", ema=ema)
        model = create_model(name, pretrained=weights)
    except IGCError as exc:
        text = str(exc)
        raise IGCError(text if path and path in text else f"checkpoint {path}: {text}"
                       ) from None
    recipe = dict(state.get("recipe") or {})
    size = state.get("image_size") or recipe.get("image_size") or None
    return CheckpointModel(model.eval(), state, name, int(state["num_classes"]),
                           int(state["in_chans"]), size, state.get("data"), recipe,
                           str(state.get("path", "")))


__all__ = ["CHECKPOINT", "FORMAT", "VERSION", "CheckpointModel", "check_resumable",
           "load_checkpoint", "load_model_weights", "model_from_checkpoint", "rng_state",
           "save_checkpoint", "set_rng_state"]
