"""State dicts written before the zoo's uniform head (or before the IGCV2 classifier's
timm key), mapped to today's keys.

Until the networks took timm's interface, each family ended in its own ``head``
``nn.Sequential``; now every :class:`~igc.models.net.IGCNet` ends in ``final_conv`` (the
inverted-residual networks only), ``global_pool`` (no weights) and ``classifier``. Nothing
else moved, and the parameters keep their order, so an optimizer state still fits. The old
layouts, recognised by their keys:

=====================  ==========================================  =========================
networks               old keys                                    new keys
=====================  ==========================================  =========================
CIFAR, 8-layer, small  ``head.2.{weight,bias}`` (pool, flatten,    ``classifier.*``
                       linear)
MobileNetV1            ``head.1.1.*`` (pool, (flatten, linear))    ``classifier.*``
IGCV2 (ImageNet)       ``head.1.bias``, ``head.1.block.*``         ``classifier.bias``,
                       (pool, group classifier)                    ``classifier.block.*``
IGCV3, MobileNetV2     ``head.0.weight`` (1x1 conv), ``head.1.*``  ``final_conv.0.weight``,
                       (BN), ``head.5.*`` (linear)                 ``final_conv.1.*``,
                                                                   ``classifier.*``
=====================  ==========================================  =========================

Later the IGCV2 ImageNet classifier (:class:`~igc.models.net.GroupClassifier`) took timm's
key ``classifier.weight`` (``pretrained_cfg["classifier"] + ".weight"``); files written
before hold its factors as a chain (:data:`GROUP_CLASSIFIER`), renamed here whether or not
they also have the old ``head``:

====================================================  ====================================
old keys (``L`` factors, last one ``L - 1``)           new keys
====================================================  ====================================
``classifier.block.body.factors.{L-1}.conv.weight``    ``classifier.weight``
``classifier.block.body.factors.{l}.*``, ``l < L-1``   ``classifier.pre.body.factors.{l}.*``
====================================================  ====================================

The head change also added the final permutation ``P_L`` (eqs. 2 and 4) to IGCV1 and linear
IGCV2 blocks. That changes what those networks compute, so an old checkpoint of one of them
is refused (pass the model) unless the model is built with ``shuffle_last=False``, which is
the network it was trained as.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping

import torch
from torch import nn

from igc.errors import IGCError
from igc.layers import IGCV1Block, IGCV2Block

__all__ = ["GROUP_CLASSIFIER", "LEGACY_LAYOUTS", "is_legacy_state_dict",
           "refuse_changed_blocks", "remap_legacy_state_dict"]

#: ``(marker, renames)`` per old layout, the first whose marker starts a key applies;
#: ``renames`` maps old key prefixes to new ones.
LEGACY_LAYOUTS: tuple[tuple[str, dict[str, str]], ...] = (
    ("head.5.", {"head.0.": "final_conv.0.", "head.1.": "final_conv.1.",
                 "head.5.": "classifier."}),
    ("head.1.block.", {"head.1.block.": "classifier.block.", "head.1.bias": "classifier.bias"}),
    ("head.1.1.", {"head.1.1.": "classifier."}),
    ("head.2.", {"head.2.": "classifier."}),
)


#: The IGCV2 classifier's factors as a chain (the layout before ``classifier.weight``).
GROUP_CLASSIFIER = "classifier.block.body.factors."
_GROUP_WEIGHT = re.compile(re.escape(GROUP_CLASSIFIER) + r"(\d+)\.conv\.weight")


def is_legacy_state_dict(state_dict: Mapping[str, object]) -> bool:
    """Whether ``state_dict`` has the old ``head.*`` keys (written before ``P_L``; an
    IGCV2 classifier chain alone, ``classifier.block.*``, is not)."""
    return any(key.startswith("head.") for key in state_dict)


def _group_renames(keys: Iterable[str]) -> dict[str, str]:
    """The renames of the IGCV2 classifier's chain keys (see the module docstring); empty
    when there are none."""
    factors = [int(m.group(1)) for m in map(_GROUP_WEIGHT.fullmatch, keys) if m]
    if not factors:
        return {}
    last = max(factors)
    return {f"{GROUP_CLASSIFIER}{last}.conv.weight": "classifier.weight",
            GROUP_CLASSIFIER: "classifier.pre.body.factors."}


def _renames(state_dict: Mapping[str, object]) -> dict[str, str]:
    for marker, renames in LEGACY_LAYOUTS:
        if any(key.startswith(marker) for key in state_dict):
            return renames
    heads = sorted(k for k in state_dict if k.startswith("head."))[:3]
    raise IGCError(f"state dict has head keys of no known igc layout ({', '.join(heads)}); "
                   "it was not written by an igc network")


def _rename(key: str, renames: dict[str, str]) -> str | None:
    """The new name of ``key``; ``None`` for an old head key no rule covers."""
    for old in sorted(renames, key=len, reverse=True):
        if key.startswith(old):
            return renames[old] + key[len(old):]
    return None if key == "head" or key.startswith("head.") else key


def _changed_blocks(model: nn.Module) -> list[str]:
    """Blocks of ``model`` whose output order the added ``P_L`` changed."""
    names = []
    for name, module in model.named_modules():
        if isinstance(module, IGCV1Block) or (
                isinstance(module, IGCV2Block) and not module.nonlinear):
            product = module.product
            if product.permutation(product.layers - 1) is not None:
                names.append(name)
    return names


def refuse_changed_blocks(model: nn.Module) -> None:
    """IGCError when ``model`` has blocks whose output order the added ``P_L`` changed: an
    old state dict does not compute the same network in it."""
    changed = _changed_blocks(model)
    if changed:
        raise IGCError(f"these weights were written before IGCV1/IGCV2 blocks gained their "
                       f"final permutation P_L ({len(changed)} blocks, e.g. {changed[0]}); "
                       "build the model with shuffle_last=False (recipe: "
                       "model_args.shuffle_last = false) to load them")


def remap_legacy_state_dict(state_dict: Mapping[str, torch.Tensor],
                            model: nn.Module | None = None) -> dict[str, torch.Tensor]:
    """``state_dict`` with the old head keys and the IGCV2 classifier's chain keys renamed
    (see the module docstring); a state dict in today's layout is returned as it is. With
    ``model``, an old ``head`` state dict of a network whose blocks gained ``P_L`` raises
    :class:`IGCError` (build the model with ``shuffle_last=False`` to load it)."""
    head = is_legacy_state_dict(state_dict)
    if not head and not _group_renames(state_dict):
        return dict(state_dict) if not isinstance(state_dict, dict) else state_dict
    if head and model is not None:
        refuse_changed_blocks(model)
    renames = _renames(state_dict) if head else {}
    names = {}
    for key in state_dict:
        new = _rename(key, renames)
        if new is None:
            raise IGCError(f"state dict key {key!r} fits no known igc head layout; it was "
                           "not written by an igc network")
        names[key] = new
    group = _group_renames(names.values())
    names = {key: _rename(new, group) or new for key, new in names.items()}  # no head key

    def rename(key: str) -> str | None:
        new = _rename(key, renames)
        return None if new is None else _rename(new, group)

    out: dict[str, torch.Tensor] = OrderedDict(
        (names[key], value) for key, value in state_dict.items())
    metadata = getattr(state_dict, "_metadata", None)
    if metadata is not None:  # per-module versions, keyed by module prefix
        moved = ((rename(prefix + "."), value) for prefix, value in metadata.items())
        out._metadata = OrderedDict(  # type: ignore[attr-defined]
            (new[:-1], value) for new, value in moved if new is not None)
    return out
