"""argparse ``type=`` functions with limits: the one validation layer of CLI numbers and paths.

Each factory returns a converter for ``add_argument(type=...)`` built on :mod:`igc.checks`,
so a flag and the matching API argument accept the same values::

    p.add_argument("--seed", type=args.integer("seed", 0, MAX_SEED))
    p.add_argument("--lr", type=args.number("lr", positive=True, hi=MAX_LR))
    p.add_argument("--out", type=args.out_dir())
    p.add_argument("--out", type=args.out_file((".png",)))

A bad value becomes ``igc: error: argument --seed: seed must be at most ...`` (one line,
exit 2) through the parser's ``error``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from igc import checks
from igc.errors import IGCError
from igc.formatting import shorten

T = TypeVar("T")


def wrap(convert: Callable[[str], T], name: str) -> Callable[[str], T]:
    """``convert`` as an argparse type: its IGCError becomes argparse's one-line error."""
    def parse(text: str) -> T:
        try:
            return convert(text)
        except IGCError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = name  # argparse names the type in some messages
    return parse


def integer(label: str, lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    """An integer in ``[lo, hi]``; ``label`` names it in messages (``"batch size"``)."""
    def convert(text: str) -> int:
        try:
            value = int(text.strip().replace("_", ""))
        except ValueError:
            raise IGCError(f"expected an integer, got {text!r}") from None
        return checks.check_int(value, label, lo, hi)

    return wrap(convert, "integer")


def number(label: str, lo: float | None = None, hi: float | None = None, *,
           positive: bool = False) -> Callable[[str], float]:
    """A finite number in ``[lo, hi]`` (``positive``: above 0)."""
    def convert(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise IGCError(f"expected a number, got {text!r}") from None
        return checks.check_number(value, label, lo, hi, positive=positive)

    return wrap(convert, "number")


def integers(label: str, lo: int | None = None, hi: int | None = None,
             max_items: int = 64) -> Callable[[str], list[int]]:
    """Comma-separated integers, each in ``[lo, hi]``, at most ``max_items`` of them."""
    def convert(text: str) -> list[int]:
        parts = [part.strip() for part in text.split(",") if part.strip()]
        if not parts:
            raise IGCError(f"{label} must be comma-separated integers, got {text!r}")
        if len(parts) > max_items:
            raise IGCError(f"{label} takes at most {max_items} values, got {len(parts):,}")
        values = []
        for part in parts:
            try:
                value = int(part.replace("_", ""))
            except ValueError:
                raise IGCError(f"{label} must be comma-separated integers, got "
                               f"{shorten(repr(text), 60)}") from None
            values.append(checks.check_int(value, label, lo, hi))
        return values

    return wrap(convert, "integers")


def choice(label: str, choices: tuple[str, ...] | list[str]) -> Callable[[str], str]:
    """One of ``choices``; an unknown one names the closest or lists them all."""
    return wrap(lambda text: checks.check_choice(text, label, tuple(choices)), "choice")


def device(label: str = "--device") -> Callable[[str], str]:
    """A device: auto, cpu, cuda or cuda:N (whether it exists is checked when used)."""
    return wrap(lambda text: checks.check_device(text, label), "device")


def name(label: str) -> Callable[[str], str]:
    """A non-empty one-line name (model, data set, recipe, device)."""
    return wrap(lambda text: checks.check_name(text, label), "name")


def text(label: str, max_len: int = checks.MAX_TEXT) -> Callable[[str], str]:
    """Free text of at most ``max_len`` characters on one line (a title)."""
    return wrap(lambda t: checks.check_name(t, label, max_len), "text")


def out_dir(label: str = "--out") -> Callable[[str], Path]:
    """A folder to write into (exists, or its nearest existing ancestor is writable)."""
    return wrap(lambda t: checks.check_writable_dir(t, label), "out_dir")


def out_file(suffixes: tuple[str, ...] = (), label: str = "--out") -> Callable[[str], Path]:
    """A file to write, with one of ``suffixes``, in a writable folder."""
    return wrap(lambda t: checks.check_writable_file(t, label, suffixes), "out_file")


def existing(kind: str = "any", label: str = "path") -> Callable[[str], Path]:
    """A path that exists (``kind``: ``file``, ``dir`` or ``any``) and can be read."""
    return wrap(lambda t: checks.check_existing(t, label, kind), "existing")


def path(label: str = "path") -> Callable[[str], Path]:
    """Any path within the system's length limits (need not exist)."""
    return wrap(lambda t: checks.check_path(t, label), "path")


__all__ = ["choice", "device", "existing", "integer", "integers", "name", "number", "out_dir",
           "out_file", "path", "text", "wrap"]
