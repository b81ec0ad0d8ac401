"""Tests of igc.data: every loader on tiny files in the official formats, the source search
and checksum logic (never the network), batch augmentation and the batch loaders."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import pickle
import struct
import tarfile
import urllib.error
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from igc.data import (
    DATASETS,
    BatchAugment,
    FileBatchLoader,
    TensorBatchLoader,
    TensorImageDataset,
    center_crop,
    hflip,
    load_dataset,
    make_loader,
    normalize,
    pad_crop,
    scale_crop,
    sources,
)
from igc.data.augment import crop_per_image
from igc.data.idx import read_idx
from igc.errors import IGCError

IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    """No network, no system data sets, a private cache."""
    def no_network(url, dest):
        raise AssertionError(f"test tried to download {url}")

    monkeypatch.setattr(sources, "_fetch", no_network)
    monkeypatch.setattr(sources, "SYSTEM_DIRS", {})
    monkeypatch.setenv("IGC_DATA", str(tmp_path / "cache"))


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def trust(monkeypatch, name: str, directory: Path) -> None:
    """Make the files under ``directory`` the 'official' ones of data set ``name``."""
    source = sources.SOURCES[name]
    resources = tuple(
        dataclasses.replace(r, md5=md5(directory / r.filename))
        if (directory / r.filename).is_file() else r for r in source.resources)
    members = {p.name: md5(p) for p in directory.rglob("*") if p.name in source.members}
    monkeypatch.setitem(sources.SOURCES, name, dataclasses.replace(
        source, resources=resources, members={**source.members, **members}))


# ---------------------------------------------------------------- IDX: MNIST / Fashion-MNIST

def idx_bytes(array: np.ndarray) -> bytes:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_set(directory: Path, n_train: int = 5, n_test: int = 3, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        (directory / name).write_bytes(gzip.compress(idx_bytes(array)))
    return arrays


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_idx_dataset_round_trip(tmp_path, monkeypatch, name):
    arrays = write_idx_set(tmp_path / "d")
    trust(monkeypatch, name, tmp_path / "d")
    data = load_dataset(name, tmp_path / "d", download=False)
    assert data.train.images.dtype == torch.uint8 and data.train.labels.dtype == torch.int64
    assert data.train.images.shape == (5, 1, 28, 28) and data.test.images.shape == (3, 1, 28, 28)
    assert np.array_equal(data.train.images[:, 0].numpy(), arrays["train-images-idx3-ubyte.gz"])
    assert data.test.labels.tolist() == arrays["t10k-labels-idx1-ubyte.gz"].tolist()
    assert (data.num_classes, data.in_channels, data.image_size) == (10, 1, 28)
    assert len(data.mean) == len(data.std) == 1 and data.in_memory


def test_uncompressed_and_recompressed_idx_accepted_by_payload_md5(tmp_path, monkeypatch):
    arrays = write_idx_set(tmp_path / "d")
    raw = {f: idx_bytes(a) for f, a in arrays.items()}
    source = sources.SOURCES["mnist"]
    monkeypatch.setitem(sources.SOURCES, "mnist", dataclasses.replace(source, resources=tuple(
        dataclasses.replace(r, raw_md5=hashlib.md5(raw[r.filename]).hexdigest())
        for r in source.resources)))
    # the first two as uncompressed files, the others recompressed (different gzip header)
    for f in IDX_FILES[:2]:
        (tmp_path / "d" / f).unlink()
        (tmp_path / "d" / f.removesuffix(".gz")).write_bytes(raw[f])
    for f in IDX_FILES[2:]:
        (tmp_path / "d" / f).write_bytes(gzip.compress(raw[f], mtime=12345))
    data = load_dataset("mnist", tmp_path / "d", download=False)
    assert np.array_equal(data.train.images[:, 0].numpy(), arrays[IDX_FILES[0]])


def test_read_idx_other_dtypes(tmp_path):
    values = (np.arange(6) - 3).astype(">i4").reshape(2, 3)
    header = struct.pack(">BBBB2I", 0, 0, 0x0C, 2, 2, 3)
    (tmp_path / "a.idx").write_bytes(header + values.tobytes())
    out = read_idx(tmp_path / "a.idx")
    assert out.dtype == torch.int32 and out.tolist() == values.tolist()


def test_truncated_idx(tmp_path, monkeypatch):
    arrays = write_idx_set(tmp_path / "d")
    data = idx_bytes(arrays[IDX_FILES[0]])[:-100]
    (tmp_path / "d" / IDX_FILES[0]).write_bytes(gzip.compress(data))
    trust(monkeypatch, "mnist", tmp_path / "d")
    with pytest.raises(IGCError, match=r"train-images-idx3-ubyte\.gz is truncated"):
        load_dataset("mnist", tmp_path / "d", download=False)


def test_corrupt_gzip(tmp_path, monkeypatch):
    write_idx_set(tmp_path / "d")
    good = (tmp_path / "d" / IDX_FILES[1]).read_bytes()
    (tmp_path / "d" / IDX_FILES[1]).write_bytes(good[: len(good) // 2])
    trust(monkeypatch, "mnist", tmp_path / "d")
    with pytest.raises(IGCError, match=r"corrupt gzip file .*train-labels-idx1-ubyte\.gz"):
        load_dataset("mnist", tmp_path / "d", download=False)


def test_not_idx_and_label_count_mismatch(tmp_path, monkeypatch):
    (tmp_path / "x").write_bytes(b"hello world")
    with pytest.raises(IGCError, match="not an IDX file"):
        read_idx(tmp_path / "x")
    write_idx_set(tmp_path / "d")
    labels = np.zeros(4, dtype=np.uint8)
    (tmp_path / "d" / IDX_FILES[1]).write_bytes(gzip.compress(idx_bytes(labels)))
    trust(monkeypatch, "mnist", tmp_path / "d")
    with pytest.raises(IGCError, match=r"4 labels but .* 5 images"):
        load_dataset("mnist", tmp_path / "d", download=False)


def test_checksum_mismatch_names_file_and_md5s(tmp_path):
    write_idx_set(tmp_path / "d")
    with pytest.raises(IGCError) as info:
        load_dataset("fashion-mnist", tmp_path / "d", download=False)
    message = str(info.value)
    assert "checksum mismatch" in message and "train-images-idx3-ubyte.gz" in message
    assert "8d4fb7e6c68d591d4c3dfef9ec88bf0d" in message
    assert md5(tmp_path / "d" / IDX_FILES[0]) in message and "\n" not in message


def test_missing_file_with_download_disabled(tmp_path):
    with pytest.raises(IGCError) as info:
        load_dataset("fashion-mnist", tmp_path / "empty", download=False)
    message = str(info.value)
    assert "dataset-fashion-mnist" in message and "--data-dir" in message
    assert "https://" in message and str(tmp_path / "cache" / "fashion-mnist") in message


def test_monkeypatched_download_into_cache(tmp_path, monkeypatch):
    arrays = write_idx_set(tmp_path / "origin")
    trust(monkeypatch, "mnist", tmp_path / "origin")
    fetched = []

    def fake_fetch(url, out):
        fetched.append(url)
        out.write((tmp_path / "origin" / url.rsplit("/", 1)[1]).read_bytes())

    monkeypatch.setattr(sources, "_fetch", fake_fetch)
    data = load_dataset("mnist")
    assert len(fetched) == 4 and fetched[0].startswith("https://ossci-datasets")
    assert data.train.labels.tolist() == arrays[IDX_FILES[1]].tolist()
    cache = tmp_path / "cache" / "mnist"
    assert sorted(p.name for p in cache.iterdir()) == sorted(IDX_FILES)  # no temp files left
    load_dataset("mnist", download=False)  # now served from the cache
    assert len(fetched) == 4


def test_failed_download_tries_mirrors_and_explains(tmp_path, monkeypatch):
    tried = []

    def failing_fetch(url, out):
        tried.append(url)
        if "ossci" in url:
            raise urllib.error.URLError("no network")
        out.write(b"not the file")

    monkeypatch.setattr(sources, "_fetch", failing_fetch)
    with pytest.raises(IGCError) as info:
        load_dataset("mnist")
    message = str(info.value)
    assert len(tried) == 2 and "could not download" in message and "no network" in message
    assert "expected f68b3c2dcbeaaa9fbdd348bbdeb94873" in message
    assert not (tmp_path / "cache" / "mnist").exists()  # no empty folder left behind


def test_unknown_dataset_name_suggests():
    with pytest.raises(IGCError, match="did you mean cifar10"):
        load_dataset("cifar1")
    with pytest.raises(IGCError, match="unknown data set"):
        load_dataset("svhn")
    assert "digits" not in DATASETS
    with pytest.raises(IGCError, match="--data-dir"):
        load_dataset("imagefolder")


# ------------------------------------------------------------------------------- CIFAR

def write_cifar(directory: Path, name: str, bytes_keys: bool = False) -> dict:
    """A tiny official-layout tarball; returns the images/labels written per split."""
    rng = np.random.default_rng(1)
    if name == "cifar10":
        folder, label_key, names_key, meta = "cifar-10-batches-py", "labels", "label_names", \
            "batches.meta"
        batches = {**{f"data_batch_{i}": "train" for i in range(1, 6)}, "test_batch": "test"}
    else:
        folder, label_key, names_key, meta = "cifar-100-python", "fine_labels", \
            "fine_label_names", "meta"
        batches = {"train": "train", "test": "test"}
    key = (lambda k: k.encode()) if bytes_keys else (lambda k: k)
    written = {"train": ([], []), "test": ([], [])}
    members = {meta: {key(names_key): [f"class{i}" for i in range(5)]}}
    for batch, split in batches.items():
        n = 2 if split == "train" and name == "cifar10" else 3
        images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        labels = rng.integers(0, 5, n).tolist()
        written[split][0].append(images)
        written[split][1].extend(labels)
        members[batch] = {key("data"): images.reshape(n, 3072), key(label_key): labels}
    directory.mkdir(parents=True, exist_ok=True)
    archive = directory / sources.SOURCES[name].resources[0].filename
    with tarfile.open(archive, "w:gz") as tar:
        for member, content in members.items():
            data = pickle.dumps(content, protocol=2)
            info = tarfile.TarInfo(f"{folder}/{member}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return {s: (np.concatenate(i), l) for s, (i, l) in written.items()}


@pytest.mark.parametrize(("name", "bytes_keys"), [("cifar10", False), ("cifar100", True)])
def test_cifar_tarball(tmp_path, monkeypatch, name, bytes_keys):
    written = write_cifar(tmp_path, name, bytes_keys)
    trust(monkeypatch, name, tmp_path)
    data = load_dataset(name, tmp_path, download=False)
    images, labels = written["train"]
    n = 10 if name == "cifar10" else 3
    assert data.train.images.shape == (n, 3, 32, 32) and data.test.images.shape == (3, 3, 32, 32)
    assert torch.equal(data.train.images, torch.from_numpy(images))
    assert data.train.labels.tolist() == labels and data.test.labels.tolist() == written["test"][1]
    # row layout: red plane, then green, then blue; each row-major 32x32
    flat = images.reshape(n, 3072)
    assert data.train.images[2, 1, 7, 9] == flat[2, 1024 + 7 * 32 + 9]
    assert data.classes == [f"class{i}" for i in range(5)] and data.in_channels == 3
    assert data.image_size == 32 and len(data.mean) == 3


def test_cifar_extracted_folder_verified(tmp_path, monkeypatch):
    written = write_cifar(tmp_path / "archive", "cifar10")
    with tarfile.open(tmp_path / "archive" / "cifar-10-python.tar.gz") as tar:
        tar.extractall(tmp_path / "x", filter="data")
    folder = tmp_path / "x" / "cifar-10-batches-py"
    trust(monkeypatch, "cifar10", folder)
    for data_dir in (tmp_path / "x", folder):
        data = load_dataset("cifar10", data_dir, download=False)
        assert torch.equal(data.test.images, torch.from_numpy(written["test"][0]))
    (folder / "test_batch").write_bytes(pickle.dumps({"data": 1}))
    with pytest.raises(IGCError, match=r"checksum mismatch for .*test_batch"):
        load_dataset("cifar10", folder, download=False)


def test_corrupt_cifar_tarball(tmp_path, monkeypatch):
    write_cifar(tmp_path, "cifar10")
    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(archive.read_bytes()[:300])
    trust(monkeypatch, "cifar10", tmp_path)
    with pytest.raises(IGCError, match="corrupt archive"):
        load_dataset("cifar10", tmp_path, download=False)


# ------------------------------------------------------------------------- Tiny ImageNet

def write_tiny_imagenet(root: Path) -> Path:
    """A 2-class tiny-imagenet-200 folder (one grayscale JPEG); returns the folder."""
    rng = np.random.default_rng(2)
    top = root / "tiny-imagenet-200"
    wnids = ["n02", "n01"]
    (top / "val" / "images").mkdir(parents=True)
    (top / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (top / "words.txt").write_text("n01\tgoldfish, Carassius auratus\nn02\tsalamander\n")
    for w in wnids:
        (top / "train" / w / "images").mkdir(parents=True)
        (top / "train" / w / f"{w}_boxes.txt").write_text("")
        for i in range(2):
            pixels = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(top / "train" / w / "images" / f"{w}_{i}.JPEG")
    gray = rng.integers(0, 256, (64, 64), dtype=np.uint8)
    Image.fromarray(gray, "L").save(top / "train" / "n01" / "images" / "n01_2.JPEG")
    lines = []
    for i, w in enumerate(["n01", "n02", "n02"]):
        pixels = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(top / "val" / "images" / f"val_{i}.JPEG")
        lines.append(f"val_{i}.JPEG\t{w}\t0\t0\t63\t63")
    (top / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return top


def decoded(path: Path) -> torch.Tensor:
    with Image.open(path) as img:
        return torch.from_numpy(np.asarray(img.convert("RGB")).copy()).permute(2, 0, 1)


@pytest.mark.parametrize("form", ["folder", "parent", "zip"])
def test_tiny_imagenet(tmp_path, monkeypatch, form):
    top = write_tiny_imagenet(tmp_path / "src")
    data_dir = {"folder": top, "parent": tmp_path / "src", "zip": tmp_path / "z"}[form]
    if form == "zip":
        data_dir.mkdir()
        with zipfile.ZipFile(data_dir / "tiny-imagenet-200.zip", "w") as z:
            for p in sorted(top.rglob("*")):
                z.write(p, p.relative_to(tmp_path / "src").as_posix())
        trust(monkeypatch, "tiny-imagenet", data_dir)
    data = load_dataset("tiny-imagenet", data_dir, download=False)
    assert data.classes == ["goldfish", "salamander"]  # sorted wnids n01, n02
    assert data.train.images.shape == (5, 3, 64, 64) and data.train.images.dtype == torch.uint8
    assert data.train.labels.tolist() == [0, 0, 0, 1, 1]
    assert torch.equal(data.train.images[0], decoded(top / "train/n01/images/n01_0.JPEG"))
    gray = data.train.images[2]
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])
    assert data.test.labels.tolist() == [0, 1, 1]
    assert torch.equal(data.test.images[1], decoded(top / "val/images/val_1.JPEG"))
    assert (data.image_size, data.in_channels, data.num_classes) == (64, 3, 2)


def test_tiny_imagenet_bad_annotation(tmp_path):
    top = write_tiny_imagenet(tmp_path)
    with open(top / "val" / "val_annotations.txt", "a") as f:
        f.write("val_9.JPEG\tn99\t0\t0\t1\t1\n")
    with pytest.raises(IGCError, match=r"val_annotations\.txt"):
        load_dataset("tiny-imagenet", top, download=False)


# --------------------------------------------------------------------------- image folder

def write_image_folder(root: Path) -> None:
    rng = np.random.default_rng(3)
    files = {"train/cat/a.png": (40, 30), "train/cat/sub/b.JPG": (50, 60),
             "train/dog/c.bmp": (33, 33), "val/cat/d.webp": (48, 36), "val/dog/e.jpeg": (30, 45)}
    for rel, (w, h) in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / rel)
    (root / "train" / "dog" / "notes.txt").write_text("not an image")


def test_image_folder(tmp_path):
    write_image_folder(tmp_path)
    data = load_dataset("imagefolder", tmp_path, image_size=24, resize_size=28)
    assert data.classes == ["cat", "dog"] and not data.in_memory
    assert len(data.train) == 3 and len(data.test) == 2
    image, label = data.train[1]
    assert image.shape == (3, 24, 24) and image.dtype == torch.uint8 and label == 0
    with Image.open(tmp_path / "val/cat/d.webp") as img:  # 48x36 -> 37x28 -> centre 24
        expected = img.convert("RGB").resize((37, 28), Image.Resampling.BILINEAR)
        expected = expected.crop((6, 2, 30, 26))
    val_image, val_label = data.test[0]
    assert torch.equal(val_image, torch.from_numpy(np.asarray(expected).copy()).permute(2, 0, 1))
    assert val_label == 0 and data.mean == (0.485, 0.456, 0.406)
    crops = []
    for seed in range(4):  # the random crop depends only on (seed, index)
        data.train.set_seed(seed)
        crops.append(data.train[0][0])
        assert torch.equal(crops[-1], data.train[0][0])
    assert any(not torch.equal(crops[0], c) for c in crops[1:])


def test_image_folder_layout_errors(tmp_path):
    with pytest.raises(IGCError, match="does not exist"):
        load_dataset("imagefolder", tmp_path / "nope")
    (tmp_path / "train" / "cat").mkdir(parents=True)
    with pytest.raises(IGCError, match="holds no images"):
        load_dataset("imagefolder", tmp_path)
    write_image_folder(tmp_path)
    (tmp_path / "train" / "empty").mkdir()
    with pytest.raises(IGCError, match="empty holds no images"):
        load_dataset("imagefolder", tmp_path)
    (tmp_path / "train" / "empty").rmdir()
    (tmp_path / "val" / "bird").mkdir()
    with pytest.raises(IGCError, match="bird that train/ lacks"):
        load_dataset("imagefolder", tmp_path)


# ----------------------------------------------------------------------------- augment

def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_pad_crop_matches_per_image_reference():
    x = torch.randint(1, 256, (16, 2, 5, 6), dtype=torch.uint8)  # no zeros: crops are unique
    out = pad_crop(x, 2, seeded())
    assert out.shape == x.shape and out.dtype == torch.uint8
    padded = F.pad(x, (2, 2, 2, 2))
    offsets = set()
    for i in range(16):
        matches = [(dy, dx) for dy in range(5) for dx in range(5)
                   if torch.equal(out[i], padded[i, :, dy:dy + 5, dx:dx + 6])]
        assert len(matches) == 1
        offsets.add(matches[0])
    assert len(offsets) > 3
    assert torch.equal(out, pad_crop(x, 2, seeded()))
    assert not torch.equal(out, pad_crop(x, 2, seeded(1)))


def test_crop_per_image_reference():
    x = torch.arange(2 * 3 * 7 * 8).reshape(2, 3, 7, 8)
    top, left = torch.tensor([0, 3]), torch.tensor([5, 1])
    out = crop_per_image(x, top, left, 4, 3)
    for i in range(2):
        assert torch.equal(out[i], x[i, :, top[i]:top[i] + 4, left[i]:left[i] + 3])


def test_hflip_exact():
    x = torch.randint(0, 256, (32, 3, 4, 5), dtype=torch.uint8)
    assert torch.equal(hflip(x, 1.0, seeded()), x.flip(3))
    assert torch.equal(hflip(x, 0.0, seeded()), x)
    out = hflip(x, 0.5, seeded())
    flipped = [torch.equal(out[i], x[i].flip(2)) for i in range(32)]
    kept = [torch.equal(out[i], x[i]) for i in range(32)]
    assert all(f or k for f, k in zip(flipped, kept)) and 0 < sum(flipped) < 32
    assert torch.equal(out, hflip(x, 0.5, seeded()))


def test_scale_crop_matches_interpolate_reference():
    x = torch.rand(6, 2, 8, 8)
    out = scale_crop(x, 8, 11, 8, seeded())
    assert out.shape == (6, 2, 8, 8)
    resized = {s: F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False)
               for s in range(8, 12)}
    for i in range(6):
        candidates = [
            (s, dy, dx) for s in range(8, 12) for dy in range(s - 7) for dx in range(s - 7)
            if torch.allclose(out[i], resized[s][i, :, dy:dy + 8, dx:dx + 8], atol=1e-5)]
        assert len(candidates) == 1
    u8 = scale_crop((x * 255).to(torch.uint8), 8, 11, 8, seeded())
    assert u8.dtype == torch.uint8 and u8.shape == (6, 2, 8, 8)
    with pytest.raises(IGCError):
        scale_crop(x, 6, 11, 8)


def test_center_crop_and_normalize():
    x = torch.randint(0, 256, (2, 3, 9, 10), dtype=torch.uint8)
    assert torch.equal(center_crop(x, 4), x[:, :, 2:6, 3:7])
    mean, std = (0.1, 0.5, 0.9), (0.2, 0.3, 0.4)
    out = normalize(x, mean, std)
    assert out.dtype == torch.float32
    expected = (x.double() / 255 - torch.tensor(mean, dtype=torch.float64)[:, None, None]) \
        / torch.tensor(std, dtype=torch.float64)[:, None, None]
    assert torch.allclose(out.double(), expected, atol=1e-5)


def test_batch_augment_spec_forms():
    x = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    strings = BatchAugment(["pad_crop:2", "hflip", "normalize"], (0.5,) * 3, (0.25,) * 3)
    tables = BatchAugment([{"op": "pad_crop", "pad": 2}, {"op": "hflip", "p": 0.5},
                           {"op": "normalize"}], (0.5,) * 3, (0.25,) * 3)
    a, b = strings(x, seeded(3)), tables(x, seeded(3))
    assert a.dtype == torch.float32 and a.shape == x.shape and torch.equal(a, b)
    assert strings.random and not BatchAugment(["normalize"], (0,), (1,)).random
    plain = BatchAugment(["center_crop:6"], (0,), (1,))(x)
    assert plain.shape == (4, 3, 6, 6) and plain.max() <= 1.0
    with pytest.raises(IGCError, match="did you mean hflip"):
        BatchAugment(["hflp"], (0,), (1,))
    with pytest.raises(IGCError, match="bad parameters"):
        BatchAugment(["pad_crop"], (0,), (1,))
    with pytest.raises(IGCError, match="bad parameters"):
        BatchAugment([{"op": "hflip", "q": 1}], (0,), (1,))
    with pytest.raises(IGCError, match="not a number"):
        BatchAugment(["pad_crop:four"], (0,), (1,))


# ------------------------------------------------------------------------------ loaders

def tensor_loader(n=10, **kwargs) -> TensorBatchLoader:
    images = torch.arange(n, dtype=torch.uint8)[:, None, None, None].expand(n, 1, 2, 2)
    return TensorBatchLoader(images.contiguous(), torch.arange(n), **kwargs)


def test_loader_sharding_covers_epoch_with_equal_lengths():
    loaders = [tensor_loader(batch_size=2, shuffle=True, generator=7, sampler_rank=r,
                             world_size=3) for r in range(3)]
    seen = []
    for loader in loaders:
        loader.set_epoch(4)
        labels = [y for _, y in loader]
        assert len(labels) == len(loader) == 2
        assert torch.equal(torch.cat(labels), loader.indices())
        seen += torch.cat(labels).tolist()
    assert set(seen) == set(range(10)) and len(seen) == 12  # padded like DistributedSampler
    x, y = next(iter(loaders[0]))
    assert x.dtype == torch.float32 and torch.allclose(x[:, 0, 0, 0] * 255, y.float())


def test_loader_set_epoch_determinism_and_drop_last():
    a = tensor_loader(batch_size=3, shuffle=True, generator=torch.Generator().manual_seed(5))
    b = tensor_loader(batch_size=3, shuffle=True, generator=5)
    a.set_epoch(2)
    b.set_epoch(2)
    assert torch.equal(a.indices(), b.indices())
    order2 = a.indices()
    a.set_epoch(3)
    assert not torch.equal(order2, a.indices())
    a.set_epoch(2)
    assert torch.equal(order2, a.indices())
    assert len(a) == 4 and len(tensor_loader(batch_size=3, drop_last=True)) == 3
    assert tensor_loader(batch_size=4).indices().tolist() == list(range(10))


def test_loader_augmentation_reproducible_per_epoch():
    images = torch.randint(0, 256, (8, 3, 6, 6), dtype=torch.uint8)
    aug = BatchAugment(["pad_crop:2", "hflip", "normalize"], (0.5,) * 3, (0.2,) * 3)

    def epoch(e):
        loader = make_loader(TensorImageDataset(images, torch.arange(8)), 4, shuffle=True,
                             augment=aug, seed=1)
        loader.set_epoch(e)
        return torch.cat([x for x, _ in loader])

    assert torch.equal(epoch(1), epoch(1)) and not torch.equal(epoch(1), epoch(2))


def test_make_loader_file_backed(tmp_path):
    write_image_folder(tmp_path)
    data = load_dataset("imagefolder", tmp_path, image_size=16, resize_size=16)
    loader = make_loader(data.train, 2, shuffle=True, seed=3, rank=1, world_size=2)
    assert isinstance(loader, FileBatchLoader) and len(loader) == 1
    loader.set_epoch(1)
    first = [(x.clone(), y.clone()) for x, y in loader]
    loader.set_epoch(1)
    again = list(loader)
    assert first[0][0].shape == (2, 3, 16, 16) and first[0][0].dtype == torch.float32
    assert torch.equal(first[0][0], again[0][0]) and torch.equal(first[0][1], again[0][1])


# ----------------------------------------------------------------------- real data set

FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not (FASHION / IDX_FILES[0]).is_file(), reason="Debian Fashion-MNIST absent")
def test_real_fashion_mnist_debian_package():
    data = load_dataset("fashion-mnist", FASHION, download=False)
    assert data.train.images.shape == (60000, 1, 28, 28)
    assert data.test.images.shape == (10000, 1, 28, 28)
    assert data.train.labels.bincount().tolist() == [6000] * 10
    assert data.classes[0] == "T-shirt/top"


def test_erase_blanks_one_rectangle_per_chosen_image():
    from igc.data.augment import erase

    g = torch.Generator().manual_seed(0)
    x = torch.full((200, 2, 12, 10), 7, dtype=torch.uint8)
    y = erase(x, p=0.5, min_area=0.1, max_area=0.3, generator=g)
    assert y.dtype == x.dtype and y.shape == x.shape
    zero = y == 0
    assert (zero[:, 0] == zero[:, 1]).all()  # the same rectangle in every channel
    erased = zero.flatten(1).any(1)
    assert 60 < int(erased.sum()) < 140  # about half of the images
    for img in zero[erased, 0]:
        rows, cols = img.any(1).nonzero().flatten(), img.any(0).nonzero().flatten()
        box = img[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        assert box.all() and int(box.sum()) == int(img.sum())  # one solid rectangle
        assert 0.05 * 120 <= int(img.sum()) <= 0.45 * 120
    assert torch.equal(erase(x, p=0.0, generator=g), x)
    with pytest.raises(IGCError, match="erase needs"):
        erase(x, p=2)
