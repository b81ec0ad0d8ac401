"""The zoo in timm's model registry: ``register()``, then ``timm.create_model("igcv2_100")``.

:func:`register` gives timm one entrypoint per zoo network, named as the zoo names it
(``igcv2_100``, ``igcv3_070``, ``igcv2_c64_d20``, ...), with its ``pretrained_cfg``
(:func:`timm_cfg`: input size, mean/std, crop_pct, interpolation, classifier, first conv,
the paper; ``file`` of its released weights, so ``timm.list_models(pretrained=True)``
lists the networks that have them). A name timm already uses for its own network
(``mobilenetv1_100``, ``mobilenetv2_100``) is left to timm; the zoo's network is registered
as ``igc_`` + name. The entrypoint builds the network with :func:`igc.create_model`:
``timm.create_model(name, pretrained=True)`` loads the released weights, and
``pretrained_cfg_overlay=dict(file=PATH_OR_URL)`` loads any file
:func:`igc.create_model` loads (a pytorchcv state dict included); ``num_classes``,
``in_chans``, ``features_only``, ``out_indices`` and the builders' options pass through.

Where timm cannot be imported (here: it imports torchvision, which does not load beside
this CPU build of torch), :func:`register` registers nothing, warns once with the reason
in one line, and returns an empty list; :func:`igc.create_model` works without timm.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Iterable
from typing import Any

from torch import nn

from igc.errors import IGCError

__all__ = ["TIMM_PREFIX", "default_cfgs", "register", "timm_cfg"]

#: Prefix of a zoo network whose own name timm already uses.
TIMM_PREFIX = "igc_"
#: timm reads the ``pretrained_cfg`` of each entrypoint from its module's ``default_cfgs``.
default_cfgs: dict[str, dict[str, Any]] = {}
#: Keys of ``model.pretrained_cfg`` that timm's ``PretrainedCfg`` has.
_SHARED = ("input_size", "interpolation", "crop_pct", "crop_mode", "mean", "std",
           "num_classes", "first_conv", "classifier")
#: The paper whose tables the zoo writes out (IGCV2), and each family's own paper.
_IGCV2 = "arXiv:1804.06202"
_PAPERS = {"igcv1": "arXiv:1707.02725", "igcv3": "arXiv:1806.00178",
           "mobilenetv2": "arXiv:1801.04381", "mobilenetv1": "arXiv:1704.04861"}


def timm_cfg(name: str) -> dict[str, Any]:
    """The ``pretrained_cfg`` timm gets for zoo network ``name``: the fields of its
    :func:`igc.models.metadata.model_cfg` that timm's ``PretrainedCfg`` has, its paper,
    and ``file`` (the released weights) where it has them."""
    from igc.models.metadata import model_cfg
    from igc.models.pretrained import weights_dir
    from igc.models.registry import model_entry

    entry = model_entry(name)
    ours = model_cfg(entry, entry.num_classes, entry.in_chans)
    cfg = {key: ours[key] for key in _SHARED if ours.get(key) is not None}
    own = _PAPERS.get(entry.family.split("-")[0])
    cfg.update(architecture=entry.name, paper_ids=(_IGCV2, own) if own else _IGCV2,
               notes=(f"igc zoo, paper table {entry.table}, {entry.dataset}",))
    if ours["released"]:
        cfg["file"] = str(weights_dir() / ours["released"]["file"])
    return cfg


def _entrypoint(name: str, timm_name: str) -> Callable[..., nn.Module]:
    """timm's entrypoint ``timm_name`` building zoo network ``name``."""

    def create(pretrained: bool = False, pretrained_cfg: object = None,
               pretrained_cfg_overlay: dict | None = None, **kwargs: Any) -> nn.Module:
        from igc.models.registry import create_model

        if isinstance(pretrained_cfg, str) and pretrained_cfg:
            raise IGCError(f"{timm_name} has no pretrained tag {pretrained_cfg!r}; use "
                           f"{timm_name} without a tag")
        kwargs.pop("cache_dir", None)  # timm's download folder; igc uses torch.hub's
        overlay = dict(pretrained_cfg_overlay or {})
        weights = overlay.get("file") or overlay.get("url")
        return create_model(name, pretrained=(weights or True) if pretrained else False,
                            **kwargs)

    create.__name__ = create.__qualname__ = timm_name
    create.__module__ = __name__
    create.__doc__ = f"igc's {name} (see igc.create_model and igc info {name})."
    return create


def _import_timm() -> tuple[Any, str | None]:
    try:
        import timm.models as models
    except Exception as exc:  # ImportError, or torchvision failing inside timm's import
        text = str(exc).strip().splitlines()
        return None, f"{type(exc).__name__}: {text[0][:160] if text else ''}".rstrip(": ")
    return models, None


def register(names: Iterable[str] | None = None) -> list[str]:
    """Register the zoo networks ``names`` (default: all) with timm; returns the names timm
    knows them by (``[]``, with one warning line, when timm cannot be imported). Calling
    it again re-registers nothing."""
    from igc.models.registry import list_models, model_entry

    models, problem = _import_timm()
    if models is None:
        warnings.warn(f"timm cannot be imported here ({problem}); igc.integrations.timm."
                      "register() registered nothing (igc.create_model works without timm)",
                      RuntimeWarning, stacklevel=2)
        return []
    chosen = list_models() if names is None else [model_entry(n).name for n in names]
    module = sys.modules[__name__]
    registered = []
    for name in chosen:
        timm_name = name
        if models.is_model(name) and _owner(models, name) != __name__:
            timm_name = TIMM_PREFIX + name
        registered.append(timm_name)
        if models.is_model(timm_name) and _owner(models, timm_name) == __name__:
            continue
        module.default_cfgs[timm_name] = timm_cfg(name)
        models.register_model(_entrypoint(name, timm_name))
    return registered


def _owner(models: Any, name: str) -> str:
    return getattr(models.model_entrypoint(name), "__module__", "")
