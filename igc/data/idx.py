"""The IDX file format of MNIST and Fashion-MNIST (gzip-compressed or raw).

Layout: two zero bytes, a type code, the number of dimensions ``ndim``, then ``ndim``
big-endian uint32 sizes, then the values in big-endian C order.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from igc.data.base import TensorImageDataset
from igc.errors import IGCError

# IDX type code -> big-endian numpy dtype
_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as err:
        raise IGCError(f"corrupt gzip file {path} ({err}); delete it and download it "
                       "again") from err


def read_idx(path: str | Path) -> torch.Tensor:
    """Parse an IDX file (``.gz`` or raw) into a tensor of its stored shape.

    uint8 data gives a ``torch.uint8`` tensor; other types their native torch dtype.
    Raises :class:`IGCError` naming the file when it is not IDX, truncated or too long.
    """
    path = Path(path)
    data = _read_bytes(path)
    fix = "delete it and download it again"
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in _DTYPES:
        raise IGCError(f"{path} is not an IDX file (bad magic number); {fix}")
    dtype, ndim = np.dtype(_DTYPES[data[2]]), data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IGCError(f"{path} is truncated (incomplete IDX header); {fix}")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = math.prod(dims) * dtype.itemsize
    actual = len(data) - header
    if actual != expected:
        state = "truncated" if actual < expected else "too long"
        raise IGCError(f"{path} is {state}: {actual} data bytes for shape {dims}, expected "
                       f"{expected}; {fix}")
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return torch.from_numpy(array.astype(dtype.newbyteorder("="), copy=True))


def read_idx_split(images_path: str | Path, labels_path: str | Path) -> TensorImageDataset:
    """Load an images file ``(N, H, W)`` uint8 and a labels file ``(N,)`` as a split with
    images ``(N, 1, H, W)`` uint8 and labels ``(N,)`` int64."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dim() != 3 or images.dtype != torch.uint8:
        raise IGCError(f"{images_path} holds {images.dtype} of shape {tuple(images.shape)}, not "
                       "uint8 images (N, H, W); pass the images file of the data set")
    if labels.dim() != 1:
        raise IGCError(f"{labels_path} holds shape {tuple(labels.shape)}, not labels (N,); "
                       "pass the labels file of the data set")
    if labels.shape[0] != images.shape[0]:
        raise IGCError(f"{labels_path} has {labels.shape[0]} labels but {images_path} has "
                       f"{images.shape[0]} images; replace the mismatched file")
    return TensorImageDataset(images.unsqueeze(1), labels.to(torch.int64))
