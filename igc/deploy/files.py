"""Output files: a path checked before any work, and written atomically (a temporary file
in the same folder, renamed over the target on success, removed on failure), so a failed
or interrupted write never leaves a partial or invalid file."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from igc.errors import IGCError


def _limits(folder: Path) -> tuple[int, int]:
    try:
        return os.pathconf(folder, "PC_NAME_MAX"), os.pathconf(folder, "PC_PATH_MAX")
    except (OSError, ValueError, AttributeError):  # pragma: no cover - not POSIX
        return 255, 4096


def _exists(path: Path) -> bool:
    try:
        path.stat()
    except (OSError, ValueError):  # missing, too long, unreadable
        return False
    return True


def check_output(path: str | os.PathLike, what: str = "output file") -> Path:
    """``path`` as a :class:`Path` if a file can be written there, else IGCError (one line):
    an empty path, an existing folder, a name or path too long for the file system, a
    parent that is not a folder, or a folder this process cannot write in. Missing
    folders are allowed (:func:`atomic_output` creates them)."""
    text = os.fspath(path)
    if not text.strip():
        raise IGCError(f"the {what} path is empty; give a file name")
    if "\0" in text:
        raise IGCError(f"the {what} path contains a NUL character")
    given = Path(text).expanduser()
    target = given.absolute()
    existing = target.parent
    while not _exists(existing) and existing != existing.parent:
        existing = existing.parent
    name_max, path_max = _limits(existing)
    too_long = [part for part in target.parts if len(os.fsencode(part)) > name_max]
    if too_long:
        raise IGCError(f"{what} name {too_long[0][:40]}... is longer than the {name_max} "
                       "bytes the file system allows; use a shorter name")
    if len(os.fsencode(str(target))) >= path_max:
        raise IGCError(f"{what} path is longer than the {path_max} bytes the file system "
                       "allows; use a shorter path")
    if target.is_dir():
        raise IGCError(f"{what} {target} is a folder; give a file name")
    if not existing.is_dir():
        raise IGCError(f"cannot write {what} {target}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise IGCError(f"cannot write {what} {target}: no write permission in {existing}")
    return given


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_output(path: str | os.PathLike, what: str = "output file") -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder (created if missing) to write to; on
    success it replaces ``path`` in one rename, on any error or interrupt it is removed.
    ``OSError`` s become IGCError naming the file."""
    target = check_output(path, what)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name[:100]}.",
                                    suffix=".tmp")
        os.close(fd)
        os.chmod(name, 0o666 & ~_umask())  # mkstemp's 0600 would outlive the rename
    except OSError as exc:
        raise IGCError(f"cannot write {what} {target}: {exc.strerror or exc}") from None
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, target)
    except OSError as exc:
        raise IGCError(f"cannot write {what} {target}: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: str | os.PathLike, data: bytes | str, what: str = "output file"
                 ) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_output`)."""
    blob = data.encode() if isinstance(data, str) else data
    with atomic_output(path, what) as tmp, open(tmp, "wb") as handle:
        handle.write(blob)
        handle.flush()
        os.fsync(handle.fileno())
    return Path(path)


__all__ = ["atomic_output", "atomic_write", "check_output"]
