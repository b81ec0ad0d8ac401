"""The inference form of a :class:`~igc.layers.FactorChain`, in exact steps.

A trained chain runs ``conv -> BN -> [act] -> [shuffle]`` per factor. Its inference form:

1. :mod:`~igc.deploy.chain.ops` **lowers** it to a list of operations (BatchNorm folded
   into the convolution before it; any elementwise activation; channel permutations);
2. :mod:`~igc.deploy.chain.permute` **deletes the shuffles by algebra** (a permutation
   commutes with elementwise activations and depthwise convolutions, and is free at the
   end of a linear 1x1 segment or absorbed by a dense convolution);
3. :mod:`~igc.deploy.chain.segments` groups the 1x1 factors into **linear segments**;
4. :mod:`~igc.deploy.chain.cost` **chooses a form** per segment (``dense``: multiplied
   out; ``structured``: batched products over the mixed-radix channel layout, shuffles as
   strided views; ``grouped``: grouped convolutions and shuffles, BN folded) by a roofline
   with machine constants that :mod:`~igc.deploy.chain.calibrate` can measure;
5. :mod:`~igc.deploy.chain.modules` holds the **executable modules** and
   :mod:`~igc.deploy.chain.fast_chain` puts it together as :class:`FastChain`.

The native forms: :mod:`~igc.deploy.chain.fused` (a whole block in one kernel call), and
outside the blocks :mod:`~igc.deploy.chain.pointwise` (a 1x1 convolution and its
activation), :mod:`~igc.deploy.chain.stem` (the network's first convolution, reading the
NCHW image) and :mod:`~igc.deploy.chain.head` (the global average pool and the
classifier); between fused blocks, :mod:`~igc.deploy.chain.handover` moves a block's
trailing permutation into the next block and pads the maps of whole-KiB widths, and
:mod:`~igc.deploy.chain.run` runs consecutive fused blocks with large maps between them
(and the stem) as one kernel call.
"""

from igc.deploy.chain.cost import BUILTIN, CostModel, calibration_path, cost_model
from igc.deploy.chain.fast_chain import (
    CHAIN_MODES,
    Context,
    FastChain,
    FormChoice,
    build_steps,
)
from igc.deploy.chain.modules import FORMS, SEGMENT_FORMS
from igc.deploy.chain.ops import (
    ActOp,
    ConvOp,
    LoweringError,
    PermOp,
    elementwise,
    lower,
    run_ops,
    shuffle_groups,
)
from igc.deploy.chain.permute import move_permutations
from igc.deploy.chain.segments import Segment, split_segments


def choose_form(segment: Segment, pixels: int | None = None, channel_major: bool = False,
                cost: CostModel | None = None) -> tuple[str, str]:
    """``(form, reason)`` for a segment by the cost rule (:meth:`CostModel.choose`) of
    ``cost`` (default: the CPU's, calibrated or built in)."""
    return (cost or cost_model("cpu")).choose(segment, pixels, channel_major)


__all__ = [
    "BUILTIN", "CHAIN_MODES", "FORMS", "SEGMENT_FORMS", "ActOp", "Context", "ConvOp",
    "CostModel", "FastChain", "FormChoice", "LoweringError", "PermOp", "Segment",
    "build_steps", "calibration_path", "choose_form", "cost_model", "elementwise", "lower",
    "move_permutations", "run_ops", "shuffle_groups", "split_segments",
]
