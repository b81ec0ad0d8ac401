"""What the registry knows of one named network (:class:`ModelEntry`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

__all__ = ["ModelEntry"]


@dataclass(frozen=True)
class ModelEntry:
    """One registered network: its canonical ``name`` and ``aliases``, the ``builder``
    called as ``builder(num_classes=, in_chans=, **kwargs)``, its ``family``, the paper
    ``table`` it comes from, and the ``dataset``, ``input_size`` (square side),
    ``num_classes`` and ``in_chans`` it is registered for."""

    name: str
    builder: Callable[..., nn.Module]
    family: str
    table: str
    dataset: str
    input_size: int
    num_classes: int
    in_chans: int = 3
    kwargs: dict = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
