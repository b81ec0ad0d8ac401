"""Run folders: which folder igc may write a run into, and what ``--force`` may delete.

Rules (docs/guarantees.md):

* A run folder is made, and marked with the file :data:`MARKER` (``.igc-run``), when the
  run writes its first checkpoint; nothing is written before that, so an early error or a
  kill during set-up leaves no folder behind.
* A folder holding any of igc's run files (:data:`RUN_FILES`) is never reused without
  ``--resume`` or ``--force``.
* ``--force`` removes only igc's run files, only from a folder that carries the marker,
  and only once the new run saves its first checkpoint (the old checkpoint is replaced
  atomically then); everything is decided before anything is removed, and files igc did
  not write (other names, an unmarked folder) are never touched.
* Temporary files a killed process left (``.checkpoint.pt.tmpPID``) are removed when the
  folder is next written.
* One process per folder: :meth:`RunFolder.open` takes the folder's lock
  (:class:`~igc.files.lock.FolderLock`, a ``.igc-lock`` file) before it looks inside, and
  the run holds it until :meth:`RunFolder.release`; a second run on the same folder is
  refused naming the first one's PID. A new folder exists from then on, holding only the
  lock file, and is removed again if the run ends before its first checkpoint.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from igc.checks import check_writable_dir
from igc.errors import IGCError
from igc.files.atomic import atomic_write, stale_temp_files
from igc.files.checkpoint import CHECKPOINT
from igc.files.lock import FolderLock
from igc.files.records import METRICS, RUN_INFO, SUMMARY

MARKER = ".igc-run"
RECIPE = "recipe.toml"
CURVES = "curves.png"
#: The files igc writes into a run folder (and the only ones ``--force`` removes).
RUN_FILES = (RECIPE, RUN_INFO, METRICS, CHECKPOINT, SUMMARY, CURVES)
_MARK = {"format": "igc-run", "version": 1}


def is_marked(folder: Path) -> bool:
    """Whether ``folder`` carries igc's run marker (a small JSON file)."""
    marker = folder / MARKER
    try:
        if not marker.is_file() or marker.stat().st_size > 4096:
            return False
        return json.loads(marker.read_text(encoding="utf-8")).get("format") == "igc-run"
    except (OSError, ValueError, AttributeError):
        return False


@dataclass
class RunFolder:
    """A run folder: checked by :meth:`open`, made by :meth:`begin`.

    :meth:`open` writes nothing; :meth:`begin` makes and marks the folder and clears the old
    run's files just before the first checkpoint."""

    path: Path
    resume: bool = False
    remove: list[Path] = field(default_factory=list)
    mark: bool = True
    begun: bool = False
    lock: FolderLock | None = None

    @classmethod
    def open(cls, path: str | Path, *, resume: bool = False, force: bool = False,
             option: str = "--out") -> RunFolder:
        """Lock ``path`` and decide whether a run may use it.

        IGCError (one line) if not (the lock is released then). The caller calls
        :meth:`release` when the run ends."""
        path = check_writable_dir(path, option)
        if resume and not (path / CHECKPOINT).is_file():
            cls._decide(path, resume, force, option)  # raises, having written nothing
        lock = FolderLock(path, option, create=not resume).acquire()
        try:
            folder = cls._decide(path, resume, force, option)
        except BaseException:
            lock.release()
            raise
        folder.lock = lock
        return folder

    @classmethod
    def _decide(cls, path: Path, resume: bool, force: bool, option: str) -> RunFolder:
        checkpoint = path / CHECKPOINT
        marked = is_marked(path)
        present = [n for n in RUN_FILES if (path / n).exists() or (path / n).is_symlink()]
        if resume:
            if not checkpoint.is_file():
                instead = "start over with --force" if present else \
                    "start the run without --resume"
                raise IGCError(f"--resume: no checkpoint {checkpoint} to resume from; "
                               f"{instead}")
            return cls(path, resume=True, mark=False)
        if present and not force:
            again = ("continue it with --resume, start over with --force" if
                     checkpoint.is_file() else "start over with --force")
            raise IGCError(f"{path} already holds a run ({', '.join(present)}); {again}, "
                           f"or choose another {option}")
        if present and not marked:
            raise IGCError(f"--force: {path} holds {', '.join(present)} but no {MARKER} "
                           "marker, so igc did not make it and deletes nothing in it; "
                           f"remove those files yourself or choose another {option}")
        for name in present:
            target = path / name
            if target.is_dir() and not target.is_symlink():
                raise IGCError(f"--force: {target} is a folder, which igc never writes; "
                               f"remove it yourself or choose another {option}")
        return cls(path, remove=[path / n for n in present if n != CHECKPOINT])

    def begin(self) -> None:
        """Make the folder, mark it, remove the old run's files and stale temporary files.

        Once, before the first checkpoint is written."""
        if self.begun:
            return
        if self.lock is not None:
            self.lock.keep()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise IGCError(f"cannot make the run folder {self.path} "
                           f"({exc.strerror or exc}); choose another --out") from None
        if self.mark and not is_marked(self.path):
            atomic_write(self.path / MARKER, json.dumps(_MARK) + "\n", "run marker")
        for target in [*self.remove, *stale_temp_files(self.path, RUN_FILES)]:
            try:
                target.unlink(missing_ok=True)
            except OSError as exc:
                raise IGCError(f"cannot remove the old run file {target} "
                               f"({exc.strerror or exc}); nothing new was written") from None
        self.begun = True

    def release(self) -> None:
        """Release the folder's lock; safe to call twice.

        The folder is removed if the run never wrote into it."""
        if self.lock is not None:
            self.lock.release()


__all__ = ["CURVES", "MARKER", "RECIPE", "RUN_FILES", "RunFolder", "is_marked"]
