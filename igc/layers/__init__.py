"""PyTorch modules: the factor chain, the channel shuffle and the IGC block family."""

from igc.layers.blocks import (
    DeepRootsBlock,
    IGCBlock,
    IGCV1Block,
    IGCV2Block,
    IGCV3Block,
    MobileNetV2Block,
    XceptionBlock,
    groups_from_branch_sizes,
    pointwise_factors,
)
from igc.layers.chain import FactorChain, make_activation
from igc.layers.shuffle import ChannelShuffle, channel_shuffle

__all__ = [
    "ChannelShuffle", "DeepRootsBlock", "FactorChain", "IGCBlock", "IGCV1Block", "IGCV2Block",
    "IGCV3Block", "MobileNetV2Block", "XceptionBlock", "channel_shuffle",
    "groups_from_branch_sizes", "make_activation", "pointwise_factors",
]
