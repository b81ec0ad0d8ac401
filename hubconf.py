"""torch.hub entry points: one per network of the zoo.

    model = torch.hub.load("OWNER/REPO", "igcv2_c48_d11_fmnist", pretrained=True)
    torch.hub.list("OWNER/REPO")          # every network
    torch.hub.help("OWNER/REPO", "igcv2_fmnist")

Each entry is ``create_model(NAME, pretrained=False, **kwargs)``
(:func:`igc.models.registry.create_model`): ``pretrained=True`` loads the released weights
(SHA-256 checked), a path or URL loads that file, and the other keywords are
``create_model``'s (``num_classes``, ``in_chans``, ``features_only``, ...) and the builder's
options. An unknown keyword is an :class:`igc.errors.IGCError` of one line naming it
(``create_model``'s "bad option for model ...").
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from igc.models.registry import create_model, list_models

dependencies = ["torch", "numpy", "safetensors"]


def _entry(name: str) -> Callable[..., nn.Module]:
    def entry(pretrained: bool | str = False, **kwargs: object) -> nn.Module:
        return create_model(name, pretrained=pretrained, **kwargs)  # type: ignore[arg-type]

    entry.__name__ = entry.__qualname__ = name
    entry.__doc__ = (f"igc's {name}: ``create_model({name!r}, pretrained=False, "
                     "**kwargs)`` (see hubconf's docstring).")
    return entry


for _name in list_models():
    globals()[_name] = _entry(_name)
del _name
