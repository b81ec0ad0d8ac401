"""Weights for the zoo's networks: the released ones and a user's files.

Released weights live in ``igc/weights/`` (or the folder ``$IGC_WEIGHTS_DIR`` names), listed
in its manifest ``weights.toml``, one table per canonical model name::

    [models.igcv2_fmnist]
    file = "igcv2_fmnist.safetensors"  # in the same folder (igc's header: see
                                       # igc.files.safetensors); .pt files also load
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
``checkpoint_path=FILE_OR_URL`` loads an ``igc train`` checkpoint or run folder, a
``.safetensors`` file, a plain state dict, old layouts included (:mod:`igc.models.convert`),
or a pytorchcv ImageNet state dict (:mod:`igc.models.pytorchcv`, recognised from its keys);
``pretrained="hf-hub:ORG/NAME"`` or a folder in timm's Hub layout goes through
:mod:`igc.hub`. A URL is downloaded into torch.hub's cache; ``hash=`` and hashes in file
names are checked (:mod:`igc.models.download`). Reading and loading is the weights pipeline
of :mod:`igc.files.weights`; this module says which weights were asked for. Missing,
unexpected or mis-shaped keys are an :class:`IGCError` unless ``strict=False``; a different
``num_classes`` re-initialises the classifier and a different ``in_chans`` adapts the first
convolution (timm's ``adapt_input_conv``: summed over the input channels for one channel,
else repeated and rescaled).
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any

from igc.errors import IGCError
from igc.files.atomic import not_a_file
from igc.files.tomlfile import parse_toml
from igc.files.weights import WeightsFile, adapt_input_conv, load_weights, read_weights
from igc.hub import is_hub_source, read_hub
from igc.models.download import check_hash_argument, check_hashes, expected_hashes, fetch
from igc.models.entry import ModelEntry

__all__ = ["MANIFEST", "WeightsSource", "adapt_input_conv", "load_weights", "read_source",
           "released", "sha256_of", "weights_dir"]

#: The record of weights read for a network (the name this module gave it first).
WeightsSource = WeightsFile

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
    data = parse_toml(text, str(path))
    if set(data) - {"models"} or not isinstance(data.get("models", {}), dict):
        raise IGCError(f"{path} must hold only [models.NAME] tables")
    return {name: _check_card(name, card) for name, card in data.get("models", {}).items()}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _file_source(spec: str | Path, hash: str | bool | None) -> WeightsFile:
    """A file path or URL (see :mod:`igc.models.download` for ``hash``)."""
    text = str(spec)
    if "://" in text:
        path, digest = fetch(text, hash)
    else:
        path = Path(text).expanduser()
        if not path.is_file():
            raise not_a_file(path, "weights file")
        digest = check_hashes(path, expected_hashes(path.name, hash, url=False),
                              "the file is damaged or not the one meant")
    try:
        source = read_weights(path, "file")
    except IGCError:
        if "://" in text:  # a download that does not load is not kept in the cache
            path.unlink(missing_ok=True)
        raise
    source.sha256 = digest
    source.url = text if "://" in text else None
    return source


def read_source(entry: ModelEntry, pretrained: bool | str | Path | WeightsFile | None,
                checkpoint_path: str | Path | None,
                hash: str | bool | None = None, tag: str | None = None,
                cards: dict[str, dict[str, Any]] | None = None) -> WeightsFile | None:
    """The weights ``create_model`` was asked for (``None``: initialise); ``tag`` picks the
    released weights ``NAME.TAG`` (timm's pretrained tags) when ``pretrained=True``;
    ``cards``: :func:`released`, when the caller has read it already. A
    :class:`~igc.files.weights.WeightsFile` (already read) is returned as it is."""
    hash = check_hash_argument(hash)
    if isinstance(pretrained, WeightsFile):
        if checkpoint_path is not None or hash is not None:
            raise IGCError("hash= and checkpoint_path= apply to files, not to read weights")
        return pretrained
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
            raise IGCError(f"pretrained must be True, False, a file path, a URL or "
                           f"hf-hub:ORG/NAME, got {checkpoint_path!r}")
        if is_hub_source(checkpoint_path):
            if hash is not None:
                raise IGCError("hash= checks a file or URL; a Hub repository is checked by "
                               "huggingface_hub")
            return read_hub(checkpoint_path).weights()
        if Path(checkpoint_path).is_dir():  # a run folder
            checkpoint_path = Path(checkpoint_path) / "checkpoint.pt"
        return _file_source(checkpoint_path, hash)
    if hash is not None:
        raise IGCError("hash= checks a file or URL; released weights are checked against "
                       "their manifest")
    cards = released() if cards is None else cards
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
    source = read_weights(path, "released")
    source.card, source.sha256 = card, digest
    return source
