"""One igc process per output folder: an advisory lock held for a whole run.

``igc train --out DIR`` (new or ``--resume``) and ``igc reproduce --out DIR`` hold
:class:`FolderLock` on ``DIR`` from their first check to their exit, so a second command on
the same folder is refused at once with one line naming the holder's PID, instead of two
runs writing one checkpoint and interleaving one ``metrics.jsonl``.

The lock is ``fcntl.flock`` on the file :data:`LOCK_FILE` (``.igc-lock``) in the folder,
which holds the holder's PID (for the message only). The kernel releases a flock when its
process ends in any way (SIGKILL included), so a dead holder never blocks: its file is
simply taken over. A normal release removes the file; an acquirer checks that the file it
locked is still the one at the path (not one removed meanwhile), so two processes never
both believe they hold it. A folder the lock had to create (a new ``--out``) is removed
again on release unless :meth:`FolderLock.keep` was called (the run wrote into it).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from igc.errors import IGCError

#: The lock file's name in a locked folder.
LOCK_FILE = ".igc-lock"
_ATTEMPTS = 20


def _holder(path: Path) -> str:
    """The PID written in the lock file ``path``, as text (``unknown`` when unreadable)."""
    try:
        text = path.read_bytes()[:32].decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return "unknown"
    return text if text.isdigit() else "unknown"


class FolderLock:
    """An exclusive advisory lock on ``folder`` for this process (see the module).

    ``option`` names the flag the folder came from in messages (``--out``); ``create``:
    make the folder (and missing parents) when it does not exist; ``shared``: a lock that
    other shared holders may hold at the same time (``igc reproduce --shard i/n``: shards
    share a folder), but no exclusive one. Use as a context manager or call
    :meth:`acquire` / :meth:`release`."""

    def __init__(self, folder: str | Path, option: str = "--out", create: bool = True,
                 shared: bool = False) -> None:
        self.folder = Path(folder).absolute()
        self.shared = shared
        self.option = option
        self.create = create
        self.path = self.folder / LOCK_FILE
        self._fd: int | None = None
        self._made: list[Path] = []
        self._keep = False

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._fd is not None

    def _make_folder(self) -> None:
        missing = []
        probe = self.folder
        while not probe.exists() and probe != probe.parent:
            missing.append(probe)
            probe = probe.parent
        for folder in reversed(missing):
            try:
                folder.mkdir()
            except FileExistsError:
                continue
            except OSError as exc:
                self._remove_made()
                raise IGCError(f"cannot make {self.option} {self.folder} "
                               f"({exc.strerror or exc}); choose another {self.option}") from None
            self._made.append(folder)

    def _remove_made(self) -> None:
        for folder in reversed(self._made):
            try:
                folder.rmdir()  # only when empty: never removes what others put there
            except OSError:
                break
        self._made = []

    def acquire(self) -> FolderLock:
        """Take the lock.

        IGCError (one line, naming the holder's PID) when another process holds it or the
        folder cannot hold a lock file."""
        if self.held:
            return self
        if self.create:
            self._make_folder()
        try:
            for _ in range(_ATTEMPTS):
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
                try:
                    fcntl.flock(fd, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX)
                                | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    raise IGCError(f"{self.option} {self.folder} is in use by another igc "
                                   f"process (PID {_holder(self.path)}); wait for it to end "
                                   f"or choose another {self.option}") from None
                try:
                    same = os.path.samestat(os.fstat(fd), os.stat(self.path))
                except FileNotFoundError:
                    same = False
                if same:  # the file at the path, not one its last holder just removed
                    if not self.shared:
                        os.ftruncate(fd, 0)
                        os.write(fd, f"{os.getpid()}\n".encode())
                    self._fd = fd
                    return self
                os.close(fd)
            raise IGCError(f"cannot lock {self.option} {self.folder}: its lock file keeps "
                           "changing; try again")
        except OSError as exc:
            self._remove_made()
            raise IGCError(f"cannot lock {self.option} {self.folder} "
                           f"({exc.strerror or exc}); choose another {self.option}") from None
        except BaseException:
            self._remove_made()
            raise

    def keep(self) -> None:
        """Keep the folder on release (the run has written into it)."""
        self._keep = True

    def release(self) -> None:
        """Remove the lock file and drop the lock; safe to call twice.

        A folder it made is removed too, unless kept and only when empty."""
        if self._fd is None:
            return
        try:  # a shared holder leaves the file to the others
            if not self.shared and os.path.samestat(os.fstat(self._fd), os.stat(self.path)):
                os.unlink(self.path)
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None
        if not self._keep:
            self._remove_made()

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


__all__ = ["LOCK_FILE", "FolderLock"]
