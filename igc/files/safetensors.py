"""``.safetensors`` files: tensors without pickle, and igc's metadata in the header.

The format (https://huggingface.co/docs/safetensors) is an 8-byte little-endian header
length, a JSON header (each tensor's dtype, shape and byte range, and a ``__metadata__``
table of strings) and the raw tensor bytes. igc writes its metadata as one JSON string
under ``__metadata__["igc"]``::

    {"format": "igc-weights", "version": 1, "model": "igcv2_fmnist", "model_args": {},
     "num_classes": 10, "in_chans": 1, "data": "fashion-mnist", "image_size": 28,
     "classes": [...], "mean": [0.286], "std": [0.353], "card": {...}}

the fields of :class:`igc.files.checkpoint.WeightsHeader`, checked as a checkpoint's are
(a file without the ``igc`` entry, such as timm's ``model.safetensors``, is a plain state
dict). Reading parses and checks the header before any tensor is built.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import torch

from igc.errors import IGCError
from igc.files.atomic import atomic_write
from igc.files.checkpoint import HEADER_FIELDS, check_header
from igc.formatting import first_line

__all__ = ["HEADER_FORMAT", "HEADER_KEY", "is_safetensors", "read_safetensors",
           "safetensors_bytes", "write_safetensors"]

#: The ``__metadata__`` entry that holds igc's header.
HEADER_KEY = "igc"
HEADER_FORMAT = "igc-weights"
HEADER_VERSION = 1
#: The largest JSON header read (safetensors' own limit is 100 MB).
MAX_HEADER_BYTES = 100 << 20


def _header_length(payload: bytes) -> int | None:
    if len(payload) < 10:
        return None
    (length,) = struct.unpack("<Q", payload[:8])
    if length < 2 or length > min(MAX_HEADER_BYTES, len(payload) - 8):
        return None
    return length if payload[8:9] == b"{" else None


def is_safetensors(payload: bytes) -> bool:
    """Whether ``payload`` starts as a safetensors file does (a length, then ``{``)."""
    return _header_length(payload) is not None


def _fix(path: Path | str) -> str:
    return f"{path} is damaged or was not written by igc; fetch it again"


def read_safetensors(payload: bytes, path: Path | str
                     ) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """Read a safetensors file: its tensors and its checked metadata.

    ``(state dict, igc header or None)`` of the safetensors bytes ``payload`` read from
    ``path``; IGCError (one line) for a malformed file or header."""
    length = _header_length(payload)
    if length is None:
        raise IGCError(f"{path} is not a safetensors file; {_fix(path)}")
    try:
        header = json.loads(payload[8:8 + length])
    except (ValueError, UnicodeDecodeError) as exc:
        raise IGCError(f"{path}: the safetensors header is not JSON ({first_line(exc, 80)}); "
                       f"{_fix(path)}") from None
    if not isinstance(header, dict):
        raise IGCError(f"{path}: the safetensors header is not a table; {_fix(path)}")
    meta = header.get("__metadata__") or {}
    ours = _igc_header(meta, path) if isinstance(meta, dict) and HEADER_KEY in meta else None
    if not isinstance(meta, dict):
        raise IGCError(f"{path}: the safetensors __metadata__ is not a table; {_fix(path)}")
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        tensors = load(payload)
    except (SafetensorError, ValueError, RuntimeError, TypeError) as exc:
        raise IGCError(f"{path} is a corrupt safetensors file ({first_line(exc, 100)}); "
                       f"{_fix(path)}") from None
    return tensors, ours


def _igc_header(meta: dict, path: Path | str) -> dict[str, Any]:
    where = f"{path}: safetensors header {HEADER_KEY!r}"
    try:
        ours = json.loads(meta[HEADER_KEY])
    except (TypeError, ValueError) as exc:
        raise IGCError(f"{where} is not JSON ({first_line(exc, 80)}); {_fix(path)}") from None
    if not isinstance(ours, dict) or ours.get("format") != HEADER_FORMAT:
        raise IGCError(f"{where} lacks format = {HEADER_FORMAT!r}; {_fix(path)}")
    version = ours.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise IGCError(f"{where} has a bad version {version!r}; {_fix(path)}")
    if version > HEADER_VERSION:
        raise IGCError(f"{where} has version {version}; this igc reads up to "
                       f"{HEADER_VERSION}: upgrade igc")
    return check_header(ours, HEADER_FIELDS, where, _fix(path))


def safetensors_bytes(state_dict: dict[str, torch.Tensor], header: dict[str, Any] | None
                      ) -> bytes:
    """Serialise tensors and metadata in the safetensors format.

    The safetensors file of ``state_dict`` (copied to dense CPU tensors) with igc's
    ``header`` (the fields of :class:`~igc.files.checkpoint.WeightsHeader`; ``None``: a
    plain state dict, as timm's ``model.safetensors``)."""
    from safetensors.torch import save

    meta = {"format": "pt"}
    if header is not None:
        table = {"format": HEADER_FORMAT, "version": HEADER_VERSION, **header}
        check_header(table, HEADER_FIELDS, "the weights header", "give the model's fields")
        meta[HEADER_KEY] = json.dumps(table, sort_keys=True)
    tensors = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in state_dict.items()}
    return save(tensors, metadata=meta)


def write_safetensors(path: str | Path, state_dict: dict[str, torch.Tensor],
                      header: dict[str, Any] | None) -> Path:
    """Write :func:`safetensors_bytes` to ``path`` atomically."""
    atomic_write(Path(path), safetensors_bytes(state_dict, header))
    return Path(path)
