"""igc: interleaved group convolutions (IGCV1, IGCV2, IGCV3) and their baselines."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers see of the lazy names (igc ships py.typed)
    from igc.models.registry import create_model, list_models

__version__ = "0.1.0"

__all__ = ["__version__", "create_model", "list_models"]

#: Names exported lazily, so that ``import igc`` stays cheap (no torch import).
_LAZY = {"create_model": "igc.models.registry", "list_models": "igc.models.registry"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'igc' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
