"""Where data set files come from: local search, checksums and downloads.

Each data set has a :class:`Source`: its files (:class:`Resource`, with official addresses
and MD5 checksums) and where a system package may have installed them. :func:`locate`
looks for every file in this order and verifies the first copy it finds:

1. system directories (Fashion-MNIST: the Debian package ``dataset-fashion-mnist``);
2. the cache ``$IGC_DATA/<name>`` (default ``~/.cache/igc/<name>``);
3. a download from the official addresses into the cache (temp file, checked, renamed).

A ``data_dir`` argument (``--data-dir``) replaces all three: the files are read from it and
from nowhere else (a folder that lacks them is an error, never a silent fall-back to
another copy). :func:`describe_origin` says which folder the files came from.

A ``.gz`` resource may also carry the MD5 of its decompressed payload (``raw_md5``): a
recompressed copy (the Debian package rebuilt the gzip headers) or an uncompressed copy
(``train-images-idx3-ubyte``) is accepted when its payload matches.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import urllib.error
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from igc.errors import IGCError
from igc.files.atomic import atomic_writer
from igc.files.fetch import copy_url, new_folder
from igc.log import get_logger

log = get_logger(__name__)

_CHUNK = 1 << 20
#: The largest data-set file downloaded (the official archives are at most 250 MB).
MAX_DATA_BYTES = 2 << 30


@dataclass(frozen=True)
class Resource:
    """One file of a data set: its name, official MD5, download addresses (tried in order)
    and, for ``.gz`` files, the MD5 of the decompressed payload."""

    filename: str
    md5: str
    urls: tuple[str, ...]
    raw_md5: str | None = None

    def local_names(self) -> tuple[str, ...]:
        """File names accepted on disk: the official one, then the uncompressed one."""
        if self.raw_md5 and self.filename.endswith(".gz"):
            return self.filename, self.filename[: -len(".gz")]
        return (self.filename,)


@dataclass(frozen=True)
class Source:
    """Where one data set's files live. ``members`` maps paths inside the archive's top
    folder to their MD5, checked when the archive is used already extracted."""

    name: str
    title: str
    resources: tuple[Resource, ...]
    hint: str = ""
    members: dict[str, str] = field(default_factory=dict)


def _idx_resources(urls: Sequence[str], files: Sequence[tuple[str, str, str]]) -> tuple:
    return tuple(Resource(f, md5, tuple(u + f for u in urls), raw) for f, md5, raw in files)


_FASHION_URLS = ("https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
                 "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/")
_MNIST_URLS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
_KRIZ = "https://www.cs.toronto.edu/~kriz/"

SOURCES: dict[str, Source] = {
    "fashion-mnist": Source(
        "fashion-mnist", "Fashion-MNIST",
        _idx_resources(_FASHION_URLS, [
            ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
             "f4a8712d7a061bf5bd6d2ca38dc4d50a"),
            ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe",
             "9018921c3c673c538a1fc5bad174d6f9"),
            ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79",
             "8181f5470baa50b63fa0f6fddb340f0a"),
            ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310",
             "15d484375f8d13e6eb1aabb0c3f46965"),
        ]),
        hint="install the Debian package dataset-fashion-mnist, "),
    "mnist": Source(
        "mnist", "MNIST",
        _idx_resources(_MNIST_URLS, [
            ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873",
             "6bbc9ace898e44ae57da46a324031adb"),
            ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432",
             "a25bea736e30d166cdddb491f175f624"),
            ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3",
             "2646ac647ad5339dbf082846283269ea"),
            ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c",
             "27ae3e4e09519cfbb04c329615203637"),
        ])),
    "cifar10": Source(
        "cifar10", "CIFAR-10",
        (Resource("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a",
                  (_KRIZ + "cifar-10-python.tar.gz",)),),
        members={
            "data_batch_1": "c99cafc152244af753f735de768cd75f",
            "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
            "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
            "data_batch_4": "634d18415352ddfa80567beed471001a",
            "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
            "test_batch": "40351d587109b95175f43aff81a1287e",
            "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
        }),
    "cifar100": Source(
        "cifar100", "CIFAR-100",
        (Resource("cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85",
                  (_KRIZ + "cifar-100-python.tar.gz",)),),
        members={
            "train": "16019d7e3df5f24257cddd939b257f8d",
            "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
            "meta": "7973b15100ade9c7d40fb424638fde48",
        }),
    "tiny-imagenet": Source(
        "tiny-imagenet", "Tiny ImageNet",
        (Resource("tiny-imagenet-200.zip", "90528d7ca1a48142e341f4ef8d21d0de",
                  ("http://cs231n.stanford.edu/tiny-imagenet-200.zip",)),)),
}

# Directories where system packages install data sets, searched after ``data_dir``.
SYSTEM_DIRS: dict[str, tuple[Path, ...]] = {
    "fashion-mnist": (Path("/usr/share/datasets/fashion-mnist"),),
}


def cache_dir(name: str) -> Path:
    """The download cache of data set ``name``: ``$IGC_DATA/<name>``, default
    ``~/.cache/igc/<name>``."""
    root = os.environ.get("IGC_DATA") or Path.home() / ".cache" / "igc"
    return Path(root).expanduser() / name


def search_dirs(name: str, data_dir: str | Path | None) -> list[Path]:
    """The directories searched for ``name``'s files, in order (see the module docstring):
    ``data_dir`` alone when given."""
    if data_dir is not None:
        return [Path(data_dir).expanduser()]
    return [*SYSTEM_DIRS.get(name, ()), cache_dir(name)]


def describe_origin(paths: Sequence[Path]) -> str:
    """The folder (or folders) the files ``paths`` were read from, for messages."""
    folders = sorted({str(Path(p).parent) for p in paths})
    return folders[0] if len(folders) == 1 else ", ".join(folders)


def md5_file(path: Path) -> str:
    """The hex MD5 of a file's bytes."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _md5_payload(path: Path) -> str | None:
    """The MD5 of a file's decompressed payload (the bytes themselves if not gzip), or None
    when the gzip stream is corrupt."""
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    if not gzipped:
        return md5_file(path)
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with gzip.open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
    except (OSError, EOFError, zlib.error):
        return None
    return digest.hexdigest()


def verify(path: Path, resource: Resource) -> None:
    """Check a local copy of ``resource`` (official file, recompressed or uncompressed)."""
    actual = md5_file(path)
    if actual == resource.md5:
        return
    payload = _md5_payload(path) if resource.raw_md5 else None
    if resource.raw_md5 and payload == resource.raw_md5:
        return
    other = _known_file(actual, payload)
    if other is not None:
        source, name = other
        raise IGCError(f"{path} is {source.title}'s {name} (by its checksum), not the file of the "
                       f"data set asked for; choose --data {source.name}, or a --data-dir "
                       "holding the right files (nothing was changed)")
    raise IGCError(
        f"checksum mismatch for {path}: md5 {actual}, expected {resource.md5}; delete it so it is "
        f"downloaded again, or replace it with the official file from {resource.urls[0]}")


def _known_file(md5: str | None, payload_md5: str | None) -> tuple[Source, str] | None:
    """The data set and file name whose official checksum is ``md5`` (or whose content's
    is ``payload_md5``), if any: a valid file of another data set."""
    for source in SOURCES.values():
        for other in source.resources:
            if (md5 is not None and md5 in (other.md5, other.raw_md5)) or \
                    (payload_md5 is not None and payload_md5 == other.raw_md5):
                return source, other.filename
    return None


def _fetch(url: str, out: BinaryIO) -> None:
    """Download ``url`` into the open binary file ``out``, at most :data:`MAX_DATA_BYTES`
    (:func:`igc.files.fetch.copy_url`; replaced in tests; never called offline)."""
    copy_url(url, out, MAX_DATA_BYTES)


def download(source: Source, resource: Resource) -> Path:
    """Download ``resource`` into the cache, trying each address; the file appears under
    its name only once complete and verified (:func:`igc.files.atomic.atomic_writer`)."""
    target_dir = cache_dir(source.name)
    dest = target_dir / resource.filename
    problems = []

    def verify(tmp: Path) -> None:
        actual = md5_file(tmp)
        if actual != resource.md5:
            raise ValueError(f"gave md5 {actual}, expected {resource.md5}")

    with new_folder(target_dir, "the data folder",  # removed again if nothing arrives
                    "set IGC_DATA to a writable folder or pass --data-dir DIR"):
        for url in resource.urls:
            log.info("igc: downloading %s to %s", url, dest)
            try:
                with atomic_writer(dest, "download", verify) as out:
                    _fetch(url, out)
                return dest
            except (urllib.error.URLError, OSError, ValueError, IGCError) as err:
                problems.append(f"{url}: {err}")
        raise IGCError(
            f"could not download {source.title} file {resource.filename} "
            f"({'; '.join(problems)}); download it by hand into {target_dir}, "
            f"{source.hint}or pass --data-dir DIR holding it")


def locate(name: str, data_dir: str | Path | None = None, download_ok: bool = True,
           only: Sequence[str] | None = None) -> dict[str, Path]:
    """Find (or download) and verify the files of data set ``name``.

    Returns ``{official filename: local path}`` for every resource (or those in ``only``).
    Raises :class:`IGCError` on a checksum mismatch, or when a file is missing and
    ``download_ok`` is false or the download fails.
    """
    source = SOURCES[name]
    dirs = search_dirs(name, data_dir)
    found: dict[str, Path] = {}
    for resource in source.resources:
        if only is not None and resource.filename not in only:
            continue
        path = next((d / n for d in dirs for n in resource.local_names() if (d / n).is_file()),
                    None)
        if path is not None:
            verify(path, resource)
        elif data_dir is not None:
            others = ", ".join(map(str, search_dirs(name, None)))
            raise IGCError(
                f"{source.title} file {resource.filename} is not in --data-dir {dirs[0]}, "
                f"the only folder read when it is given; download {resource.urls[0]} into "
                f"it, or drop --data-dir to use {others} ({source.hint}or the download)")
        elif download_ok:
            path = download(source, resource)
        else:
            raise IGCError(
                f"{source.title} file {resource.filename} not found in "
                f"{', '.join(map(str, dirs))}; {source.hint}download {resource.urls[0]} into "
                f"{cache_dir(name)}, pass --data-dir DIR holding it, or allow the download")
        found[resource.filename] = path
    return found
