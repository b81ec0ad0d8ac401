"""State dicts checked before ``load_state_dict``: what a file holds, and whether it fits.

Two stages, each ending in one :class:`~igc.errors.IGCError` line that names the first bad
key, so that nothing is loaded half-way:

* :func:`check_tensors` (when a file is read): names are strings, values dense
  (``torch.strided``), not on the meta device, not empty, of a real floating-point or
  integer dtype (no complex, bool or quantised tensors), floating-point ones finite;
* :func:`compare` (against the model they are loaded into): every key the model has,
  no other (``strict``), the same shape, and the same kind of dtype (a floating-point
  parameter gets floating-point values, an integer buffer such as BatchNorm's
  ``num_batches_tracked`` an integer).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from igc.errors import IGCError
from igc.formatting import shorten

__all__ = ["check_tensors", "compare", "dtype_problem"]

#: The most characters a key may have.
MAX_KEY = 500


def _kind(dtype: torch.dtype) -> str:
    if dtype == torch.bool:
        return "bool"
    if dtype.is_complex:
        return "complex"
    if dtype.is_floating_point:
        return "float"
    if dtype in (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64):
        return "int"
    return "other"


def _tensor_problem(value: torch.Tensor) -> str | None:
    if value.layout != torch.strided:
        return f"a {str(value.layout).removeprefix('torch.')} tensor (dense only)"
    if value.is_meta:
        return "a meta tensor without values"
    if value.is_quantized or _kind(value.dtype) not in ("float", "int"):
        return f"of dtype {str(value.dtype).removeprefix('torch.')} (real floating point " \
               "or integer only)"
    if value.numel() == 0:
        return f"empty (shape {tuple(value.shape)})"
    if value.is_floating_point() and not bool(torch.isfinite(value).all()):
        return "not finite (NaN or infinity)"
    return None


def check_tensors(state: object, where: str, fix: str = "it is damaged or not weights"
                  ) -> dict[str, torch.Tensor]:
    """Refuse a state dict whose tensors no network can load.

    ``state`` as a dict if it maps string keys to dense, finite, real-valued, non-empty
    tensors; else IGCError naming the first bad key."""
    if not isinstance(state, Mapping) or not state:
        raise IGCError(f"{where} is not a state dict (names -> tensors); {fix}")
    for key, value in state.items():
        if not isinstance(key, str) or not key or len(key) > MAX_KEY:
            raise IGCError(f"{where} has a key {shorten(repr(key), 40)} that is not a "
                           f"parameter name; {fix}")
        if not isinstance(value, torch.Tensor):
            raise IGCError(f"{where}[{key!r}] is a {type(value).__name__}, not a tensor; {fix}")
        problem = _tensor_problem(value)
        if problem:
            raise IGCError(f"{where}[{key!r}] is {problem}; {fix}")
    return dict(state)


def dtype_problem(value: torch.Tensor, own: torch.Tensor) -> str | None:
    """Why ``value`` cannot stand for the model's tensor ``own`` (``None``: it can)."""
    have, want = _kind(value.dtype), _kind(own.dtype)
    if have == want:
        return None
    shown = str(value.dtype).removeprefix("torch.")
    return f"is {shown}, the model's is {str(own.dtype).removeprefix('torch.')}"


def _short(keys: list[str]) -> str:
    return ", ".join(keys[:3]) + (f" (+{len(keys) - 3})" if len(keys) > 3 else "")


def compare(state: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor],
            ignore: str | None = None) -> tuple[str, list[str]]:
    """Compare a state dict with a model's before loading it.

    ``(problems, mis-shaped keys)`` of loading ``state`` into a model whose state dict is
    ``own``: ``problems`` counts and names the missing, unexpected and mis-shaped keys
    (``""``: none), the model's keys starting with ``ignore`` may be missing. A dtype of
    the wrong kind is an IGCError at once (no partial load can use it)."""
    missing = [k for k in own if k not in state and not (ignore and k.startswith(ignore))]
    unexpected = [k for k in state if k not in own]
    misshaped = [k for k in state if k in own and state[k].shape != own[k].shape]
    for key, value in state.items():
        if key in own and key not in misshaped:
            problem = dtype_problem(value, own[key])
            if problem:
                raise IGCError(f"state dict key {key!r} {problem}; the file holds other "
                               "values than weights")
    problems = "; ".join(f"{len(keys)} {what} ({_short(keys)})" for what, keys in (
        ("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)) if keys)
    if misshaped:
        first = misshaped[0]
        problems += f"; {first} is {tuple(state[first].shape)}, the model's " \
                    f"{tuple(own[first].shape)}"
    return problems, misshaped
