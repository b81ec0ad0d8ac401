"""TOML files igc reads and writes (recipes): ``tomllib`` to read, ``tomli_w`` to write.

:func:`read_toml` limits the size, decodes UTF-8 and turns every parse error into one
:class:`~igc.errors.IGCError` line; :func:`write_toml` writes atomically. The values are
checked by whoever owns the keys (:func:`igc.train.recipe.from_mapping` for recipes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tomli_w

from igc.errors import IGCError
from igc.files.atomic import atomic_write
from igc.formatting import first_line

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

#: The largest TOML file read.
MAX_TOML_BYTES = 1 << 20


def parse_toml(text: str, origin: str) -> dict[str, Any]:
    """The table of TOML ``text``; IGCError naming ``origin`` when it does not parse."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise IGCError(f"{origin} is not valid TOML ({first_line(exc, 100)}); fix the "
                       "file") from None


def toml_value(text: str) -> Any:
    """The TOML value ``text`` (``0.1``, ``true``, ``[1, 2]``, ``"a b"``).

    ValueError when ``text`` is not one.
    """
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        raise ValueError(f"not a TOML value: {text[:40]!r}") from None


def read_toml(path: str | Path, what: str = "file") -> dict[str, Any]:
    """The table of the TOML file ``path`` (at most :data:`MAX_TOML_BYTES`)."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_TOML_BYTES:
            raise IGCError(f"{what} {path} is over {MAX_TOML_BYTES >> 20} MiB; it is not a "
                           f"{what} igc can read")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise IGCError(f"{what} {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise IGCError(f"cannot read {what} {path} ({first_line(exc, 80)})") from None
    return parse_toml(text, f"{what} {path}")


def dumps_toml(data: dict[str, Any], header: str = "") -> str:
    """``data`` as TOML text (``header``: comment lines put first)."""
    lines = "".join(f"# {line}\n" for line in header.splitlines())
    return lines + ("\n" if lines else "") + tomli_w.dumps(data)


def write_toml(path: str | Path, data: dict[str, Any], header: str = "",
               what: str = "file") -> Path:
    """Write ``data`` as TOML to ``path`` atomically."""
    return atomic_write(path, dumps_toml(data, header), what)


__all__ = ["dumps_toml", "parse_toml", "read_toml", "tomllib", "write_toml"]
