"""What a fused block hands the next one, for the fused forms of :func:`igc.deploy.optimize`:
its trailing channel permutation (:func:`hand_over_permutations`) and a padded map
(:func:`pad_maps`).

An IGCV2 block ends with the interleave of its last factor's 8 branches: its fused kernel
writes the factor's outputs to a scratch row and gathers them into the output in the
interleaved order (register transposes), a pass over every output pixel that cost
IGCV2-1.0 about 4 % of a forward at batch 1. When the next block starts with a depthwise
convolution and nothing else reads the output in between, the permutation commutes with
that convolution: block ``A`` writes its last factor's outputs as they come (``a``, where
the block's output was ``y[c] = a[t[c]]``), and block ``B`` reads them through the
permutation instead: its depthwise weights and bias per channel ``m`` become those of
channel ``t^-1[m]``, and its first 1x1 factor's input index ``i`` becomes ``t[i]``. The
network's output is the same; the map between ``A`` and ``B`` is the permuted one.

Only full networks (:class:`~igc.models.net.IGCNet`) are rewritten, between consecutive
blocks of its stages (across stage boundaries too) that both run fused, where ``A`` has a
trailing permutation and no identity skip, and ``B`` has no 1x1 segment before its
spatial convolution, a depthwise one, and no identity skip (it would add the permuted
map). The last block keeps its permutation, so :meth:`forward_features` and the head see
the model's own channel order; a forward hook on an inner block of the optimized form
sees its output in the kernel's order. The PyTorch forms kept as fallbacks are left as
they are: they run for every block at once (under export, tracing, or without the
kernel), and there each block still permutes its own output.

A map between two consecutive fused blocks whose width is a multiple of 256 channels
(1 KiB) is written with 16 floats more between its pixels (the config's output pixel
stride; the tensor is a view of a wider channels-last one, read as any strided tensor by
PyTorch). The next kernel reads it in place; without the padding the pixels of a register
block of its depthwise pass (8-10 pixels in each of 3 rows, 1-4 KiB apart) share a few L1
sets, and were read from L2 (IGCV2-1.0 at batch 1, one thread: the depthwise passes took
2.5 ms of 15.2).
"""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import nn

from igc.deploy.chain.fused import FusedChain
from igc.layers.blocks import IGCBlock
from igc.models.net import IGCNet

#: Positions in :attr:`FusedChain.config` (see :mod:`igc.deploy.chain.fused`).
_C_OUT, _KG, _RESIDUAL, _N_PRE, _PRE_TAIL, _POST_TAIL, _OUT_PIXEL = 2, 6, 8, 10, 11, 13, 14
#: Floats added between the pixels of a map of a multiple of PAD_EVERY channels.
PAD, PAD_EVERY = 16, 256


def _fused_body(module: nn.Module) -> FusedChain | None:
    """The :class:`FusedChain` a block runs as, when it is one without a separate skip."""
    if isinstance(module, IGCBlock) and not module.skip and isinstance(module.body, FusedChain):
        return module.body
    return None


def _gives(chain: FusedChain) -> bool:
    config = chain.config
    return bool(config[_POST_TAIL]) and not config[_RESIDUAL]


def _takes(chain: FusedChain) -> bool:
    config = chain.config
    return config[_N_PRE] == 0 and config[_KG] == 1 and not config[_RESIDUAL]


def hand_over(giver: FusedChain, taker: FusedChain) -> None:
    """Move ``giver``'s trailing permutation into ``taker`` (see the module docstring):
    ``giver`` writes its last factor's outputs unpermuted, ``taker`` reads them through
    the permutation."""
    params = giver.params()
    tail = params[-1].long()
    inverse = torch.empty_like(tail)
    inverse[tail] = torch.arange(tail.numel())
    del giver._buffers[f"p{giver.count - 1}"]
    giver.count -= 1
    giver.config[_POST_TAIL] = 0
    # the taker's spatial weight (K*K, 1, C padded) and bias, then factor 0's weight and
    # index: new tensors (never an edit of a tensor something else may hold)
    weight, bias, _, index = taker.params()[:4]
    c = tail.numel()
    weight, bias = weight.clone(), bias.clone()
    weight[..., :c] = weight[..., :c][..., inverse]
    bias[:c] = bias[:c][inverse]
    taker._buffers["p0"], taker._buffers["p1"] = weight, bias
    taker._buffers["p3"] = tail[index.long()].to(index.dtype)


def fused_blocks(net: nn.Module) -> list[FusedChain | None]:
    """Per block of an :class:`IGCNet`'s stages, in the order they run, the
    :class:`FusedChain` it runs as when it runs fused without a separate skip, else
    ``None``; ``[]`` for any other module."""
    if not isinstance(net, IGCNet):
        return []
    return [_fused_body(block) for stage in net.stages
            for block in (stage if isinstance(stage, nn.Sequential) else [stage])]


def _fused_pairs(net: nn.Module) -> list[tuple[int, FusedChain, FusedChain]]:
    """``(i, A, B)`` for each two consecutive blocks of an :class:`IGCNet`'s stages (block
    ``i`` and ``i + 1`` in the order they run) that both run fused without a separate skip."""
    blocks = fused_blocks(net)
    return [(i, a, b) for i, (a, b) in enumerate(pairwise(blocks))
            if a is not None and b is not None]


def hand_over_permutations(net: nn.Module) -> list[tuple[int, int]]:
    """Hand every eligible fused block's trailing permutation over to the next block, in
    place; returns the pairs (indices of the blocks in the order they run). Only an
    :class:`IGCNet` is rewritten."""
    pairs = []
    for i, giver, taker in _fused_pairs(net):
        if _gives(giver) and _takes(taker):
            hand_over(giver, taker)
            pairs.append((i, i + 1))
    return pairs


def padded_pixel(channels: int) -> int:
    """The floats between the pixels of a padded map of ``channels`` (see the module
    docstring): ``channels``, or :data:`PAD` more for a multiple of :data:`PAD_EVERY`."""
    return channels + PAD if channels % PAD_EVERY == 0 else channels


def pad_maps(net: nn.Module) -> list[int]:
    """Let every fused block followed by another write its output padded (see the module
    docstring), in place; returns the indices of the blocks whose output is now padded.
    Only an :class:`IGCNet` is rewritten; its last block's output is never padded."""
    padded = []
    for i, giver, _ in _fused_pairs(net):
        pixel = padded_pixel(giver.config[_C_OUT])
        if pixel != giver.config[_C_OUT]:
            giver.config[_OUT_PIXEL] = pixel
            padded.append(i)
    return padded


__all__ = ["PAD", "PAD_EVERY", "fused_blocks", "hand_over", "hand_over_permutations", "pad_maps",
           "padded_pixel"]
