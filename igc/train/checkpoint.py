"""Checkpoints: written atomically, read with validation.

A checkpoint is one ``torch.save`` dictionary (``FORMAT`` marks it) holding everything a run
needs to continue exactly: the model name, its builder overrides and the data set's shape;
the weights; the optimizer, schedule and gradient-scaler states; the RNG states; the epoch,
the step inside it and the running sums of a half-done epoch; the resolved recipe. Writes go
to a temporary file in the same directory, then ``os.replace``: a crash never leaves a torn
checkpoint, and the previous one stays until the new one is complete.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import torch

from igc.errors import IGCError

FORMAT = "igc-checkpoint"
VERSION = 1
#: File name of the latest checkpoint inside a run directory.
CHECKPOINT = "checkpoint.pt"


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write ``state`` (plus the format marker) to ``path`` atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    payload = {"format": FORMAT, "version": VERSION, **state}
    try:
        with open(tmp, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise IGCError(f"cannot write checkpoint {path} ({exc.strerror or exc}); check the "
                       "disk space and permissions of the run directory") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Read and check a checkpoint; IGCError for a missing, corrupt or foreign file.

    ``path`` may be a run directory (its ``checkpoint.pt`` is read).
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT
    if not path.is_file():
        raise IGCError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged file
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise IGCError(f"checkpoint {path} is corrupt or not a torch file ({reason[:120]}); "
                       "delete it, or resume from another copy") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise IGCError(f"{path} is not an igc checkpoint (no {FORMAT!r} marker)")
    if state.get("version", 0) > VERSION:
        raise IGCError(f"checkpoint {path} has format version {state['version']}; this igc "
                       f"reads up to {VERSION}: upgrade igc")
    missing = [k for k in ("model", "model_args", "num_classes", "in_chans", "state_dict",
                           "recipe", "epoch") if k not in state]
    if missing:
        raise IGCError(f"checkpoint {path} lacks {', '.join(missing)}; it is incomplete")
    state["path"] = str(path)
    return state


def rng_state() -> dict[str, Any]:
    """The RNG states a training step can touch (torch CPU and CUDA, Python)."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if "python" in state:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        cuda = [s.cpu() for s in state["cuda"]]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


def load_model_weights(model: torch.nn.Module, state: dict, name: str) -> None:
    """Load ``state["state_dict"]`` into ``model``; IGCError naming the mismatch. Old
    layouts load through :func:`igc.models.convert.remap_legacy_state_dict`."""
    from igc.models.convert import remap_legacy_state_dict

    try:
        result = model.load_state_dict(remap_legacy_state_dict(state["state_dict"], model),
                                       strict=True)
    except RuntimeError as exc:
        first = [line.strip() for line in str(exc).splitlines() if line.strip()]
        detail = first[1] if len(first) > 1 else first[0] if first else ""
        raise IGCError(f"checkpoint {state.get('path', '')} does not fit model {name!r} "
                       f"({detail[:160]})") from None
    del result
