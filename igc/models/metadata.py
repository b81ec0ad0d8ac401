"""timm-style metadata of a network built by the registry (``model.pretrained_cfg``).

============== ===========================================================================
key            meaning
============== ===========================================================================
architecture   canonical registry name; ``aliases`` its other names
family         block family; ``paper_table`` the paper's table(s) or figure
dataset        the data set the entry is registered for (``cifar100``, ``imagenet``, ...)
num_classes    classes of the network as built
input_size     ``(channels, height, width)`` the network is registered for, as built; with
               loaded igc weights, what they were trained on (also ``dataset``, ``mean``,
               ``std``)
mean, std      per-channel normalisation of the data set's loader (0..1 scale; ``None``
               when the network's channels differ from the data set's)
crop_pct       evaluation crop over resize: ``224 / 256`` for ImageNet (resize the shorter
               side to 256, centre crop 224; SPEC section 3), 1.0 for the small data sets
               (images used as they are); ``crop_mode`` ``"center"``
interpolation  resampling of that resize (``"bilinear"``, as ``igc.data.folder``)
first_conv     module name of the first convolution (``stem.0``)
classifier     module name of the classifier (``classifier``; ``classifier.weight`` is its
               weight in every network)
pool_size      ``(h, w)`` of the map ``forward_features`` gives for ``input_size``
               (:func:`pool_size`; set by ``create_model`` for the zoo's networks)
released       the model card of the released weights (``igc/weights/weights.toml``),
               or ``None``
weights        where the loaded weights came from: ``None`` (initialised), or
               ``{"source": "released" | "file", "file": ..., ...}``
============== ===========================================================================
"""

from __future__ import annotations

from typing import Any

from igc.errors import IGCError
from igc.models.entry import ModelEntry
from igc.models.pretrained import released

__all__ = ["IMAGENET_RESIZE", "model_cfg", "pool_size"]

#: Shorter side an ImageNet image is resized to before the centre crop (SPEC section 3).
IMAGENET_RESIZE = 256


def _normalization(dataset: str, in_chans: int) -> tuple[Any, Any]:
    from igc.data import normalization  # lazy: igc.data sits above models, imports PIL

    try:
        mean, std = normalization("imagefolder" if dataset == "imagenet" else dataset)
    except IGCError:  # a data set of the user's
        return None, None
    if len(mean) != in_chans:
        return None, None
    return tuple(mean), tuple(std)


def model_cfg(entry: ModelEntry, num_classes: int, in_chans: int,
              card: dict[str, Any] | bool | None = True) -> dict[str, Any]:
    """The metadata of a network built from ``entry`` with ``num_classes`` classes and
    ``in_chans`` input channels (see the module docstring); ``card``: its released
    weights' card when the caller has read the manifest (``True``: read it here)."""
    if card is True:
        card = released().get(entry.name)
    size = entry.input_size
    mean, std = _normalization(entry.dataset, in_chans)
    imagenet = entry.dataset == "imagenet"
    return {
        "architecture": entry.name, "aliases": list(entry.aliases), "family": entry.family,
        "paper_table": entry.table, "dataset": entry.dataset, "num_classes": num_classes,
        "input_size": (in_chans, size, size), "mean": mean, "std": std,
        "crop_pct": size / IMAGENET_RESIZE if imagenet else 1.0, "crop_mode": "center",
        "interpolation": "bilinear", "first_conv": "stem.0", "classifier": "classifier",
        "released": card, "weights": None,
    }


def pool_size(input_size: tuple[int, int, int], reduction: int) -> tuple[int, int]:
    """``(h, w)`` of the last feature map for a ``(C, H, W)`` input: ``ceil(H / r)``, as
    every stride-2 convolution of the zoo (3x3 with padding 1, or 1x1) halves a side
    rounding up."""
    _, height, width = input_size
    return -(-height // reduction), -(-width // reduction)
