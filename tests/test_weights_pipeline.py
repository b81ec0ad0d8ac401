"""The weights pipeline (igc.files.weights): safetensors files with igc's header, one
reading of every file kind, and state dicts compared before ``load_state_dict``
(names, shapes, dtypes: real floating point, dense, not meta, finite)."""

from __future__ import annotations

import json
import struct

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from igc.cli import main
from igc.errors import IGCError
from igc.files.safetensors import safetensors_bytes, write_safetensors
from igc.files.weights import load_weights, read_weights, weights_from_table
from igc.models.registry import create_model

NAME = "igcv2_fmnist"
HEADER = {"model": NAME, "model_args": {}, "num_classes": 10, "in_chans": 1,
          "data": "fashion-mnist", "image_size": 28, "classes": [f"c{i}" for i in range(10)],
          "mean": [0.25], "std": [0.5], "card": {"top1": 91.5}}


pytestmark = pytest.mark.usefixtures("one_thread")


def randomized(name: str = NAME, seed: int = 3, **kwargs) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = create_model(name, **kwargs)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


def outputs(model: torch.nn.Module) -> torch.Tensor:
    x = torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return model.eval()(x)


TRAINED = randomized()


def test_safetensors_with_header_loads_as_written(tmp_path):
    path = write_safetensors(tmp_path / "w.safetensors", TRAINED.state_dict(), HEADER)
    read = read_weights(path)
    assert (read.kind, read.model, read.num_classes, read.in_chans) == \
        ("safetensors", NAME, 10, 1)
    assert read.classes == HEADER["classes"] and read.card == {"top1": 91.5}
    model = create_model(NAME, pretrained=path)
    assert torch.equal(outputs(model), outputs(TRAINED))
    cfg = model.pretrained_cfg
    assert (cfg["mean"], cfg["std"], cfg["dataset"]) == ((0.25,), (0.5,), "fashion-mnist")
    assert cfg["weights"]["card"] == {"top1": 91.5}


def test_plain_safetensors_is_a_state_dict(tmp_path):
    """timm's model.safetensors: tensors only (``format: pt``), no igc header."""
    path = tmp_path / "model.safetensors"
    path.write_bytes(safetensors_bytes(TRAINED.state_dict(), None))
    read = read_weights(path)
    assert read.model is None and read.num_classes == 10 and read.in_chans == 1
    assert torch.equal(outputs(create_model(NAME, pretrained=path)), outputs(TRAINED))


def _with_header(tensors: dict, igc_header: object) -> bytes:
    """A safetensors file whose ``__metadata__["igc"]`` is ``igc_header`` as written."""
    raw = safetensors_bytes(tensors, None)
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    header["__metadata__"]["igc"] = igc_header if isinstance(igc_header, str) else \
        json.dumps(igc_header)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + raw[8 + n:]


def _header(**changes: object) -> dict:
    table = {"format": "igc-weights", "version": 1, **HEADER, **changes}
    return {k: v for k, v in table.items() if v is not None}


@pytest.mark.parametrize("header, match", [
    (_header(model=None), "lacks model"),
    (_header(num_classes="ten"), "num_classes must be an integer"),
    (_header(in_chans=0), "in_chans must be an integer in"),
    (_header(classes=["a"]), "classes has 1 entries, not num_classes = 10"),
    (_header(mean=[float("nan")]), "mean"),
    (_header(model_args={"width": [[[[[1]]]]]}), "model_args"),
    (_header(format="other"), "lacks format"),
    (_header(version=99), "version 99; this igc reads up to 1"),
    (_header(version=True), "bad version"),
    ("{not json", "is not JSON"),
    ([1, 2], "lacks format"),
])
def test_bad_safetensors_header_is_one_line(tmp_path, header, match):
    path = tmp_path / "w.safetensors"
    path.write_bytes(_with_header(TRAINED.state_dict(), header))
    with pytest.raises(IGCError, match=match) as err:
        create_model(NAME, pretrained=path)
    assert "\n" not in str(err.value) and "safetensors header" in str(err.value)


@pytest.mark.parametrize("cut", [9, 200, -4])
def test_truncated_safetensors_is_one_line(tmp_path, cut):
    raw = safetensors_bytes(TRAINED.state_dict(), HEADER)
    path = tmp_path / "w.safetensors"
    path.write_bytes(raw[:cut])
    with pytest.raises(IGCError) as err:
        create_model(NAME, pretrained=path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_the_checkpoint_schema_is_the_writers_dataclass():
    from igc.files.checkpoint import MODEL_FIELDS, TRAINING_FIELDS, TrainingRecord
    from igc.train.snapshot import capture

    names = {f for f in TrainingRecord.__dataclass_fields__}
    assert names == set(MODEL_FIELDS) | set(TRAINING_FIELDS)
    assert {"pending_eval", "complete", "torch"} <= set(TRAINING_FIELDS)
    assert "TrainingRecord(" in __import__("inspect").getsource(capture)


# --- state dicts compared before load_state_dict -------------------------------------

def _sparse(t: torch.Tensor) -> torch.Tensor:
    return t.to_sparse()


MUTATIONS = {
    "int64": (lambda t: t.to(torch.int64), "is int64"),
    "bool": (lambda t: t != 0, "dtype bool"),
    "complex": (lambda t: t.to(torch.complex64), "dtype complex64"),
    "sparse": (_sparse, "sparse_coo tensor"),
    "meta": (lambda t: t.to("meta"), "meta tensor"),
    "nan": (lambda t: t.flatten().index_fill(0, torch.tensor([0]), float("nan"))
            .view_as(t), "not finite"),
    "inf": (lambda t: t.flatten().index_fill(0, torch.tensor([0]), float("inf"))
            .view_as(t), "not finite"),
    "empty": (lambda t: t.new_zeros((0, *t.shape[1:])), "empty"),
    "shape": (lambda t: torch.cat([t, t]), "mis-shaped"),
    "half": (lambda t: t.half(), None),  # another real floating-point type: loads
}
FLOAT_KEYS = [k for k, v in TRAINED.state_dict().items() if v.is_floating_point()]


def _mutated(key: str, mutation: str) -> dict:
    state = dict(TRAINED.state_dict())
    state[key] = MUTATIONS[mutation][0](state[key])
    return state


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from(FLOAT_KEYS), mutation=st.sampled_from(sorted(MUTATIONS)))
def test_mutated_state_dicts_are_refused_before_anything_loads(key, mutation):
    """One mutated tensor anywhere: one line naming the key (or, for a real floating-point
    dtype of another width, a load); the model is untouched when refused."""
    model = randomized(seed=5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = _mutated(key, mutation)
    match = MUTATIONS[mutation][1]
    try:
        load_weights(model, weights_from_table(state, "w.pt"), strict=True)
    except IGCError as exc:
        text = str(exc)
        assert match is not None and match in text and key in text and "\n" not in text, text
        after = model.state_dict()
        assert all(torch.equal(after[k], v) for k, v in before.items())
    else:
        assert match is None
        assert torch.equal(model.state_dict()[key], state[key].float())


@pytest.mark.parametrize("key", ["classifier.bias", "classifier.weight"])
def test_a_head_whose_weight_and_bias_disagree_is_refused(key):
    """Found by the fuzzer: a doubled classifier bias was read as weights for twice the
    classes, so the head was dropped as "another num_classes" instead of refused."""
    model = randomized(seed=5)
    with pytest.raises(IGCError, match=f"mis-shaped.*{key}|{key}.*mis-shaped"):
        load_weights(model, weights_from_table(_mutated(key, "shape"), "w.pt"), strict=True)


@pytest.mark.parametrize("mutation", ["int64", "bool", "complex", "sparse", "meta", "nan"])
def test_every_tensor_of_one_bad_kind_is_refused_from_a_file(tmp_path, mutation):
    """A whole network of int64 (once output 0.0), bool (once 4.2e19), complex, sparse or
    meta tensors, saved and loaded as a user would."""
    convert = MUTATIONS[mutation][0]
    state = {k: convert(v) if v.is_floating_point() else v
             for k, v in TRAINED.state_dict().items()}
    path = tmp_path / "w.pt"
    torch.save(state, path)
    with pytest.raises(IGCError, match=MUTATIONS[mutation][1]) as err:
        create_model(NAME, pretrained=path)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("in_chans", [None, 1, 3])
def test_zero_size_stem_is_refused(tmp_path, in_chans):
    state = dict(TRAINED.state_dict())
    state["stem.0.weight"] = torch.zeros(state["stem.0.weight"].shape[0], 0, 3, 3)
    path = tmp_path / "w.pt"
    torch.save(state, path)
    with pytest.raises(IGCError, match=r"stem\.0\.weight.*empty"):
        create_model(NAME, pretrained=path, in_chans=in_chans)


def test_a_mis_shaped_key_is_named_with_both_shapes():
    state = dict(TRAINED.state_dict())
    state["stem.0.weight"] = torch.zeros(3, 1, 3, 3)
    with pytest.raises(IGCError, match=r"1 mis-shaped \(stem\.0\.weight\); stem\.0\.weight "
                                       r"is \(3, 1, 3, 3\), the model's \(\d+, 1, 3, 3\)"):
        load_weights(randomized(), weights_from_table(state, "w.pt"))


def test_integer_buffer_must_stay_integer():
    key = next(k for k in TRAINED.state_dict() if k.endswith("num_batches_tracked"))
    state = dict(TRAINED.state_dict())
    state[key] = state[key].float()
    with pytest.raises(IGCError, match=f"{key}.*is float32, the model's is int64"):
        load_weights(randomized(), weights_from_table(state, "w.pt"))


def test_non_tensor_values_and_keys_are_named(tmp_path):
    for bad, match in (({**TRAINED.state_dict(), "x": 3}, r"\['x'\] is a int"),
                       ({1: torch.zeros(1)}, "not a parameter name")):
        with pytest.raises(IGCError, match=match):
            weights_from_table(bad, "w.pt")


def test_export_safetensors_from_a_name_and_a_checkpoint(tmp_path, capsys):
    out = tmp_path / "n.safetensors"
    assert main(["export", NAME, "--format", "safetensors", "--out", str(out)]) == 0
    assert "largest |difference| 0," in capsys.readouterr().out
    assert read_weights(out).model == NAME
    from igc.train.checkpoint import save_checkpoint

    run = tmp_path / "ckpt.pt"
    save_checkpoint({"model": NAME, "model_args": {}, "num_classes": 10, "in_chans": 1,
                     "state_dict": TRAINED.state_dict(), "recipe": {}, "epoch": 1,
                     "classes": HEADER["classes"], "mean": [0.25], "std": [0.5],
                     "data": "fashion-mnist", "image_size": 28}, run)
    out = tmp_path / "c.safetensors"
    assert main(["export", str(run), "--format", "safetensors", "--out", str(out)]) == 0
    read = read_weights(out)
    assert read.classes == HEADER["classes"] and read.mean == (0.25,)
    assert torch.equal(outputs(create_model(NAME, pretrained=out)), outputs(TRAINED))
    assert main(["export", NAME, "--format", "safetensors", "--form", "dense",
                 "--out", str(tmp_path / "x.safetensors")]) == 2


def test_one_load_reads_the_manifest_once_and_renames_once(tmp_path, monkeypatch):
    """create_model(pretrained=...) reads weights.toml once and maps old keys once."""
    import igc.models.convert as convert
    import igc.models.pretrained as pretrained

    calls = {"released": 0, "remap": 0}
    real_parse, real_remap = pretrained.parse_toml, convert.remap_legacy_state_dict

    def parse_toml(*args, **kwargs):  # released() parses the manifest with it, and only it
        calls["released"] += 1
        return real_parse(*args, **kwargs)

    def remap(*args, **kwargs):
        calls["remap"] += 1
        return real_remap(*args, **kwargs)

    old = {k.replace("classifier.", "head.2."): v
           for k, v in randomized(shuffle_last=False).state_dict().items()}
    path = tmp_path / "old.pt"
    torch.save(old, path)
    monkeypatch.setattr(pretrained, "parse_toml", parse_toml)
    monkeypatch.setattr(convert, "remap_legacy_state_dict", remap)
    create_model(NAME, pretrained=path, shuffle_last=False)
    assert calls == {"released": 1, "remap": 1}
    calls.update(released=0, remap=0)
    create_model("igcv2_c48_d11_fmnist", pretrained=True)
    assert calls == {"released": 1, "remap": 1}


@pytest.mark.parametrize("mutation", ["int64", "complex", "empty"])
def test_checkpoints_with_bad_tensors_are_refused_by_eval_and_export(tmp_path, capsys,
                                                                     mutation):
    from igc.train.checkpoint import model_from_checkpoint, save_checkpoint

    key = "stem.0.weight"
    run = tmp_path / "checkpoint.pt"
    save_checkpoint({"model": NAME, "model_args": {}, "num_classes": 10, "in_chans": 1,
                     "state_dict": _mutated(key, mutation), "recipe": {}, "epoch": 1}, run)
    with pytest.raises(IGCError, match=key):
        model_from_checkpoint(run)
    assert main(["export", str(run), "--format", "safetensors",
                 "--out", str(tmp_path / "x.safetensors")]) == 2
    err = capsys.readouterr().err.strip()
    assert key in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x.safetensors").exists()
