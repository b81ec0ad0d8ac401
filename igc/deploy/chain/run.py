"""Consecutive fused blocks as one kernel call, for the fused forms of
:func:`igc.deploy.optimize`: the maps between them never leave the cache.

A fused block reads its input map and writes its output map once, but at 112x112 and
56x56 those maps are megabytes (IGCV2-1.0's first block writes 6.4 MB, twice the width of
MobileNetV1's), more than the L2 cache, and the next block reads them back from L3 or
memory: the output stores stalled the early blocks' products (``perf``), and the first
blocks of IGCV2-1.0 took 1.5-2x as long in the network as alone. The native
``fused_chain`` runs several blocks row by row instead: each keeps the rows of its output
the next block's tile reads in a ring of a few rows (a few hundred KiB), and every tile of
the last block asks the block before for the rows it needs (bit-identical outputs).

Which blocks form a run (:func:`chain_runs`): consecutive fused blocks of an
:class:`~igc.models.net.IGCNet`'s stages, linked where the map between two of them is at
least :data:`MAP_BYTES` for one image (smaller maps stay in the L2 cache anyway), while
the run's weights stay within :data:`WEIGHT_BYTES` (all of them are read for every tile of
rows: a run of wide late blocks re-read megabytes from L3 per tile and was slower).
Measured at batch 1, one thread (one process, interleaved): IGCV2-1.0 with its first five
blocks in a run 0.93x, IGCV3-1.0 with its first five 0.96x, MobileNetV1-1.0 0.99x; all 13
blocks of IGCV2-1.0 in one run took 1.005x.

The first block of a run becomes a :class:`FusedRun` (holding every block's
:class:`~igc.deploy.chain.fused.FusedChain`), the others an :class:`InRun` that passes its
input on. Outside plain eager calls (``torch.compile``, ``torch.export``, dispatch modes,
tracing) the run calls its blocks one after another, each as before.
"""

from __future__ import annotations

from dataclasses import replace
from itertools import pairwise

import torch
from torch import nn

from igc.deploy.chain.fused import FusedChain
from igc.deploy.chain.handover import fused_blocks
from igc.deploy.chain.pointwise import replace_module, runs_native
from igc.deploy.chain.stem import NativeStem
from igc.deploy.native import native, output_shape

#: A map of at least this many bytes per image between two fused blocks links them.
MAP_BYTES = 1 << 20
#: At most this many bytes of weights in one run (half the L2 cache of the machines
#: measured: the weights stay there beside the rings).
WEIGHT_BYTES = 512 << 10


class FusedRun(nn.Module):
    """Consecutive fused blocks ``chains`` (each the next one's input), after the network's
    ``stem`` (a :class:`NativeStem`) when one is given, as one native ``fused_chain``
    call: ``(N, C_in, H, W) ->`` the last block's output (channels innermost, as
    :class:`FusedChain`'s). ``names``: the places of the stem (when given) and the blocks in
    the network. Where the kernel does not run (see
    :func:`~igc.deploy.chain.pointwise.runs_native`) they run one after another."""

    form = "fused"

    def __init__(self, chains: list[FusedChain], names: list[str],
                 stem: NativeStem | None = None) -> None:
        super().__init__()
        if len(chains) < (1 if stem is not None else 2) or \
                len(names) != len(chains) + (stem is not None):
            raise ValueError("a FusedRun needs two or more blocks, or a stem and a block, "
                             "and one name each")
        self.stem = stem
        self.chains = nn.ModuleList(chains)
        self.names = list(names)
        # with a stem, every block's row is its InRun's; else the first block's is here
        self.forms = [] if stem is not None else [
            replace(f, reason=f"one kernel call with blocks {names[0]} .. {names[-1]} "
                    f"(else {f.reason})") for f in chains[0].forms]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        module = native()
        if module is not None and runs_native(x, one_thread=False):
            chains = list(self.chains)
            stem = self.stem
            return module.fused_chain(
                x, [] if stem is None else [stem.weight, stem.bias],
                [] if stem is None else stem.config,
                [c.params() for c in chains], [c.config for c in chains])
        if self.stem is not None:
            x = self.stem(x)
        for chain in self.chains:
            x = chain(x)
        return x

    def extra_repr(self) -> str:
        return f"parts={self.names}"


class InRun(nn.Module):
    """A block computed by the :class:`FusedRun` at ``run`` (before this block in the
    network): returns its input. ``forms``: the block's."""

    form = "fused"

    def __init__(self, chain: FusedChain, run: str) -> None:
        super().__init__()
        self.run = run
        self.forms = [replace(f, reason=f"in the kernel call at {run} (else {f.reason})")
                      for f in chain.forms]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def extra_repr(self) -> str:
        return f"run={self.run!r}"


def _map_bytes(chain: FusedChain, output: bool = True) -> int | None:
    """Bytes of the chain's output (or input) map for one image, where its input shape is
    known."""
    if chain.input_shape is None:
        return None
    shape = (1, *chain.input_shape[1:])
    if output:
        shape = output_shape(shape, chain.config)
    return 4 * shape[1] * shape[2] * shape[3]


def _weight_bytes(module: nn.Module) -> int:
    tensors = module.params() if isinstance(module, FusedChain) else module.buffers()
    return sum(p.numel() * p.element_size() for p in tensors if p.is_floating_point())


def _runs(blocks: list[FusedChain | None], stem: NativeStem | None
          ) -> list[list[tuple[int, nn.Module]]]:
    """The runs, as ``(block index, module)`` lists (index -1: the stem)."""
    runs: list[list[tuple[int, nn.Module]]] = []
    weight = 0
    first = blocks[0] if blocks else None
    if stem is not None and first is not None and (_map_bytes(first, output=False) or 0) \
            >= MAP_BYTES and _weight_bytes(stem) + _weight_bytes(first) <= WEIGHT_BYTES:
        runs.append([(-1, stem), (0, first)])
        weight = _weight_bytes(stem) + _weight_bytes(first)
    for i, (giver, taker) in enumerate(pairwise(blocks)):
        if giver is None or taker is None or (_map_bytes(giver) or 0) < MAP_BYTES:
            continue
        if not (runs and runs[-1][-1][0] == i):
            runs.append([(i, giver)])
            weight = _weight_bytes(giver)
        if weight + _weight_bytes(taker) > WEIGHT_BYTES:
            if len(runs[-1]) == 1:
                runs.pop()
            continue
        runs[-1].append((i + 1, taker))
        weight += _weight_bytes(taker)
    return runs


def chain_runs(net: nn.Module) -> list[list[int]]:
    """Put the runs of consecutive fused blocks of ``net`` (an :class:`IGCNet` with fused
    blocks; other modules are left as they are), and its native stem before the first
    one, into :class:`FusedRun` modules (see the module docstring), in place; returns the
    runs as lists of block indices (``-1``: the stem)."""
    blocks = fused_blocks(net)
    stem = getattr(net, "stem", None) if blocks else None
    runs = _runs(blocks, stem if isinstance(stem, NativeStem) else None)
    names = {id(m): n for n, m in net.named_modules()}
    for run in runs:
        where = [names[id(m)] for _, m in run]
        has_stem = run[0][0] == -1
        chains = [m for i, m in run if i >= 0]
        replace_module(net, where[0], FusedRun(chains, where, run[0][1] if has_stem else None))
        for chain, name in zip(chains[1 - has_stem:], where[1:]):
            replace_module(net, name, InRun(chain, where[0]))
    return [[i for i, _ in run] for run in runs]


def unchain(net: nn.Module) -> None:
    """Put the stem and every block of each :class:`FusedRun` of ``net`` back in their
    places, in place (the inverse of :func:`chain_runs`; the names are relative to ``net``
    or to its ``model``)."""
    for name, module in list(net.named_modules()):
        if isinstance(module, FusedRun):
            prefix = name[:len(name) - len(module.names[0])]
            parts = ([module.stem] if module.stem is not None else []) + list(module.chains)
            for part, place in zip(parts, module.names):
                replace_module(net, prefix + place, part)


__all__ = ["MAP_BYTES", "WEIGHT_BYTES", "FusedRun", "InRun", "chain_runs", "unchain"]
