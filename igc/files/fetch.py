"""Downloads with limits: URLs parsed before any request, sizes and times capped.

:func:`check_url` parses an address with :mod:`urllib.parse` and accepts only the schemes
igc downloads from (``http``, ``https``, ``file``), a host for the network ones, a numeric
port, and no spaces or control characters; everything else is one line of
:class:`~igc.errors.IGCError` before a connection is tried.

:func:`copy_url` streams an address into an open file and stops with IGCError once it has
read more than ``max_bytes`` (the expected size when known, a stated maximum otherwise) or
run longer than ``timeout_s`` seconds in all, so ``file:///dev/zero`` or a server that
never ends cannot fill the disk or hang. A ``file://`` address must name a regular file
(a FIFO would block the open).
"""

from __future__ import annotations

import http.client
import os
import stat
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO, TypeVar
from urllib.parse import SplitResult, unquote, urlsplit

from igc.errors import IGCError
from igc.formatting import shorten

#: The schemes igc downloads from.
SCHEMES = ("http", "https", "file")
#: Seconds one download may take in all, and one network read may wait.
DOWNLOAD_TIMEOUT_S = 3600.0
READ_TIMEOUT_S = 60.0
_CHUNK = 1 << 20
T = TypeVar("T")


def _show(url: str) -> str:
    return shorten(repr(url), 100)


def check_url(url: object, what: str = "URL") -> SplitResult:
    """``url`` parsed, if igc may download from it; IGCError (one line) otherwise."""
    if not isinstance(url, str) or not url.strip():
        raise IGCError(f"{what} must be an address, got {shorten(repr(url), 60)}")
    if len(url) > 8192 or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise IGCError(f"{what} {_show(url)} holds spaces or control characters (or is over "
                       "8192 characters); write a space as %20")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a port that is not a number)
    except ValueError as exc:
        raise IGCError(f"{what} {_show(url)} is not a valid address ({exc})") from None
    if parts.scheme.lower() not in SCHEMES:
        raise IGCError(f"{what} {_show(url)}: use an http(s):// or file:// URL, or a "
                       "file path")
    if parts.scheme.lower() != "file" and not parts.hostname:
        raise IGCError(f"{what} {_show(url)} names no host")
    if parts.scheme.lower() == "file" and parts.netloc not in ("", "localhost"):
        raise IGCError(f"{what} {_show(url)}: a file:// address names a local file "
                       "(file:///path)")
    return parts


@contextmanager
def new_folder(folder: Path, what: str, fix: str) -> Iterator[Path]:
    """Make ``folder`` (and missing parents) for the block.

    If the block fails, the folders made here are removed again when still empty (a failed
    download leaves no empty folder). IGCError naming ``what`` and ``fix`` when it cannot
    be made."""
    missing = []
    probe = folder.absolute()
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise IGCError(f"cannot make {what} {folder} ({exc.strerror or exc}); {fix}") from None
    try:
        yield folder
    except BaseException:
        for made in missing:
            with suppress(OSError):
                made.rmdir()
        raise


def _check_local(parts: SplitResult, url: str) -> None:
    path = unquote(parts.path)
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise IGCError(f"cannot download {_show(url)} ({exc.strerror or exc})") from None
    if not stat.S_ISREG(mode):
        raise IGCError(f"{_show(url)} is not a regular file (a device, FIFO or folder); give "
                       "the address of a file")


def _network(url: str, call: Callable[[], T]) -> T:
    """``call()``; its network errors as one IGCError naming ``url`` and the reason."""
    try:
        return call()
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
        raise IGCError(f"cannot download {_show(url)} ({shorten(str(reason), 200)}); check "
                       "the address and the network") from None


def copy_url(url: str, out: BinaryIO, max_bytes: int,
             timeout_s: float = DOWNLOAD_TIMEOUT_S) -> int:
    """Stream ``url`` into ``out``; returns the bytes written.

    IGCError when the address is refused (:func:`check_url`), cannot be reached or read
    (naming the network's reason, not the disk), the answer is (or announces) more than
    ``max_bytes``, or the whole download takes longer than ``timeout_s``. Errors writing
    ``out`` stay OSError (the caller's disk)."""
    parts = check_url(url)
    if parts.scheme.lower() == "file":
        _check_local(parts, url)
    start = time.monotonic()
    with _network(url, lambda: urllib.request.urlopen(
            url, timeout=min(READ_TIMEOUT_S, timeout_s))) as response:
        announced = response.headers.get("Content-Length")
        if announced is not None and announced.strip().isdigit() \
                and int(announced) > max_bytes:
            raise IGCError(f"{_show(url)} is {int(announced):,} bytes, over the "
                           f"{max_bytes:,} expected; check the address")
        total = 0
        while chunk := _network(url, lambda: response.read(_CHUNK)):
            total += len(chunk)
            if total > max_bytes:
                raise IGCError(f"{_show(url)} sent more than the {max_bytes:,} bytes "
                               "expected; stopped (check the address)")
            if time.monotonic() - start > timeout_s:
                raise IGCError(f"downloading {_show(url)} took over {timeout_s:,.0f} s; "
                               "stopped (check the network, or download the file and pass "
                               "its path)")
            out.write(chunk)
    return total


__all__ = ["DOWNLOAD_TIMEOUT_S", "READ_TIMEOUT_S", "SCHEMES", "check_url", "copy_url",
           "new_folder"]
