"""Field-by-field validation of what igc reads back from its own files.

A file is trusted past its top level only after :func:`check` has seen every field it
uses: the type, the range of numbers, the length of strings, lists and tables, and the
items inside. A :class:`Spec` describes one field; a table of them describes a record::

    RECORD = {"epoch": Spec(int, 1, MAX_EPOCHS), "top1": Spec(float, 0, 100, null=True)}
    check_fields(record, RECORD, "metrics.jsonl line 3")

Errors are one :class:`~igc.errors.IGCError` line: where, which field, what was expected,
what was found (shortened), and ``fix``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from igc.errors import IGCError
from igc.formatting import shorten

_KIND_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
               list: "a list", dict: "a table"}


@dataclass(frozen=True)
class Spec:
    """One field of a file: its kind, bounds, and whether it may be absent or null.

    ``kind``: int, float, str, bool, list, dict or torch.Tensor; bounds ``lo``/``hi`` (of a
    number's value, or of a string's, list's or table's length); ``optional`` (may be
    absent), ``null`` (may be ``None``); ``items``: the Spec of a list's items or a table's
    values. Floats must be finite unless ``finite=False`` (NaN and infinities then pass)."""

    kind: type
    lo: float | None = None
    hi: float | None = None
    optional: bool = False
    null: bool = False
    items: Spec | None = None
    finite: bool = True

    def describe(self) -> str:
        """What the field must be, in words: ``an integer in [1, 100]``."""
        text = _KIND_NAMES.get(self.kind, f"a {self.kind.__name__.lower()}")
        if self.kind in (int, float) and (self.lo is not None or self.hi is not None):
            text += f" in [{_num(self.lo)}, {_num(self.hi)}]"
        elif self.hi is not None:
            text += f" of at most {self.hi:g} entries" if self.kind is not str else \
                f" of at most {self.hi:g} characters"
        return text + (" or null" if self.null else "")


def _num(x: float | None) -> str:
    return "…" if x is None else f"{x:g}"


def _kind_ok(value: Any, kind: type) -> bool:
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind is list:
        return isinstance(value, list | tuple)
    if kind is dict:
        return isinstance(value, Mapping)
    return isinstance(value, kind)


def check(value: Any, spec: Spec, where: str, fix: str) -> Any:
    """``value`` if it fits ``spec``, else IGCError ``"{where} must be …, got …; {fix}"``."""
    def bad(found: str | None = None) -> IGCError:
        shown = found or shorten(repr(value), 50)
        return IGCError(f"{where} must be {spec.describe()}, got {shown}; {fix}")

    if value is None:
        if spec.null:
            return None
        raise bad()
    if not _kind_ok(value, spec.kind):
        raise bad(f"{type(value).__name__} {shorten(repr(value), 40)}")
    if spec.kind in (int, float):
        if spec.kind is float and not math.isfinite(value):
            if spec.finite:
                raise bad()
            return value
        if (spec.lo is not None and value < spec.lo) or (spec.hi is not None and value > spec.hi):
            raise bad()
        return value
    if spec.kind in (str, list, dict):
        size = len(value)
        if (spec.lo is not None and size < spec.lo) or (spec.hi is not None and size > spec.hi):
            raise bad(f"{size} {'characters' if spec.kind is str else 'entries'}")
    if spec.items is not None and spec.kind is list:
        for i, item in enumerate(value):
            check(item, spec.items, f"{where}[{i}]", fix)
    if spec.items is not None and spec.kind is dict:
        for key, item in value.items():
            if not isinstance(key, str):
                raise IGCError(f"{where} has a key {shorten(repr(key), 40)} that is not a "
                               f"string; {fix}")
            check(item, spec.items, f"{where}[{key!r}]", fix)
    return value


def check_fields(record: Any, fields: Mapping[str, Spec], where: str, fix: str) -> dict:
    """``record`` if it is a table whose fields fit ``fields``, else IGCError.

    Absent optional fields are allowed; unknown fields are kept, unchecked, for newer
    writers."""
    if not isinstance(record, Mapping):
        raise IGCError(f"{where} must be a table (a JSON object), got "
                       f"{type(record).__name__}; {fix}")
    missing = [k for k, s in fields.items() if not s.optional and k not in record]
    if missing:
        raise IGCError(f"{where} lacks {', '.join(missing)}; {fix}")
    for key, spec in fields.items():
        if key in record:
            check(record[key], spec, f"{where}: {key}", fix)
    return dict(record)





def check_plain(value: Any, where: str, fix: str, depth: int = 4, size: int = 256,
                max_number: float | None = None) -> Any:
    """``value`` if it is a small JSON-like value, else IGCError.

    None, bool, int, finite float, str, and lists or string-keyed tables of those, nested at
    most ``depth`` deep, ``size`` entries each, numbers at most ``max_number`` in size: what
    model options and recipe tables hold."""
    if isinstance(value, int | float) and not isinstance(value, bool) and \
            max_number is not None and math.isfinite(value) and abs(value) > max_number:
        raise IGCError(f"{where} = {value:,} is over {max_number:,}; {fix}")
    if value is None or isinstance(value, bool | int | str):
        if isinstance(value, str) and len(value) > 10_000:
            raise IGCError(f"{where} is a string of {len(value):,} characters; {fix}")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise IGCError(f"{where} must be finite, got {value}; {fix}")
        return value
    if depth <= 0 or not isinstance(value, list | tuple | Mapping):
        raise IGCError(f"{where} must be a plain value, got {type(value).__name__} "
                       f"{shorten(repr(value), 40)}; {fix}")
    if len(value) > size:
        raise IGCError(f"{where} has {len(value):,} entries (at most {size}); {fix}")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise IGCError(f"{where} has a key {shorten(repr(key), 40)} that is not a "
                               f"string; {fix}")
            check_plain(item, f"{where}.{key}", fix, depth - 1, size, max_number)
    else:
        for i, item in enumerate(value):
            check_plain(item, f"{where}[{i}]", fix, depth - 1, size, max_number)
    return value
__all__ = ["Spec", "check", "check_fields", "check_plain"]
