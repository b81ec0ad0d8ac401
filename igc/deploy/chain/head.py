"""A network's head, its global average pool and its classifier, as native calls, for the
fused forms of :func:`igc.deploy.optimize`.

At batch 1 both are memory-bound, and ATen ran them far from the memory's rate: the
adaptive pool of a 7x7x1280 channels-last map took 12 us hot against 3 us for one pass of
vector adds, and the 1280 -> 1000 linear layer read its 5 MB of weights in 408 us cold
against 238 us for the native pass over them packed as one sequential stream. In
IGCV3-1.0 at batch 1 the two together took 0.7 ms less (``benchmarks/outside_blocks.py``).

* :class:`NativeAvgPool`: ``(N, C, H, W) -> (N, C)``, the mean over ``H`` and ``W`` (any
  thread count: the pass is a few microseconds).
* :class:`NativeLinear`: ``(N, in_features) -> (N, out_features)``, an ``nn.Linear`` or
  the zoo's one-factor :class:`~igc.models.net.GroupClassifier` (groups, no ``pre``) for
  at most :data:`MAX_IMAGES` images on one thread; larger batches (where the product is
  bound by arithmetic and oneDNN's GEMM is the faster one) and several threads run the
  original module, kept as ``fallback``, as does everything :func:`runs_native` refuses
  (tracing, compiling, export, dispatch modes, gradients, other dtypes and devices).
"""

from __future__ import annotations

import torch
from torch import nn

from igc.deploy.chain.pointwise import replace_module, runs_native
from igc.deploy.native import native
from igc.models.net import GroupClassifier

#: Output features per packed weight block (the kernel's ``kLinearBlock``: four AVX-512
#: vectors, or two passes of four AVX2 ones).
LINEAR_BLOCK = 64
#: The most images :class:`NativeLinear` runs natively (four per pass over the weights).
MAX_IMAGES = 4


class NativeAvgPool(nn.Module):
    """``(N, C, H, W) -> (N, C)``: the global average pool (timm's ``avg`` pool with its
    flatten) by one native pass; ``fallback`` (the original modules) where it does not
    run."""

    form = "native-pool"

    def __init__(self, fallback: nn.Module) -> None:
        super().__init__()
        self.fallback = fallback

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        module = native()
        if module is None or not runs_native(x, one_thread=False) or x.shape[2] * x.shape[3] == 0:
            return self.fallback(x)
        return module.global_avg_pool(x)


class NativeLinear(nn.Module):
    """``y = x W^T + b`` of a linear layer with ``groups`` (input features and outputs
    split evenly, group ``g``'s outputs reading group ``g``'s inputs) by the native pass
    over its packed weights; ``fallback`` (the original module) where it does not run."""

    form = "native-linear"

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, groups: int,
                 fallback: nn.Module) -> None:
        super().__init__()
        self.fallback = fallback
        out_features, group_in = weight.shape
        self.out_features = out_features
        packed, padded_bias = pack_linear(weight.detach().float(), None if bias is None
                                          else bias.detach().float(), groups)
        self.register_buffer("packed", packed, persistent=False)
        self.register_buffer("packed_bias", padded_bias, persistent=False)
        self.in_features = group_in * groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        module = native()
        if (module is None or not runs_native(x, dims=2)
                or not 1 <= x.shape[0] <= MAX_IMAGES or x.shape[1] != self.in_features):
            return self.fallback(x)
        return module.linear(x, self.packed, self.packed_bias, self.out_features)


def pack_linear(weight: torch.Tensor, bias: torch.Tensor | None, groups: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """``weight (O, K/G)`` and ``bias (O)`` in the kernel's packing: ``(G, B, K/G,
    LINEAR_BLOCK)`` with ``[g, b, k, j] = weight[g*O/G + b*LINEAR_BLOCK + j, k]`` (zero past
    ``O/G``) and the bias ``(G, B*LINEAR_BLOCK)``."""
    out_features, group_in = weight.shape
    per_group = out_features // groups
    blocks = -(-per_group // LINEAR_BLOCK)
    padded = torch.zeros(groups, blocks * LINEAR_BLOCK, group_in)
    padded[:, :per_group] = weight.reshape(groups, per_group, group_in)
    packed = padded.view(groups, blocks, LINEAR_BLOCK, group_in).transpose(2, 3).contiguous()
    padded_bias = torch.zeros(groups, blocks * LINEAR_BLOCK)
    if bias is not None:
        padded_bias[:, :per_group] = bias.reshape(groups, per_group)
    return packed, padded_bias


def linear_parts(module: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None, int] | None:
    """``(weight (O, K/G), bias, groups)`` of an ``nn.Linear`` or a one-factor
    :class:`GroupClassifier` (float32), else ``None``."""
    if type(module) is nn.Linear:
        weight, groups = module.weight, 1
    elif type(module) is GroupClassifier and module.pre is None:
        weight, groups = module.weight.flatten(1), module.groups
    else:
        return None
    if weight.dtype != torch.float32 or weight.device.type != "cpu":
        return None
    return weight, module.bias, groups


def is_avg_pool(module: nn.Module) -> bool:
    """Whether ``module`` is the zoo's average pool: ``nn.Sequential(nn.AdaptiveAvgPool2d(1),
    nn.Flatten(1))``."""
    if type(module) is not nn.Sequential or len(module) != 2:
        return False
    pool, flat = module
    return (type(pool) is nn.AdaptiveAvgPool2d and pool.output_size in (1, (1, 1))
            and type(flat) is nn.Flatten and flat.start_dim == 1 and flat.end_dim == -1)


def fuse_head(net: nn.Module) -> list[str]:
    """Replace, in place, ``net``'s average pools (:func:`is_avg_pool`) and linear layers
    (:func:`linear_parts`) by their native forms; returns the replaced names. Nothing is
    replaced without the native kernel."""
    if native() is None:
        return []
    found: list[tuple[str, nn.Module]] = []
    for name, module in net.named_modules():
        if not name or any(name.startswith(done + ".") for done, _ in found):
            continue
        if is_avg_pool(module):
            found.append((name, NativeAvgPool(module)))
        elif (parts := linear_parts(module)) is not None:
            found.append((name, NativeLinear(*parts, fallback=module)))
    for name, new in found:
        replace_module(net, name, new)
    return [name for name, _ in found]


__all__ = ["LINEAR_BLOCK", "MAX_IMAGES", "NativeAvgPool", "NativeLinear", "fuse_head",
           "is_avg_pool", "linear_parts", "pack_linear"]
