"""Micro-batches: a large batch run through a network a few images at a time, so that each
layer's input and output stay in the last-level cache for the next layer.

Why: at batch 32 the first stages of IGCV2-1.0 hold 12 MiB of activations per image
(a 112x112x128 map in and out of one convolution), so a whole batch streams every layer
through main memory; split into pieces that fit the cache, the same work runs faster
(measured in docs/deployment.md). The size of a piece is chosen from
the network's largest activation of one image and the cache (:func:`choose`); outputs do
not depend on it (every layer of an inference form treats images independently).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from igc.deploy.inputs import run_hooked

#: Assumed last-level cache when the machine does not say (bytes).
DEFAULT_CACHE = 8 << 20
#: The largest piece chosen (larger batches are split into pieces of at most this many).
MAX_PIECE = 256


def cache_bytes(root: Path = Path("/sys/devices/system/cpu/cpu0/cache")) -> int:
    """The size of the CPU's last-level cache in bytes (Linux sysfs), or
    :data:`DEFAULT_CACHE` where it cannot be read."""
    best = 0
    try:
        for index in root.glob("index*"):
            text = (index / "size").read_text().strip().upper()
            scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
            digits = text.rstrip("KMG")
            if digits.isdigit():
                best = max(best, int(digits) * scale)
    except OSError:
        return DEFAULT_CACHE
    return best if 0 < best < (1 << 34) else DEFAULT_CACHE


def peak_activation_bytes(net: nn.Module, example: torch.Tensor,
                          opaque: tuple[type[nn.Module], ...] = ()) -> int:
    """The largest ``input + output`` bytes of one module of ``net`` (any module that runs:
    a layer, or a fused block whose insides never reach memory) on ``example`` (one image,
    shape ``(1, C, H, W)``): what one layer streams per image. Modules of the ``opaque``
    types count as one layer (the modules inside them are not looked at)."""
    peak = 0

    def record(module: nn.Module, args: tuple, out: object) -> None:
        nonlocal peak
        tensors = [t for t in (*args, out) if isinstance(t, torch.Tensor)]
        peak = max(peak, sum(t.numel() * t.element_size() for t in tensors))

    inside = {id(m) for o in net.modules() if isinstance(o, opaque)
              for m in o.modules() if m is not o}
    run_hooked(net, example, [m.register_forward_hook(record) for m in net.modules()
                              if id(m) not in inside])
    return peak


def choose(peak_bytes: int, cache: int | None = None) -> int:
    """Images per piece: as many as keep one layer's input and output of all of them in
    the cache (at least 1, at most :data:`MAX_PIECE`)."""
    cache = cache_bytes() if cache is None else cache
    if peak_bytes <= 0:
        return MAX_PIECE
    return max(1, min(MAX_PIECE, cache // peak_bytes))


def piece_for_threads(piece: int, threads: int) -> int:
    """``piece`` rounded down to a multiple of ``threads`` (at least ``threads``): the
    fused kernel gives each thread whole images, so a piece of 3 on 2 threads would leave
    one thread idle a third of the time."""
    threads = max(1, threads)
    return max(threads, piece - piece % threads)


def run_in_pieces(module: nn.Module, x: torch.Tensor, piece: int) -> torch.Tensor:
    """``module(x)`` computed about ``piece`` images at a time along dimension 0
    (:func:`piece_for_threads` of torch's thread count; the whole batch at once when it is
    no larger, or while ``torch.compile``/``torch.export`` or the ONNX exporter traces the
    model: they see one call)."""
    if (torch.compiler.is_compiling() or torch.compiler.is_exporting()
            or torch.jit.is_tracing() or torch.jit.is_scripting() or x.dim() == 0):
        return module(x)
    piece = piece_for_threads(piece, torch.get_num_threads())
    if x.shape[0] <= piece:
        return module(x)
    return torch.cat([module(part) for part in x.split(piece)])


__all__ = ["DEFAULT_CACHE", "MAX_PIECE", "cache_bytes", "choose", "peak_activation_bytes",
           "piece_for_threads", "run_in_pieces"]
