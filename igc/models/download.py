"""Weights files from URLs and disk: torch.hub's download and cache, hash checks, and the
one-file zip archives pytorchcv publishes.

``fetch(url)`` downloads (:func:`igc.files.fetch.copy_url`: size and time capped) into torch.hub's
cache (``$TORCH_HOME/hub/checkpoints``, the folder ``torch.hub.load_state_dict_from_url``
uses) and reuses a cached file on the next call. What is checked (:func:`expected_hashes`):

* ``hash="<hex>"``: the SHA-256 of the file starts with these 8 to 64 lowercase hex
  digits (a URL or a local file);
* ``hash=None`` (default), a URL whose file name carries torch.hub's hash prefix
  (``NAME-<8 or more hex digits>.EXT``, e.g. ``resnet18-f37072fd.pth``): its SHA-256
  starts with them, as ``load_state_dict_from_url(check_hash=True)`` checks;
* ``hash=None``, a URL or file named as pytorchcv names its releases
  (``NAME-EEEE-<8 hex digits>.pth[.zip]``, ``EEEE`` the error rate): the SHA-1 of the
  ``.pth`` (inside the zip) starts with those digits, pytorchcv's own check;
* ``hash=False``: nothing.

A cached file is checked again at every use; a mismatch is an :class:`IGCError` naming
the file to delete. :func:`read_payload` returns the bytes of a weights file, or of the one
file inside a one-member zip archive (torch.hub's "legacy zip" rule; ``torch.save``'s own
format is a zip of many members and is read as it is).
"""

from __future__ import annotations

import hashlib
import re
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from igc.errors import IGCError
from igc.files.atomic import atomic_writer
from igc.files.fetch import check_url, copy_url, new_folder
from igc.log import get_logger

_log = get_logger(__name__)

__all__ = ["MAX_WEIGHTS_BYTES", "Expected", "cache_dir", "check_hashes", "expected_hashes",
           "fetch", "read_payload"]

#: Largest weights file (or zip member) read: 4 GiB.
MAX_WEIGHTS_BYTES = 4 << 30
#: torch.hub's hash prefix in a file name (``torch.hub.HASH_REGEX``), at least 8 digits.
HUB_NAME = re.compile(r"-([0-9a-f]{8,64})\.")
#: pytorchcv's release names: ``igcv3_w1-0920-12385791.pth.zip`` (name, error, SHA-1).
PYTORCHCV_NAME = re.compile(r"^[a-z0-9_]+-\d{4}-(?P<sha1>[0-9a-f]{8})\.pth(?:\.zip)?$")


@dataclass(frozen=True)
class Expected:
    """One promised digest: ``algorithm`` (``"sha256"`` of the file, ``"sha1"`` of the
    payload), its hex ``prefix`` and where the promise comes from (``why``)."""

    algorithm: str
    prefix: str
    why: str


def check_hash_argument(hash: object) -> str | bool | None:
    """``hash=`` as given: ``None``, ``False`` or 8 to 64 lowercase hex digits."""
    if hash is None or hash is False:
        return hash
    if isinstance(hash, str) and re.fullmatch(r"[0-9a-f]{8,64}", hash):
        return hash
    raise IGCError(f"hash must be 8 to 64 lowercase hex digits of the file's SHA-256 "
                   f"(or False for no check), got {hash!r}")


def expected_hashes(name: str, hash: str | bool | None, url: bool) -> list[Expected]:
    """The digests a file called ``name`` must have (see the module docstring)."""
    if hash is False:
        return []
    if isinstance(hash, str):
        return [Expected("sha256", hash, "hash= argument")]
    pytorchcv = PYTORCHCV_NAME.match(name)
    if pytorchcv:
        return [Expected("sha1", pytorchcv["sha1"], "pytorchcv's file name")]
    hub = HUB_NAME.search(name) if url else None
    return [Expected("sha256", hub[1], "torch.hub's hash prefix in the file name")] if hub \
        else []


def _digest(algorithm: str, data: bytes) -> str:
    return hashlib.new(algorithm, data).hexdigest()


def check_hashes(path: Path, expected: list[Expected], fix: str) -> str:
    """Check ``path`` against ``expected``; returns its SHA-256. ``fix`` ends the error."""
    raw = _read_bytes(path)
    sha256 = _digest("sha256", raw)
    for want in expected:
        got = sha256 if want.algorithm == "sha256" else _digest(want.algorithm,
                                                                 _unzip(path, raw))
        if not got.startswith(want.prefix):
            label = {"sha256": "SHA-256", "sha1": "SHA-1"}[want.algorithm]
            raise IGCError(f"{path} fails its {label} check ({want.why}: {_short(want.prefix)}"
                           f", file: {_short(got[:len(want.prefix)])}); {fix}")
    return sha256


def _short(digest: str) -> str:
    return digest if len(digest) <= 16 else digest[:16] + "..."


def _read_bytes(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_WEIGHTS_BYTES:
            raise IGCError(f"{path} is {size:,} bytes, over the {MAX_WEIGHTS_BYTES:,} a "
                           "weights file may have")
        return path.read_bytes()
    except FileNotFoundError:
        raise IGCError(f"weights file {path} does not exist") from None
    except IsADirectoryError:
        raise IGCError(f"weights file {path} is a folder; give the file") from None
    except OSError as exc:
        raise IGCError(f"cannot read {path} ({exc.strerror or exc})") from None


def _unzip(path: Path, raw: bytes) -> bytes:
    """``raw``, or the one file of a one-member zip archive."""
    import io

    if not raw.startswith(b"PK"):
        return raw
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            members = archive.infolist()
            if len(members) != 1 or members[0].is_dir():
                return raw  # torch.save's own zip format
            if members[0].file_size > MAX_WEIGHTS_BYTES:
                raise IGCError(f"{path} holds a file of {members[0].file_size:,} bytes, over "
                               f"the {MAX_WEIGHTS_BYTES:,} a weights file may have")
            return archive.read(members[0])
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError):
        return raw  # a torn torch.save file; torch.load names it corrupt


def read_payload(path: Path) -> bytes:
    """The bytes ``torch.load`` reads for ``path``: the file, or the one file a one-member
    zip archive holds (pytorchcv's ``.pth.zip``)."""
    return _unzip(path, _read_bytes(path))


def cache_dir() -> Path:
    """torch.hub's weights cache: ``torch.hub.get_dir()/checkpoints``."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def _file_name(url: str) -> str:
    parts = check_url(url, "weights URL")
    name = Path(unquote(parts.path)).name
    if not name or name in (".", ".."):
        raise IGCError(f"URL {url} names no file; give the address of the weights file")
    return name


def fetch(url: str, hash: str | bool | None = None,
          progress: bool | None = None) -> tuple[Path, str]:
    """Download ``url`` into torch.hub's cache (or reuse the cached copy) and check it; returns
    ``(path, sha256)``. The address is checked first (:func:`igc.files.fetch.check_url`),
    the download is capped at :data:`MAX_WEIGHTS_BYTES` and an hour, and a file that fails
    its check is removed from the cache. ``progress``: say what is downloaded (default:
    when stderr is a terminal)."""
    hash = check_hash_argument(hash)
    name = _file_name(url)
    expected = expected_hashes(name, hash, url=True)
    folder = cache_dir()
    path = folder / name
    if path.is_file():
        try:
            return path, check_hashes(path, expected, "it is removed from the cache")
        except IGCError:  # a damaged cached copy: removed, and downloaded again
            path.unlink(missing_ok=True)
    if sys.stderr.isatty() if progress is None else progress:
        _log.warning(f"igc: downloading {url} to {path}")
    with new_folder(folder, "torch.hub's cache", "set TORCH_HOME to a writable folder"), \
            atomic_writer(path, "downloaded weights") as out:
        copy_url(url, out, MAX_WEIGHTS_BYTES)
    try:
        return path, check_hashes(path, expected, "the download is damaged; try again")
    except IGCError:
        path.unlink(missing_ok=True)
        raise
