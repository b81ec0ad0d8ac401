"""Range checks for the numbers and paths a user gives, shared by the CLI and the API.

Every check returns the (normalised) value or raises :class:`~igc.errors.IGCError` with one
line that names the option, the limit and the value. ``igc.cli.args`` wraps them as
argparse ``type=`` functions; library entry points (``RunConfig``, ``evaluate_checkpoint``,
``plot_runs``) call them directly, so the API accepts exactly what the CLI accepts.

The limits (``MAX_*``) are generous bounds that keep a typo from allocating absurd memory
or hanging; docs/guarantees.md lists them.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import TypeVar

from igc.errors import IGCError, unknown_name
from igc.files.atomic import check_target
from igc.formatting import shorten
from igc.names import DEVICES

T = TypeVar("T", int, float)

#: The largest seed (torch and numpy take 64-bit seeds; the data order mixes 63 bits).
MAX_SEED = 2**63 - 1
#: The most seeds (runs) one ``igc train --seeds N`` trains.
MAX_SEEDS = 1000
#: Batch sizes (training and evaluation) and the largest epoch count.
MAX_BATCH = 1 << 20
MAX_EPOCHS = 100_000
#: DataLoader worker processes and threads per process.
MAX_WORKERS = 256
MAX_THREADS = 1024
#: Image side, classes and input channels a checkpoint or recipe may ask a model for.
MAX_IMAGE_SIZE = 4096
MAX_CLASSES = 100_000
MAX_CHANNELS = 16
#: The largest number a model option (``model_args``: widths, depths, branch sizes) may be.
MAX_OPTION = 65_536
#: The largest learning rate (anything above diverges at once) and free-text lengths.
MAX_LR = 1000.0
MAX_NAME = 200
MAX_TEXT = 2000
#: Input side, batch and timed rounds of the latency-aware designer (``igc design --rank
#: latency``), and the most designs it ranks (the designer's ``MAX_ALTERNATIVES``).
MAX_LATENCY_SIZE = 1024
MAX_LATENCY_BATCH = 1024
MAX_LATENCY_REPEATS = 1000
MAX_LATENCY_CANDIDATES = 1000


def _show(value: object) -> str:
    return shorten(repr(value), 60)


def check_int(value: object, name: str, lo: int | None = None, hi: int | None = None) -> int:
    """``value`` as an int in ``[lo, hi]`` (bools and non-integral floats refused)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise IGCError(f"{name} must be an integer, got {_show(value)}")
    return _bounded(value, name, lo, hi, "", ",")


def _bounded(value: T, name: str, lo: T | None, hi: T | None, low: str, high: str) -> T:
    """``value`` if it is within ``[lo, hi]``, else IGCError; ``low`` and ``high`` are the
    format specs of the numbers in the two messages."""
    if lo is not None and value < lo:
        raise IGCError(f"{name} must be at least {lo:{low}}, got {value:{low}}")
    if hi is not None and value > hi:
        raise IGCError(f"{name} must be at most {hi:{high}}, got {value:{high}}")
    return value


def check_number(value: object, name: str, lo: float | None = None, hi: float | None = None,
                 *, positive: bool = False) -> float:
    """``value`` as a finite float in ``[lo, hi]`` (``positive``: strictly above 0)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise IGCError(f"{name} must be a number, got {_show(value)}")
    value = float(value)
    if not math.isfinite(value):
        raise IGCError(f"{name} must be a finite number, got {value}")
    if positive and value <= 0:
        raise IGCError(f"{name} must be a positive number, got {value:g}")
    return _bounded(value, name, lo, hi, "g", "g")


def check_name(value: object, name: str, max_len: int = MAX_NAME) -> str:
    """A non-empty one-line name (a model, data set, recipe or device)."""
    if not isinstance(value, str) or not value.strip():
        raise IGCError(f"{name} must be a non-empty name, got {_show(value)}")
    if len(value) > max_len or any(ord(c) < 32 for c in value):
        raise IGCError(f"{name} must be one line of at most {max_len} characters, got "
                       f"{_show(value)}")
    return value.strip()


def check_device(value: object, name: str = "--device") -> str:
    """A device name, lower-cased: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

    ``auto`` is CUDA when available. Whether the device exists is checked where it is used."""
    text = check_name(value, name, 40).lower()
    if text in DEVICES[:3] or re.fullmatch(r"cuda:\d{1,3}", text):
        return text
    raise IGCError(f"unknown device {_show(value)} for {name}; use {', '.join(DEVICES[:3])} "
                   f"or cuda:N")


def check_choice(value: object, name: str, choices: tuple[str, ...]) -> str:
    """One of ``choices`` (a data set, a format, a budget), else IGCError.

    An unknown one names the closest choices, or lists them all."""
    text = check_name(value, name)
    if text not in choices:
        raise unknown_name(name, text, choices)
    return text


def _limit(name: str, default: int) -> int:
    try:
        return int(os.pathconf("/", name))
    except (OSError, ValueError, AttributeError):
        return default


PATH_MAX = _limit("PC_PATH_MAX", 4096)
NAME_MAX = _limit("PC_NAME_MAX", 255)


def check_path(value: object, name: str) -> Path:
    """A path a user typed: non-empty, no NUL, within the system's length limits."""
    if isinstance(value, Path):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise IGCError(f"{name} must be a path, got an empty one; give a file or folder name")
    if "\0" in value:
        raise IGCError(f"{name} {_show(value)} holds a NUL character; give a plain path")
    path = Path(value).expanduser()
    if len(os.fsencode(str(path))) >= PATH_MAX:
        raise IGCError(f"{name} is {len(str(path)):,} characters long; paths must be shorter "
                       f"than {PATH_MAX}")
    long = next((p for p in path.parts if len(os.fsencode(p)) > NAME_MAX), None)
    if long is not None:
        raise IGCError(f"{name} has a component of {len(long)} characters "
                       f"({shorten(long, 40)}); names must be at most {NAME_MAX}")
    return path


def _existing_ancestor(path: Path) -> Path:
    probe = path.absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def check_writable_dir(value: object, name: str) -> Path:
    """A folder to write into; nothing is created.

    An existing folder, or a new one whose nearest existing ancestor is a writable folder."""
    path = check_path(value, name)
    if path.exists() and not path.is_dir():
        raise IGCError(f"{name} {path} is a file, not a folder; choose another {name}")
    base = _existing_ancestor(path)
    if not base.is_dir():
        raise IGCError(f"cannot write to {name} {path}: {base} is a file, not a folder; "
                       f"choose another {name}")
    if not os.access(base, os.W_OK | os.X_OK):
        raise IGCError(f"cannot write to {base} (permission denied); choose another {name}")
    return path


def check_writable_file(value: object, name: str, suffixes: tuple[str, ...] = ()) -> Path:
    """A file to write: the right suffix (any case), in a folder that can be written.

    An existing one must be a regular file (not a device, FIFO or socket)."""
    path = check_path(value, name)
    if suffixes and path.suffix.lower() not in suffixes:
        raise IGCError(f"{name} {path} must end in {' or '.join(suffixes)}")
    if path.is_dir():
        raise IGCError(f"{name} {path} is a folder; give a file name")
    base = _existing_ancestor(path.parent)
    if not base.is_dir():
        raise IGCError(f"cannot write {name} {path}: {base} is a file, not a folder; "
                       f"choose another {name}")
    if not os.access(base, os.W_OK | os.X_OK):
        raise IGCError(f"cannot write {name} {path} ({base}: permission denied); choose "
                       f"another {name}")
    return check_target(path, name)


def check_existing(value: object, name: str, kind: str = "any") -> Path:
    """A path that must exist: ``kind`` is ``file``, ``dir`` or ``any``."""
    path = check_path(value, name)
    if not path.exists():
        raise IGCError(f"{name} {path} does not exist")
    if kind == "file" and not path.is_file():
        raise IGCError(f"{name} {path} is not a file")
    if kind == "dir" and not path.is_dir():
        raise IGCError(f"{name} {path} is not a folder")
    if not os.access(path, os.R_OK):
        raise IGCError(f"cannot read {name} {path} (permission denied)")
    return path


__all__ = [
    "MAX_BATCH", "MAX_CHANNELS", "MAX_CLASSES", "MAX_EPOCHS", "MAX_IMAGE_SIZE", "MAX_LR",
    "MAX_NAME", "MAX_OPTION", "MAX_SEED", "MAX_SEEDS", "MAX_TEXT", "MAX_THREADS", "MAX_WORKERS",
    "NAME_MAX", "PATH_MAX",
    "check_choice", "check_device", "check_existing", "check_int", "check_name",
    "check_number", "check_path",
    "check_writable_dir", "check_writable_file",
]
