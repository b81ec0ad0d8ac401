"""The user's cache folder: files igc can always recompute (counts, calibrations).

``$XDG_CACHE_HOME/igc`` (``~/.cache/igc`` by default). A cache file is read with
:func:`read_cache`, which treats a missing, unreadable or damaged file as empty, so a bad
cache is rebuilt, never fatal; :func:`write_cache` writes atomically and gives up quietly
on a read-only home (the next run only loses its speed).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from igc.errors import IGCError
from igc.files.atomic import atomic_write

#: The largest cache file read back (a bigger one is treated as damaged).
MAX_CACHE_BYTES = 16 << 20


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/igc``, or ``~/.cache/igc``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "igc"


def check_cache_dir(folder: Path | None = None) -> Path:
    """``folder`` (default :func:`cache_dir`) if it is a folder or can be made.

    Else IGCError naming it and what is in the way (``XDG_CACHE_HOME`` set to a file),
    before any work whose result would be cached is done."""
    folder = cache_dir() if folder is None else folder
    probe = folder.absolute()
    while not probe.is_dir():
        if probe.exists() or probe.is_symlink():
            raise IGCError(f"cannot make the cache folder {folder}: {probe} is not a folder; "
                           "set XDG_CACHE_HOME to a folder you can write")
        if probe == probe.parent:
            break
        probe = probe.parent
    if not os.access(probe, os.W_OK | os.X_OK):
        raise IGCError(f"cannot write the cache folder {folder} ({probe}: permission "
                       "denied); set XDG_CACHE_HOME to a folder you can write")
    return folder


def read_cache(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``, or ``{}`` when there is no good one.

    ``{}`` when the file is missing, too big, not JSON or not an object; the caller checks
    each entry it uses."""
    try:
        if path.stat().st_size > MAX_CACHE_BYTES:
            return {}
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def write_cache(path: Path, data: dict[str, Any]) -> bool:
    """Write ``data`` as JSON to ``path`` atomically; False when it cannot be written.

    The folder is created when missing."""
    try:
        atomic_write(path, json.dumps(data), "cache file", parents=True)
    except IGCError:
        return False
    return True


__all__ = ["MAX_CACHE_BYTES", "cache_dir", "check_cache_dir", "read_cache", "write_cache"]
