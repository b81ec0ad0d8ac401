"""Weights: every released network scores what its card says; the loader checks hashes,
loads checkpoints and state dicts, reports what does not fit, re-initialises the
classifier and adapts the first convolution."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from igc.errors import IGCError
from igc.models.pretrained import WEIGHTS_ENV, released
from igc.models.registry import create_model, list_models

NAME = "igcv2_fmnist"  # the smallest network: 16k parameters, 28x28 grayscale


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _released_cards() -> list[tuple[str, dict]]:
    import os

    saved = os.environ.pop(WEIGHTS_ENV, None)  # the package's own manifest
    try:
        return sorted(released().items())
    finally:
        if saved is not None:
            os.environ[WEIGHTS_ENV] = saved


@pytest.mark.slow
@pytest.mark.parametrize("name, card", _released_cards())
def test_released_network_scores_its_card(name, card, monkeypatch):
    """Loaded fresh, each released network's test-set top-1 is its card's (+-0.05)."""
    from igc.data import load_dataset
    from igc.train.evaluate import eval_loader, evaluate

    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    model = create_model(name, pretrained=True)
    try:
        splits = load_dataset(card["dataset"], download=False)
    except IGCError as exc:
        pytest.skip(f"test set of {card['dataset']} not on this machine ({exc})")
    device = torch.device("cpu")
    result = evaluate(model, eval_loader(splits, ["normalize"], 256, device),
                      splits.num_classes, device)
    assert abs(result.top1 - card["top1"]) <= 0.05, (name, result.top1, card["top1"])


def randomized(name: str = NAME, **kwargs) -> torch.nn.Module:
    torch.manual_seed(3)
    model = create_model(name, **kwargs)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2)
    return model.eval()


def card_text(name: str, filename: str, digest: str, **changes: object) -> str:
    card = {"file": f'"{filename}"', "sha256": f'"{digest}"', "dataset": '"fashion-mnist"',
            "recipe": '"fashion-mnist-cpu"', "command": '"igc train"', "epochs": "3",
            "top1": "91.5", "top1_mean": "91.4", "top1_std": "0.2", "seeds": "[0, 1, 2]",
            "commit": '"abc1234"'}
    card.update({k: str(v) for k, v in changes.items()})
    body = "\n".join(f"{k} = {v}" for k, v in card.items() if v != "None")
    return f'[models."{name}"]\n{body}\n'


@pytest.fixture
def weights_folder(tmp_path, monkeypatch):
    """A weights folder with a released ``igcv2_fmnist``; returns (folder, model)."""
    model = randomized()
    path = tmp_path / f"{NAME}.pt"
    torch.save(model.state_dict(), path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    (tmp_path / "weights.toml").write_text(card_text(NAME, path.name, digest))
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path))
    return tmp_path, model


def outputs(model: torch.nn.Module, chans: int = 1, size: int = 28) -> torch.Tensor:
    x = torch.randn(3, chans, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return model.eval()(x)


def test_released_weights_load_after_their_hash_check(weights_folder):
    _, trained = weights_folder
    model = create_model(NAME, pretrained=True)
    assert torch.equal(outputs(model), outputs(trained))
    cfg = model.pretrained_cfg
    assert cfg["weights"]["source"] == "released" and cfg["released"]["top1"] == 91.5
    assert cfg["weights"]["sha256"] == cfg["released"]["sha256"]
    assert list_models(pretrained=True) == [NAME]
    assert create_model(NAME).pretrained_cfg["weights"] is None  # pretrained=False


def test_tagged_weights_are_picked_by_name_dot_tag(weights_folder):
    folder, trained = weights_folder
    text = (folder / "weights.toml").read_text().replace(f'"{NAME}"', f'"{NAME}.demo"')
    (folder / "weights.toml").write_text(text)
    model = create_model(f"{NAME}.demo", pretrained=True)
    assert torch.equal(outputs(model), outputs(trained))
    assert list_models(pretrained=True) == [NAME]
    with pytest.raises(IGCError, match=rf"{NAME} has no released weights.*{NAME}\.demo"):
        create_model(NAME, pretrained=True)
    with pytest.raises(IGCError, match=rf"{NAME}\.other has no released weights"):
        create_model(f"{NAME}.other", pretrained=True)
    assert create_model("igcv2_1.0").pretrained_cfg["architecture"] == "igcv2_100"  # alias


def test_hash_mismatch_is_refused(weights_folder):
    folder, _ = weights_folder
    with open(folder / f"{NAME}.pt", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(IGCError, match="SHA-256"):
        create_model(NAME, pretrained=True)


def test_network_without_released_weights_lists_those_with(weights_folder):
    with pytest.raises(IGCError, match=rf"no released weights.*{NAME}") as err:
        create_model("igcv2_c64_d8", pretrained=True)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("changes, match", [
    ({"sha256": '"xyz"'}, "sha256"),
    ({"file": '"../elsewhere.pt"'}, "file"),
    ({"top1": "101"}, "top1"),
    ({"seeds": "[]"}, "seeds"),
    ({"epochs": "0"}, "epochs"),
    ({"commit": "None"}, "lacks"),
    ({"notes": '"x"'}, "unknown"),
])
def test_bad_manifest_entries_are_named(tmp_path, monkeypatch, changes, match):
    (tmp_path / "weights.toml").write_text(card_text(NAME, "x.pt", "0" * 64, **changes))
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path))
    with pytest.raises(IGCError, match=match):
        released()


def test_missing_released_file_and_broken_manifest(tmp_path, monkeypatch):
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path))
    (tmp_path / "weights.toml").write_text(card_text(NAME, "gone.pt", "0" * 64))
    with pytest.raises(IGCError, match="missing"):
        create_model(NAME, pretrained=True)
    (tmp_path / "weights.toml").write_text("[models\n")
    with pytest.raises(IGCError, match="TOML"):
        released()


def test_file_state_dict_and_checkpoint_load(tmp_path):
    trained = randomized()
    plain = tmp_path / "plain.pt"
    torch.save(trained.state_dict(), plain)
    checkpoint = tmp_path / "checkpoint.pt"
    torch.save({"format": "igc-checkpoint", "model": NAME, "model_args": {},
                "num_classes": 10, "in_chans": 1, "recipe": {}, "epoch": 3,
                "state_dict": trained.state_dict()}, checkpoint)
    for kwargs in ({"pretrained": str(plain)}, {"checkpoint_path": checkpoint}):
        model = create_model(NAME, **kwargs)
        assert torch.equal(outputs(model), outputs(trained))
        assert model.pretrained_cfg["weights"]["source"] == "file"


def test_checkpoint_options_are_applied(tmp_path):
    trained = randomized("igcv2_c64_d8", width=16, num_classes=7)
    path = tmp_path / "wide.pt"
    torch.save({"model": "igcv2_c64_d8", "model_args": {"width": 16}, "num_classes": 7,
                "in_chans": 3, "state_dict": trained.state_dict()}, path)
    model = create_model("igcv2_c64_d8", pretrained=path)  # width and classes from the file
    assert torch.equal(outputs(model, 3, 16), outputs(trained, 3, 16))


@pytest.mark.parametrize("recorded, expected", [
    ({"data": "fashion-mnist", "image_size": 28, "mean": [0.25], "std": [0.5]},
     ("fashion-mnist", (1, 28, 28), (0.25,), (0.5,))),
    ({}, None),  # nothing recorded: the entry's own metadata
    ({"data": ""}, None),  # an empty data set: not said
])
def test_metadata_follows_what_the_weights_were_trained_on(tmp_path, recorded, expected):
    trained = randomized("igcv2_c64_d8", width=16, num_classes=10, in_chans=1)
    path = tmp_path / "fmnist.pt"
    torch.save({"model": "igcv2_c64_d8", "model_args": {"width": 16}, "num_classes": 10,
                "in_chans": 1, "state_dict": trained.state_dict(), **recorded}, path)
    cfg = create_model("igcv2_c64_d8", pretrained=path).pretrained_cfg
    built = create_model("igcv2_c64_d8", width=16, in_chans=1).pretrained_cfg
    assert built["dataset"] != "fashion-mnist" and built["input_size"] == (1, 32, 32)
    expected = expected or (built["dataset"], built["input_size"], built["mean"], built["std"])
    assert (cfg["dataset"], cfg["input_size"], cfg["mean"], cfg["std"]) == expected


@pytest.mark.parametrize("recorded, match", [
    ({"image_size": -3}, r"image_size must be an integer in \[1, 4096\]"),
    ({"mean": [0.1, 0.2], "std": [0.3, 0.3]}, "mean has 2 entries, not in_chans = 1"),
    ({"std": [0.0]}, r"std\[0\] must be a number"),
    ({"num_classes": 10**9}, "num_classes must be an integer"),
    ({"model_args": {"width": float("nan")}}, "model_args.width must be finite"),
])
def test_malformed_metadata_is_refused_before_loading(tmp_path, recorded, match):
    """A table of weights whose metadata is malformed is refused in one line (it was
    silently ignored before: the schema is the checkpoint writer's)."""
    trained = randomized("igcv2_c64_d8", width=16, num_classes=10, in_chans=1)
    path = tmp_path / "fmnist.pt"
    torch.save({"model": "igcv2_c64_d8", "model_args": {"width": 16}, "num_classes": 10,
                "in_chans": 1, "state_dict": trained.state_dict(), **recorded}, path)
    with pytest.raises(IGCError, match=match) as err:
        create_model("igcv2_c64_d8", pretrained=path)
    assert "\n" not in str(err.value)


def test_another_networks_weights_are_refused_unless_not_strict(tmp_path):
    other = tmp_path / "other.pt"
    torch.save(randomized("xception_c35_d8", num_classes=10, in_chans=1).state_dict(), other)
    with pytest.raises(IGCError, match=r"does not fit model 'igcv2_fmnist': .*missing") as err:
        create_model(NAME, pretrained=other)
    assert "\n" not in str(err.value)
    trained = randomized()
    partial = trained.state_dict()
    dropped = next(k for k in partial if k.startswith("stages.2"))
    del partial[dropped]
    partial["extra.weight"] = torch.zeros(1)
    torch.save(partial, other)
    with pytest.raises(IGCError, match=r"1 missing .*1 unexpected"):
        create_model(NAME, pretrained=other)
    with pytest.warns(UserWarning, match="loaded partly"):
        model = create_model(NAME, pretrained=other, strict=False)
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in partial.items() if k in loaded)
    assert not torch.equal(loaded[dropped], trained.state_dict()[dropped])
    named = tmp_path / "named.pt"
    torch.save({"model": "igcv2_c64_d8", "state_dict": randomized().state_dict()}, named)
    with pytest.raises(IGCError, match="holds weights of 'igcv2_c64_d8'"):
        create_model(NAME, pretrained=named)


@pytest.mark.parametrize("content, match", [
    (b"not a torch file", "corrupt"), (None, "does not exist"),
])
def test_unreadable_files(tmp_path, content, match):
    path = tmp_path / "w.pt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(IGCError, match=match):
        create_model(NAME, pretrained=path)


def test_bad_requests(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([1, 2], path)
    with pytest.raises(IGCError, match="not a state dict"):
        create_model(NAME, pretrained=path)
    with pytest.raises(IGCError, match=r"http\(s\):// or file:// URL"):
        create_model(NAME, pretrained="ftp://example.org/w.pt")
    with pytest.raises(IGCError, match="not both"):
        create_model(NAME, pretrained=True, checkpoint_path=path)


def test_other_num_classes_reinitialises_only_the_classifier(tmp_path):
    trained = randomized()
    path = tmp_path / "w.pt"
    torch.save(trained.state_dict(), path)
    model = create_model(NAME, pretrained=path, num_classes=5).eval()
    assert model.get_classifier().out_features == 5
    assert model.pretrained_cfg["weights"]["classifier_reset"]
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(model.forward_features(x), trained.forward_features(x))
    headless = create_model(NAME, pretrained=path, num_classes=0).eval()
    with torch.no_grad():
        assert torch.equal(headless(x), trained.forward_head(trained.forward_features(x),
                                                             pre_logits=True))


@pytest.mark.parametrize("in_chans", [1, 2, 6])
def test_first_convolution_adapts_to_the_input_channels(tmp_path, in_chans):
    """A gray image through the adapted network = the image repeated in RGB through the
    original (in_chans 1: summed weights); 6 channels = RGB twice, 2 = (R, G) of RGB x 1.5."""
    trained = randomized("igcv2_c64_d8", width=8, num_classes=4)
    path = tmp_path / "rgb.pt"
    torch.save(trained.state_dict(), path)
    model = create_model("igcv2_c64_d8", pretrained=path, in_chans=in_chans, width=8).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        if in_chans == 1:
            gray = x[:, :1]
            expected, got = trained(gray.expand(-1, 3, -1, -1)), model(gray)
        elif in_chans == 6:
            expected, got = trained(x), model(torch.cat([x, x], 1))
        else:  # weights (w_r, w_g) x 3/2 applied to (r, g)
            expected, got = None, model(x[:, :2])
            stem = trained.stem[0].weight[:, :2] * 1.5
            assert torch.allclose(model.stem[0].weight, stem)
        if expected is not None:
            assert torch.allclose(got, expected, atol=1e-5)


def test_old_layout_files_load_and_p_l_change_is_refused(tmp_path):
    old_net = randomized(shuffle_last=False)
    old = OrderedDict((k.replace("classifier.", "head.2."), v)
                      for k, v in old_net.state_dict().items())
    path = tmp_path / "old.pt"
    torch.save(old, path)
    with pytest.raises(IGCError, match="shuffle_last=False"):
        create_model(NAME, pretrained=path)
    model = create_model(NAME, pretrained=path, shuffle_last=False)
    assert torch.equal(outputs(model), outputs(old_net))


def test_weights_folder_of_the_package_has_a_valid_manifest(monkeypatch):
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    from igc.models.pretrained import weights_dir

    assert (weights_dir() / "weights.toml").is_file()
    cards = released()
    for name, card in cards.items():
        assert name.split(".")[0] in list_models()  # NAME or NAME.TAG
        assert (Path(weights_dir()) / card["file"]).is_file()
