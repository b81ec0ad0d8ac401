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
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from igc.checks import check_writable_dir
from igc.errors import IGCError
from igc.files.atomic import atomic_write, stale_temp_files
from igc.files.checkpoint import CHECKPOINT
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

    @classmethod
    def open(cls, path: str | Path, *, resume: bool = False, force: bool = False,
             option: str = "--out") -> RunFolder:
        """Decide whether a run may use ``path``; IGCError (one line) if not."""
        path = check_writable_dir(path, option)
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


__all__ = ["CURVES", "MARKER", "RECIPE", "RUN_FILES", "RunFolder", "is_marked"]
