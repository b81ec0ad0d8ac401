"""The inference form of a :class:`~igc.layers.FactorChain`.

A trained chain runs ``conv -> BN -> [act] -> [shuffle]`` per factor. Its inference form is
derived in three exact steps:

1. **Lower** the chain to a list of operations: :class:`ConvOp` (BatchNorm folded into its
   weight and bias), :class:`ActOp` and :class:`PermOp` (a channel permutation).
2. **Delete shuffles by algebra.** A permutation commutes with a pointwise activation and
   with a channel-wise (depthwise) convolution (whose weights are permuted instead), so every
   permutation moves *back* to the output of the linear 1x1 segment before it, where it is
   free: a dense product's rows are permuted, a structured product writes its result in the
   permuted order. A permutation with no 1x1 segment before it moves *forward* into the
   1x1 segment after it, where a dense product absorbs it into its columns and a structured
   one reads its input through a strided view. A permutation before a dense convolution is
   absorbed into its input channels.
3. **Choose a form per linear segment** (a maximal run of 1x1 convolutions and permutations
   with no activation between them; biases are pushed to its end):

   * ``dense``: multiply the segment out once into one dense 1x1 convolution;
   * ``structured``: a batched matrix product per factor over the mixed-radix channel
     layout (``W_g @ X_g`` with ``X_g`` a ``(k, N*H*W)`` strided view of the activation),
     the permutations being relabellings of views (for strictly complementary designs no
     activation is ever copied; loose designs need one copy where no strided view exists,
     and a permutation after the last factor is applied by the write of the result);
   * ``grouped``: grouped convolutions with the permutations as explicit shuffles (the
     trained form with BN folded; kept for reference and comparison).

   :func:`choose_form` is the cost rule; see its docstring.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from igc.deploy.fold import bn_affine, foldable
from igc.layers.chain import FactorChain
from igc.layers.shuffle import ChannelShuffle

FORMS = ("dense", "structured", "grouped")

# ---------------------------------------------------------------------------------------
# The operation list
# ---------------------------------------------------------------------------------------


@dataclass
class ConvOp:
    """``conv2d(x, weight, bias, stride, padding, groups)`` with float64 parameters."""

    weight: torch.Tensor  # (out, in/groups, k, k)
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
        return self.weight.shape[2:] == (1, 1) and self.stride == 1 and self.padding == 0

    @property
    def depthwise(self) -> bool:
        return self.groups == self.in_channels == self.out_channels

    @property
    def dense(self) -> bool:
        return self.groups == 1

    def macs_per_pixel(self) -> int:
        return self.weight.numel()


@dataclass
class ActOp:
    kind: str  # "relu" | "relu6"


@dataclass
class PermOp:
    """``y[:, c] = x[:, index[c]]``."""

    index: torch.Tensor  # long, (C,)

    @property
    def identity(self) -> bool:
        return bool((self.index == torch.arange(len(self.index))).all())


Op = ConvOp | ActOp | PermOp


def inverse(index: torch.Tensor) -> torch.Tensor:
    inv = torch.empty_like(index)
    inv[index] = torch.arange(len(index))
    return inv


def shuffle_groups(index: torch.Tensor) -> int | None:
    """``g`` when ``index`` is the channel shuffle with ``g`` groups (see
    :func:`igc.sparsity.shuffle_permutation`), else ``None``."""
    c = len(index)
    for g in range(2, c):
        if c % g == 0 and torch.equal(
                index, torch.arange(c).view(g, c // g).t().reshape(-1)):
            return g
    return None


def lower(chain: FactorChain) -> list[Op]:
    """The chain as operations, BatchNorm folded into the convolution before it."""
    ops: list[Op] = []
    for factor in chain.factors:
        for module in factor:
            if isinstance(module, nn.Conv2d):
                if module.padding_mode != "zeros" or module.dilation != (1, 1) \
                        or module.kernel_size[0] != module.kernel_size[1]:
                    raise ValueError(f"cannot lower {module}")
                ops.append(ConvOp(
                    module.weight.detach().double().clone(),
                    None if module.bias is None else module.bias.detach().double().clone(),
                    module.groups, module.stride[0], module.padding[0]))
            elif foldable(module) and ops and isinstance(ops[-1], ConvOp):
                scale, shift = bn_affine(module)
                conv = ops[-1]
                conv.weight = conv.weight * scale.view(-1, 1, 1, 1)
                conv.bias = shift if conv.bias is None else conv.bias * scale + shift
            elif isinstance(module, (nn.ReLU, nn.ReLU6)):
                ops.append(ActOp("relu6" if isinstance(module, nn.ReLU6) else "relu"))
            elif isinstance(module, ChannelShuffle):
                convs = [op for op in ops if isinstance(op, ConvOp)]
                if not convs:
                    raise ValueError("a shuffle must follow a convolution")
                g, channels = module.groups, convs[-1].out_channels
                ops.append(PermOp(torch.arange(channels).view(g, channels // g).t().reshape(-1)))
            elif isinstance(module, nn.Identity):
                continue
            else:
                raise ValueError(f"cannot lower {type(module).__name__} in a factor chain")
    return ops


def run_ops(ops: list[Op], x: torch.Tensor) -> torch.Tensor:
    """Reference interpreter of an operation list (float64 parameters, any input dtype is
    promoted to float64): the ground truth the rewrites are tested against."""
    y = x.double()
    for op in ops:
        if isinstance(op, ConvOp):
            y = F.conv2d(y, op.weight, op.bias, op.stride, op.padding, 1, op.groups)
        elif isinstance(op, ActOp):
            y = _activate(y.clone(), op.kind)
        else:
            y = y[:, op.index]
    return y


# ---------------------------------------------------------------------------------------
# Permutation algebra
# ---------------------------------------------------------------------------------------


def _permute_conv_output(conv: ConvOp, index: torch.Tensor) -> None:
    """``P(conv(x))`` as one convolution: only valid for dense or depthwise convs."""
    conv.weight = conv.weight[index]
    if conv.bias is not None:
        conv.bias = conv.bias[index]


def _passes_through(op: Op) -> bool:
    """Operations a permutation commutes with (changing the operation's parameters)."""
    return isinstance(op, ActOp) or (isinstance(op, ConvOp) and op.depthwise)


def _absorbs_output(op: Op) -> bool:
    """Operations whose output a permutation can be written into for free."""
    return isinstance(op, ConvOp) and (op.pointwise or op.dense)


def move_permutations(ops: list[Op]) -> list[Op]:
    """Apply the exact rewrites of the module docstring until none applies.

    A permutation goes *backwards* when it can reach, through activations and depthwise
    convolutions only, a pointwise or dense convolution (the end of a linear segment,
    where it is free); otherwise *forwards*, through the same operations, into the next
    segment (or a dense convolution, which absorbs it). It stays where it is when a
    non-depthwise spatial convolution blocks it on both sides. The input list is not
    changed.
    """
    ops = [copy.copy(op) for op in ops]
    changed = True
    while changed:
        changed = False
        for i, op in enumerate(ops):
            if not isinstance(op, PermOp):
                continue
            if op.identity:
                del ops[i]
                changed = True
                break
            prev = ops[i - 1] if i > 0 else None
            nxt = ops[i + 1] if i + 1 < len(ops) else None
            if isinstance(nxt, PermOp):  # x[p][q] = x[p[q]]
                ops[i:i + 2] = [PermOp(op.index[nxt.index])]
                changed = True
                break
            if isinstance(nxt, ConvOp) and nxt.dense:  # absorb into the input channels
                nxt.weight = nxt.weight[:, inverse(op.index)]
                del ops[i]
                changed = True
                break
            j = i - 1
            while j >= 0 and _passes_through(ops[j]):
                j -= 1
            backwards = j >= 0 and _absorbs_output(ops[j])
            if backwards:
                if isinstance(prev, ConvOp) and prev.pointwise and not prev.dense:
                    continue  # at the end of a linear segment: free there
                if isinstance(prev, ActOp):
                    ops[i - 1:i + 1] = [op, prev]
                elif isinstance(prev, ConvOp) and prev.depthwise:
                    # P(dw(x)) = dw'(P x) with dw' = dw's channels permuted by P
                    _permute_conv_output(prev, op.index)
                    ops[i - 1:i + 1] = [op, prev]
                else:  # a dense convolution: permute its output channels
                    _permute_conv_output(prev, op.index)
                    del ops[i]
                changed = True
                break
            if isinstance(nxt, ActOp):
                ops[i:i + 2] = [nxt, op]
                changed = True
                break
            if isinstance(nxt, ConvOp) and nxt.depthwise:
                inv = inverse(op.index)
                nxt.weight = nxt.weight[inv]
                if nxt.bias is not None:
                    nxt.bias = nxt.bias[inv]
                ops[i:i + 2] = [nxt, op]
                changed = True
                break
    return ops


# ---------------------------------------------------------------------------------------
# Linear segments
# ---------------------------------------------------------------------------------------


@dataclass
class Segment:
    """A linear run of 1x1 convolutions and permutations: ``items`` in order, each a
    ``PermOp`` or a bias-free ``ConvOp``; ``bias`` is the total bias at the end."""

    items: list[ConvOp | PermOp]
    bias: torch.Tensor
    act: str | None = None

    @property
    def convs(self) -> list[ConvOp]:
        return [i for i in self.items if isinstance(i, ConvOp)]

    @property
    def in_channels(self) -> int:
        return self.convs[0].in_channels

    @property
    def out_channels(self) -> int:
        return self.convs[-1].out_channels

    def structured_macs(self) -> int:
        """Multiply-adds per pixel of the factor-by-factor product."""
        return sum(c.macs_per_pixel() for c in self.convs)

    def dense_macs(self) -> int:
        return self.in_channels * self.out_channels

    def dense_matrix(self) -> torch.Tensor:
        """The segment multiplied out, ``(out, in)`` in float64."""
        total = torch.eye(self.in_channels, dtype=torch.float64)
        for item in self.items:
            total = total[item.index] if isinstance(item, PermOp) else _apply(item, total)
        return total

    def describe(self) -> str:
        parts = []
        for item in self.items:
            if isinstance(item, PermOp):
                g = shuffle_groups(item.index)
                parts.append(f"shuffle({g})" if g else "perm")
            else:
                parts.append(f"1x1/g{item.groups}" if item.groups > 1 else "1x1")
        return " ".join(parts)


def _apply(conv: ConvOp, x: torch.Tensor) -> torch.Tensor:
    """A pointwise (grouped) convolution on a ``(C_in, X)`` matrix."""
    g = conv.groups
    w = conv.weight.reshape(g, conv.out_channels // g, conv.in_channels // g)
    return torch.bmm(w, x.reshape(g, conv.in_channels // g, -1)).reshape(conv.out_channels, -1)


def _segments(ops: list[Op]) -> list[Op | Segment]:
    """Group maximal linear runs that contain at least one pointwise convolution."""
    out: list[Op | Segment] = []
    run: list[ConvOp | PermOp] = []

    def flush() -> None:
        if any(isinstance(i, ConvOp) for i in run):
            out.append(_make_segment(run))
        else:
            out.extend(run)
        run.clear()

    for op in ops:
        if isinstance(op, PermOp) or (isinstance(op, ConvOp) and op.pointwise):
            run.append(op)
        else:
            flush()
            out.append(op)
    flush()
    # attach a following activation to the segment (fused in its epilogue)
    merged: list[Op | Segment] = []
    for op in out:
        if isinstance(op, ActOp) and merged and isinstance(merged[-1], Segment) \
                and merged[-1].act is None:
            merged[-1].act = op.kind
        else:
            merged.append(op)
    return merged


def _make_segment(run: list[ConvOp | PermOp]) -> Segment:
    """Trailing/leading permutations stay; biases are pushed to the end."""
    items: list[ConvOp | PermOp] = []
    bias: torch.Tensor | None = None
    for item in run:
        if isinstance(item, PermOp):
            items.append(PermOp(item.index.clone()))
            if bias is not None:
                bias = bias[item.index]
        else:
            conv = ConvOp(item.weight, None, item.groups)
            if bias is not None:
                bias = _apply(conv, bias.view(-1, 1)).view(-1)
            if item.bias is not None:
                bias = item.bias.clone() if bias is None else bias + item.bias
            items.append(conv)
    if bias is None:
        bias = torch.zeros(items[-1].out_channels if isinstance(items[-1], ConvOp)
                           else len(items[-1].index), dtype=torch.float64)
    return Segment(items, bias)


# ---------------------------------------------------------------------------------------
# The cost rule
# ---------------------------------------------------------------------------------------

#: Constants of :func:`choose_form`, measured on the development CPUs (2-core AMD EPYC,
#: AVX-512, 1 MiB L2 per core, fp32, one thread; ``benchmarks/blocks.py``): the dense 1x1
#: rate in multiply-adds per second; the effective memory rate in bytes per second of a
#: pass that reads and writes an activation; the L2 size; and how fast a batched product
#: over branches of ``k`` inputs runs relative to the dense rate: about ``k / 64`` (at most
#: 0.8: 18 GMAC/s for ``k = 32``, 28 for ``k = 128``, against 35 dense) while its operands
#: fit in L2 or are contiguous rows, about ``k / 128`` when it reads channels-last
#: activations larger than L2 through strided views.
DENSE_RATE = 35e9
MEMORY_RATE = 12e9
L2_BYTES = 1 << 20
FULL_RATE_BRANCH = 64
MAX_BRANCH_EFFICIENCY = 0.8


def _efficiency(k: int, strided_out_of_cache: bool = False) -> float:
    return min(MAX_BRANCH_EFFICIENCY, k / (FULL_RATE_BRANCH * (2 if strided_out_of_cache else 1)))


def _roofline(macs: float, rate: float, floats: float) -> float:
    """Seconds per pixel of one pass: bound by arithmetic or by moving activations."""
    return max(macs / rate, 4 * floats / MEMORY_RATE)


def structured_copies(segment: Segment) -> int:
    """Activation copies the structured form makes (found by running its reshapes on a
    meta tensor): loose shuffles whose next product has no strided view, generic
    permutations, and a permutation after the last factor."""
    module = StructuredSegment(segment)
    m = 5
    z = torch.empty(segment.in_channels, m, device="meta")
    copies = 0
    for kind, arg in module.plan[:module.last + 1]:
        if kind == "conv":
            g, _, k = module.weights[arg].shape
            zr = z.reshape(g, k, m)
            copies += not zr._is_view()
            z = torch.empty(g * module.weights[arg].shape[1], m, device="meta")
        elif kind == "shuffle":
            z = z.reshape(arg, -1, m).transpose(0, 1)
        else:
            copies += 1
            z = torch.empty(z.numel() // m, m, device="meta")
    return copies + (module.last + 1 < len(module.plan))


def estimate_seconds_per_pixel(segment: Segment, pixels: int | None = None,
                               channel_major: bool = False) -> dict[str, float]:
    """The cost model of :func:`choose_form`: seconds per output pixel of each form, for
    ``pixels = N*H*W`` output pixels per call (``None``: small, in cache) on a
    channel-major (NCHW, one image) or channels-last activation."""
    dense = _roofline(segment.dense_macs(), DENSE_RATE,
                      segment.in_channels + segment.out_channels)
    structured = 0.0
    for c in segment.convs:
        big = pixels is not None and pixels * 4 * (c.in_channels + c.out_channels) > L2_BYTES
        rate = DENSE_RATE * (1.0 if c.dense else
                             _efficiency(c.in_channels // c.groups, big and not channel_major))
        structured += _roofline(c.macs_per_pixel(), rate, c.in_channels + c.out_channels)
    width = max(max(c.in_channels, c.out_channels) for c in segment.convs)
    copies = structured_copies(segment)
    if channel_major:  # written in place, a trailing shuffle as strided rows
        copies -= segment.items[-1] is not segment.convs[-1]
    else:  # the result is written once more into the channels-last output
        structured += 8 * segment.out_channels / MEMORY_RATE
    structured += 8 * copies * width / MEMORY_RATE
    return {"dense": dense, "structured": structured}


def choose_form(segment: Segment, pixels: int | None = None,
                channel_major: bool = False) -> tuple[str, str]:
    """``(form, reason)``: the documented cost rule, a roofline per product.

    Each form is a sequence of passes over the activations; a pass costs
    ``max(multiply-adds / rate, bytes moved / MEMORY_RATE)`` per pixel. The dense form is
    one product ``C_in x C_out`` at :data:`DENSE_RATE`. The structured form is one batched
    product per factor (``C_l K_l`` multiply-adds) at ``DENSE_RATE * min(0.8, K_l / 64)``,
    or ``K_l / 128`` when its channels-last operands outgrow L2 (``pixels`` known), plus,
    on channels-last activations, one pass to write its result in place, and one pass per
    activation copy (:func:`structured_copies`). A segment with a single dense factor is
    dense. The cheaper estimate wins.
    """
    convs = segment.convs
    if len(convs) == 1 and convs[0].dense:
        return "dense", "one dense 1x1"
    cost = estimate_seconds_per_pixel(segment, pixels, channel_major)
    form = min(cost, key=cost.get)
    where = "" if pixels is None else f" at {pixels} pixels" + (" NCHW" if channel_major else "")
    return form, (f"estimated {cost['dense'] * 1e9:.1f} ns/pixel dense, "
                  f"{cost['structured'] * 1e9:.1f} structured{where}")


# ---------------------------------------------------------------------------------------
# Executable modules
# ---------------------------------------------------------------------------------------


def _tracing() -> bool:
    """True while torch.compile, torch.export, ONNX export or the JIT traces the model:
    use functional code there (no ``out=``, no Python branching on storage)."""
    if torch.jit.is_tracing() or torch.jit.is_scripting():
        return True
    try:
        if torch.compiler.is_compiling():
            return True
    except AttributeError:  # pragma: no cover - old torch
        pass
    return bool(getattr(torch.onnx, "is_in_onnx_export", lambda: False)())


def _activate(y: torch.Tensor, kind: str | None) -> torch.Tensor:
    if kind == "relu":
        return torch.relu_(y)
    if kind == "relu6":
        return y.clamp_(0.0, 6.0)
    return y


def _param(t: torch.Tensor) -> nn.Parameter:
    return nn.Parameter(t.float().contiguous(), requires_grad=False)


class SpatialConv(nn.Module):
    """A spatial (or any non-segment) convolution with bias and an in-place activation."""

    def __init__(self, op: ConvOp, act: str | None = None) -> None:
        super().__init__()
        self.weight = _param(op.weight)
        self.bias = None if op.bias is None else _param(op.bias)
        self.stride, self.padding, self.groups, self.act = op.stride, op.padding, op.groups, act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(x, self.weight, self.bias, self.stride, self.padding, 1, self.groups)
        return _activate(y, self.act)

    def extra_repr(self) -> str:
        w = self.weight.shape
        return (f"{w[1] * self.groups}->{w[0]}, k={w[2]}, stride={self.stride}, "
                f"groups={self.groups}, act={self.act}")


class ActModule(nn.Module):
    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _activate(x, self.kind)


class Permutation(nn.Module):
    """A permutation that no algebra could delete: a shuffle view copied, or a gather."""

    def __init__(self, index: torch.Tensor) -> None:
        super().__init__()
        self.shuffle = shuffle_groups(index)
        self.register_buffer("index", index.clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.shuffle:
            n, c, h, w = x.shape
            fmt = (torch.channels_last if x.is_contiguous(memory_format=torch.channels_last)
                   and not x.is_contiguous() else torch.contiguous_format)
            y = x.view(n, self.shuffle, c // self.shuffle, h, w).transpose(1, 2)
            return y.reshape(n, c, h, w).contiguous(memory_format=fmt)
        return x.index_select(1, self.index)


class DenseSegment(nn.Module):
    """The segment multiplied out into one dense 1x1 convolution (bias, activation)."""

    form = "dense"

    def __init__(self, segment: Segment) -> None:
        super().__init__()
        matrix = segment.dense_matrix()
        self.weight = _param(matrix[:, :, None, None])
        self.bias = _param(segment.bias)
        self.act = segment.act
        self.note = segment.describe()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _activate(F.conv2d(x, self.weight, self.bias), self.act)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[1]}->{self.weight.shape[0]} [{self.note}], act={self.act}"


class GroupedSegment(nn.Module):
    """Grouped convolutions and explicit shuffles, BN folded: the trained form's arithmetic."""

    form = "grouped"

    def __init__(self, segment: Segment) -> None:
        super().__init__()
        steps: list[nn.Module] = []
        convs = segment.convs
        last = max(i for i, item in enumerate(segment.items) if isinstance(item, ConvOp))
        # the bias sits after the trailing permutations: move it before them
        tail = torch.arange(segment.out_channels)
        for item in segment.items[last + 1:]:
            tail = tail[item.index]
        for item in segment.items:
            if isinstance(item, PermOp):
                steps.append(Permutation(item.index))
            else:
                bias = segment.bias[inverse(tail)] if item is convs[-1] else None
                steps.append(SpatialConv(ConvOp(item.weight, bias, item.groups)))
        self.steps = nn.Sequential(*steps)
        self.act = segment.act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _activate(self.steps(x), self.act)


class StructuredSegment(nn.Module):
    """The segment as batched matrix products over the mixed-radix channel layout.

    The activation is a ``(C, M)`` matrix, ``M = N*H*W``, read from a channels-last input
    without a copy (its transpose is a column-major view). Every factor but the last is
    ``bmm(W (g, o, k), X (g, k, M))``, channel-major; a shuffle is a reshape-transpose *view*
    of the channel axis that the next product reads through its strides (for strictly
    complementary designs every operand stays a strided view; a copy happens only where no
    strided view exists, as in loose designs). The last factor is computed the other way
    round, ``X^T (g, M, k) @ W^T``, so that its result is written straight into the
    channels-last output (a channel-major output for NCHW input with one image). A trailing
    permutation is applied by the one copy that writes the result in place.
    """

    form = "structured"

    def __init__(self, segment: Segment) -> None:
        super().__init__()
        self.plan: list[tuple[str, int]] = []  # ("conv", index) | ("shuffle", g) | ("perm", i)
        self.weights = nn.ParameterList()
        perms: list[torch.Tensor] = []
        for item in segment.items:
            if isinstance(item, PermOp):
                g = shuffle_groups(item.index)
                if g:
                    self.plan.append(("shuffle", g))
                else:
                    self.plan.append(("perm", len(perms)))
                    perms.append(item.index.clone())
            else:
                g = item.groups
                w = item.weight.reshape(g, item.out_channels // g, item.in_channels // g)
                self.plan.append(("conv", len(self.weights)))
                self.weights.append(_param(w))
        for i, p in enumerate(perms):
            self.register_buffer(f"perm{i}", p, persistent=False)
        self.last = max(i for i, (kind, _) in enumerate(self.plan) if kind == "conv")
        self.has_tail = self.last + 1 < len(self.plan)
        self.bias = _param(segment.bias)
        self.act = segment.act
        self.out_channels = segment.out_channels
        self.note = segment.describe()

    def _relabel(self, z: torch.Tensor, kind: str, arg: int, m: int) -> torch.Tensor:
        """Apply a permutation to a channel-major ``(..., M)`` activation: a view for a
        shuffle, a gather otherwise."""
        if kind == "shuffle":
            c = z.numel() // m
            return z.reshape(arg, c // arg, m).transpose(0, 1)
        return z.reshape(-1, m).index_select(0, getattr(self, f"perm{arg}"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        m = n * h * w
        z = x.transpose(0, 1).reshape(c, m)  # a view for channels-last input or n == 1
        for kind, arg in self.plan[:self.last]:
            if kind == "conv":
                wt = self.weights[arg]
                g, _, k = wt.shape
                z = torch.bmm(wt, z.reshape(g, k, m))
            else:
                z = self._relabel(z, kind, arg, m)
        wt = self.weights[self.plan[self.last][1]]
        g, o, k = wt.shape
        co = self.out_channels
        tail = self.plan[self.last + 1:]
        if _tracing():
            z = torch.bmm(wt, z.reshape(g, k, m))
            for kind, arg in tail:
                z = self._relabel(z, kind, arg, m)
            y = z.reshape(co, m) + self.bias.view(co, 1)
            y = _activate(y, self.act).reshape(co, n, h, w).transpose(0, 1)
            if x.is_contiguous(memory_format=torch.channels_last):
                return y.contiguous(memory_format=torch.channels_last)
            return y.contiguous()
        zin = z.reshape(g, k, m)
        # a tail that is one shuffle by the last factor's own branches: logical channel
        # p*g + b is row p of branch b, so branch b's rows are every g-th output channel
        shuffled = len(tail) == 1 and tail[0] == ("shuffle", g)
        if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
            out = torch.empty((n, co, h, w), dtype=x.dtype, device=x.device,
                              memory_format=torch.channels_last)
            rows = out.permute(0, 2, 3, 1).reshape(m, co)  # a view: (M, C) row-major
            if not tail:
                torch.bmm(zin.transpose(1, 2), wt.transpose(1, 2),
                          out=rows.view(m, g, o).transpose(0, 1))
            else:  # one gather into place (cheaper here than any pair of copies)
                y = torch.bmm(zin.transpose(1, 2), wt.transpose(1, 2))  # (g, M, o)
                t = y.permute(0, 2, 1)  # channel-major view, storage order
                for kind, arg in tail:
                    t = self._relabel(t, kind, arg, m)
                rows.t().view(t.shape).copy_(t)
        else:
            out = torch.empty((n, co, h, w), dtype=x.dtype, device=x.device)
            cols = out.transpose(0, 1)  # (C, N, H, W)
            if n == 1 and not tail:
                torch.bmm(wt, zin, out=cols.reshape(g, o, m))
            elif n == 1 and shuffled:  # strided rows: row p of branch b is channel p*g + b
                torch.bmm(wt, zin, out=cols.reshape(o, g, m).transpose(0, 1))
            else:
                t = torch.bmm(wt, zin)
                for kind, arg in tail:
                    t = self._relabel(t, kind, arg, m)
                cols.copy_(t.reshape(co, n, h, w))
        out.add_(self.bias.view(1, co, 1, 1))
        return _activate(out, self.act)

    def extra_repr(self) -> str:
        return f"[{self.note}], act={self.act}"


SEGMENT_FORMS: dict[str, type[nn.Module]] = {
    "dense": DenseSegment, "structured": StructuredSegment, "grouped": GroupedSegment,
}


@dataclass
class FormChoice:
    """What :class:`FastChain` chose for one linear segment."""

    segment: str
    form: str
    reason: str
    dense_macs: int
    structured_macs: int


class FastChain(nn.Module):
    """Inference form of a :class:`~igc.layers.FactorChain` (same call signature).

    ``mode`` is ``"auto"`` (the cost rule of :func:`choose_form`), one of :data:`FORMS`
    for every segment, or a list with one form per segment. ``forms`` records each choice.
    """

    def __init__(self, chain: FactorChain, mode: str | list[str] = "auto",
                 keep_segments: bool = False) -> None:
        super().__init__()
        self.product = chain.product
        self.stride = chain.stride
        segments = self._build(move_permutations(lower(chain)), mode)
        if keep_segments:  # plain attribute, for re-choosing forms (optimize mode "measure")
            self.__dict__["segments"] = segments

    def _build(self, ops: list[Op], mode: str | list[str]) -> list[Segment]:
        parts = _segments(ops)
        segments = [p for p in parts if isinstance(p, Segment)]
        modes = list(mode) if isinstance(mode, (list, tuple)) else [mode] * len(segments)
        if len(modes) != len(segments):
            raise ValueError(f"give one form per linear segment ({len(segments)})")
        self.forms: list[FormChoice] = []
        steps: list[nn.Module] = []
        si = 0
        for i, part in enumerate(parts):
            if isinstance(part, Segment):
                form, reason = choose_form(part) if modes[si] == "auto" else (modes[si], "asked")
                if form not in SEGMENT_FORMS:
                    raise ValueError(f"unknown form {form!r}; use one of {FORMS} or 'auto'")
                steps.append(SEGMENT_FORMS[form](part))
                self.forms.append(FormChoice(part.describe(), form, reason, part.dense_macs(),
                                             part.structured_macs()))
                si += 1
            elif isinstance(part, ConvOp):
                nxt = parts[i + 1] if i + 1 < len(parts) else None
                steps.append(SpatialConv(part))
                if isinstance(nxt, ActOp):  # fuse the activation into the conv module
                    steps[-1].act = nxt.kind
                    parts[i + 1] = None  # type: ignore[call-overload]
            elif part is None:
                continue
            elif isinstance(part, ActOp):
                steps.append(ActModule(part.kind))
            elif isinstance(part, PermOp):
                steps.append(Permutation(part.index))
        self.steps = nn.Sequential(*steps)
        return segments

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.steps(x)

    @property
    def branch_sizes(self) -> tuple[int, ...]:
        return self.product.branch_sizes


def optimize_chain(chain: FactorChain, mode: str | list[str] = "auto") -> FastChain:
    return FastChain(chain, mode)


def build_steps(ops: list[Op], mode: str = "auto") -> tuple[nn.Sequential, list[FormChoice]]:
    """Executable modules for an operation list (what :class:`FastChain` runs)."""
    holder = FastChain.__new__(FastChain)
    nn.Module.__init__(holder)
    holder._build(move_permutations(ops), mode)
    return holder.steps, holder.forms


__all__ = [
    "FORMS", "ActOp", "ConvOp", "FastChain", "FormChoice", "PermOp", "Segment", "build_steps",
    "choose_form", "lower", "move_permutations", "optimize_chain", "run_ops",
]
