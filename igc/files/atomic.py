"""Atomic file writes: a temporary file beside the target, flushed to disk, then renamed.

A reader (or a crash) sees either the old file or the complete new one, never a torn one.
The temporary file is named ``.NAME.tmpPID`` in the target's folder (``os.replace`` is
atomic within one file system); on any error it is removed and the old file stays.
:func:`stale_temp_files` finds the ones a killed process (SIGKILL, power loss) left; every
write removes those of its own target first.

A write owns its target: it replaces only a regular file or creates a new path, and
refuses a device node (``/dev/full``), a FIFO, a socket or a folder at the target
(:func:`check_target`), which ``os.replace`` would otherwise silently swap for a file.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

from igc.errors import IGCError

_TEMP = re.compile(r"^\.(?P<name>.+)\.tmp(?P<pid>\d+)$")


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def not_a_file(path: Path, what: str) -> IGCError:
    """The one-line error for a ``path`` that should be a regular file and is not.

    ``WHAT PATH does not exist``, or what is there instead (a FIFO, a device, a folder...).
    """
    try:
        mode = path.stat().st_mode
    except OSError:
        return IGCError(f"{what} {path} does not exist")
    return IGCError(f"{what} {path} is {_kind(mode)}, not a regular file")


def check_target(path: str | Path, what: str = "file") -> Path:
    """``path`` if a write may replace it, else IGCError naming what is there.

    It may when it does not exist or is a regular file (a symbolic link is followed)."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return path
    except OSError as exc:
        if path.is_symlink() and not path.exists():  # a dangling link: replaced by the file
            return path
        raise IGCError(f"cannot write {what} {path} ({exc.strerror or exc}); choose another "
                       "path") from None
    if not stat.S_ISREG(mode):
        raise IGCError(f"cannot write {what} {path}: it is {_kind(mode)}, not a regular file, "
                       "and igc replaces only its own files; choose another path")
    return path


def remove_stale_temp_files(path: Path) -> None:
    """Remove the temporary files of ``path`` that dead processes left beside it."""
    for stale in stale_temp_files(path.parent, (path.name,)):
        with suppress(OSError):
            stale.unlink()


def temp_path(path: Path) -> Path:
    """The temporary file this process writes ``path`` through."""
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


@contextmanager
def atomic_path(path: str | Path, what: str = "file",
                verify: Callable[[Path], None] | None = None,
                parents: bool = False) -> Iterator[Path]:
    """A temporary path beside ``path`` that replaces ``path`` when the block succeeds.

    For a writer that needs a file name. ``parents``: create ``path``'s missing folders
    first. ``verify(temporary_path)`` runs on the complete file before it replaces ``path``
    (a download's checksum); whatever it raises leaves ``path`` unchanged. Raises
    :class:`IGCError` (naming ``what`` and ``path``) when the file cannot be written or
    ``path`` is not a regular file (:func:`check_target`); the temporary file never
    outlives the block."""
    path = check_target(path, what)
    tmp = temp_path(path)
    try:
        if parents:
            path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_files(path)
        yield tmp
        check_target(path, what)  # nothing else took the path meanwhile
        if verify is not None:
            verify(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise IGCError(f"cannot write {what} {path} ({exc.strerror or exc}); check the disk "
                       "space and permissions of its folder") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_writer(path: str | Path, what: str = "file",
                  verify: Callable[[Path], None] | None = None,
                  parents: bool = False) -> Iterator[BinaryIO]:
    """A binary handle whose content replaces ``path`` when the block succeeds.

    The content is flushed to disk first; see :func:`atomic_path` for ``verify``, ``parents``
    and errors."""
    with atomic_path(path, what, verify, parents) as tmp, open(tmp, "wb") as handle:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())


def atomic_write(path: str | Path, data: bytes | str, what: str = "file",
                 parents: bool = False) -> Path:
    """Write ``data`` (text is UTF-8) to ``path`` atomically; returns ``path``."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_writer(path, what, parents=parents) as handle:
        handle.write(payload)
    return Path(path)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def stale_temp_files(folder: Path, names: tuple[str, ...] | None = None) -> list[Path]:
    """Temporary files in ``folder`` left by processes that no longer run.

    ``names``: only those of these targets."""
    found = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    for entry in entries:
        match = _TEMP.match(entry.name)
        if match and (names is None or match["name"] in names) and entry.is_file() \
                and not _alive(int(match["pid"])):
            found.append(entry)
    return sorted(found)


__all__ = ["atomic_path", "atomic_write", "atomic_writer", "check_target",
           "remove_stale_temp_files", "stale_temp_files", "temp_path"]
