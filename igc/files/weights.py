"""The weights pipeline: one reader for every file of weights igc loads.

Every file of weights igc loads is read into one typed record and loaded into a network
in one place.

=======================  ====================================================  =========
file                     recognised by                                         ``kind``
=======================  ====================================================  =========
``igc train`` checkpoint  a torch table marked ``format = "igc-checkpoint"``   checkpoint
released ``.pt``          a torch table with a ``state_dict`` (+ header)       table
``.safetensors``          its 8-byte length and JSON header (igc's in          safetensors
                          ``__metadata__["igc"]``, optional)
plain state dict          a torch table of names -> tensors                    state_dict
pytorchcv ImageNet        a plain state dict with pytorchcv's keys, converted  pytorchcv
=======================  ====================================================  =========

:func:`read_weights` reads a file (``torch.load(weights_only=True)``: no pickled code runs;
size-capped; a one-member zip is unpacked), checks its metadata against the schema of the
writer's dataclass (:mod:`igc.files.checkpoint`) and its tensors
(:func:`igc.files.statedict.check_tensors`), renames old layouts once
(:func:`igc.models.convert.remap_legacy_state_dict`) and returns a :class:`WeightsFile`.
:func:`load_weights` loads one into a network built for it: the only place that
re-initialises the classifier for another ``num_classes``, adapts the first convolution
to another ``in_chans``, and compares names, shapes and dtypes before ``load_state_dict``.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from igc.errors import IGCError
from igc.files.atomic import not_a_file
from igc.files.checkpoint import FORMAT, ModelRecord, check_checkpoint, check_header, schema
from igc.files.safetensors import is_safetensors, read_safetensors
from igc.files.statedict import check_tensors, compare
from igc.formatting import first_line

__all__ = ["TABLE_FIELDS", "WeightsFile", "adapt_input_conv", "load_weights", "read_weights",
           "weights_from_table"]

#: A torch table of weights without the checkpoint marker (released ``.pt`` files): the
#: checkpoint's fields, all optional but the state dict.
TABLE_FIELDS = schema(ModelRecord, relaxed=True)


@dataclass
class WeightsFile:
    """Weights read for one network, with what the file says about it.

    Weights read for one network: the state dict (today's key layout) and what the file
    says about it (``None``: not said)."""

    state_dict: dict[str, torch.Tensor]
    kind: str  # "checkpoint", "table", "safetensors", "state_dict" or "pytorchcv"
    path: Path | str
    origin: str = "file"  # "released", "file", "hub", "checkpoint" or "pytorchcv"
    model: str | None = None
    model_args: dict[str, Any] = field(default_factory=dict)
    num_classes: int | None = None
    in_chans: int | None = None
    dataset: str | None = None
    image_size: int | None = None
    classes: list[str] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    card: dict[str, Any] | None = None
    sha256: str | None = None
    url: str | None = None
    converted_from: str | None = None  # pytorchcv's network name
    legacy: bool = False  # the file had the old head layout (renamed on reading)


def _fix(path: Path | str) -> str:
    return f"{path} is damaged or not weights of this zoo"


def read_weights(path: Path, origin: str = "file") -> WeightsFile:
    """Read any file of weights igc loads into a WeightsFile.

    The :class:`WeightsFile` of ``path`` (see the module docstring); IGCError (one line)
    for a missing, oversized, corrupt, foreign or malformed file."""
    # lazy: igc.models imports this module (files sit below models)
    from igc.models.download import read_payload

    if not path.is_file():
        raise not_a_file(path, "weights file")
    payload = read_payload(path)
    if is_safetensors(payload):
        tensors, header = read_safetensors(payload, path)
        return _record(tensors, header or {}, "safetensors", path, origin)
    try:
        data = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged file
        raise IGCError(f"{path} is corrupt or not a torch file ({first_line(exc, 120)})"
                       ) from None
    return weights_from_table(data, path, origin)


def weights_from_table(data: object, path: Path | str, origin: str = "file",
                       ema: bool = False) -> WeightsFile:
    """The WeightsFile of a table of tensors read from a file.

    The :class:`WeightsFile` of a table read from ``path`` by ``torch.load``: a
    checkpoint (``ema``: its moving average of the weights), a released table or a state
    dict."""
    if not isinstance(data, dict):
        raise IGCError(f"{path} holds a {type(data).__name__}, not a state dict or an igc "
                       "checkpoint")
    if data.get("format") == FORMAT:
        if "path" not in data:
            data = check_checkpoint(data, path)
        key = "ema_state_dict" if ema else "state_dict"
        state = data.get(key)
        if ema and not state:
            raise IGCError(f"checkpoint {path} holds no moving average of the weights (the "
                           "run had ema = false); drop the EMA option")
        if ema:  # an AveragedModel's: "module." prefixes, a step count
            state = {k.removeprefix("module."): v for k, v in state.items()
                     if k != "n_averaged"}
        return _record(state, data, "checkpoint", path, origin)
    if isinstance(data.get("state_dict"), dict):
        check_header(data, TABLE_FIELDS, f"{path}", _fix(path))
        return _record(data["state_dict"], data, "table", path, origin)
    return _record(data, {}, "state_dict", path, origin)


def _record(state: object, header: dict[str, Any], kind: str, path: Path | str,
            origin: str) -> WeightsFile:
    """The checked record of ``state`` (tensors) and ``header`` (checked metadata)."""
    # lazy: igc.models imports this module (files sit below models)
    from igc.models.convert import is_legacy_state_dict, remap_legacy_state_dict
    from igc.models.pytorchcv import convert, is_pytorchcv

    state = check_tensors(state, f"{path}: state dict" if header else str(path),
                          _fix(path))
    if kind == "state_dict" and is_pytorchcv(state):
        converted = convert(state)
        new = converted.state_dict
        return WeightsFile(new, "pytorchcv", path, "pytorchcv", model=converted.model,
                           model_args=converted.model_args, converted_from=converted.name,
                           num_classes=new["classifier.weight"].shape[0],
                           in_chans=new["stem.0.weight"].shape[1])
    legacy = is_legacy_state_dict(state)
    state = remap_legacy_state_dict(state)
    mean, std = header.get("mean"), header.get("std")
    record = WeightsFile(
        state, kind, path, origin, model=header.get("model"),
        model_args=dict(header.get("model_args") or {}),
        num_classes=header.get("num_classes"), in_chans=header.get("in_chans"),
        dataset=header.get("data") or None, image_size=header.get("image_size"),
        classes=header.get("classes"),
        mean=tuple(map(float, mean)) if mean else None,
        std=tuple(map(float, std)) if std else None,
        card=header.get("card"), legacy=legacy)
    if not header.get("model"):  # a bare state dict: what its shapes say
        bias, conv = state.get("classifier.bias"), state.get("stem.0.weight")
        weight = state.get("classifier.weight")
        # a head whose weight and bias disagree says nothing about the class count: it is
        # compared (and refused as mis-shaped) like any other tensor
        consistent = weight is None or (weight.dim() >= 1 and bias is not None
                                        and weight.shape[0] == bias.shape[0])
        if record.num_classes is None and bias is not None and bias.dim() == 1 and consistent:
            record.num_classes = bias.shape[0]
        if record.in_chans is None and conv is not None and conv.dim() == 4:
            record.in_chans = conv.shape[1]
    return record


def adapt_input_conv(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """Adapt a first convolution's weight to another number of input channels.

    ``(out, C, k, k) -> (out, in_chans, k, k)``: summed over ``C`` for one channel;
    otherwise the ``C`` channels repeated up to ``in_chans`` and scaled by ``C / in_chans``
    (timm's ``adapt_input_conv``)."""
    channels = weight.shape[1]
    if in_chans == 1:
        return weight.sum(dim=1, keepdim=True)
    repeats = math.ceil(in_chans / channels)
    return weight.repeat(1, repeats, 1, 1)[:, :in_chans] * (channels / in_chans)


def _canonical(name: str | None) -> str | None:
    # lazy: igc.models imports this module (files sit below models)
    from igc.models.registry import resolve_alias

    return resolve_alias(name) if name is not None else None


def load_weights(model: nn.Module, weights: WeightsFile, strict: bool = True,
                 name: str | None = None, record: bool = True) -> None:
    """Load a WeightsFile into a model, after every check.

    Load ``weights`` into ``model`` (built by ``create_model``, whose ``pretrained_cfg``
    names its classifier and first convolution; ``name``: the network's name when the
    model has no ``pretrained_cfg``).

    Another network's weights, missing, unexpected or mis-shaped keys are an IGCError
    unless ``strict=False`` (then what fits is loaded, with a warning); a dtype of the
    wrong kind always is. A different ``num_classes`` keeps the model's new classifier; a
    different ``in_chans`` adapts the first convolution (:func:`adapt_input_conv`).
    ``record``: write the weights' origin and input into ``model.pretrained_cfg``."""
    # lazy: igc.models imports this module (files sit below models)
    from igc.models.convert import refuse_changed_blocks

    cfg = getattr(model, "pretrained_cfg", None) or {}
    name = cfg.get("architecture", name)
    held = _canonical(weights.model)
    if strict and held is not None and name is not None and held != name:
        shown = f"pytorchcv's {weights.converted_from} (igc's {held!r})" \
            if weights.converted_from else repr(weights.model)
        raise IGCError(f"{weights.path} holds weights of {shown}, not {name!r}; "
                       f"build {held!r}, or pass strict=False")
    if weights.legacy:
        refuse_changed_blocks(model)
    state = dict(weights.state_dict)
    own = model.state_dict()
    head = cfg.get("classifier", "classifier") + "."
    reset = weights.num_classes is not None and "num_classes" in cfg \
        and weights.num_classes != cfg["num_classes"]
    if reset:  # a new classifier: keep its initialisation
        state = {k: v for k, v in state.items() if not k.startswith(head)}
    first = cfg.get("first_conv", "stem.0") + ".weight"
    if first in state and first in own and state[first].dim() == 4 \
            and state[first].shape[1] != own[first].shape[1]:
        state[first] = adapt_input_conv(state[first], own[first].shape[1])
    problems, misshaped = compare(state, own, head if reset else None)
    shown = f"model {name!r}" if name else "the model"
    if problems and strict:
        raise IGCError(f"{weights.path} does not fit {shown}: {problems}; is it another "
                       "network's? (strict=False loads what fits)")
    if problems:
        warnings.warn(f"{weights.path} loaded partly into {shown}: {problems}", stacklevel=3)
    model.load_state_dict({k: v for k, v in state.items()
                           if k in own and k not in misshaped}, strict=False)
    if record and cfg:
        _follow_weights(cfg, weights)
        cfg["weights"] = {"source": weights.origin, "file": str(weights.path),
                          "sha256": weights.sha256, "classifier_reset": reset,
                          **({"card": weights.card} if weights.card else {}),
                          **({"url": weights.url} if weights.url else {}),
                          **({"converted_from": weights.converted_from}
                             if weights.converted_from else {})}


def _follow_weights(cfg: dict[str, Any], weights: WeightsFile) -> None:
    """Make ``cfg`` describe the input the loaded weights expect (timm's ``pretrained_cfg``
    is the weights' preprocessing): the data set, image side and normalisation the file
    records, e.g. Fashion-MNIST 1x28x28 for CIFAR-family weights trained on it."""
    channels = cfg["input_size"][0]
    if weights.dataset:
        cfg["dataset"] = weights.dataset
    if weights.image_size:
        cfg["input_size"] = (channels, weights.image_size, weights.image_size)
    if weights.mean is not None and weights.std is not None and len(weights.mean) == channels:
        cfg["mean"], cfg["std"] = weights.mean, weights.std
