"""``optimize(model)``: the inference form of any network of the zoo (or any module built
from :class:`~igc.layers.FactorChain` s and ``nn.Sequential`` s), with the same outputs.

What it does, in order (see :mod:`igc.deploy.fast_chain` for the algebra):

1. every ``FactorChain`` (the body of every IGC block, and the IGCV2* classifier) becomes a
   :class:`~igc.deploy.fast_chain.FastChain`: BatchNorm folded into the convolution before
   it (grouped and depthwise ones included), shuffles deleted by permutation algebra, each
   linear run of 1x1 factors computed in the form the cost rule (or a measurement) picks;
2. every other ``Conv2d``/``Linear`` followed by a ``BatchNorm`` inside an ``nn.Sequential``
   (stems, shortcuts, heads) is folded;
3. the input is put in the memory layout that suits the model and the batch (NHWC in
   general; see :class:`OptimizedModel`), and every convolution and product follows it.

The result is an :class:`OptimizedModel` in eval mode without gradients; it works under
``torch.inference_mode``, ``torch.compile``, ``torch.export`` and ONNX export, at any batch
size. :func:`block_forms` lists the form chosen for each block.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import torch
from torch import nn

from igc.deploy.fast_chain import FORMS, SEGMENT_FORMS, FastChain, FormChoice
from igc.deploy.fold import fold_batchnorms
from igc.deploy.timing import time_interleaved
from igc.errors import IGCError
from igc.layers.chain import FactorChain

#: ``optimize`` modes: the cost rule, one form everywhere, per-segment timing, BN folding
#: only (grouped convolutions and shuffle copies kept: the trained form, folded).
MODES = ("auto", *FORMS, "measure", "fold")


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
    ``mode`` says how the model was made."""

    def __init__(self, model: nn.Module, mode: str, layout: str = "auto") -> None:
        super().__init__()
        if layout not in LAYOUTS:
            raise IGCError(f"unknown layout {layout!r}; use one of {', '.join(LAYOUTS)}")
        self.model = model
        self.mode = mode
        self.layout = layout
        entry = getattr(model, "igc_entry", None)
        if entry is not None:
            self.igc_entry = entry

    def uses_channels_last(self, batch: int) -> bool:
        """Whether a batch of ``batch`` images runs in NHWC."""
        return self.layout != "contiguous"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            if self.uses_channels_last(x.shape[0]):
                x = x.contiguous(memory_format=torch.channels_last)
            else:
                x = x.contiguous()
        return self.model(x)


def _replace(root: nn.Module, name: str, new: nn.Module) -> None:
    parent = root
    *path, last = name.split(".")
    for part in path:
        parent = getattr(parent, part)
    setattr(parent, last, new)


def optimize(model: nn.Module, mode: str = "auto", *, layout: str = "auto", batch: int = 1,
             example: torch.Tensor | None = None, inplace: bool = False) -> OptimizedModel:
    """The inference form of ``model`` (a copy unless ``inplace``); outputs equal the
    eval-mode model's to float rounding, at any batch size.

    ``mode``: ``"auto"`` (the documented cost rule,
    :func:`igc.deploy.fast_chain.choose_form`, for batches of ``batch`` images at the
    model's input size, or at ``example``'s size), ``"dense"``, ``"structured"`` or
    ``"grouped"`` for every block, ``"measure"`` (time every candidate form of every
    segment on ``batch`` random images, or on ``example``, and keep the fastest), or
    ``"fold"`` (fold BatchNorm only). ``layout``: see :class:`OptimizedModel` (weights
    stay in the standard layout; convolutions follow their input's).
    """
    if mode not in MODES:
        raise IGCError(f"unknown optimize mode {mode!r}; use one of {', '.join(MODES)}")
    if isinstance(model, OptimizedModel):
        raise IGCError("this model is already optimized")
    if batch < 1:
        raise IGCError(f"batch must be positive, got {batch}")
    was_training = model.training
    sample = example if example is not None else _example(model, batch, mode == "measure")
    net = model if inplace else copy.deepcopy(model)
    net.eval()
    rechoose = mode in ("auto", "measure") and sample is not None
    if mode != "fold":
        chains = [(n, m) for n, m in net.named_modules() if isinstance(m, FactorChain)]
        for name, chain in chains:
            _replace(net, name, FastChain(chain, "auto" if mode == "measure" else mode,
                                          keep_segments=rechoose))
    fold_batchnorms(net, inplace=True)
    for p in net.parameters():
        p.requires_grad_(False)
    out = OptimizedModel(net, mode, layout).eval()
    if rechoose:
        _choose(out, sample, measure=mode == "measure",
                pixels_per_image_factor=batch if example is None else 1)
    if inplace and was_training:
        model.eval()
    return out


def _example(model: nn.Module, batch: int, required: bool) -> torch.Tensor | None:
    """One image at the model's registered input size (``None`` outside the zoo)."""
    entry = getattr(model, "igc_entry", None)
    if entry is None:
        if required:
            raise IGCError("mode 'measure' needs an example input for a model outside the zoo")
        return None
    return torch.randn(batch if required else 1, entry.in_chans, entry.input_size,
                       entry.input_size)


def _segment_inputs(model: OptimizedModel, example: torch.Tensor
                    ) -> dict[nn.Module, tuple[int, ...]]:
    seen: dict[nn.Module, tuple[int, ...]] = {}

    def record(module: nn.Module, args: tuple) -> None:
        seen.setdefault(module, tuple(args[0].shape))

    hooks = [m.register_forward_pre_hook(record)
             for m in model.modules() if getattr(m, "form", None) in SEGMENT_FORMS]
    try:
        with torch.inference_mode():
            model(example)
    finally:
        for h in hooks:
            h.remove()
    return seen


def _choose(model: OptimizedModel, example: torch.Tensor, measure: bool,
            pixels_per_image_factor: int = 1, repeats: int = 5) -> None:
    """Re-choose every segment's form for the inputs it sees when the model runs
    ``example`` (times ``pixels_per_image_factor`` images): by the cost rule with the pixel
    count known, or by timing every form (``measure``)."""
    from igc.deploy.fast_chain import choose_form

    batch = example.shape[0] * pixels_per_image_factor
    channel_major = not model.uses_channels_last(batch)
    seen = _segment_inputs(model, example)
    for chain in [m for m in model.modules() if isinstance(m, FastChain)]:
        segments = chain.__dict__.pop("segments")
        positions = [j for j, s in enumerate(chain.steps) if getattr(s, "form", None)]
        for k, (i, segment) in enumerate(zip(positions, segments)):
            step = chain.steps[i]
            if step not in seen:
                continue
            n, _, h, w = seen[step]
            old = chain.forms[k]
            if measure:
                x = torch.randn(seen[step])
                if not channel_major:
                    x = x.contiguous(memory_format=torch.channels_last)
                candidates = {f: SEGMENT_FORMS[f](segment) for f in FORMS}
                with torch.inference_mode():
                    calls = {f: (lambda c=c, x=x: c(x)) for f, c in candidates.items()}
                    timing = time_interleaved(calls, repeats=repeats, warmup=1,
                                              min_sample_s=0.001)
                best = min(timing, key=lambda f: timing[f].median)
                reason = "measured " + " ".join(f"{f}={timing[f].median * 1e6:.0f}us"
                                                for f in FORMS)
                chain.steps[i] = candidates[best]
            else:
                best, reason = choose_form(segment, n * pixels_per_image_factor * h * w,
                                           channel_major)
                if best != old.form:
                    chain.steps[i] = SEGMENT_FORMS[best](segment)
            chain.forms[k] = FormChoice(old.segment, best, reason, old.dense_macs,
                                        old.structured_macs)


@dataclass(frozen=True)
class BlockForm:
    """One row of :func:`block_forms`."""

    block: str  # the module path of the block's chain, e.g. "stages.0.1.body"
    kind: str  # the block class, e.g. "IGCV2Block"
    segment: str  # the linear segment, e.g. "1x1/g8 shuffle(8) 1x1/g8"
    form: str  # "dense" | "structured" | "grouped"
    reason: str
    dense_macs: int  # multiply-adds per pixel of each form
    structured_macs: int

    def to_dict(self) -> dict:
        return asdict(self)


def block_forms(model: nn.Module, mode: str = "auto", batch: int = 1) -> list[BlockForm]:
    """Per block of ``model`` and per linear 1x1 segment in it, the form of the inference
    form: read from an optimized model, or, for a trained model, what
    ``optimize(model, mode, batch=batch)`` chooses (the model itself is not changed).
    ``igc info`` prints it with :func:`format_block_forms`."""
    if not any(isinstance(m, FastChain) for m in model.modules()):
        if mode in ("fold", "measure"):
            raise IGCError(f"block_forms of a trained model needs a rule mode, not {mode!r}")
        if any(isinstance(m, FactorChain) for m in model.modules()):
            model = optimize(model, mode, batch=batch)
    rows: list[BlockForm] = []
    owners = {id(m.body): type(m).__name__ for m in model.modules()
              if isinstance(getattr(m, "body", None), FastChain)}
    for name, module in model.named_modules():
        if not isinstance(module, FastChain):
            continue
        kind = owners.get(id(module), type(module).__name__)
        name = name.removeprefix("model.")
        for f in module.forms:
            rows.append(BlockForm(name, kind, f.segment, f.form, f.reason, f.dense_macs,
                                  f.structured_macs))
    return rows


def format_block_forms(rows: list[BlockForm]) -> str:
    """A plain-text table of :func:`block_forms` (what ``igc info`` prints)."""
    if not rows:
        return "no IGC blocks"
    width = max(len(r.block) for r in rows)
    lines = [f"{'block':<{width}}  {'form':<10}  {'dense/struct MACs':>17}  segment; reason"]
    for r in rows:
        lines.append(f"{r.block:<{width}}  {r.form:<10}  "
                     f"{r.dense_macs / max(r.structured_macs, 1):>17.2f}  "
                     f"{r.segment}; {r.reason}")
    return "\n".join(lines)


__all__ = ["LAYOUTS", "MODES", "BlockForm", "OptimizedModel", "block_forms", "format_block_forms",
           "optimize"]
