"""The operation list of a :class:`~igc.layers.FactorChain` and its lowering.

A trained chain runs ``conv -> [BN] -> [act] -> [shuffle]`` per factor (IGCV2 paper,
eq. 4: ``y = P_L W_L ... P_1 W_1 x``). :func:`lower` turns it into a flat list of exact
operations: :class:`ConvOp` (the convolution with its BatchNorm folded in,
``W' = s W``, ``b' = s (b - mean) + beta``), :class:`ActOp` (any elementwise activation)
and :class:`PermOp` (a channel permutation ``P_l``). :func:`run_ops` is the reference
interpreter the rewrites are tested against.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

from igc.errors import IGCError
from igc.layers.chain import FactorChain
from igc.layers.shuffle import ChannelShuffle


class LoweringError(IGCError):
    """A chain holds a layer that has no exact inference form (e.g. a GroupNorm):
    :func:`igc.deploy.optimize` leaves such a block as it is."""


@dataclass
class ConvOp:
    """``conv2d(x, weight, bias, stride, padding, groups)``; ``weight`` is
    ``(out, in/groups, k, k)``."""

    weight: torch.Tensor
    bias: torch.Tensor | None
    groups: int
    stride: int = 1
    padding: int = 0

    @property
    def out_channels(self) -> int:
        return self.weight.shape[0]

    @property
    def in_channels(self) -> int:
        return self.weight.shape[1] * self.groups

    @property
    def pointwise(self) -> bool:
        """A 1x1 convolution without stride or padding (a matrix on channels)."""
        return self.weight.shape[2:] == (1, 1) and self.stride == 1 and self.padding == 0

    @property
    def depthwise(self) -> bool:
        """One input and one output channel per group (commutes with a permutation)."""
        return self.groups == self.in_channels == self.out_channels

    @property
    def dense(self) -> bool:
        return self.groups == 1

    def macs_per_pixel(self) -> int:
        """Multiply-adds per output pixel."""
        return self.weight.numel()

    def output_size(self, size: int) -> int:
        """The output side for an input side ``size``."""
        k = self.weight.shape[-1]
        return (size + 2 * self.padding - k) // self.stride + 1


#: The activation of :class:`ActOp`: ``"relu"``, ``"relu6"`` (run in place by fast
#: kernels) or an elementwise module (run as the module).
Activation = str | nn.Module


@dataclass
class ActOp:
    """An elementwise activation. A permutation of channels commutes with it."""

    fn: Activation

    @property
    def kind(self) -> str:
        """``"relu"``, ``"relu6"`` or the module's class name."""
        return self.fn if isinstance(self.fn, str) else type(self.fn).__name__


@dataclass
class PermOp:
    """``y[:, c] = x[:, index[c]]``; ``index`` is a long tensor ``(C,)`` on the CPU."""

    index: torch.Tensor

    @property
    def identity(self) -> bool:
        return bool((self.index == torch.arange(len(self.index))).all())


Op = ConvOp | ActOp | PermOp


def activate(y: torch.Tensor, fn: Activation | None) -> torch.Tensor:
    """``fn(y)``; ``"relu"`` and ``"relu6"`` overwrite ``y``."""
    if fn is None:
        return y
    if fn == "relu":
        return torch.relu_(y)
    if fn == "relu6":
        return y.clamp_(0.0, 6.0)
    return fn(y)  # type: ignore[operator]


def inverse(index: torch.Tensor) -> torch.Tensor:
    """The inverse permutation: ``x[index][inverse(index)] == x``."""
    inv = torch.empty_like(index)
    inv[index] = torch.arange(len(index))
    return inv


def shuffle_index(channels: int, groups: int) -> torch.Tensor:
    """The channel shuffle with ``groups`` groups as an index (see
    :func:`igc.sparsity.shuffle_permutation`)."""
    return torch.arange(channels).view(groups, channels // groups).t().reshape(-1)


def shuffle_groups(index: torch.Tensor) -> int | None:
    """``g`` when ``index`` is the channel shuffle with ``g`` groups, else ``None``."""
    c = len(index)
    for g in range(2, c):
        if c % g == 0 and torch.equal(index, shuffle_index(c, g)):
            return g
    return None


#: Activations of ``torch.nn`` that act on every value alone (exact types: a subclass may
#: change ``forward``). ``nn.PReLU`` counts when it has one parameter.
ELEMENTWISE = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
    nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Sigmoid, nn.Tanh, nn.Softplus, nn.Softsign,
    nn.Tanhshrink, nn.Hardshrink, nn.Softshrink, nn.LogSigmoid, nn.Threshold,
)


def elementwise(module: nn.Module) -> bool:
    """True for an activation that maps every value on its own (so a channel permutation
    commutes with it): the :data:`ELEMENTWISE` types, a one-parameter ``nn.PReLU``, and
    any other module that gives the same on random values taken one at a time as on the
    whole tensor and on a permuted copy (checked on 2 x 6 x 3 x 3 random values)."""
    if type(module) in ELEMENTWISE:
        return True
    if type(module) is nn.PReLU:
        return module.num_parameters == 1
    ref = next(iter([*module.parameters(), *module.buffers()]), None)
    device = ref.device if ref is not None else torch.device("cpu")
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(2, 6, 3, 3, generator=g) * 3).to(device)
    perm = torch.randperm(6, generator=g).to(device)
    try:
        with torch.no_grad():
            whole = module(x.clone())
            alone = module(x.reshape(-1, 1, 1, 1).clone()).reshape(x.shape)
            permuted = module(x[:, perm].clone())
    except Exception:  # any failure means: not a plain elementwise map
        return False
    return (whole.shape == x.shape and torch.allclose(whole, alone)
            and torch.allclose(whole[:, perm], permuted))


def _conv_op(conv: nn.Conv2d, where: str, dtype: torch.dtype) -> ConvOp:
    if conv.padding_mode != "zeros" or conv.dilation != (1, 1) \
            or conv.kernel_size[0] != conv.kernel_size[1] or conv.stride[0] != conv.stride[1] \
            or isinstance(conv.padding, str) or conv.padding[0] != conv.padding[1]:
        raise LoweringError(f"cannot lower {conv} ({where}): only square, undilated, "
                            "zero-padded convolutions have an inference form here")
    return ConvOp(conv.weight.detach().to(dtype).clone(),
                  None if conv.bias is None else conv.bias.detach().to(dtype).clone(),
                  conv.groups, conv.stride[0], conv.padding[0])


def _fold_bn(conv: ConvOp, bn: nn.modules.batchnorm._BatchNorm) -> None:
    """Write an eval-mode BatchNorm into the convolution before it (in place)."""
    def get(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t.detach().to(conv.weight.dtype)

    weight, bias = fuse_conv_bn_weights(conv.weight, conv.bias, get(bn.running_mean),
                                        get(bn.running_var), bn.eps, get(bn.weight),
                                        get(bn.bias))
    conv.weight, conv.bias = weight.detach(), bias.detach()


def lower(chain: FactorChain, dtype: torch.dtype | None = None) -> list[Op]:
    """The chain as operations, each BatchNorm folded into the convolution before it
    (``torch.nn.utils.fusion``), parameters in ``dtype`` (default: the chain's, at least
    float32) on the chain's device. Float32 suffices: folded deep chains stay as close to
    a float64 reference as the trained float32 chain itself (``tests/test_fold.py``).

    Raises :class:`LoweringError` (one line) for a layer without an exact inference form:
    a normalisation other than an eval-mode BatchNorm with running statistics, a
    non-elementwise activation, a shuffle before any convolution, an unusual convolution.
    """
    if dtype is None:
        weight = next(m.weight for m in chain.modules() if isinstance(m, nn.Conv2d))
        dtype = torch.promote_types(weight.dtype, torch.float32)
    ops: list[Op] = []
    for number, factor in enumerate(chain.factors, 1):
        where = f"factor {number} of the chain"
        for module in factor:
            if isinstance(module, nn.Conv2d):
                ops.append(_conv_op(module, where, dtype))
            elif isinstance(module, nn.modules.batchnorm._BatchNorm):
                if module.running_mean is None or module.running_var is None:
                    raise LoweringError(f"cannot fold {type(module).__name__} ({where}): it "
                                        "keeps no running statistics (track_running_stats)")
                if not ops or not isinstance(ops[-1], ConvOp):
                    raise LoweringError(f"cannot fold {type(module).__name__} ({where}): "
                                        "it does not follow a convolution")
                _fold_bn(ops[-1], module)
            elif isinstance(module, ChannelShuffle):
                convs = [op for op in ops if isinstance(op, ConvOp)]
                if not convs:
                    raise LoweringError(f"cannot lower a shuffle before any convolution "
                                        f"({where})")
                ops.append(PermOp(shuffle_index(convs[-1].out_channels, module.groups)))
            elif isinstance(module, nn.Identity):
                continue
            elif type(module) is nn.ReLU:
                ops.append(ActOp("relu"))
            elif type(module) is nn.ReLU6:
                ops.append(ActOp("relu6"))
            elif elementwise(module):
                ops.append(ActOp(copy.deepcopy(module)))
            else:
                raise LoweringError(
                    f"cannot fold {type(module).__name__} ({where}): only BatchNorm folds "
                    "into a convolution and only elementwise activations commute with "
                    "a shuffle; such a block keeps its trained form")
    return ops


def run_ops(ops: list[Op], x: torch.Tensor) -> torch.Tensor:
    """Reference interpreter of an operation list, in the dtype of its parameters (the
    ground truth of the tests, with float64 parameters)."""
    dtype = next((op.weight.dtype for op in ops if isinstance(op, ConvOp)), x.dtype)
    y = x.to(dtype)
    for op in ops:
        if isinstance(op, ConvOp):
            y = F.conv2d(y, op.weight, op.bias, op.stride, op.padding, 1, op.groups)
        elif isinstance(op, ActOp):
            fn = op.fn if isinstance(op.fn, str) else copy.deepcopy(op.fn).to(dtype)
            y = activate(y.clone(), fn)
        else:
            y = y[:, op.index.to(y.device)]
    return y


__all__ = ["ELEMENTWISE", "ActOp", "Activation", "ConvOp", "LoweringError", "Op", "PermOp",
           "activate", "elementwise", "inverse", "lower", "run_ops", "shuffle_groups",
           "shuffle_index"]
