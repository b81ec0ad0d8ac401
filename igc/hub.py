"""Hugging Face Hub repositories in timm's layout: read (``hf-hub:ORG/NAME``) and written.

A repository (or a local folder) holds::

    config.json          {"architecture": "igcv2_fmnist", "num_classes": 10,
                          "model_args": {...}, "pretrained_cfg": {...}}
    model.safetensors    the state dict (igc's header in its metadata, which timm ignores)

``create_model("hf-hub:ORG/NAME", pretrained=True)`` builds ``architecture`` with the
config's ``num_classes``, ``in_chans`` (``pretrained_cfg.input_size``) and ``model_args``,
and loads the weights; ``pretrained=False`` builds it untrained, as timm does.
``create_model(NAME, pretrained="hf-hub:ORG/NAME")`` (or a local folder) loads the weights
into ``NAME`` if the config names it. Files come through ``huggingface_hub``
(``pip install 'igc-torch[hub]'``), its cache and its settings (``HF_HUB_CACHE``,
``HF_HUB_OFFLINE``, ``HF_TOKEN``). :func:`save_for_hub` writes the layout; publish it with
``huggingface_hub.upload_folder`` (docs/pretrained.md).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from igc.checks import MAX_CLASSES, MAX_NAME
from igc.errors import IGCError
from igc.files.atomic import atomic_write
from igc.files.safetensors import write_safetensors
from igc.files.schema import Spec, check_fields, check_plain
from igc.files.weights import WeightsFile, read_weights
from igc.formatting import first_line

__all__ = ["CONFIG", "HUB_PREFIX", "WEIGHTS", "HubModel", "is_hub_source", "read_hub",
           "save_for_hub"]

HUB_PREFIX = "hf-hub:"
CONFIG = "config.json"
WEIGHTS = "model.safetensors"
HINT = "pip install 'igc-torch[hub]'"
MAX_CONFIG_BYTES = 1 << 20
#: A Hub repository id: ``ORG/NAME`` (letters, digits, ``-_.``), optionally ``@REVISION``.
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}(@[\w./-]{1,200})?$")

CONFIG_FIELDS = {
    "architecture": Spec(str, 1, MAX_NAME),
    "num_classes": Spec(int, 0, MAX_CLASSES, optional=True),
    "model_args": Spec(dict, 0, 256, optional=True),
    "pretrained_cfg": Spec(dict, 0, 256, optional=True),
}


@dataclass
class HubModel:
    """A Hub repository or folder: the network its config names and the weights file."""

    architecture: str
    num_classes: int | None
    in_chans: int | None
    model_args: dict[str, Any]
    weights_path: Path
    source: str

    def weights(self) -> WeightsFile:
        """The weights, read and checked, with what the config says about them."""
        weights = read_weights(self.weights_path, "hub")
        weights.path = self.source
        if weights.model is not None and weights.model != self.architecture:
            raise IGCError(f"{self.source}: {WEIGHTS} holds weights of {weights.model!r} but "
                           f"{CONFIG} names {self.architecture!r}")
        weights.model = self.architecture
        weights.model_args = {**self.model_args, **weights.model_args}
        weights.num_classes = self.num_classes if self.num_classes is not None \
            else weights.num_classes
        weights.in_chans = self.in_chans or weights.in_chans
        return weights


def is_hub_source(spec: object) -> bool:
    """Whether ``spec`` names a Hub repository (``hf-hub:``) or a folder that is not an
    ``igc train`` run folder (those are read through their ``checkpoint.pt``)."""
    if isinstance(spec, str) and spec.startswith(HUB_PREFIX):
        return True
    if not isinstance(spec, (str, Path)) or not str(spec) or not Path(spec).is_dir():
        return False
    return (Path(spec) / CONFIG).exists() or not (Path(spec) / "checkpoint.pt").exists()


def _download(repo: str, filename: str) -> Path:
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise IGCError(f"hf-hub: names need huggingface_hub: {HINT}") from None
    repo_id, _, revision = repo.partition("@")
    try:
        return Path(hf_hub_download(repo_id, filename, revision=revision or None))
    except Exception as exc:  # huggingface_hub raises many types (HTTP, offline, missing)
        kind = type(exc).__name__
        raise IGCError(f"{HUB_PREFIX}{repo}: cannot get {filename} ({kind}: "
                       f"{first_line(exc, 120)}); is it a Hub repository in timm's layout "
                       f"({CONFIG} + {WEIGHTS}), and reachable (HF_HUB_OFFLINE)?") from None


def read_hub(spec: str | Path) -> HubModel:
    """The :class:`HubModel` of ``hf-hub:ORG/NAME[@REVISION]`` or of a local folder;
    IGCError (one line) for a folder or repository without ``config.json``, a malformed
    config, or an architecture igc does not have."""
    text = str(spec)
    if text.startswith(HUB_PREFIX):
        repo = text[len(HUB_PREFIX):]
        if not REPO_ID.match(repo):
            raise IGCError(f"{text!r} is not a Hub repository id: give hf-hub:ORG/NAME")
        config_path = _download(repo, CONFIG)
        weights_path: Path | None = None
    else:
        folder = Path(spec)
        config_path, weights_path = folder / CONFIG, folder / WEIGHTS
        if not config_path.is_file():
            raise IGCError(f"{folder} has no {CONFIG}: not a Hub folder in timm's layout "
                           f"({CONFIG} + {WEIGHTS}; see igc.hub.save_for_hub)")
    config = _read_config(config_path, text)
    from igc.models.registry import model_entry  # lazy: igc.models imports this module

    entry = model_entry(config["architecture"])  # IGCError with suggestions
    cfg = config.get("pretrained_cfg") or {}
    size = cfg.get("input_size")
    in_chans = size[0] if isinstance(size, list) and size and isinstance(size[0], int) \
        and not isinstance(size[0], bool) and size[0] > 0 else None
    if weights_path is None:
        weights_path = _download(text[len(HUB_PREFIX):], WEIGHTS)
    return HubModel(entry.name, config.get("num_classes"), in_chans,
                    dict(config.get("model_args") or {}), weights_path, text)


def _read_config(path: Path, source: str) -> dict[str, Any]:
    fix = f"{source} is not a Hub repository of igc's networks"
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise IGCError(f"{source}: {CONFIG} is over {MAX_CONFIG_BYTES:,} bytes; {fix}")
    try:
        config = json.loads(path.read_text("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise IGCError(f"{source}: {CONFIG} is not JSON ({first_line(exc, 80)}); "
                       f"{fix}") from None
    config = check_fields(config, CONFIG_FIELDS, f"{source}: {CONFIG}", fix)
    for key in ("model_args", "pretrained_cfg"):
        if key in config:
            check_plain(config[key], f"{source}: {CONFIG}: {key}", fix)
    return config


def save_for_hub(model: nn.Module, folder: str | Path,
                 model_args: dict[str, Any] | None = None) -> Path:
    """Write ``model`` (built by ``create_model``) into ``folder`` in timm's Hub layout:
    ``config.json`` (architecture, classes, ``model_args``: the builder options it was
    built with, ``pretrained_cfg``) and ``model.safetensors``; returns the folder.
    ``huggingface_hub.upload_folder(repo_id=..., folder_path=folder)`` publishes it."""
    cfg = getattr(model, "pretrained_cfg", None)
    if not isinstance(cfg, dict) or "architecture" not in cfg:
        raise IGCError("save_for_hub needs a network built by igc's create_model "
                       "(it has no pretrained_cfg)")
    args = dict(model_args or {})
    check_plain(args, "model_args", "give plain values (numbers, strings, lists)")
    folder = Path(folder)
    taken = [name for name in (CONFIG, WEIGHTS) if (folder / name).exists()]
    if taken:
        raise IGCError(f"{folder} already holds {taken[0]}; save into a new folder (igc "
                       "does not overwrite files it did not write)")
    folder.mkdir(parents=True, exist_ok=True)
    plain = {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()
             if k not in ("weights", "released", "aliases")}
    pretrained_cfg = json.loads(json.dumps(plain, default=str))
    channels, size = cfg["input_size"][0], cfg["input_size"][-1]
    config = {"architecture": cfg["architecture"], "num_classes": cfg["num_classes"],
              "num_features": getattr(model, "num_features", None),
              "model_args": args, "pretrained_cfg": pretrained_cfg}
    header = {"model": cfg["architecture"], "model_args": args,
              "num_classes": max(1, cfg["num_classes"]), "in_chans": channels,
              "data": cfg.get("dataset"), "image_size": size}
    mean, std = cfg.get("mean"), cfg.get("std")
    if mean is not None and std is not None and len(mean) == channels:
        header["mean"], header["std"] = list(map(float, mean)), list(map(float, std))
    write_safetensors(folder / WEIGHTS, model.state_dict(),
                      header if cfg["num_classes"] > 0 else None)
    atomic_write(folder / CONFIG, json.dumps(config, indent=2) + "\n")
    return folder
