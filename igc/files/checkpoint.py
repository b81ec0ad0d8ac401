"""The checkpoint file (``checkpoint.pt``): written atomically, read weights-only, validated.

A checkpoint is one ``torch.save`` table marked ``format = "igc-checkpoint"``. Every reader
(``igc train --resume``, ``igc eval``, ``igc export``) goes through :func:`load_checkpoint`:
``torch.load(weights_only=True)`` (no code in a crafted pickle runs), a size limit on the
file, then :data:`MODEL_FIELDS` checked field by field (a classifier of 10^9 classes is
refused before anything is allocated). :func:`check_resumable` adds the training fields
(:data:`TRAINING_FIELDS`) that ``--resume`` needs. Writes go through
:func:`~igc.files.atomic.atomic_writer`: a crash never leaves a torn checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch

from igc.checks import (
    MAX_BATCH,
    MAX_CHANNELS,
    MAX_CLASSES,
    MAX_EPOCHS,
    MAX_IMAGE_SIZE,
    MAX_NAME,
    MAX_OPTION,
    MAX_SEED,
)
from igc.errors import IGCError
from igc.files.atomic import atomic_writer, not_a_file
from igc.files.schema import Spec, check, check_fields, check_plain
from igc.formatting import first_line

FORMAT = "igc-checkpoint"
VERSION = 1
#: File name of the latest checkpoint inside a run folder.
CHECKPOINT = "checkpoint.pt"
#: The largest checkpoint file read (the largest network of the zoo needs ~100 MB).
MAX_CHECKPOINT_BYTES = 4 << 30
#: The most tensors a state dict may hold.
MAX_TENSORS = 100_000
_BIG = 2**62

def _field(spec: Spec) -> Any:
    """A record field whose :class:`Spec` is ``spec``; optional specs get a ``None`` default."""
    if spec.optional:
        return field(default=None, metadata={"spec": spec})
    return field(metadata={"spec": spec})


def schema(record: type, *, relaxed: bool = False) -> dict[str, Spec]:
    """The checked fields of a dataclass record.

    Field name -> :class:`Spec` of the dataclass ``record`` (the readers' schema is the
    writers' dataclass); ``relaxed``: every field optional except ``state_dict``."""
    specs = {f.name: f.metadata["spec"] for f in fields(record)}
    if relaxed:
        specs = {k: s if k == "state_dict" else replace(s, optional=True)
                 for k, s in specs.items()}
    return specs


@dataclass(kw_only=True)
class WeightsHeader:
    """The metadata a file of weights records about its network.

    What a file of weights says about its network: the metadata of released weights
    (the header of a ``.safetensors`` file, or beside ``state_dict`` in a ``.pt`` table)."""

    model: str = _field(Spec(str, 1, MAX_NAME))
    model_args: dict = _field(Spec(dict, 0, 256))
    num_classes: int = _field(Spec(int, 1, MAX_CLASSES))
    in_chans: int = _field(Spec(int, 1, MAX_CHANNELS))
    data: str | None = _field(Spec(str, 0, MAX_NAME, optional=True, null=True))
    image_size: int | None = _field(Spec(int, 1, MAX_IMAGE_SIZE, optional=True, null=True))
    classes: list | None = _field(Spec(list, 1, MAX_CLASSES, optional=True,
                                       items=Spec(str, 0, 1000)))
    mean: list | None = _field(Spec(list, 1, MAX_CHANNELS, optional=True,
                                    items=Spec(float, -1e3, 1e3)))
    std: list | None = _field(Spec(list, 1, MAX_CHANNELS, optional=True,
                                   items=Spec(float, 1e-9, 1e3)))
    card: dict | None = _field(Spec(dict, 0, 64, optional=True, null=True))


@dataclass(kw_only=True)
class ModelRecord(WeightsHeader):
    """What every reader of a checkpoint needs: the header, the weights, the recipe."""

    state_dict: dict = _field(Spec(dict, 1, MAX_TENSORS, items=Spec(torch.Tensor)))
    recipe: dict = _field(Spec(dict, 0, 256))
    epoch: int = _field(Spec(int, 0, MAX_EPOCHS))
    params: int | None = _field(Spec(int, 0, _BIG, optional=True, null=True))
    macs: int | None = _field(Spec(int, 0, _BIG, optional=True, null=True))
    ema_state_dict: dict | None = _field(Spec(dict, 1, MAX_TENSORS + 1, optional=True,
                                              null=True, items=Spec(torch.Tensor)))


@dataclass(kw_only=True)
class TrainingRecord(ModelRecord):
    """What a training checkpoint records beside the weights.

    A checkpoint as ``igc train`` writes it (:func:`igc.train.snapshot.capture`): the
    model record plus what ``--resume`` needs."""

    optimizer: dict = _field(Spec(dict, 1, 16))
    schedule: dict | None = _field(Spec(dict, 0, 64, optional=True))
    scaler: dict | None = _field(Spec(dict, 0, 64, null=True, optional=True))
    rng: list = _field(Spec(list, 1, 4096, items=Spec(dict, 1, 8)))
    step_in_epoch: int | None = _field(Spec(int, 0, _BIG, optional=True))
    samples_in_epoch: int | None = _field(Spec(int, 0, _BIG, optional=True))
    global_step: int | None = _field(Spec(int, 0, _BIG, optional=True))
    partial: dict | None = _field(Spec(dict, 0, 8, optional=True, null=True,
                                       items=Spec(float, 0, None)))
    train_seconds: float | None = _field(Spec(float, 0, None, optional=True))
    sessions: list | None = _field(Spec(list, 0, 100_000, optional=True,
                                        items=Spec(dict, 0, 8)))
    images_seen: int | None = _field(Spec(int, 0, _BIG, optional=True))
    loader: dict | None = _field(Spec(dict, 0, 8, optional=True))
    last_record: dict | None = _field(Spec(dict, 0, 64, optional=True, null=True))
    pending_eval: bool | None = _field(Spec(bool, optional=True))
    complete: bool | None = _field(Spec(bool, optional=True))
    torch: str | None = _field(Spec(str, 1, MAX_NAME, optional=True))

    def to_table(self) -> dict[str, Any]:
        """The fields as the table :func:`save_checkpoint` writes (tensors not copied)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


#: The metadata of a file of weights (a ``.safetensors`` header).
HEADER_FIELDS: dict[str, Spec] = schema(WeightsHeader)
#: What every reader needs: the model, its options and input, the weights.
MODEL_FIELDS: dict[str, Spec] = schema(ModelRecord)
#: What ``--resume`` needs besides :data:`MODEL_FIELDS`.
TRAINING_FIELDS: dict[str, Spec] = {k: s for k, s in schema(TrainingRecord).items()
                                    if k not in MODEL_FIELDS}

LOADER_FIELDS: dict[str, Spec] = {
    "seed": Spec(int, 0, MAX_SEED),
    "epoch": Spec(int, 0, MAX_EPOCHS),
    "world_size": Spec(int, 1, 1 << 16),
    "batch_size": Spec(int, 1, MAX_BATCH, optional=True),
}


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write ``state`` (plus the format marker) to ``path`` atomically."""
    payload = {"format": FORMAT, "version": VERSION, **state}
    with atomic_writer(path, "checkpoint") as handle:
        torch.save(payload, handle)
    return Path(path)


def _fix(path: Path) -> str:
    return f"{path} is damaged or was not written by igc: resume from another copy"


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Read and validate a checkpoint (``path`` may be a run folder).

    IGCError for a missing, oversized, corrupt, foreign or malformed file. The table gets
    ``path``."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT
    if not path.is_file():
        raise not_a_file(path, "checkpoint")
    size = path.stat().st_size
    if size > MAX_CHECKPOINT_BYTES:
        raise IGCError(f"checkpoint {path} is {size / 2**30:.1f} GiB, over the "
                       f"{MAX_CHECKPOINT_BYTES >> 30} GiB limit; it is not a checkpoint of this "
                       "zoo")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged file
        raise IGCError(f"checkpoint {path} is corrupt or not a torch file "
                       f"({first_line(exc, 120)}); delete it, or resume from another "
                       "copy") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise IGCError(f"{path} is not an igc checkpoint (no {FORMAT!r} marker)")
    return check_checkpoint(state, path)


def check_checkpoint(state: dict, path: str | Path) -> dict:
    """Check a training checkpoint's fields against the writer's schema.

    ``state`` (a table marked ``format = "igc-checkpoint"``, read from ``path``) checked
    against :data:`MODEL_FIELDS`; it gets ``path``. IGCError naming the first bad field."""
    path = Path(path)
    version = state.get("version", 0)
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise IGCError(f"{path} has a bad format version {version!r}; {_fix(path)}")
    if version > VERSION:
        raise IGCError(f"checkpoint {path} has format version {version}; this igc reads up "
                       f"to {VERSION}: upgrade igc")
    check_header(state, MODEL_FIELDS, f"checkpoint {path}", _fix(path))
    check_plain(state["recipe"], f"checkpoint {path}: recipe", _fix(path))
    state["path"] = str(path)
    return state


def check_header(table: Any, specs: dict[str, Spec], where: str, fix: str) -> dict:
    """Check the metadata header of a file of weights.

    ``table`` if its fields fit ``specs`` (:data:`HEADER_FIELDS` and the schemas that
    extend it), its ``model_args`` and ``card`` are small plain values, and its
    ``classes`` / ``mean`` / ``std`` have one entry per class / channel; else IGCError."""
    table = check_fields(table, specs, where, fix)
    if table.get("model_args") is not None:
        check_plain(table["model_args"], f"{where}: model_args", fix, max_number=MAX_OPTION)
    if table.get("card") is not None:
        check_plain(table["card"], f"{where}: card", fix)
    for key, count in (("classes", "num_classes"), ("mean", "in_chans"), ("std", "in_chans")):
        want = table.get(count)
        if table.get(key) is not None and want is not None and len(table[key]) != want:
            raise IGCError(f"{where}: {key} has {len(table[key])} entries, not {count} = "
                           f"{want}; {fix}")
    return table


def check_resumable(state: dict) -> dict:
    """``state`` if it also holds the training fields ``--resume`` needs."""
    path = state.get("path", "the checkpoint")
    fix = f"{path} cannot be resumed: start a new run (the weights can still be evaluated)"
    check_fields(state, TRAINING_FIELDS, f"checkpoint {path}", fix)
    if "loader" in state:
        check_fields(state["loader"], LOADER_FIELDS, f"checkpoint {path}: loader", fix)
    if state.get("last_record") is not None:
        check_plain(state["last_record"], f"checkpoint {path}: last_record", fix)
    for i, rng in enumerate(state["rng"]):
        check(rng.get("torch"), Spec(torch.Tensor), f"checkpoint {path}: rng[{i}].torch", fix)
    return state


__all__ = ["CHECKPOINT", "FORMAT", "HEADER_FIELDS", "MODEL_FIELDS", "TRAINING_FIELDS", "VERSION",
           "ModelRecord", "TrainingRecord", "WeightsHeader", "check_checkpoint", "check_header",
           "check_resumable", "load_checkpoint", "save_checkpoint", "schema"]
