"""Names in the public API (issue 14): one spelling for channel counts, old keywords kept.

Networks and inputs say ``in_chans`` (as timm), layers and blocks ``in_channels`` /
``out_channels`` (as ``nn.Conv2d``); no public signature of igc spells them otherwise,
and the blocks still take the keywords ``in_ch`` / ``out_ch`` of earlier versions.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import igc
from igc.layers import IGCV1Block, IGCV2Block, IGCV3Block, MobileNetV2Block, XceptionBlock

ROOT = Path(igc.__file__).resolve().parent
#: Spellings of a channel count that public signatures must not use.
OTHER_SPELLINGS = {"in_ch", "out_ch", "c_in", "c_out", "input_channels", "output_channels",
                   "num_input_channels", "in_chan", "inchans", "in_chs"}


def public_parameters():
    for path in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef) and (node.name == "__init__"
                                                      or not node.name.startswith("_")):
                for arg in (*node.args.args, *node.args.kwonlyargs):
                    yield f"{path.relative_to(ROOT)}:{node.lineno} {node.name}", arg.arg


def test_one_spelling_for_channel_counts():
    found = [f"{where}({name})" for where, name in public_parameters() if name in OTHER_SPELLINGS]
    assert not found, "\n".join(found)
    names = {name for _, name in public_parameters()}
    assert {"in_chans", "in_channels", "out_channels"} <= names


@pytest.mark.parametrize("block, extra", [
    (XceptionBlock, {}), (IGCV1Block, {}), (IGCV2Block, {"branch_sizes": (4, 4)}),
    (IGCV3Block, {"expansion": 2}), (MobileNetV2Block, {"expansion": 2}),
])
def test_blocks_keep_the_old_channel_keywords(block, extra):
    new = block(in_channels=16, out_channels=16, **extra)
    old = block(in_ch=16, out_ch=16, **extra)
    assert (new.in_channels, new.out_channels) == (old.in_channels, old.out_channels) == (16, 16)
    assert [p.shape for p in new.parameters()] == [p.shape for p in old.parameters()]
    with pytest.raises(TypeError, match="not both"):
        block(16, in_ch=16, in_channels=16, out_channels=16, **extra)
