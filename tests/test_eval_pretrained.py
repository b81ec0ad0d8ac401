"""``igc eval NAME --pretrained FILE --data imagefolder --data-dir VAL_DIR``: a validation
folder evaluated with the network's own preprocessing (resize to size / crop_pct, centre
crop, its interpolation, mean and std), checked against the same pipeline written here
with PIL; built-in data sets' test splits; bad requests one line, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from igc.cli import main
from igc.models import create_model
from igc.models.cifar import cifar_net

TINY_RGB = "test_tiny_rgb"
IGCV2_TINY = dict(block="igcv2", width=4, depth=5, branch_sizes=((2, 2), (2, 4), (4, 4)))


@pytest.fixture(autouse=True)
def _threads(one_thread):
    yield


def write_folder(root: Path, classes: int, per_class: int = 2, seed: int = 0) -> Path:
    """``root/<class>/*``: random images of odd sizes, JPEG and PNG, RGB and grayscale."""
    rng = np.random.default_rng(seed)
    for c in range(classes):
        folder = root / f"n{c:04d}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            w, h = rng.integers(20, 60, size=2)
            pixels = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
            image = Image.fromarray(pixels)
            if i % 2:
                image.convert("L").save(folder / f"img{i}.png")
            else:
                image.save(folder / f"img{i}.JPEG", quality=90)
    return root


def reference_batch(files: list[Path], size: int, resize: int, mean, std) -> torch.Tensor:
    """The evaluation preprocessing written out with PIL: shorter side to ``resize``
    (bilinear), centre ``size`` crop, 0..1, normalised."""
    images = []
    for path in files:
        image = Image.open(path).convert("RGB")
        w, h = image.size
        scale = resize / min(w, h)
        w, h = max(size, round(w * scale)), max(size, round(h * scale))
        image = image.resize((w, h), Image.Resampling.BILINEAR)
        left, top = (w - size) // 2, (h - size) // 2
        image = image.crop((left, top, left + size, top + size))
        images.append(torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1))
    x = torch.stack(images).float() / 255
    return (x - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]


def saved_weights(tmp_path: Path, name: str) -> tuple[torch.nn.Module, Path]:
    torch.manual_seed(1)
    model = create_model(name)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    path = tmp_path / f"{name}.pt"
    torch.save(model.state_dict(), path)
    return model.eval(), path


@pytest.mark.parametrize("dataset, classes, resize, mean", [
    ("imagenet", 5, 256, (0.485, 0.456, 0.406)),  # crop_pct 16/256: resize 256, crop 16
    ("cifar10", 10, 16, None),                     # crop_pct 1: resize 16, its mean/std
])
def test_image_folder_with_the_networks_preprocessing(tmp_path, capsys, temp_model, dataset,
                                                      classes, resize, mean):
    temp_model(TINY_RGB, cifar_net, family="igcv2", table="test", dataset=dataset,
               input_size=16, num_classes=classes, **IGCV2_TINY)
    model, path = saved_weights(tmp_path, TINY_RGB)
    cfg = model.pretrained_cfg
    if mean is not None:
        assert cfg["mean"] == mean
    val = write_folder(tmp_path / "val", classes)
    assert main(["eval", TINY_RGB, "--pretrained", str(path), "--data", "imagefolder",
                 "--data-dir", str(val), "--json", "--batch-size", "3"]) == 0
    result = json.loads(capsys.readouterr().out)
    files = sorted(val.rglob("img*"))
    labels = torch.tensor([int(p.parent.name[1:]) for p in files])
    with torch.no_grad():
        logits = model(reference_batch(files, 16, resize, cfg["mean"], cfg["std"]))
    top5 = logits.topk(min(5, classes), dim=1).indices
    assert result["images"] == len(files) == 2 * classes
    loss = torch.nn.functional.cross_entropy(logits, labels)  # continuous: any pixel counts
    assert result["loss"] == pytest.approx(float(loss), rel=1e-5)
    assert result["top1"] == pytest.approx(100 * (logits.argmax(1) == labels).float().mean())
    assert result["top5"] == pytest.approx(100 * (top5 == labels[:, None]).any(1).float().mean())
    assert result["preprocessing"] == {"resize": resize, "crop": 16, "interpolation": "bilinear",
                                       "mean": list(cfg["mean"]), "std": list(cfg["std"])}
    assert result["weights"] == str(path) and result["data"] == "imagefolder"
    assert list(result["per_class"]) == [f"n{c:04d}" for c in range(classes)]
    # the text form: one summary line, then one line per class
    assert main(["eval", TINY_RGB, "--pretrained", str(path), "--data-dir", str(tmp_path),
                 "--data", "imagefolder"]) == 2  # tmp_path has 1 class folder ("val")
    assert "class folders" in capsys.readouterr().err


def test_root_with_train_and_val_uses_val(tmp_path, capsys, temp_model):
    temp_model(TINY_RGB, cifar_net, family="igcv2", table="test", dataset="imagenet",
               input_size=16, num_classes=3, **IGCV2_TINY)
    _, path = saved_weights(tmp_path, TINY_RGB)
    write_folder(tmp_path / "data" / "train", 3, 1)
    write_folder(tmp_path / "data" / "val", 3, 2, seed=1)
    assert main(["eval", TINY_RGB, "--pretrained", str(path), "--data-dir",
                 str(tmp_path / "data")]) == 0  # imagefolder: the default for ImageNet nets
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{TINY_RGB} ({path}) on imagefolder: top-1 ")
    assert "(6 images" in out[0] and len(out) == 1 + 3


def test_built_in_data_set_test_split(tmp_path, capsys, tiny_models, tiny_splits,
                                      monkeypatch):
    """Without --data, a network is evaluated on its own data set's test split, normalised
    with that set's mean/std."""
    import igc.train.evaluate_pretrained as evaluate_mod

    splits = tiny_splits()
    monkeypatch.setattr(evaluate_mod, "load_dataset", lambda *a, **k: splits)
    model, path = saved_weights(tmp_path, tiny_models[0])
    assert main(["eval", tiny_models[0], "--pretrained", str(path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    x = (splits.test.images.float() / 255 - 0.5) / 0.25
    with torch.no_grad():
        top1 = (model(x).argmax(1) == splits.test.labels).float().mean() * 100
    assert result["data"] == "fashion-mnist" and result["images"] == len(splits.test)
    with torch.no_grad():
        loss = torch.nn.functional.cross_entropy(model(x), splits.test.labels)
    assert result["loss"] == pytest.approx(float(loss), rel=1e-5)
    assert result["top1"] == pytest.approx(float(top1))


@pytest.mark.parametrize("args, match", [
    (["igcv2_fmnist", "--pretrained", "{w}", "--data", "imagefolder", "--data-dir", "{val}"],
     "1-channel input"),
    (["{w}", "--hash", "0" * 64], "--hash checks a --pretrained file"),
    (["igcv2_fmnist", "--pretrained", "{w}", "--ema"], "--ema applies to igc train"),
    (["igcv2_fmnist", "--pretrained", "{w}", "--data", "imagefolder"], "needs --data-dir"),
    (["igcv2_fmnist", "--pretrained", "{w}", "--hash", "0" * 64], "SHA-256 check"),
    (["nosuchnet", "--pretrained", "{w}"], "unknown model"),
    (["igcv2_fmnist", "--pretrained", "{w}", "--data-dir", "{nowhere}"], "does not exist"),
])
def test_bad_requests_are_one_line(tmp_path, capsys, args, match):
    _, weights = saved_weights(tmp_path, "igcv2_fmnist")
    val = write_folder(tmp_path / "val", 10, 1)
    argv = [a.format(w=weights, val=val, nowhere=tmp_path / "nowhere") for a in args]
    assert main(["eval", *argv]) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1
