"""Weights for the zoo's networks: the released ones and a user's files.

Released weights live in ``igc/weights/`` (or the folder ``$IGC_WEIGHTS_DIR`` names), listed
in its manifest ``weights.toml``, one table per canonical model name::

    [models.igcv2_fmnist]
    file = "igcv2_fmnist.pt"      # in the same folder: an igc train checkpoint or state dict
    sha256 = "<64 hex digits>"    # of that file; checked before every load
    dataset = "fashion-mnist"     # what it was trained and tested on
    recipe = "fashion-mnist-cpu"
    command = "igc train --model igcv2_fmnist ..."
    epochs = 30
    top1 = 93.12                  # test-set top-1 (%) of this file
    top1_mean = 93.05             # mean and std over the seeds' runs
    top1_std = 0.11
    seeds = [0, 1, 2]
    commit = "<git commit of the training code>"

``create_model(name, pretrained=True)`` loads them; ``pretrained=FILE_OR_URL`` /
``checkpoint_path=FILE_OR_URL`` loads an ``igc train`` checkpoint (a dict with a
``state_dict``), a plain state dict, old layouts included (:mod:`igc.models.convert`), or a
pytorchcv ImageNet state dict (:mod:`igc.models.pytorchcv`, recognised from its keys). A URL
is downloaded into torch.hub's cache; ``hash=`` and hashes in file names are checked
(:mod:`igc.models.download`). Missing, unexpected or mis-shaped keys are an
:class:`IGCError` unless ``strict=False``; a different ``num_classes`` re-initialises the
classifier and a different ``in_chans`` adapts the first convolution (timm's
``adapt_input_conv``: summed over the input channels for one channel, else repeated and
rescaled).
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import re
import warnings
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

from igc.errors import IGCError
from igc.models.convert import remap_legacy_state_dict
from igc.models.download import (
    check_hash_argument,
    check_hashes,
    expected_hashes,
    fetch,
    read_payload,
)
from igc.models.entry import ModelEntry
from igc.models.pytorchcv import convert, is_pytorchcv

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]


__all__ = ["MANIFEST", "WeightsSource", "load_weights", "read_source", "released",
           "sha256_of", "weights_dir"]

#: File name of the manifest inside the weights folder.
MANIFEST = "weights.toml"
#: Environment variable naming another weights folder.
WEIGHTS_ENV = "IGC_WEIGHTS_DIR"

_TEXT = ("file", "sha256", "dataset", "recipe", "command", "commit")
_PERCENT = ("top1", "top1_mean")
_CARD_FIELDS = {*_TEXT, *_PERCENT, "top1_std", "epochs", "seeds"}


def weights_dir() -> Path:
    """The folder of the released weights: ``$IGC_WEIGHTS_DIR`` or ``igc/weights``."""
    override = os.environ.get(WEIGHTS_ENV)
    return Path(override) if override else Path(str(resources.files("igc") / "weights"))


def _check_card(name: str, card: object) -> dict[str, Any]:
    where = f"{MANIFEST}: [models.{name}]"
    if not isinstance(card, dict):
        raise IGCError(f"{where} is not a table; see igc/models/pretrained.py for the format")
    missing = sorted(_CARD_FIELDS - set(card))
    extra = sorted(set(card) - _CARD_FIELDS)
    if missing or extra:
        raise IGCError(f"{where} lacks {missing} / has unknown {extra}; give exactly "
                       f"{sorted(_CARD_FIELDS)}")
    problems = [f for f in _TEXT if not isinstance(card[f], str) or not card[f]]
    file = card["file"]
    if isinstance(file, str) and (Path(file).name != file or file in (".", "..")):
        problems.append("file (a file name inside the weights folder)")
    if isinstance(card["sha256"], str) and not re.fullmatch(r"[0-9a-f]{64}", card["sha256"]):
        problems.append("sha256 (64 lowercase hex digits)")
    for key in _PERCENT:
        if not _number(card[key]) or not 0 <= card[key] <= 100:
            problems.append(f"{key} (a percentage)")
    if not _number(card["top1_std"]) or card["top1_std"] < 0:
        problems.append("top1_std (>= 0)")
    if isinstance(card["epochs"], bool) or not isinstance(card["epochs"], int) \
            or card["epochs"] < 1:
        problems.append("epochs (a positive integer)")
    seeds = card["seeds"]
    if not isinstance(seeds, list) or not seeds or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        problems.append("seeds (a non-empty list of integers)")
    if problems:
        raise IGCError(f"{where}: bad {', '.join(dict.fromkeys(problems))}")
    return dict(card)


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)


def released() -> dict[str, dict[str, Any]]:
    """Canonical name -> model card of every network with released weights (validated)."""
    path = weights_dir() / MANIFEST
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise IGCError(f"cannot read {path} ({exc.strerror})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise IGCError(f"{path} is not valid TOML ({exc}); fix or restore it") from None
    if set(data) - {"models"} or not isinstance(data.get("models", {}), dict):
        raise IGCError(f"{path} must hold only [models.NAME] tables")
    return {name: _check_card(name, card) for name, card in data.get("models", {}).items()}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class WeightsSource:
    """Weights read for one network: the state dict and what the file says about it."""

    state_dict: dict[str, torch.Tensor]
    origin: str  # "released", "file" or "pytorchcv"
    path: Path
    model: str | None = None  # the network an igc train checkpoint names
    model_args: dict[str, Any] = field(default_factory=dict)
    num_classes: int | None = None
    in_chans: int | None = None
    card: dict[str, Any] | None = None
    sha256: str | None = None
    url: str | None = None
    converted_from: str | None = None  # pytorchcv's network name
    #: what an igc file says its network was trained on (``None``: not said)
    dataset: str | None = None
    image_size: int | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None


def _read_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise IGCError(f"weights file {path} does not exist")
    payload = read_payload(path)
    try:
        data = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged file
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise IGCError(f"{path} is corrupt or not a torch file ({reason[:120]})") from None
    if not isinstance(data, dict):
        raise IGCError(f"{path} holds a {type(data).__name__}, not a state dict or an igc "
                       "checkpoint")
    return data


def _source(path: Path, origin: str) -> WeightsSource:
    data = _read_file(path)
    checkpoint = isinstance(data.get("state_dict"), dict)
    state = data["state_dict"] if checkpoint else data
    if not state or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                            for k, v in state.items()):
        raise IGCError(f"{path} is not a state dict (names -> tensors) nor a checkpoint "
                       "holding one")
    if not checkpoint and is_pytorchcv(state):
        converted = convert(state)
        source = WeightsSource(converted.state_dict, "pytorchcv", path, model=converted.model,
                               model_args=converted.model_args,
                               converted_from=converted.name)
        source.num_classes = converted.state_dict["classifier.weight"].shape[0]
        source.in_chans = converted.state_dict["stem.0.weight"].shape[1]
        return source
    renamed = remap_legacy_state_dict(state)
    bias, conv = renamed.get("classifier.bias"), renamed.get("stem.0.weight")
    args = data.get("model_args") if checkpoint else None
    return WeightsSource(
        state, origin, path, model=data.get("model") if checkpoint else None,
        model_args=dict(args) if isinstance(args, dict) else {},
        num_classes=data.get("num_classes") if checkpoint else (
            bias.shape[0] if bias is not None and bias.dim() == 1 else None),
        in_chans=data.get("in_chans") if checkpoint else (
            conv.shape[1] if conv is not None and conv.dim() == 4 else None),
        **(_trained_on(data) if checkpoint else {}))


def _trained_on(data: dict[str, Any]) -> dict[str, Any]:
    """The data set, image side and normalisation an igc file records, where well formed."""
    found: dict[str, Any] = {}
    if isinstance(data.get("data"), str) and 0 < len(data["data"]) <= 200:
        found["dataset"] = data["data"]
    size = data.get("image_size")
    if isinstance(size, int) and not isinstance(size, bool) and 0 < size <= 16384:
        found["image_size"] = size
    mean, std = data.get("mean"), data.get("std")
    if all(isinstance(v, (list, tuple)) and 0 < len(v) <= 4 and len(v) == len(mean)
           and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
           for v in (mean, std)):
        found["mean"], found["std"] = tuple(map(float, mean)), tuple(map(float, std))
    return found


def _file_source(spec: str | Path, hash: str | bool | None) -> WeightsSource:
    """A file path or URL (see :mod:`igc.models.download` for ``hash``)."""
    text = str(spec)
    if "://" in text:
        path, digest = fetch(text, hash)
    else:
        path = Path(text).expanduser()
        if not path.is_file():
            raise IGCError(f"weights file {path} does not exist")
        digest = check_hashes(path, expected_hashes(path.name, hash, url=False),
                              "the file is damaged or not the one meant")
    try:
        source = _source(path, "file")
    except IGCError:
        if "://" in text:  # a download that does not load is not kept in the cache
            path.unlink(missing_ok=True)
        raise
    source.sha256 = digest
    source.url = text if "://" in text else None
    return source


def read_source(entry: ModelEntry, pretrained: bool | str | Path | None,
                checkpoint_path: str | Path | None,
                hash: str | bool | None = None, tag: str | None = None
                ) -> WeightsSource | None:
    """The weights ``create_model`` was asked for (``None``: initialise); ``tag`` picks the
    released weights ``NAME.TAG`` (timm's pretrained tags) when ``pretrained=True``."""
    hash = check_hash_argument(hash)
    if pretrained not in (None, False) and checkpoint_path is not None:
        raise IGCError("give pretrained= or checkpoint_path=, not both")
    if checkpoint_path is None and pretrained is not True:
        if pretrained in (None, False):
            if hash is not None:
                raise IGCError("hash= needs pretrained=FILE_OR_URL or checkpoint_path=")
            return None
        checkpoint_path = pretrained
    if checkpoint_path is not None:
        if not isinstance(checkpoint_path, (str, Path)) or not str(checkpoint_path):
            raise IGCError(f"pretrained must be True, False, a file path or a URL, got "
                           f"{checkpoint_path!r}")
        return _file_source(checkpoint_path, hash)
    if hash is not None:
        raise IGCError("hash= checks a file or URL; released weights are checked against "
                       "their manifest")
    cards = released()
    key = f"{entry.name}.{tag}" if tag else entry.name
    if key not in cards:
        have = ", ".join(sorted(cards)) or "none yet"
        raise IGCError(f"{key} has no released weights; networks with released "
                       f"weights: {have} (see `igc models --pretrained`)")
    card = cards[key]
    path = weights_dir() / card["file"]
    if not path.is_file():
        raise IGCError(f"released weights {path} of {key} are missing; reinstall igc")
    digest = sha256_of(path)
    if digest != card["sha256"]:
        raise IGCError(f"{path} fails its SHA-256 check (manifest {card['sha256'][:12]}..., "
                       f"file {digest[:12]}...); the file is damaged or replaced: reinstall igc")
    source = _source(path, "released")
    source.card, source.sha256 = card, digest
    return source


def adapt_input_conv(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """``(out, C, k, k) -> (out, in_chans, k, k)``: summed over ``C`` for one channel;
    otherwise the ``C`` channels repeated up to ``in_chans`` and scaled by ``C / in_chans``
    (timm's ``adapt_input_conv``)."""
    channels = weight.shape[1]
    if in_chans == 1:
        return weight.sum(dim=1, keepdim=True)
    repeats = math.ceil(in_chans / channels)
    return weight.repeat(1, repeats, 1, 1)[:, :in_chans] * (channels / in_chans)


def _short(keys: list[str]) -> str:
    return ", ".join(keys[:3]) + (f" (+{len(keys) - 3})" if len(keys) > 3 else "")


def load_weights(model: nn.Module, source: WeightsSource, strict: bool = True) -> None:
    """Load ``source`` into ``model`` (built by ``create_model``; see the module docstring);
    records the origin in ``model.pretrained_cfg["weights"]``."""
    cfg = model.pretrained_cfg
    name = cfg["architecture"]
    if strict and source.model is not None and source.model != name:
        held = f"pytorchcv's {source.converted_from} (igc's {source.model!r})" \
            if source.converted_from else repr(source.model)
        raise IGCError(f"{source.path} holds weights of {held}, not {name!r}; "
                       f"build {source.model!r}, or pass strict=False")
    state = dict(remap_legacy_state_dict(source.state_dict, model))
    own = model.state_dict()
    head = cfg["classifier"] + "."
    reset = source.num_classes is not None and source.num_classes != cfg["num_classes"]
    if reset:  # a new classifier: keep its initialisation
        state = {k: v for k, v in state.items() if not k.startswith(head)}
    first = cfg["first_conv"] + ".weight"
    if first in state and first in own and state[first].dim() == 4 \
            and state[first].shape[1] != own[first].shape[1]:
        state[first] = adapt_input_conv(state[first], own[first].shape[1])
    missing = [k for k in own if k not in state and not (reset and k.startswith(head))]
    unexpected = [k for k in state if k not in own]
    misshaped = [k for k in state if k in own and state[k].shape != own[k].shape]
    problems = "; ".join(f"{len(keys)} {what} ({_short(keys)})" for what, keys in (
        ("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)) if keys)
    if problems and strict:
        raise IGCError(f"{source.path} does not fit {name}: {problems}; is it another "
                       "network's? (strict=False loads what fits)")
    if problems:
        warnings.warn(f"{source.path} loaded partly into {name}: {problems}", stacklevel=3)
    model.load_state_dict({k: v for k, v in state.items()
                           if k in own and k not in misshaped}, strict=False)
    _follow_weights(cfg, source)
    cfg["weights"] = {"source": source.origin, "file": str(source.path),
                      "sha256": source.sha256, "classifier_reset": reset,
                      **({"card": source.card} if source.card else {}),
                      **({"url": source.url} if source.url else {}),
                      **({"converted_from": source.converted_from}
                         if source.converted_from else {})}


def _follow_weights(cfg: dict[str, Any], source: WeightsSource) -> None:
    """Make ``cfg`` describe the input the loaded weights expect (timm's ``pretrained_cfg``
    is the weights' preprocessing): the data set, image side and normalisation the file
    records, e.g. Fashion-MNIST 1x28x28 for CIFAR-family weights trained on it."""
    channels = cfg["input_size"][0]
    if source.dataset:
        cfg["dataset"] = source.dataset
    if source.image_size:
        cfg["input_size"] = (channels, source.image_size, source.image_size)
    if source.mean is not None and len(source.mean) == channels:
        cfg["mean"], cfg["std"] = source.mean, source.std
