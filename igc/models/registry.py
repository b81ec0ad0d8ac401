"""The model registry, in the style of timm: every network of the papers by name.

A builder is registered with :func:`register_model` together with what a user needs to
know before building it: its family, the paper table it comes from, its input size and
data set. :func:`create_model` builds it by name; unknown names suggest the closest ones.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field

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


def create_model(name: str, num_classes: int | None = None, in_chans: int | None = None,
                 **overrides: object) -> nn.Module:
    """Build the registered network ``name``.

    ``num_classes`` and ``in_chans`` default to the entry's data set; any other keyword
    overrides the registered configuration (e.g. ``width=96``). The module gets an
    ``igc_entry`` attribute recording its name and configuration.
    """
    entry = model_entry(name)
    kwargs = {**entry.kwargs, **overrides}
    try:
        model = entry.builder(
            num_classes=entry.num_classes if num_classes is None else num_classes,
            in_chans=entry.in_chans if in_chans is None else in_chans,
            **kwargs,
        )
    except TypeError as exc:
        raise IGCError(f"bad option for model {name!r}: {exc}") from None
    model.igc_entry = entry
    return model
