"""Checkpoints in the zoo's old layout (one ``head`` Sequential per family) load into
today's networks and compute the same outputs."""

from __future__ import annotations

import io
from collections import OrderedDict

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from igc.errors import IGCError
from igc.models.convert import is_legacy_state_dict, remap_legacy_state_dict
from igc.models.registry import create_model
from igc.train.checkpoint import load_model_weights

#: Today's key prefixes -> the prefixes main wrote before the uniform head (its layouts,
#: typed from its state dicts, not computed by the code under test).
OLD_NAMES = {
    "cifar": {"classifier.": "head.2."},
    "mobilenetv1": {"classifier.": "head.1.1."},
    "igcv2": {"classifier.weight": "head.1.block.body.factors.0.conv.weight",
              "classifier.bias": "head.1.bias"},
    # the IGCV2 classifier before it took timm's key classifier.weight (today's files)
    "igcv2-chain": {"classifier.weight": "classifier.block.body.factors.0.conv.weight"},
    "inverted": {"final_conv.0.": "head.0.", "final_conv.1.": "head.1.",
                 "classifier.": "head.5."},
}
_BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
#: The last keys of main's state dicts per layout, as main wrote them.
OLD_TAILS = {
    "cifar": ["head.2.weight", "head.2.bias"],
    "mobilenetv1": ["head.1.1.weight", "head.1.1.bias"],
    "igcv2": ["head.1.bias", "head.1.block.body.factors.0.conv.weight"],
    "igcv2-chain": ["classifier.bias", "classifier.block.body.factors.0.conv.weight"],
    "inverted": ["head.0.weight", *(f"head.1.{k}" for k in _BN), "head.5.weight",
                 "head.5.bias"],
}
CASES = [  # (name, builder options, old layout); these networks compute as they did
    ("igcv2_fmnist", {"shuffle_last": False}, "cifar"),
    ("igcv1_c48_d8", {"shuffle_last": False}, "cifar"),
    ("xception_c35_d8", {}, "cifar"),
    ("xception_8l_c64", {}, "cifar"),
    ("mobilenetv1_025", {}, "mobilenetv1"),
    ("igcv2_025", {}, "igcv2"),
    ("igcv2_050", {}, "igcv2-chain"),
    ("igcv3_070", {}, "inverted"),
    ("mobilenetv2_070", {}, "inverted"),
]


def randomize(model: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2)
                m.weight.normal_(1, 0.1)
                m.bias.normal_(0, 0.1)
    return model.eval()


def old_layout(state: dict, layout: str) -> OrderedDict:
    renames = OLD_NAMES[layout]
    old = OrderedDict()
    for key, value in state.items():
        prefix = next((p for p in sorted(renames, key=len, reverse=True)
                       if key.startswith(p)), None)
        old[key if prefix is None else renames[prefix] + key[len(prefix):]] = value
    return old


@pytest.mark.parametrize("name, options, layout", CASES)
def test_old_checkpoints_load_with_identical_outputs(name, options, layout):
    torch.manual_seed(1)
    trained = randomize(create_model(name, **options))
    old = old_layout(trained.state_dict(), layout)
    # the head layouts predate P_L (checked on load); the classifier chain alone does not
    assert is_legacy_state_dict(old) == (layout != "igcv2-chain")
    assert not is_legacy_state_dict(trained.state_dict())
    buffer = io.BytesIO()
    torch.save(old, buffer)  # as a checkpoint file holds it
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    fresh = create_model(name, **options).eval()
    load_model_weights(fresh, {"state_dict": loaded, "path": "old.pt"}, name)
    chans, side, _ = fresh.pretrained_cfg["input_size"]
    x = torch.randn(2, chans, min(side, 32), min(side, 32))
    with torch.no_grad():
        assert torch.equal(fresh(x), trained(x))
    # main's state dicts ended in exactly these keys, in this order (so the parameters keep
    # their order and an optimizer state saved with them still fits)
    assert list(old)[-len(OLD_TAILS[layout]):] == OLD_TAILS[layout]


def test_remap_leaves_todays_layout_alone():
    state = create_model("igcv2_fmnist").state_dict()
    assert remap_legacy_state_dict(state) is state


def test_old_checkpoint_of_a_block_that_gained_p_l_is_refused():
    old = old_layout(create_model("igcv2_fmnist", shuffle_last=False).state_dict(), "cifar")
    with pytest.raises(IGCError, match="shuffle_last=False"):
        load_model_weights(create_model("igcv2_fmnist"), {"state_dict": old}, "igcv2_fmnist")
    assert "classifier.weight" in remap_legacy_state_dict(old)  # without the model: renamed


def test_foreign_head_keys_are_one_line_errors():
    with pytest.raises(IGCError, match="no known igc"):
        remap_legacy_state_dict({"head.7.weight": torch.zeros(1)})
    with pytest.raises(IGCError, match="no known igc"):
        remap_legacy_state_dict({"head.2.weight": torch.zeros(1), "head.9.x": torch.zeros(1)})


class ChainClassifier(torch.nn.Module):
    """The IGCV2 classifier as igc wrote it before ``classifier.weight``: all its factors
    in one chain (norm between them, none after the last), then a bias."""

    def __init__(self, in_channels: int, num_classes: int, groups: tuple[int, ...]) -> None:
        from igc.layers import IGCBlock
        from igc.sparsity import Factor, KernelProduct

        super().__init__()
        if any(in_channels % g or num_classes % g for g in groups):  # its dense fallback
            groups = tuple(1 for _ in groups)
        factors = [Factor(in_channels, in_channels, g) for g in groups[:-1]]
        factors.append(Factor(in_channels, num_classes, groups[-1]))
        n = len(factors)
        self.block = IGCBlock(KernelProduct(tuple(factors)), norms=[True] * (n - 1) + [False],
                              acts=[None] * n)
        self.bias = torch.nn.Parameter(torch.randn(num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x[:, :, None, None]).flatten(1) + self.bias


@settings(max_examples=25, deadline=None)
@given(groups=st.lists(st.sampled_from([1, 2, 4, 8]), min_size=1, max_size=3).map(tuple),
       width=st.integers(1, 6).map(lambda a: 8 * a), classes=st.integers(1, 40))
def test_chain_classifier_files_load_into_the_timm_keyed_classifier(groups, width, classes):
    """Any chain classifier igc wrote (1-3 factors, dense fallback included) loads into
    today's ``GroupClassifier`` with the same outputs."""
    from igc.models.net import GroupClassifier

    torch.manual_seed(0)
    old = randomize(ChainClassifier(width, classes, groups))
    with torch.no_grad():
        for p in old.parameters():
            p.normal_()
    state = OrderedDict((f"classifier.{k}", v) for k, v in old.state_dict().items())
    assert not is_legacy_state_dict(state)  # no head: nothing to refuse for P_L
    renamed = remap_legacy_state_dict(state)
    assert "classifier.weight" in renamed and not any(".block." in k for k in renamed)
    new = torch.nn.Module()
    new.classifier = GroupClassifier(width, classes, groups)
    new.load_state_dict(renamed, strict=True)
    new.eval()
    # float64: the test is about the mapping of the weights, not float32's rounding of two
    # summation orders (random normal weights cancel: 1.3e-5 apart in float32 was seen)
    new.double(), old.double()
    x = torch.randn(5, width, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(new.classifier(x), old(x), rtol=1e-10, atol=1e-10)
