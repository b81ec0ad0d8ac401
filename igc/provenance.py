"""Where a result was made: the machine (CPU model, cores, device, torch version) and the
git commit of the code, recorded with every run (`igc train`'s run.json, `igc reproduce`'s
result.json) and in the reproduction document."""

from __future__ import annotations

import hashlib
import os
import platform
import re
import struct
from functools import cache
from pathlib import Path
from typing import Any


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else :func:`platform.processor`)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def usable_cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def machine(device: str = "cpu", threads: int | None = None) -> dict[str, Any]:
    """A record of this machine for a run on ``device`` (``cpu`` / ``cuda:N``)."""
    import torch

    record: dict[str, Any] = {"cpu": cpu_model(), "cores": os.cpu_count() or 1,
                              "usable_cores": usable_cores(), "device": str(device),
                              "torch": torch.__version__,
                              "python": platform.python_version(),
                              "system": f"{platform.system()} {platform.machine()}"}
    if str(device).startswith("cuda") and torch.cuda.is_available():
        record["gpu"] = torch.cuda.get_device_name(torch.device(device))
    if threads is not None:
        record["threads"] = threads
    return record


def describe(record: dict[str, Any]) -> str:
    """One line for a machine record: 'AMD EPYC ... (2 cores), cpu, torch 2.13.0'."""
    device = record.get("gpu") or record.get("device", "?")
    return (f"{record.get('cpu', '?')} ({record.get('cores', '?')} cores), {device}, "
            f"torch {record.get('torch', '?')}")


@cache
def git_commit() -> str | None:
    """The commit of the checkout this package runs from, ``+dirty`` when a tracked file
    differs from the index; None outside a git checkout (an installed package).

    Read from the checkout's own ``.git`` files (:func:`read_head`, :func:`index_dirty`):
    no ``git`` process runs, so nothing (an ``index.lock``) is ever written into the
    user's repository."""
    root = Path(__file__).resolve().parents[1]
    gitdir = git_dir(root)
    if gitdir is None:
        return None
    commit = read_head(gitdir)
    if commit is None:
        return None
    return commit + ("+dirty" if index_dirty(root, gitdir) else "")


_HASH = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


def _read(path: Path, limit: int = 1 << 16) -> str | None:
    try:
        with open(path, "rb") as handle:
            return handle.read(limit).decode("utf-8", "replace")
    except OSError:
        return None


def git_dir(root: Path) -> Path | None:
    """The git directory of the checkout ``root``: ``root/.git``, or where a worktree's
    ``.git`` file points (``gitdir: PATH``); None when there is none."""
    dot = root / ".git"
    if dot.is_dir():
        return dot
    text = _read(dot) if dot.is_file() else None
    if text and text.startswith("gitdir:"):
        target = Path(text[len("gitdir:"):].strip())
        target = target if target.is_absolute() else root / target
        return target if target.is_dir() else None
    return None


def read_head(gitdir: Path) -> str | None:
    """The commit ``HEAD`` names in ``gitdir`` (a detached hash, or a branch found in
    ``refs/`` or ``packed-refs`` of the common directory); None when unreadable."""
    common = gitdir
    pointer = _read(gitdir / "commondir")
    if pointer and pointer.strip():
        common = (gitdir / pointer.strip()).resolve()
    head = (_read(gitdir / "HEAD") or "").strip()
    for _ in range(5):  # a symbolic ref may point to another one
        if _HASH.match(head):
            return head
        if not head.startswith("ref:"):
            return None
        ref = head[4:].strip()
        if ".." in ref.split("/") or not ref.startswith("refs/"):
            return None
        found = next((t.strip() for t in (_read(d / ref) for d in (gitdir, common)) if t),
                     None)
        if found is None:
            packed = _read(common / "packed-refs", 1 << 24) or ""
            found = next((line.split()[0] for line in packed.splitlines()
                          if line.endswith(" " + ref) and not line.startswith(("#", "^"))),
                         None)
        if found is None:
            return None
        head = found
    return None


def index_dirty(root: Path, gitdir: Path) -> bool:
    """Whether a tracked file under ``root`` differs from the git index (``git status
    --untracked-files=no`` for unstaged changes: size and mtime first, the file's blob hash
    when those differ). Index versions 2 and 3 are read; another version, or an unreadable
    index, counts as clean."""
    try:
        data = (gitdir / "index").read_bytes()
    except OSError:
        return False
    if len(data) < 12 or data[:4] != b"DIRC":
        return False
    version, count = struct.unpack(">II", data[4:12])
    if version not in (2, 3):
        return False
    offset = 12
    for _ in range(count):
        if offset + 62 > len(data):
            return False
        fields = struct.unpack(">10I20sH", data[offset:offset + 62])
        mtime, size, sha, flags = fields[2], fields[9], fields[10], fields[11]
        extra = 2 if version == 3 and flags & 0x4000 else 0
        start = offset + 62 + extra
        end = data.find(b"\0", start)
        if end < 0:
            return False
        name = data[start:end].decode("utf-8", "replace")
        offset += ((62 + extra + end - start) // 8 + 1) * 8  # NUL-padded to 8 bytes
        if _changed(root / name, mtime, size, sha):
            return True
    return False


def _changed(path: Path, mtime: int, size: int, sha: bytes) -> bool:
    try:
        info = path.lstat()
    except OSError:
        return True  # a tracked file removed
    if info.st_size == size and int(info.st_mtime) == mtime:
        return False
    try:
        content = os.readlink(path).encode() if path.is_symlink() else path.read_bytes()
    except OSError:
        return True
    blob = hashlib.sha1(b"blob %d\0" % len(content) + content).digest()
    return blob != sha
