"""A builder's arguments, typed and bounded from its own signature before anything is built.

Every way a network's options reach a builder (keywords of
:func:`~igc.models.registry.create_model`, a checkpoint's ``model_args``, ``--set
model_args.*``, a recipe) goes through :func:`check_builder_args`, which reads the
builder's parameters and type hints and checks each value against them:

* ``int``: an integer (an integral float is taken), at least 1 (``num_classes``: 0),
  at most :data:`~igc.checks.MAX_OPTION` (``num_classes``: :data:`~igc.checks.MAX_CLASSES`,
  ``in_chans``: :data:`~igc.checks.MAX_CHANNELS`);
* ``float``: a finite positive number up to :data:`~igc.checks.MAX_OPTION`;
* ``bool``: ``True`` or ``False``; ``str``: one line of at most 200 characters;
* ``tuple[...]``: a list or tuple (at most :data:`MAX_ITEMS` items) whose items conform;
* ``X | None``: ``None`` or an ``X``; a ``Callable`` (``norm_layer``): a callable.

Names the builder does not take are refused unless it takes ``**kwargs`` (the block's
options), whose values must be plain numbers, strings, booleans or short lists of them.
The result is one line: ``bad option for model 'igcv2_c64_d20': width must be an
integer, got 64.5``.
"""

from __future__ import annotations

import collections.abc
import inspect
import math
import types
import typing
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

from igc import checks
from igc.errors import IGCError
from igc.formatting import shorten

#: The most items of one sequence option (branch sizes, groups).
MAX_ITEMS = 64
#: The deepest nesting of a sequence option.
MAX_DEPTH = 4
_LIMITS = {"num_classes": (0, checks.MAX_CLASSES), "in_chans": (1, checks.MAX_CHANNELS)}


@cache
def _signature(builder: Callable[..., Any]) -> tuple[dict[str, Any], bool]:
    """The builder's keyword parameters with their type hints, and whether it takes
    ``**kwargs``."""
    params = inspect.signature(builder).parameters
    try:
        hints = typing.get_type_hints(builder)
    except Exception:  # an unresolvable hint: that parameter is checked as "any"
        hints = {}
    named = {p.name: hints.get(p.name, Any) for p in params.values()
             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return named, any(p.kind is p.VAR_KEYWORD for p in params.values())


def _show(value: object) -> str:
    return shorten(repr(value), 60)


def _conform(value: Any, hint: Any, name: str, depth: int = 0) -> Any:
    """``value`` checked against the type hint ``hint`` (see the module)."""
    origin = typing.get_origin(hint)
    if hint is Any or hint is object:
        return _plain(value, name, depth)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return _conform(value, option, name, depth)
            except IGCError as exc:
                errors.append(str(exc))
        raise IGCError(errors[0] if len(errors) == 1 else
                       f"{name} must be {_describe(hint)}, got {_show(value)}")
    if hint is bool:
        if not isinstance(value, bool):
            raise IGCError(f"{name} must be true or false, got {_show(value)}")
        return value
    if hint is int:
        lo, hi = _LIMITS.get(name, (1, checks.MAX_OPTION))
        return checks.check_int(value, name, lo, hi)
    if hint is float:
        return checks.check_number(value, name, hi=checks.MAX_OPTION, positive=True)
    if hint is str:
        return checks.check_name(value, name)
    if origin in (tuple, list, collections.abc.Sequence):
        if not isinstance(value, list | tuple) or depth >= MAX_DEPTH:
            raise IGCError(f"{name} must be {_describe(hint)}, got {_show(value)}")
        if len(value) > MAX_ITEMS:
            raise IGCError(f"{name} has {len(value):,} items; at most {MAX_ITEMS}")
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            items = [args[0]] * len(value)
        elif args and origin is tuple:
            if len(value) != len(args):
                raise IGCError(f"{name} must have {len(args)} items, got {_show(value)}")
            items = list(args)
        else:
            items = [Any] * len(value)
        return tuple(_conform(v, h, f"{name}[{i}]", depth + 1)
                     for i, (v, h) in enumerate(zip(value, items, strict=True)))
    if origin is collections.abc.Callable or hint is collections.abc.Callable:
        if not callable(value):
            raise IGCError(f"{name} must be a callable (a layer class), got {_show(value)}")
        return value
    return value  # a type this checker does not know: the builder checks it


def _describe(hint: Any) -> str:
    text = str(hint).replace("typing.", "").replace("collections.abc.", "")
    return shorten(text.replace("<class '", "").replace("'>", ""), 80)


def _plain(value: Any, name: str, depth: int = 0) -> Any:
    """A value for an untyped option: a number, string, boolean, None, callable or a
    short, shallow list of them."""
    if value is None or isinstance(value, bool) or callable(value):
        return value
    if isinstance(value, int):
        return checks.check_int(value, name, -checks.MAX_OPTION, checks.MAX_OPTION)
    if isinstance(value, float):
        if not math.isfinite(value) or abs(value) > checks.MAX_OPTION:
            raise IGCError(f"{name} must be a finite number of at most "
                           f"{checks.MAX_OPTION:,}, got {_show(value)}")
        return value
    if isinstance(value, str):
        return checks.check_name(value, name)
    if isinstance(value, list | tuple) and depth < MAX_DEPTH and len(value) <= MAX_ITEMS:
        return type(value)(_plain(v, f"{name}[{i}]", depth + 1) for i, v in enumerate(value))
    raise IGCError(f"{name} must be a number, string, boolean or short list, got "
                   f"{_show(value)}")


def check_builder_args(model: str, builder: Callable[..., Any],
                       kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``kwargs`` checked against ``builder``'s signature (see the module); IGCError
    ``bad option for model 'NAME': ...`` (one line) for the first bad one."""
    named, open_ended = _signature(builder)
    checked = {}
    for key, value in kwargs.items():
        try:
            if not isinstance(key, str) or not key.isidentifier():
                raise IGCError(f"{_show(key)} is not an option name")
            if key in named:
                checked[key] = _conform(value, named[key], key)
            elif open_ended:
                checked[key] = _plain(value, key)
            else:
                known = ", ".join(sorted(named))
                raise IGCError(f"unknown option {key!r}; it takes {shorten(known, 200)}")
        except IGCError as exc:
            raise IGCError(f"bad option for model {model!r}: {exc}") from None
    return checked


__all__ = ["MAX_DEPTH", "MAX_ITEMS", "check_builder_args"]
