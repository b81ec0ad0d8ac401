"""The CIFAR / Tiny ImageNet networks of the IGCV2 paper (Table 1) and the 8-layer networks
without down-sampling (Tables 2 and 5, Figures 2 and 3).

Depth ``D = 3B + 2``: a 3x3 stem convolution, three stages of ``B`` blocks at widths
``x, 2x, 4x`` (stride 2 on the first block of stages 2 and 3), a skip connection every two
blocks, global average pooling and a fully connected classifier. The networks are described
declaratively: a :class:`CifarConfig` says which block, which widths and which branch sizes;
:meth:`CifarConfig.stages` turns it into one :class:`StageSpec` per row of Table 1 and
:class:`IGCNet` builds the modules from those rows. Nothing is special-cased per network.

Choices the paper leaves open, each made in one place (``docs/zoo.md`` shows what they give):

* **Residual unit** (:class:`~igc.models.residual.ResidualUnit`): two blocks and a shortcut
  in ResNet's post-activation form, as in the official IGCV1 code: the second block is
  built without its final ReLU, which follows the addition.
* **Width changes** (:func:`block_branch_sizes`, :attr:`BlockFamily.design`): the first
  block of stages 2 and 3 (and IGCV2*'s first block, whose stem has 64 channels) carries
  the stride in its 3x3 on the *input* width and widens in one factor: Xception in its
  dense 1x1; IGCV1 in its primary group 3x3 (the official code's fixed ``L`` partitions);
  IGCV2 and IGCV2* in the last group 1x1, keeping the factors of the input width, as the
  paper does for its ImageNet network.
* **Shortcut on a width or resolution change** (:func:`~igc.models.residual.make_shortcut`):
  on a stage transition a 1x1 convolution with the grouping of the block's widening
  convolution, stride 2, then BN (for Xception ResNet's dense projection, option B; for
  IGCV1 the official code's group projection with ``L`` branches); after a stem narrower
  than the first stage (Xception C58-C83, IGCV2*) zero channels appended (option A), the
  only reading that fits Table 3's counts.
* **Final permutation** ``P_L`` (eqs. 2 and 4): kept in IGCV1 and IGCV2 blocks, so a
  residual unit adds each output channel to the input channel of the same digits
  (``CifarConfig.shuffle_last``).
* **Branch sizes**: IGCV2's ``K_s`` (8/16/32 for C64, 10/16/20 for C80) is the branch size
  of *both* group 1x1 convolutions of stage ``s`` (the only reading whose per-block cost
  reproduces the paper's increments between depths); IGCV1 (Cx) is the official
  IGC-L{x/2}M2: ``x/2`` primary partitions in every stage (``M`` = 2, 4, 8).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from torch import nn

from igc.errors import IGCError, unknown_name
from igc.layers import IGCBlock, IGCV1Block, IGCV2Block, XceptionBlock
from igc.layers.chain import ActLayer, NormLayer
from igc.models.net import IGCNet, conv_norm_act
from igc.models.residual import ResidualUnit, make_shortcut

__all__ = [
    "BLOCKS", "BlockFamily", "CifarConfig", "IGCNet", "ResidualUnit", "StageSpec", "cifar_net",
    "eight_layer_net", "igcv2star_layers", "make_shortcut",
]


# ---------------------------------------------------------------------------------------
# Blocks by name
# ---------------------------------------------------------------------------------------

Sizes = tuple[int, ...]


def _xception(in_channels: int, out_channels: int, stride: int, sizes: Sizes | None,
              shuffle_last: bool = True, **kwargs: object) -> IGCBlock:
    """``shuffle_last`` is ignored: after the dense 1x1, ``P_L`` is the identity."""
    if sizes:
        raise IGCError("an Xception block has no branch sizes (its 1x1 is dense)")
    return XceptionBlock(in_channels, out_channels, stride, **kwargs)


def _igcv1(in_channels: int, out_channels: int, stride: int, sizes: Sizes | None,
           **kwargs: object) -> IGCBlock:
    """``sizes = (M, L)``: ``M`` channels per branch of the primary group 3x3 (output side)
    and ``L`` channels per branch of the secondary group 1x1 (so ``out / L`` branches)."""
    primary, secondary = sizes or (2, out_channels // 2)
    if out_channels % secondary or out_channels % primary:
        raise IGCError(f"IGCV1 branch sizes {sizes} do not divide the width {out_channels}")
    return IGCV1Block(in_channels, out_channels, stride, primary_branch=primary,
                      secondary_groups=out_channels // secondary, **kwargs)


def _igcv2(in_channels: int, out_channels: int, stride: int, sizes: Sizes | None,
           **kwargs: object) -> IGCBlock:
    if not sizes:
        raise IGCError("an IGCV2 block needs the branch sizes of its group 1x1 convolutions")
    return IGCV2Block(in_channels, out_channels, stride, branch_sizes=sizes, **kwargs)


@dataclass(frozen=True)
class BlockFamily:
    """How a block name of Table 1 is built.

    ``factory(in_channels, out_channels, stride, sizes, **kwargs)`` builds one block.
    ``design`` says which width a block that changes width is designed for: ``"input"``
    (IGCV2, IGCV2*: the factors are those of the narrower input, the last 1x1 widens, as
    the paper's ImageNet network does) or ``"output"`` (IGCV1: the primary group 3x3 widens
    and keeps the official code's fixed number of primary partitions).
    ``default_sizes(x, stage, width)`` gives the branch sizes of a stage when the user gives
    none.
    """

    factory: Callable[..., IGCBlock]
    design: str = "input"
    default_sizes: Callable[[int, int, int], Sizes | None] = lambda x, s, w: None


def _igcv1_sizes(x: int, stage: int, width: int) -> Sizes:
    # Official IGCV1 (IGC-L{x/2}M2): L = x/2 primary partitions in every stage, each of
    # M = width / L channels (2, 4, 8); the secondary convolution has M branches of L.
    if x % 2:
        raise IGCError(f"IGCV1 needs an even first-stage width, got {x}")
    return (width // (x // 2), x // 2)


def _igcv2_sizes(x: int, stage: int, width: int) -> Sizes:
    raise IGCError("IGCV2 needs branch_sizes, e.g. ((8, 8), (16, 16), (32, 32)) for C64")


#: Block name -> :class:`BlockFamily`.
BLOCKS: dict[str, BlockFamily] = {
    "xception": BlockFamily(_xception, "output"),
    "igcv1": BlockFamily(_igcv1, "output", _igcv1_sizes),
    "igcv2": BlockFamily(_igcv2, "input", _igcv2_sizes),
    "igcv2star": BlockFamily(_igcv2, "input"),  # sizes from K and L* (CifarConfig)
}


def igcv2star_layers(width: int, k: int = 8) -> int:
    """``L* = ceil(log_K(C)) + 1`` (Table 1), computed exactly in integers. The zoo applies
    it to each stage's width ``C`` (x, 2x, 4x), which reproduces Table 3 within 3 %; with
    the first-stage width throughout, the parameters fall 8-14 % short."""
    if width < 1 or k < 2:
        raise IGCError(f"IGCV2* needs a width >= 1 and K >= 2, got {width}, {k}")
    n = 0
    while k**n < width:
        n += 1
    return max(n, 1) + 1


# ---------------------------------------------------------------------------------------
# Declarative configuration
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StageSpec:
    """One row of Table 1: ``blocks`` blocks of ``block`` at ``width`` channels, the first
    one with ``stride``; ``branch_sizes`` are the block's sizes at this width."""

    width: int
    blocks: int
    stride: int
    block: str
    branch_sizes: Sizes | None = None


@dataclass(frozen=True)
class CifarConfig:
    """A network of Table 1 (or an 8-layer network), as data.

    ``branch_sizes`` is one tuple for every stage or one tuple per stage; ``None`` takes the
    family's default (IGCV1: ``x/2`` primary partitions in every stage, as the official
    IGC-L{x/2}M2; IGCV2*: ``L*_s - 1`` factors of ``K`` with ``L*_s`` from the stage's
    width). ``stem_width`` defaults to the first-stage width (64 for
    IGCV2*; the zoo's Xception rows fix it at 35, section 4.3). ``down_sampling=False``
    keeps every stage at ``width`` and stride 1. ``shuffle_last`` keeps the final
    permutation ``P_L`` of eqs. 2 and 4 in IGCV1 and IGCV2 blocks (``False``: the zoo's
    networks before it was added, for old checkpoints and ablations).
    """

    block: str
    width: int
    depth: int
    branch_sizes: Sizes | tuple[Sizes, ...] | None = None
    stem_width: int | None = None
    stem_stride: int = 1
    skip: str = "every-two"
    down_sampling: bool = True
    k: int = 8
    block_kwargs: dict = field(default_factory=dict)
    shuffle_last: bool = True

    def __post_init__(self) -> None:
        if self.block not in BLOCKS:
            raise unknown_name("block", self.block, BLOCKS)
        if self.width < 1:
            raise IGCError(f"width must be positive, got {self.width}")
        if self.depth < 5 or (self.depth - 2) % 3:
            raise IGCError(f"depth must be 3B + 2 with B >= 1 (5, 8, 11, ...), got {self.depth}")
        if self.skip not in ("every-two", "none"):
            raise IGCError(f"skip must be 'every-two' or 'none', got {self.skip!r}")
        if self.stem_stride not in (1, 2):
            raise IGCError(f"stem stride must be 1 or 2, got {self.stem_stride}")

    @property
    def blocks_per_stage(self) -> int:
        return (self.depth - 2) // 3

    @property
    def stem_channels(self) -> int:
        if self.stem_width is not None:
            return self.stem_width
        return 64 if self.block == "igcv2star" else self.width

    def stage_widths(self) -> tuple[int, int, int]:
        x = self.width
        return (x, x, x) if not self.down_sampling else (x, 2 * x, 4 * x)

    def _sizes(self, stage: int, width: int) -> Sizes | None:
        sizes = self.branch_sizes
        if sizes is None:
            if self.block == "igcv2star":
                return (self.k,) * (igcv2star_layers(width, self.k) - 1)
            return BLOCKS[self.block].default_sizes(self.width, stage, width)
        if sizes and isinstance(sizes[0], Sequence):
            if len(sizes) != 3:
                raise IGCError(f"give one tuple of branch sizes per stage (3), got {sizes}")
            return tuple(sizes[stage])
        return tuple(sizes)  # type: ignore[arg-type]

    def stages(self) -> list[StageSpec]:
        """The three stage rows of Table 1."""
        b = self.blocks_per_stage
        return [
            StageSpec(w, b, 2 if (self.down_sampling and s > 0) else 1, self.block,
                      self._sizes(s, w))
            for s, w in enumerate(self.stage_widths())
        ]


def block_branch_sizes(stages: Sequence[StageSpec], stage: int, in_channels: int) -> Sizes | None:
    """The branch sizes of a block of ``stage`` whose input width is ``in_channels``: THE one
    place where width changes are decided. A family designed on the input width takes the
    sizes of the stage whose width is ``in_channels`` (the previous stage for a transition block);
    one designed on the output width takes its own stage's."""
    spec = stages[stage]
    if BLOCKS[spec.block].design == "input" and in_channels != spec.width:
        for other in stages[:stage][::-1]:
            if other.width == in_channels:
                return other.branch_sizes
    return spec.branch_sizes


# ---------------------------------------------------------------------------------------
# Modules
# ---------------------------------------------------------------------------------------


def build_cifar(config: CifarConfig, num_classes: int = 10, in_chans: int = 3,
                norm_layer: NormLayer | None = None, act_layer: ActLayer | None = None) -> IGCNet:
    """Modules for ``config``: each stage's blocks, paired into residual units."""
    specs = config.stages()
    width = config.stem_channels
    stem = conv_norm_act(in_chans, width, 3, config.stem_stride, "relu", norm_layer, act_layer)
    layers = dict(norm_layer=norm_layer, act_layer=act_layer)
    paired = config.skip == "every-two"
    stages = []
    for s, spec in enumerate(specs):
        blocks = []
        for i in range(spec.blocks):
            stride = spec.stride if i == 0 else 1
            sizes = block_branch_sizes(specs, s, width)
            ends_unit = paired and i % 2 == 1  # its ReLU follows the unit's addition
            block = BLOCKS[spec.block].factory(width, spec.width, stride, sizes,
                                               shuffle_last=config.shuffle_last,
                                               final_act=not ends_unit, **layers,
                                               **config.block_kwargs)
            blocks.append(block)
            width = spec.width
        if paired:
            units = []
            for i in range(0, len(blocks) - 1, 2):
                pair = blocks[i : i + 2]
                shortcut = make_shortcut(pair[0], pair[-1].out_channels, norm_layer)
                units.append(ResidualUnit(pair, shortcut, act_layer))
            if len(blocks) % 2:
                units.append(blocks[-1])
        else:
            units = blocks
        stages.append(nn.Sequential(*units))
    return IGCNet(stem, stages, num_classes, config=config, norm_layer=norm_layer)


def cifar_net(block: str, width: int, depth: int, *, branch_sizes: Sizes | tuple[Sizes, ...]
              | None = None, num_classes: int = 10, in_chans: int = 3, stem_stride: int = 1,
              stem_width: int | None = None, skip: str = "every-two",
              down_sampling: bool = True, k: int = 8, shuffle_last: bool = True,
              norm_layer: NormLayer | None = None, act_layer: ActLayer | None = None,
              **block_kwargs: object) -> IGCNet:
    """A network of Table 1: ``block`` in ``xception``, ``igcv1``, ``igcv2``, ``igcv2star``;
    ``width`` the first-stage width ``x``; ``depth = 3B + 2``.

    Any input size works (global average pooling); e.g. Fashion-MNIST:
    ``cifar_net("igcv2star", 32, 8, in_chans=1)``. ``branch_sizes``: IGCV2 the 1x1 branch
    sizes ``(K_2, ..., K_L)``; IGCV1 ``(primary, secondary)`` channels per branch; one tuple
    for all stages or one per stage. ``stem_stride=2`` is the Tiny ImageNet variant.
    ``norm_layer`` / ``act_layer`` replace BatchNorm / ReLU everywhere (e.g.
    ``functools.partial(nn.GroupNorm, 8)``, ``nn.SiLU``); see :class:`CifarConfig` for the
    rest. ``num_classes=0`` builds the network without a classifier.
    """
    config = CifarConfig(block, width, depth, _freeze(branch_sizes), stem_width, stem_stride,
                         skip, down_sampling, k, dict(block_kwargs), shuffle_last)
    return build_cifar(config, num_classes, in_chans, norm_layer, act_layer)


def _freeze(sizes: object) -> Sizes | tuple[Sizes, ...] | None:
    if sizes is None:
        return None
    sizes = tuple(sizes)  # type: ignore[arg-type]
    if sizes and isinstance(sizes[0], Sequence):
        return tuple(tuple(int(k) for k in s) for s in sizes)
    return tuple(int(k) for k in sizes)


def eight_layer_net(block: str, width: int, branch_sizes: Sizes | None = None, *,
                    layers: int | None = None, k: int | None = None, num_classes: int = 10,
                    in_chans: int = 3, skip: str = "none", **block_kwargs: object) -> IGCNet:
    """The 8-layer network without down-sampling (Tables 2, 5; Figures 2, 3): a 3x3 stem,
    six blocks at ``width`` and 32x32, pooling and FC.

    For IGCV2 give the 1x1 branch sizes directly (``branch_sizes=(12, 12)``) or as
    ``layers=L`` and ``k=K`` (``L - 1`` group 1x1 convolutions of branch size ``K``), or
    ``layers`` alone for the balance condition ``K = round(width ** (1 / (L - 1)))``
    (Figure 3). ``spatial_branch=2`` gives a group 3x3 with branches of 2 (IGCV2-I).
    """
    if layers is not None:
        if layers < 2:
            raise IGCError(f"an IGCV2 block needs L >= 2 factors, got {layers}")
        if k is None:
            k = round(width ** (1 / (layers - 1)))
        branch_sizes = (k,) * (layers - 1)
    elif k is not None:
        raise IGCError("give k together with layers (L)")
    if block == "igcv2i":  # Table 5's IGCV2-I: a group 3x3 with branches of 2 channels
        block_kwargs.setdefault("spatial_branch", 2)
    net_block = "igcv2" if block in ("igcv2i", "igcv2ii") else block
    return cifar_net(net_block, width, 8, branch_sizes=branch_sizes, num_classes=num_classes,
                     in_chans=in_chans, down_sampling=False, skip=skip, **block_kwargs)
