"""``optimize(model)``: the inference form of any network of the zoo (or any module built
from :class:`~igc.layers.FactorChain` s and ``nn.Sequential`` s), with the same outputs.

What it does, in order (see :mod:`igc.deploy.chain` for the algebra):

1. every ``FactorChain`` (the body of every IGC block; the IGCV2* classifier is one group 1x1
   convolution, with a chain before it only when built with several factors) becomes a
   :class:`~igc.deploy.chain.fused.FusedChain` (the whole block, its identity skip
   included, in one native kernel call; modes ``"fused"``, ``"auto"``, ``"measure"``) or
   a :class:`~igc.deploy.chain.FastChain`: BatchNorm folded into the convolution before
   it (grouped and depthwise ones included), shuffles deleted by permutation algebra, each
   linear run of 1x1 factors computed in the form the cost rule (or a measurement) picks
   for the input that chain sees; a chain without an exact inference form (a GroupNorm,
   a non-elementwise activation) is left as it is, and :func:`block_forms` says why;
2. every other ``Conv2d``/``Linear`` followed by a ``BatchNorm`` inside an ``nn.Sequential``
   (stems, shortcuts, heads) is folded;
3. the input is put in the memory layout that suits the model and the batch (NHWC in
   general; see :class:`OptimizedModel`), and every convolution and product follows it.

The result is an :class:`OptimizedModel` in eval mode without gradients, on the model's
device; it works under ``torch.inference_mode``, ``torch.compile``, ``torch.export`` and
ONNX export, at any batch size.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Literal

import torch
from torch import nn

from igc.deploy.chain import (
    CostModel,
    FastChain,
    FormChoice,
    LoweringError,
    cost_model,
    lower,
)
from igc.deploy.chain.block_cost import price_block, price_text
from igc.deploy.chain.fused import (
    FusedChain,
    FusedParts,
    FusedPlan,
    FusedUnsupported,
    fuse,
    residual_parent,
)
from igc.deploy.chain.handover import hand_over_permutations, pad_maps
from igc.deploy.chain.head import fuse_head
from igc.deploy.chain.pointwise import fuse_pointwise, replace_module
from igc.deploy.chain.run import FusedRun, InRun, chain_runs
from igc.deploy.chain.stem import NativeStem, fuse_stem
from igc.deploy.fold import fold_batchnorms
from igc.deploy.inputs import model_device, model_input, run_hooked
from igc.deploy.micro_batch import choose as choose_piece
from igc.deploy.micro_batch import peak_activation_bytes, piece_for_threads, run_in_pieces
from igc.deploy.timing import time_interleaved
from igc.errors import IGCError
from igc.layers.chain import FactorChain
from igc.names import MODES

#: Memory layouts of the input :class:`OptimizedModel` runs on.
LAYOUTS = ("auto", "channels_last", "contiguous")


class OptimizedModel(nn.Module):
    """The inference form of a network: ``model`` with its input put in the memory layout
    ``layout`` names. ``"channels_last"`` (NHWC): the fast depthwise convolutions, and the
    1x1 products read their operands as strided views. ``"contiguous"`` (NCHW): for one
    image the activation is a channel-major matrix, so every product and every shuffle,
    trailing ones included, is a strided view; but depthwise convolutions run about 2x
    slower. ``"auto"``: NCHW for a batch of one when some structured product ends in a
    shuffle (the non-linear IGCV2 blocks: measured 5-10 % faster there), NHWC otherwise.
    ``mode`` says how the model was made; ``kept`` maps the path of every chain left as
    it was to the reason. ``micro_batch``: a batch larger than this runs that many images
    at a time (:mod:`igc.deploy.micro_batch`; ``None``: all at once). ``nchw_input``
    (read from ``model``): its stem is a :class:`~igc.deploy.chain.stem.NativeStem`, which
    reads NCHW and writes NHWC itself, so the input is left in (or put in) NCHW."""

    def __init__(self, model: nn.Module, mode: str, layout: str = "auto",
                 kept: dict[str, str] | None = None, micro_batch: int | None = None) -> None:
        super().__init__()
        if layout not in LAYOUTS:
            raise IGCError(f"unknown layout {layout!r}; use one of {', '.join(LAYOUTS)}")
        self.model = model
        self.mode = mode
        self.layout = layout
        self.kept: dict[str, str] = dict(kept or {})
        self.micro_batch = _checked_piece(micro_batch)
        self.nchw_input = layout != "contiguous" and any(
            isinstance(m, NativeStem) for m in model.modules())
        self.pretrained_cfg = dict(getattr(model, "pretrained_cfg", None) or {})

    def uses_channels_last(self, batch: int) -> bool:
        """Whether a batch of ``batch`` images runs in NHWC."""
        return self.layout != "contiguous"

    def input_memory_format(self, batch: int) -> torch.memory_format:
        """The memory layout a batch of ``batch`` images is best given in (``forward``
        puts it there): NHWC where :meth:`uses_channels_last`, but NCHW when the stem reads
        NCHW itself (``nchw_input``)."""
        if self.uses_channels_last(batch) and not self.nchw_input:
            return torch.channels_last
        return torch.contiguous_format

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            x = x.contiguous(memory_format=self.input_memory_format(x.shape[0]))
        if self.micro_batch is None:
            return self.model(x)
        return run_in_pieces(self.model, x, self.micro_batch)


def _checked_piece(micro_batch: object) -> int | None:
    if micro_batch is None:
        return None
    if isinstance(micro_batch, bool) or not isinstance(micro_batch, int) or micro_batch < 1:
        raise IGCError(f"micro_batch must be a positive integer, 'auto' or None, got "
                       f"{micro_batch!r}")
    return micro_batch


def optimize(model: nn.Module, mode: str = "auto", *, layout: str = "auto", batch: int = 1,
             example: torch.Tensor | None = None, inplace: bool = False,
             cost: CostModel | None = None,
             micro_batch: int | Literal["auto"] | None = "auto") -> OptimizedModel:
    """The inference form of ``model`` (a copy unless ``inplace``); outputs equal the
    eval-mode model's to float rounding, at any batch size.

    ``mode``: ``"auto"`` (the cost rule, :meth:`igc.deploy.chain.CostModel.choose`, for
    batches of ``batch`` images at the model's input size, or at ``example``'s size; a
    block runs fused where the cost model prices the fused kernel below its unfused
    forms, :mod:`igc.deploy.chain.block_cost`, and
    :meth:`~igc.deploy.chain.CostModel.fused_veto` does not object),
    ``"dense"``, ``"structured"`` or ``"grouped"`` for every block, ``"small-dense"``
    (dense where the dense product is small, grouped elsewhere: the graph OpenVINO runs
    fastest, :mod:`igc.deploy.chain.small_dense`), ``"fused"`` (every
    block that can be, as one call of the native kernel,
    :mod:`igc.deploy.chain.fused`; the others in the ``"auto"`` forms, with the reason
    in :func:`block_forms`), ``"measure"`` (time every candidate form of every segment,
    and the fused block against the best of them, on ``batch`` random images, or on
    ``example``, and keep the fastest), or ``"fold"`` (fold BatchNorm only). Without a
    C++ compiler, with ``IGC_NO_NATIVE=1`` or when the build fails, nothing is fused
    (one warning line says why). In those three modes a 1x1 convolution outside the
    blocks (with its activation) runs as the native 1x1 product on one thread
    (:mod:`igc.deploy.chain.pointwise`), the stem as the native stem kernel, which
    reads the NCHW image itself (:mod:`igc.deploy.chain.stem`), the global average pool
    and the classifier as native calls (:mod:`igc.deploy.chain.head`), and a fused
    block's trailing permutation is handed to the next fused block where it commutes
    with its depthwise convolution (:mod:`igc.deploy.chain.handover`: the network's
    output is the same; the map between two such blocks is in the permuted channel
    order, and, at widths of whole KiB, padded between pixels), and consecutive fused
    blocks with large maps between them (the stem included) run as one native call
    (:mod:`igc.deploy.chain.run`: the maps stay in cache). ``layout``: see
    :class:`OptimizedModel` (weights stay in the standard layout; convolutions follow
    their input's). ``cost``: the cost model (default: the device's calibration file, or
    the built-in constants; see :func:`igc.deploy.chain.cost_model`). ``micro_batch``:
    larger batches run this many images at a time, so that each layer's activations stay
    in cache (``"auto"``: as many as fit the last-level cache, from the model's largest
    activation of one image in the inference form, :mod:`igc.deploy.micro_batch`; no
    splitting for a model outside the zoo without ``example``; ``None``: never split).
    Forms are chosen (and ``"measure"`` times them) for one piece, not the whole batch.
    """
    if mode not in MODES:
        raise IGCError(f"unknown optimize mode {mode!r}; use one of {', '.join(MODES)}")
    if layout not in LAYOUTS:
        raise IGCError(f"unknown layout {layout!r}; use one of {', '.join(LAYOUTS)}")
    if isinstance(model, OptimizedModel):
        raise IGCError("this model is already optimized")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise IGCError(f"batch must be a positive integer, got {batch!r}")
    if isinstance(micro_batch, str) and micro_batch != "auto":
        raise IGCError(f"micro_batch must be a positive integer, 'auto' or None, got "
                       f"{micro_batch!r}")
    fixed = None if isinstance(micro_batch, str) else _checked_piece(micro_batch)
    was_training = model.training
    net = model if inplace else copy.deepcopy(model)
    net.eval()
    kept: dict[str, str] = {}
    piece = _micro_batch(net, example, opaque=(FactorChain,)) if micro_batch == "auto" \
        else fixed  # choose forms for the pieces the batch will run in
    whole = example.shape[0] if example is not None and example.dim() == 4 else batch
    split = piece is not None and piece_for_threads(piece, torch.get_num_threads()) < whole
    if piece is not None:
        piece = piece_for_threads(piece, torch.get_num_threads())
        if example is not None and example.dim() == 4:
            example = example[:piece]
        else:
            batch = min(batch, piece)
    if mode != "fold":
        chains = [(n, m) for n, m in net.named_modules() if isinstance(m, FactorChain)]
        shapes = _chain_inputs(net, example, batch, mode == "measure") if chains else {}
        for name, chain in chains:
            try:
                fast = FastChain(chain, "auto" if mode == "fused" else mode,
                                 input_shape=shapes.get(name),
                                 channel_major=layout == "contiguous", cost=cost)
            except LoweringError as exc:
                kept[name] = str(exc)
                continue
            replace_module(net, name, _maybe_fused(net, name, chain, fast, mode, shapes.get(name),
                                             cost, layout == "contiguous", split))
    fold_batchnorms(net, inplace=True)
    if mode in ("fused", "auto", "measure") and layout != "contiguous":
        fuse_pointwise(net)  # the 1x1 convolutions outside the blocks, one thread
        fuse_stem(net)  # the stem reads NCHW itself
        fuse_head(net)  # the global pool and the classifier
        hand_over_permutations(net)  # IGCV2's interleave read by the next block
        pad_maps(net)  # maps between fused blocks, 1 KiB-multiple pixels padded
        chain_runs(net)  # consecutive blocks with large maps between them: one call
    for p in net.parameters():
        p.requires_grad_(False)
    if inplace and was_training:
        model.eval()
    piece = _micro_batch(net, example) if isinstance(micro_batch, str) else fixed
    return OptimizedModel(net, mode, layout, kept, piece).eval()


def _micro_batch(net: nn.Module, example: torch.Tensor | None,
                 opaque: tuple[type[nn.Module], ...] = ()) -> int | None:
    """The automatic micro-batch of the inference form ``net``
    (:func:`igc.deploy.micro_batch.choose`), from one image of ``example`` or of the
    model's input size; ``None`` where neither is known, or off the CPU (a GPU runs a
    whole batch best). Before the forms are chosen, ``opaque=(FactorChain,)`` counts each
    block as one layer (as if fused)."""
    if model_device(net).type != "cpu":
        return None
    if example is None:
        known = model_input(net)
        if known is None:
            return None
        in_chans, size = known
        one = torch.randn(1, in_chans, size, size, device=model_device(net))
    elif example.dim() == 4 and example.shape[0] >= 1:
        one = example[:1]
    else:
        return None
    return choose_piece(peak_activation_bytes(net, one, opaque))


def _maybe_fused(net: nn.Module, name: str, chain: FactorChain, fast: FastChain, mode: str,
                 shape: tuple[int, int, int, int] | None, cost: CostModel | None,
                 channel_major: bool = False, split: bool = False) -> nn.Module:
    """The fused form of ``chain`` (taking over its block's identity skip) when ``mode``
    asks for it (``"fused"``), the cost rule prices it below the unfused forms
    (``"auto"``, :func:`_priced`; ``split``: the batch runs in micro-batches) or it
    measured faster (``"measure"``); else ``fast``.
    Why a chain is not fused is added to its form reasons under ``"fused"``, and the
    prices under ``"auto"``."""
    if mode not in ("fused", "auto", "measure"):
        return fast
    block = residual_parent(net, name)
    try:
        plan = FusedPlan(lower(chain), block is not None)
        if mode == "auto":
            model = cost or cost_model(model_device(net))
            keep, note, predicted = _priced(model, chain, plan.parts, shape, channel_major,
                                            split)
            if keep:
                _annotate(fast.forms, note, None if shape is None else predicted)
                return fast
        fused = fuse(chain, fast, block is not None, shape, plan)
    except FusedUnsupported as exc:
        if mode == "fused":
            for f in fast.forms:
                f.reason = f"not fused: {exc}; {f.reason}"
        return fast
    if mode == "auto":
        _annotate(fused.forms, note, None if shape is None else predicted)
    if mode == "measure":
        if shape is None:
            return fast
        faster, note = _measure_fused(fused, fast, shape)
        for f in fused.forms if faster else fast.forms:
            f.reason = f"{note}; {f.reason}"
        if not faster:
            return fast
    if block is not None:
        block.skip = False  # the fused kernel adds the input
    return fused


def _priced(cost: CostModel, chain: FactorChain, parts: FusedParts,
            shape: tuple[int, int, int, int] | None, channel_major: bool,
            split: bool = False) -> tuple[bool, str, float]:
    """``(keep unfused, note, predicted seconds of the chosen form)``: the cost model's
    prices of the block unfused and fused (:func:`~igc.deploy.chain.block_cost.price_block`),
    the cheaper chosen, unless :meth:`CostModel.fused_veto` objects."""
    price = price_block(cost, lower(chain), parts, shape, channel_major, split)
    tag = " (calibrated)" if cost.calibrated else ""
    note = (f"estimated {price_text(price.fused or 0.0, shape)} fused, "
            f"{price_text(price.unfused, shape)} unfused{tag}")
    if price.use_fused:
        return False, note, price.seconds
    return True, f"not fused: {price.veto + '; ' if price.veto else ''}{note}", price.unfused


def _annotate(forms: list[FormChoice], note: str, predicted: float | None) -> None:
    """Put the block's price ``note`` in front of its form reasons, and its predicted
    seconds per call (``None``: the input size is not known)."""
    for f in forms:
        f.reason = f"{note}; {f.reason}"
        f.predicted_s = predicted


def _measure_fused(fused: nn.Module, fast: FastChain, shape: tuple[int, int, int, int]
                   ) -> tuple[bool, str]:
    """Whether ``fused`` runs faster than ``fast`` (plus the skip) on random input."""
    x = torch.randn(shape).contiguous(memory_format=torch.channels_last)
    residual = getattr(fused, "residual", False)
    calls = {"fused": lambda: fused(x),
             "unfused": (lambda: fast(x) + x) if residual else (lambda: fast(x))}
    with torch.inference_mode():
        timing = time_interleaved(calls, repeats=5, warmup=1, min_sample_s=0.001)
    t, u = timing["fused"].median, timing["unfused"].median
    return t < u, f"measured fused={t * 1e6:.0f}us unfused={u * 1e6:.0f}us"


def _chain_inputs(net: nn.Module, example: torch.Tensor | None, batch: int, required: bool
                  ) -> dict[str, tuple[int, int, int, int]]:
    """The input shape of every ``FactorChain`` of ``net`` for ``example``, or for
    ``batch`` images at the model's input size (one image is run, the batch scaled)."""
    scale = 1
    if example is None:
        known = model_input(net)
        if known is None:
            if required:
                raise IGCError("mode 'measure' needs an example input for a model outside "
                               "the zoo")
            return {}
        in_chans, size = known
        example = torch.randn(1, in_chans, size, size, device=model_device(net))
        scale = batch
    names = {m: n for n, m in net.named_modules() if isinstance(m, FactorChain)}
    seen: dict[str, tuple[int, int, int, int]] = {}

    def record(module: nn.Module, args: tuple) -> None:
        n, c, h, w = args[0].shape
        seen.setdefault(names[module], (n * scale, c, h, w))

    run_hooked(net, example, [m.register_forward_pre_hook(record) for m in names])
    return seen


@dataclass(frozen=True)
class BlockForm:
    """One row of :func:`block_forms`."""

    block: str  # the module path of the block's chain, e.g. "stages.0.1.body"
    kind: str  # the block class, e.g. "IGCV2Block"
    segment: str  # the linear segment, e.g. "1x1/g8 shuffle(8) 1x1/g8"
    form: str  # "dense" | "structured" | "grouped" | "fused" | "kept" (as trained, see reason)
    reason: str
    dense_macs: int  # multiply-adds per pixel of each form
    structured_macs: int
    #: the cost model's time of the whole block in its chosen form, seconds per call;
    #: ``None`` where the rule did not price it (not ``"auto"``, or no known input size)
    predicted_s: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def block_forms(model: nn.Module, mode: str = "auto", batch: int = 1) -> list[BlockForm]:
    """Per block of ``model`` and per linear 1x1 segment in it, the form of the inference
    form: read from an optimized model, or, for a trained model, what
    ``optimize(model, mode, batch=batch)`` chooses (the model itself is not changed). A
    chain left as it was has one row of form ``"kept"`` whose reason says why.
    ``igc info`` prints it with :func:`format_block_forms`."""
    if not isinstance(model, OptimizedModel) and \
            not any(isinstance(m, (FastChain, FusedChain)) for m in model.modules()):
        if mode in ("fold", "measure"):
            raise IGCError(f"block_forms of a trained model needs a rule mode, not {mode!r}")
        if any(isinstance(m, FactorChain) for m in model.modules()):
            model = optimize(model, mode, batch=batch)
    kept = model.kept if isinstance(model, OptimizedModel) else {}
    modules = dict(model.named_modules())
    rows: list[BlockForm] = []
    formed = (FastChain, FusedChain, FusedRun, InRun)
    runs = [name + "." for name, module in modules.items() if isinstance(module, FusedRun)]
    for name, module in modules.items():
        inner = name.removeprefix("model.") if isinstance(model, OptimizedModel) else name
        parent = modules.get(name.rpartition(".")[0])
        if isinstance(parent, FusedChain) or any(name.startswith(r) for r in runs):
            continue  # a fallback, or a block of a run (the run and its InRun rows say)
        if not isinstance(module, formed) and inner not in kept:
            continue
        containers = (nn.Sequential, nn.ModuleList, nn.ModuleDict, OptimizedModel)
        kind = type(module if parent is None or isinstance(parent, containers)
                    else parent).__name__
        if not isinstance(module, formed):
            rows.append(BlockForm(inner, kind, "-", "kept", kept[inner], 0, 0))
            continue
        for f in module.forms:
            rows.append(BlockForm(inner, kind, f.segment, f.form, f.reason, f.dense_macs,
                                  f.structured_macs, f.predicted_s))
    return rows


def format_block_forms(rows: list[BlockForm]) -> str:
    """A plain-text table of :func:`block_forms` (what ``igc info`` prints): per row the
    form, the ratio of multiply-adds, the predicted microseconds of the block per call
    (``-`` where not priced), the segment and the reason."""
    if not rows:
        return "no IGC blocks"
    width = max(len(r.block) for r in rows)
    lines = [f"{'block':<{width}}  {'form':<10}  {'dense/struct MACs':>17}  {'pred. us':>9}  "
             "segment; reason"]
    for r in rows:
        predicted = "-" if r.predicted_s is None else f"{r.predicted_s * 1e6:.1f}"
        lines.append(f"{r.block:<{width}}  {r.form:<10}  "
                     f"{r.dense_macs / max(r.structured_macs, 1):>17.2f}  {predicted:>9}  "
                     f"{r.segment}; {r.reason}")
    return "\n".join(lines)


__all__ = ["LAYOUTS", "MODES", "BlockForm", "OptimizedModel", "block_forms", "format_block_forms",
           "optimize"]
