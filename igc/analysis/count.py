"""Parameters and multiply-adds of built modules, whole networks and block by block.

Multiply-adds (MACs; the papers' "FLOPs") come from :class:`torch.utils.flop_counter.
FlopCounterMode`, which reports ``2 x MACs`` for convolutions and matrix products; every
count here is halved. Counting runs one forward pass of a batch of one image in eval mode
under ``no_grad``; :func:`count_macs` can also sum the hand formula of every convolution
over a plain forward pass (``method="hooks"``), which equals FlopCounterMode on every network
of the zoo and is several times faster on deep ones.

:func:`paper_counts` counts a registered network the way the paper's table does, so that
it can stand beside the paper's number:

* CIFAR / Tiny ImageNet networks (Tables 3, 4, 6, 7): the weights of the convolutions only
  (no BatchNorm, no classifier: the paper prints the same numbers for its CIFAR-100 and
  Tiny ImageNet networks, and these counts reproduce its Xception and IGCV1 rows to 0.5 %);
  multiply-adds of the whole network at its input size.
* 8-layer networks (Tables 2, 5, ``scope = "block"``): the weights of ONE block and its
  multiply-adds on a 32x32 map (:func:`paper_block_counts`).
* ImageNet networks (Tables 9, 11): every parameter (BN and biases included, the usual
  convention, e.g. pytorchcv) and the multiply-adds of convolutions and the classifier.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from igc.errors import IGCError
from igc.layers import IGCBlock
from igc.models.net import GroupClassifier, IGCNet
from igc.models.paper import paper_reference
from igc.models.registry import create_model, model_entry
from igc.models.residual import ResidualUnit

__all__ = [
    "BlockCount", "count_macs", "count_params", "paper_block_counts", "paper_counts",
    "per_block_counts",
]


def count_params(model: nn.Module, weights_only: bool = False) -> int:
    """All parameters, or with ``weights_only`` only the layer weights.

    ``weights_only`` counts the weights of convolutions and linear layers (no BatchNorm, no
    biases)."""
    if not weights_only:
        return sum(p.numel() for p in model.parameters())
    return sum(m.weight.numel() for m in model.modules()
               if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)))


def _input(model: nn.Module, input_size: int | tuple[int, int], in_chans: int) -> torch.Tensor:
    h, w = (input_size, input_size) if isinstance(input_size, int) else input_size
    p = next(model.parameters(), None)
    return torch.zeros(1, in_chans, h, w, device=None if p is None else p.device,
                       dtype=None if p is None else p.dtype)


@contextmanager
def _evaluating(model: nn.Module) -> Iterator[None]:
    """Eval mode and no autograd for one counting pass; the model's modes are restored."""
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for m, mode in modes.items():
            m.training = mode


def _conv_macs(module: nn.Module, output: torch.Tensor) -> int:
    """The hand formula: ``output elements x in/groups x kernel area`` (conv), ``output
    elements x in_features`` (linear)."""
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    return (output.numel() * (module.in_channels // module.groups)
            * math.prod(module.kernel_size))


def count_macs(model: nn.Module, input_size: int | tuple[int, int], in_chans: int = 3,
               method: str = "flop_counter") -> int:
    """Multiply-adds of one forward pass on one ``in_chans x H x W`` image.

    The pass runs in eval mode under ``no_grad`` (the model's modes are restored afterwards).
    ``method="flop_counter"`` uses :class:`FlopCounterMode` (the reference);
    ``method="hooks"`` sums the hand formula of every convolution and linear layer over
    one plain forward pass, which is much faster on deep networks (FlopCounterMode's module
    tracking dominates there) and equals it on every network of the zoo (the tests check)."""
    x = _input(model, input_size, in_chans)
    if method == "flop_counter":
        with _evaluating(model), FlopCounterMode(display=False) as counter:
            model(x)
        return counter.get_total_flops() // 2
    if method != "hooks":
        raise IGCError(f"unknown counting method {method!r}; use 'flop_counter' or 'hooks'")
    total = [0]

    def hook(module: nn.Module, _args: object, output: torch.Tensor) -> None:
        total[0] += _conv_macs(module, output)

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with _evaluating(model):
            model(x)
    finally:
        for h in handles:
            h.remove()
    return total[0]


@dataclass
class BlockCount:
    """One row of a network's layout, as in the paper's Tables 8 and 10."""

    stage: int
    index: int
    type: str
    in_channels: int | None
    out_channels: int | None
    stride: int | None
    branch_sizes: tuple[int, ...] | None
    groups: tuple[int, ...] | None
    condition: str | None
    min_paths: int | None
    max_paths: int | None
    params: int
    macs: int
    name: str = ""

    def to_dict(self) -> dict:
        """This row as a JSON-ready dict (``igc info --json``)."""
        return asdict(self)


def _rows(model: nn.Module) -> Iterator[tuple[int, str, nn.Module]]:
    """``(stage, module name, module)`` for the stem, every block and projection shortcut,
    the final convolution and the classifier; for a model that is not an
    :class:`~igc.models.net.IGCNet`, every :class:`IGCBlock` (stage 0) and the remainder."""
    if isinstance(model, IGCNet):
        yield 0, "stem", model.stem
        for s, stage in enumerate(model.stages, 1):
            for name, module in stage.named_modules(prefix=f"stages.{s - 1}"):
                if isinstance(module, IGCBlock):
                    yield s, name, module
                elif isinstance(module, ResidualUnit) and count_params(module.shortcut):
                    yield s, f"{name}.shortcut", module.shortcut
        last = len(model.stages) + 1
        if model.final_conv is not None:
            yield last, "final_conv", model.final_conv
        yield last, "classifier", model.classifier
    else:
        for name, module in model.named_modules():
            if isinstance(module, IGCBlock):
                yield 0, name, module


def _describe(module: nn.Module, name: str) -> dict:
    if isinstance(module, IGCBlock):
        product = module.product
        c = product.connectivity
        return dict(type=type(module).__name__, in_channels=product.in_channels,
                    out_channels=product.out_channels, stride=module.stride,
                    branch_sizes=product.branch_sizes,
                    groups=tuple(f.groups for f in product.factors),
                    condition=c.condition, min_paths=c.min_paths, max_paths=c.max_paths)
    convs = [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    if isinstance(module, GroupClassifier):  # itself the last factor, after its ``pre``
        convs = [*convs[1:], module]
    kind = name.rsplit(".", 1)[-1]
    info: dict = dict(type=kind, in_channels=None, out_channels=None, stride=None,
                      branch_sizes=None, groups=None, condition=None, min_paths=None,
                      max_paths=None)
    if convs:
        first, last = convs[0], convs[-1]
        info["in_channels"] = getattr(first, "in_channels", getattr(first, "in_features", None))
        info["out_channels"] = getattr(last, "out_channels",
                                       getattr(last, "out_features", None))
        info["stride"] = getattr(first, "stride", (1,))[0]
        info["groups"] = tuple(getattr(m, "groups", 1) for m in convs)
        info["type"] = f"{kind}: " + " + ".join(
            f"conv{m.kernel_size[0]}x{m.kernel_size[1]}" if isinstance(m, nn.Conv2d) else "fc"
            for m in convs)
    return info


def per_block_counts(model: nn.Module, input_size: int | tuple[int, int],
                     in_chans: int = 3) -> list[BlockCount]:
    """One :class:`BlockCount` per row of a network's layout (Tables 8 and 10).

    Rows are the stem, every block, projection shortcut, final convolution and classifier,
    each with its parameters and the multiply-adds it performed in one forward pass (one
    :class:`FlopCounterMode` pass with forward hooks on the rows). For an
    :class:`~igc.models.net.IGCNet` the rows' counts add up to the network's."""
    rows = list(_rows(model))
    macs: dict[int, int] = {}
    handles = []
    x = _input(model, input_size, in_chans)
    with _evaluating(model), FlopCounterMode(display=False) as counter:
        for i, (_, _, module) in enumerate(rows):
            def pre(_m, _a, i=i):
                macs[i] = -counter.get_total_flops()

            def post(_m, _a, _o, i=i):
                macs[i] += counter.get_total_flops()

            handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
        try:
            model(x)
        finally:
            for h in handles:
                h.remove()
    out, index = [], {}
    for i, (stage, name, module) in enumerate(rows):
        index[stage] = index.get(stage, 0) + 1
        out.append(BlockCount(stage=stage, index=index[stage], params=count_params(module),
                              macs=macs.get(i, 0) // 2, name=name,
                              **_describe(module, name)))
    return out


def paper_block_counts(block: nn.Module, size: int = 32,
                       method: str = "flop_counter") -> tuple[int, int]:
    """``(weights, MACs)`` of one block, counted the way Tables 2 and 5 count it.

    The weights of its convolutions (no BN) and its multiply-adds on a ``size x size`` map."""
    in_ch = block.in_channels if isinstance(block, IGCBlock) else next(
        m for m in block.modules() if isinstance(m, nn.Conv2d)).in_channels
    return count_params(block, weights_only=True), count_macs(block, size, in_ch, method)


def _classifier_weights(model: nn.Module) -> int:
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))


def paper_counts(name: str, model: nn.Module | None = None,
                 method: str = "flop_counter") -> dict:
    """Our counts of the registered network ``name`` beside the paper's.

    Counted the way the paper's table counts (see the module docstring). Keys: ``params``,
    ``macs`` (the whole network as built), ``params_counted``, ``macs_counted`` (the
    paper's way), ``paper_params``, ``paper_macs``, ``params_diff``, ``macs_diff``
    (fractions, or ``None``), ``scope`` and ``convention``. ``method`` as in
    :func:`count_macs`."""
    entry = model_entry(name)
    if model is None:
        model = create_model(name)
    params = count_params(model)
    macs = count_macs(model, entry.input_size, entry.in_chans, method)
    name = entry.name  # an alias counts as its canonical network
    ref = paper_reference(name) or {}
    scope = ref.get("scope", "network")
    if scope == "block":
        block = next(m for m in model.modules() if isinstance(m, IGCBlock))
        counted_params, counted_macs = paper_block_counts(block, 32, method)
        convention = "one block: conv weights, MACs at 32x32"
    elif entry.dataset == "imagenet":
        counted_params, counted_macs = params, macs
        convention = "all parameters; conv + FC MACs"
    else:
        counted_params = count_params(model, weights_only=True) - _classifier_weights(model)
        counted_macs = macs
        convention = "conv weights (no BN, no classifier); network MACs"

    def diff(ours: int, paper: int | None) -> float | None:
        return None if not paper else ours / paper - 1

    return dict(name=name, params=params, macs=macs, params_counted=counted_params,
                macs_counted=counted_macs, paper_params=ref.get("params"),
                paper_macs=ref.get("macs"),
                params_diff=diff(counted_params, ref.get("params")),
                macs_diff=diff(counted_macs, ref.get("macs")), scope=scope,
                convention=convention, paper_table=ref.get("table"),
                paper_approx=bool(ref.get("approx", False)))
