"""The model registry, in the style of timm: every network of the papers by name.

A builder is registered with :func:`register_model` together with what a user needs to
know before building it: its family, the paper table it comes from, its input size and
data set. :func:`create_model` builds it by name; unknown names suggest the closest ones.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from igc.errors import IGCError, unknown_name


@dataclass(frozen=True)
class ModelEntry:
    """What the registry knows of one named network."""

    name: str
    builder: Callable[..., nn.Module]
    family: str
    table: str
    dataset: str
    input_size: int
    num_classes: int
    in_chans: int = 3
    kwargs: dict = field(default_factory=dict)


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, builder: Callable[..., nn.Module], *, family: str, table: str,
                   dataset: str, input_size: int, num_classes: int, in_chans: int = 3,
                   **kwargs: object) -> ModelEntry:
    """Register ``builder(num_classes=..., in_chans=..., **kwargs)`` under ``name``."""
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is registered twice")
    entry = ModelEntry(name, builder, family, table, dataset, input_size, num_classes,
                       in_chans, dict(kwargs))
    _REGISTRY[name] = entry
    return entry


def _load_families() -> None:
    """Import the family modules once so that their names are registered."""
    import igc.models.families  # noqa: F401  (registers on import)


def list_models(pattern: str | None = None) -> list[str]:
    """Registered names, sorted, optionally filtered by a shell-style ``pattern``."""
    _load_families()
    names = sorted(_REGISTRY)
    if pattern:
        names = [n for n in names if fnmatch.fnmatch(n, pattern) or pattern in n]
    return names


def model_entry(name: str) -> ModelEntry:
    _load_families()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise unknown_name("model", name, _REGISTRY) from None


def model_cfg(entry: ModelEntry, num_classes: int, in_chans: int) -> dict[str, Any]:
    """timm-style metadata of a network built from ``entry`` (``model.pretrained_cfg``):
    what it is, where it comes from, and the input it takes as built."""
    return {
        "architecture": entry.name, "family": entry.family, "paper_table": entry.table,
        "dataset": entry.dataset, "num_classes": num_classes,
        "input_size": (in_chans, entry.input_size, entry.input_size),
        "first_conv": "stem.0", "classifier": "classifier",
    }


def create_model(name: str, num_classes: int | None = None, in_chans: int | None = None, *,
                 features_only: bool = False, out_indices: Sequence[int] | None = None,
                 **overrides: object) -> nn.Module:
    """Build the registered network ``name``.

    ``num_classes`` and ``in_chans`` default to the entry's data set (``num_classes=0``: no
    classifier, the network returns its pooled features); any other keyword overrides the
    registered configuration (e.g. ``width=96``, ``norm_layer=``, ``act_layer=``).
    ``features_only=True`` returns an :class:`~igc.models.net.IGCFeatures` giving the
    feature maps of the stages ``out_indices`` (all by default). The module's
    ``pretrained_cfg`` records its name, family, paper table and input.
    """
    entry = model_entry(name)
    num_classes = entry.num_classes if num_classes is None else num_classes
    in_chans = entry.in_chans if in_chans is None else in_chans
    if isinstance(in_chans, bool) or not isinstance(in_chans, int) or in_chans < 1:
        raise IGCError(f"in_chans must be a positive integer, got {in_chans!r}")
    kwargs = {**entry.kwargs, **overrides}
    try:
        model = entry.builder(num_classes=num_classes, in_chans=in_chans, **kwargs)
    except TypeError as exc:
        raise IGCError(f"bad option for model {name!r}: {exc}") from None
    model.pretrained_cfg = model_cfg(entry, num_classes, in_chans)
    if features_only:
        from igc.models.net import IGCFeatures, IGCNet

        if not isinstance(model, IGCNet):
            raise IGCError(f"model {name!r} has no stages to take features from")
        return IGCFeatures(model, out_indices)
    if out_indices is not None:
        raise IGCError("out_indices needs features_only=True")
    return model
