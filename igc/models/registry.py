"""The model registry, in the style of timm: every network of the papers by name.

A builder is registered with :func:`register_model` together with what a user needs to
know before building it: its family, the paper table it comes from, its input size and
data set. :func:`create_model` builds it by name; unknown names suggest the closest ones.
The registry imports nothing of the zoo: the family modules register their networks when
``igc.models`` is imported (``igc/models/__init__.py``), as timm's model modules do.

Names: canonical names are timm-safe (lower case, digits and ``_``, e.g. ``igcv2_100``);
a network may also answer to aliases (the zoo's dotted ``igcv2_1.0``), which resolve to
the canonical entry and are never listed.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from torch import nn

from igc.checks import check_name
from igc.errors import IGCError, unknown_name
from igc.files.weights import WeightsFile
from igc.formatting import shorten
from igc.hub import read_hub
from igc.models.arguments import check_builder_args
from igc.models.entry import ModelEntry
from igc.models.metadata import model_cfg, pool_size
from igc.models.net import IGCFeatures, IGCNet, make_pool
from igc.models.pretrained import load_weights, read_source, released

__all__ = [
    "ModelEntry", "create_model", "list_models", "model_entry", "register_model",
    "temporary_model", "unregister_model",
]

#: A canonical model name: timm-safe, no dots (a dot starts timm's pretrained tag).
NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


_REGISTRY: dict[str, ModelEntry] = {}
_ALIASES: dict[str, str] = {}


def resolve_alias(name: str) -> str:
    """The registered name that ``name`` stands for (``name`` itself when it is no alias)."""
    return _ALIASES.get(name, name)


def register_model(name: str, builder: Callable[..., nn.Module], *, family: str, table: str,
                   dataset: str, input_size: int, num_classes: int, in_chans: int = 3,
                   aliases: Sequence[str] = (), **kwargs: object) -> ModelEntry:
    """Register ``builder(num_classes=..., in_chans=..., **kwargs)`` under ``name`` (and
    ``aliases``); ValueError for a name that is not timm-safe or already taken."""
    if not NAME_RE.match(name):
        raise ValueError(f"model name {name!r} is not timm-safe (a-z, 0-9, _)")
    for key in (name, *aliases):
        if key in _REGISTRY or key in _ALIASES:
            raise ValueError(f"model {key!r} is registered twice")
    entry = ModelEntry(name, builder, family, table, dataset, input_size, num_classes,
                       in_chans, dict(kwargs), tuple(aliases))
    _REGISTRY[name] = entry
    _ALIASES.update(dict.fromkeys(aliases, name))
    return entry


def unregister_model(name: str) -> None:
    """Remove ``name`` and its aliases (a missing name is ignored)."""
    entry = _REGISTRY.pop(name, None)
    for alias in entry.aliases if entry else ():
        _ALIASES.pop(alias, None)


@contextmanager
def temporary_model(name: str, builder: Callable[..., nn.Module], **meta: object
                    ) -> Iterator[ModelEntry]:
    """Register a network for the duration of a ``with`` block (tests, experiments): the
    arguments of :func:`register_model`; the name is free again afterwards."""
    entry = register_model(name, builder, **meta)  # type: ignore[arg-type]
    try:
        yield entry
    finally:
        unregister_model(name)


def _patterns(value: str | Sequence[str], what: str) -> list[str]:
    """``value`` (one pattern or several) as a list of patterns; IGCError for anything else."""
    patterns = [value] if isinstance(value, str) else value
    if not isinstance(patterns, list | tuple) or not all(isinstance(p, str) and len(p) <= 200
                                                         for p in patterns):
        raise IGCError(f"{what} must be a pattern or a list of patterns (strings of at most "
                       f"200 characters), got {shorten(repr(value), 60)}")
    return list(patterns)


def list_models(filter: str | Sequence[str] = "", exclude_filters: str | Sequence[str] = (),
                pretrained: bool = False) -> list[str]:
    """Canonical names, sorted, that match a shell-style pattern of ``filter`` (fnmatch
    only: ``"igcv2"`` matches only ``igcv2``; a name matches through its aliases too, and is
    listed once) and none of ``exclude_filters``; with ``pretrained``, only networks with
    released weights (``igc/weights/weights.toml``)."""
    include = [p for p in _patterns(filter, "filter") if p]
    exclude = [p for p in _patterns(exclude_filters, "exclude_filters") if p]

    def matches(entry: ModelEntry, patterns: list[str]) -> bool:
        return any(fnmatch.fnmatchcase(n, p) for n in (entry.name, *entry.aliases)
                   for p in patterns)

    names = []
    for name, entry in sorted(_REGISTRY.items()):
        if include and not matches(entry, include):
            continue
        if exclude and matches(entry, exclude):
            continue
        names.append(name)
    if pretrained:
        have = {key.partition(".")[0] for key in released()}
        names = [n for n in names if n in have]
    return names


def model_entry(name: str) -> ModelEntry:
    """The entry of canonical name or alias ``name``; IGCError with suggestions."""
    try:
        return _REGISTRY[_ALIASES.get(name, name)]
    except KeyError:
        raise unknown_name("model", name, [*_REGISTRY, *_ALIASES]) from None


def split_tag(name: str) -> tuple[str, str | None]:
    """``"NAME.TAG"`` -> ``("NAME", "TAG")`` as timm's pretrained tags (a registered name or
    alias, dotted ones such as ``igcv2_1.0`` included, is returned whole)."""
    if not isinstance(name, str) or name in _REGISTRY or name in _ALIASES or "." not in name:
        return name, None
    base, _, tag = name.rpartition(".")
    return base, tag or None


def create_model(name: str, pretrained: bool | str | Path | WeightsFile = False,
                 checkpoint_path: str | Path | None = None, num_classes: int | None = None,
                 in_chans: int | None = None, *, features_only: bool = False,
                 out_indices: Sequence[int] | None = None, strict: bool = True,
                 hash: str | bool | None = None, global_pool: str | None = None,
                 **overrides: object) -> nn.Module:
    """Build the registered network ``name`` (canonical or alias), as timm's
    ``create_model``.

    ``pretrained=True`` loads its released weights (SHA-256 checked); a
    :class:`~igc.files.weights.WeightsFile` (:func:`igc.files.weights.read_weights`) loads
    as read;
    ``pretrained=FILE_OR_URL`` or ``checkpoint_path=FILE_OR_URL`` loads an ``igc train``
    checkpoint, a state dict or a pytorchcv ImageNet state dict (see
    :func:`igc.models.pretrained.load_weights`: missing or unexpected keys are an error
    unless ``strict=False``); a URL is downloaded into torch.hub's cache, and ``hash`` (a
    SHA-256 prefix; ``False``: no check) or a hash in the file name is checked
    (:mod:`igc.models.download`). ``num_classes`` and ``in_chans`` default to those of the
    weights, else of the entry's data set; when they differ from the weights', the
    classifier is re-initialised / the first convolution adapted. ``num_classes=0``: no
    classifier, the network returns its pooled features; with ``global_pool=""`` too, its
    unpooled feature maps (timm's ``global_pool``: ``"avg"``, the default, ``"max"`` or
    ``""``; see :meth:`~igc.models.net.IGCNet.reset_classifier`). Any other keyword
    overrides the registered configuration (e.g. ``width=96``, ``norm_layer=``,
    ``act_layer=``).
    ``features_only=True`` returns an :class:`~igc.models.net.IGCFeatures` giving the
    feature maps of the stages ``out_indices`` (all by default). ``model.pretrained_cfg``
    holds the network's metadata (:func:`igc.models.metadata.model_cfg`).
    """
    check_name(name, "model name")
    if name.startswith("hf-hub:"):
        return _create_from_hub(name, pretrained, checkpoint_path, num_classes=num_classes,
                                in_chans=in_chans, features_only=features_only,
                                out_indices=out_indices, strict=strict, hash=hash,
                                global_pool=global_pool, **overrides)
    name, tag = split_tag(name)
    entry = model_entry(name)
    cards = released()  # the manifest, read once per call
    source = read_source(entry, pretrained, checkpoint_path, hash, tag=tag, cards=cards)
    if source is not None:
        if source.model is not None and source.model in _ALIASES:
            source.model = _ALIASES[source.model]
        if source.model is None or source.model == entry.name:  # not another network's
            overrides = {**source.model_args, **overrides}
    num_classes = source.num_classes if num_classes is None and source and \
        source.num_classes is not None else entry.num_classes if num_classes is None \
        else num_classes
    in_chans = source.in_chans if in_chans is None and source and source.in_chans \
        else entry.in_chans if in_chans is None else in_chans
    options = check_builder_args(entry.name, entry.builder, {
        **entry.kwargs, **overrides, "num_classes": num_classes, "in_chans": in_chans})
    num_classes, in_chans = options["num_classes"], options["in_chans"]
    try:
        model = entry.builder(**options)
    except (TypeError, ValueError, ArithmeticError, IndexError, KeyError) as exc:
        if isinstance(exc, IGCError):
            raise
        raise IGCError(f"bad option for model {entry.name!r}: "
                       f"{shorten(' '.join(str(exc).split()), 300)}") from None
    if global_pool is not None:
        if not isinstance(model, IGCNet):
            raise IGCError(f"model {entry.name!r} has no global_pool to set")
        if features_only:  # no pooling in a feature extractor: only checked
            make_pool(global_pool)
        else:
            model.set_global_pool(global_pool)
    model.pretrained_cfg = model_cfg(entry, num_classes, in_chans, cards.get(entry.name))
    if source is not None:
        load_weights(model, source, strict=strict)
    if isinstance(model, IGCNet):
        _add_pool_size(model)
    if features_only:
        if not isinstance(model, IGCNet):
            raise IGCError(f"model {entry.name!r} has no stages to take features from")
        return IGCFeatures(model, out_indices)
    if out_indices is not None:
        raise IGCError("out_indices needs features_only=True")
    return model


def _add_pool_size(model: IGCNet) -> None:
    """``pretrained_cfg["pool_size"]``: the map ``forward_features`` gives for the cfg's
    ``input_size`` (as loaded weights left it)."""
    cfg = model.pretrained_cfg
    cfg["pool_size"] = pool_size(cfg["input_size"], model.feature_info[-1]["reduction"])


def _create_from_hub(name: str, pretrained: object, checkpoint_path: object,
                     **kwargs: object) -> nn.Module:
    """``create_model("hf-hub:ORG/NAME", ...)`` as timm's: the architecture, classes,
    channels and builder options of the repository's config; its weights with
    ``pretrained=True`` (:mod:`igc.hub`)."""
    if pretrained not in (True, False, None) or checkpoint_path is not None:
        raise IGCError(f"{name} brings its own weights: pass pretrained=True (or False for "
                       "the untrained network), not a file")
    hub = read_hub(name)
    if pretrained:
        return create_model(hub.architecture, pretrained=hub.weights(), **kwargs)
    args = {**hub.model_args, **{k: v for k, v in kwargs.items() if v is not None}}
    args.setdefault("num_classes", hub.num_classes)
    args.setdefault("in_chans", hub.in_chans)
    return create_model(hub.architecture, **args)

