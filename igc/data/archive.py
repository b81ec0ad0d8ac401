"""Read a data set's files the same way from its extracted folder, a tarball or a zip.

An official archive holds one top folder (``cifar-10-batches-py/``, ``tiny-imagenet-200/``).
:func:`dataset_tree` finds that folder extracted, or the archive, and returns a :class:`Tree`
whose names are POSIX paths relative to the folder (``data_batch_1``, ``wnids.txt``).
Tarballs are read once, in stream order, into memory (gzip cannot seek cheaply); zips are
read member by member. Files of an extracted folder with a known MD5 are checked on read.
"""

from __future__ import annotations

import hashlib
import tarfile
import zipfile
import zlib
from pathlib import Path

from igc.data.sources import SOURCES, locate, search_dirs
from igc.errors import IGCError

_BAD_ARCHIVE = (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError, zlib.error)


def _corrupt(path: Path | str, err: Exception) -> IGCError:
    return IGCError(f"corrupt archive {path} ({err}); delete it and download it again")


class Tree:
    """Read-only access to the files below a data set's top folder."""

    def __init__(self, label: str) -> None:
        self.label = label

    def names(self) -> list[str]:
        """All file paths, sorted."""
        raise NotImplementedError

    def exists(self, name: str) -> bool:
        """Whether file ``name`` exists."""
        raise NotImplementedError

    def read(self, name: str) -> bytes:
        """The bytes of file ``name``; :class:`IGCError` if it is missing or unreadable."""
        raise NotImplementedError

    def missing(self, name: str) -> IGCError:
        """The error for a file missing from this tree."""
        return IGCError(f"{self.label} has no {name}; pass the official, complete archive or "
                        "its extracted folder")


class DirTree(Tree):
    """Files below an extracted folder; those named in ``checksums`` are MD5-checked."""

    def __init__(self, root: Path, checksums: dict[str, str] | None = None) -> None:
        super().__init__(str(root))
        self.root = root
        self.checksums = checksums or {}

    def names(self) -> list[str]:
        return sorted(p.relative_to(self.root).as_posix() for p in self.root.rglob("*")
                      if p.is_file())

    def exists(self, name: str) -> bool:
        return (self.root / name).is_file()

    def read(self, name: str) -> bytes:
        path = self.root / name
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise self.missing(name) from None
        except OSError as err:
            raise IGCError(f"cannot read {path} ({err}); check the file") from err
        expected = self.checksums.get(name)
        actual = expected and hashlib.md5(data, usedforsecurity=False).hexdigest()
        if actual != expected:
            raise IGCError(f"checksum mismatch for {path}: md5 {actual}, expected {expected}; "
                           "replace it with the file from the official archive")
        return data


class TarTree(Tree):
    """Files of a (compressed) tarball below ``folder/``, held in memory."""

    def __init__(self, path: Path, folder: str) -> None:
        super().__init__(f"{path}:{folder}")
        prefix = folder + "/"
        self._files: dict[str, bytes] = {}
        try:
            with tarfile.open(path, "r:*") as tar:
                for member in tar:
                    name = member.name.removeprefix("./")
                    if member.isfile() and name.startswith(prefix):
                        f = tar.extractfile(member)
                        self._files[name[len(prefix):]] = f.read() if f else b""
        except _BAD_ARCHIVE as err:
            raise _corrupt(path, err) from err

    def names(self) -> list[str]:
        return sorted(self._files)

    def exists(self, name: str) -> bool:
        return name in self._files

    def read(self, name: str) -> bytes:
        if name not in self._files:
            raise self.missing(name)
        return self._files[name]


class ZipTree(Tree):
    """Files of a zip archive below ``folder/``, read on demand (thread-safe)."""

    def __init__(self, path: Path, folder: str) -> None:
        super().__init__(f"{path}:{folder}")
        self._path, self._prefix = path, folder + "/"
        try:
            self._zip = zipfile.ZipFile(path)
            names = self._zip.namelist()
        except _BAD_ARCHIVE as err:
            raise _corrupt(path, err) from err
        self._names = {n[len(self._prefix):] for n in names
                       if n.startswith(self._prefix) and not n.endswith("/")}

    def names(self) -> list[str]:
        return sorted(self._names)

    def exists(self, name: str) -> bool:
        return name in self._names

    def read(self, name: str) -> bytes:
        if name not in self._names:
            raise self.missing(name)
        try:
            return self._zip.read(self._prefix + name)
        except _BAD_ARCHIVE as err:
            raise _corrupt(self._path, err) from err


def dataset_tree(name: str, folder: str, marker: str, data_dir: str | Path | None,
                 download: bool) -> Tree:
    """The files of data set ``name`` whose archive has top folder ``folder``.

    In each search directory (see :mod:`igc.data.sources`) an extracted folder is
    recognised by its ``marker`` file, either as ``dir/folder`` or as the directory itself;
    otherwise the archive is located (or downloaded) and verified.
    """
    source = SOURCES[name]
    for directory in search_dirs(name, data_dir):
        for root in (directory / folder, directory):
            if (root / marker).is_file():
                return DirTree(root, source.members)
    (archive,) = locate(name, data_dir, download).values()
    return ZipTree(archive, folder) if zipfile.is_zipfile(archive) else TarTree(archive, folder)
