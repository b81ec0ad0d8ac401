"""Weights from URLs (``file://``: torch.hub's download path, offline) and hash checks:
torch.hub's hash prefix in the name, an explicit ``hash=``, pytorchcv's SHA-1 in its
release names and one-file zips, the cache; every failure one line, nothing half-loaded."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest
import torch

from igc.errors import IGCError
from igc.models import create_model
from igc.models.download import cache_dir

NAME = "igcv2_fmnist"


@pytest.fixture(autouse=True)
def _hub(tmp_path, monkeypatch, one_thread):
    """torch.hub's cache in a temporary TORCH_HOME."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)


def trained(seed: int = 3) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = create_model(NAME)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


def outputs(model: torch.nn.Module) -> torch.Tensor:
    x = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return model.eval()(x)


def weights_file(folder: Path, name: str = "w.pt", seed: int = 3) -> tuple[Path, str]:
    """A state dict saved as ``folder/name``; returns its path and SHA-256."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    torch.save(trained(seed).state_dict(), path)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def hub_named(folder: Path, seed: int = 3, digits: int = 8) -> Path:
    """A state dict named as torch.hub names its files: ``igcv2-<sha256 prefix>.pt``."""
    path, digest = weights_file(folder, "tmp.pt", seed)
    return path.rename(folder / f"igcv2-{digest[:digits]}.pt")


def test_file_url_downloads_into_the_hub_cache_and_is_reused(tmp_path):
    path = hub_named(tmp_path / "server")
    model = create_model(NAME, pretrained=path.as_uri())
    assert torch.equal(outputs(model), outputs(trained()))
    cached = cache_dir() / path.name
    assert cached.is_file() and cached.read_bytes() == path.read_bytes()
    weights = model.pretrained_cfg["weights"]
    assert weights["url"] == path.as_uri() and weights["file"] == str(cached)
    assert weights["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    path.unlink()  # the server is gone: the cached copy is used
    assert torch.equal(outputs(create_model(NAME, checkpoint_path=path.as_uri())),
                       outputs(trained()))


def test_hash_prefix_in_the_name_is_checked(tmp_path):
    path = hub_named(tmp_path / "server")
    wrong = path.with_name("igcv2-00000000.pt")
    path.rename(wrong)
    with pytest.raises(IGCError, match=r"fails its SHA-256 check \(.*: 00000000") as err:
        create_model(NAME, pretrained=wrong.as_uri())
    assert "\n" not in str(err.value)
    assert not list(cache_dir().iterdir())  # nothing cached, no partial file left
    model = create_model(NAME, pretrained=wrong.as_uri(), hash=False)  # no check asked
    assert torch.equal(outputs(model), outputs(trained()))


def test_explicit_hash_for_urls_and_files(tmp_path):
    path, digest = weights_file(tmp_path / "server")
    for spec in (path.as_uri(), str(path)):
        assert create_model(NAME, pretrained=spec, hash=digest).pretrained_cfg[
            "weights"]["sha256"] == digest
        assert create_model(NAME, pretrained=spec, hash=digest[:12]) is not None
    other = "f" * 64 if not digest.startswith("f") else "0" * 64
    with pytest.raises(IGCError, match="SHA-256"):
        create_model(NAME, pretrained=str(path), hash=other)
    (cache_dir() / path.name).write_bytes(b"damaged")  # a damaged cached copy is replaced
    assert create_model(NAME, pretrained=path.as_uri(), hash=digest) is not None
    assert (cache_dir() / path.name).read_bytes() == path.read_bytes()
    (cache_dir() / path.name).write_bytes(b"damaged")
    path.unlink()  # ... and when the server is gone, removed: it cannot fail a later load
    with pytest.raises(IGCError, match="cannot"):
        create_model(NAME, pretrained=path.as_uri(), hash=digest)
    assert not (cache_dir() / path.name).exists()


def test_pytorchcv_release_names_check_the_sha1_of_the_zipped_file(tmp_path):
    """pytorchcv's ``NAME-EEEE-<sha1[:8]>.pth.zip``: the zip's one file is loaded, its SHA-1
    checked; a wrong SHA-1 in the name is refused."""
    inner, _ = weights_file(tmp_path / "build", "x.pth")
    sha1 = hashlib.sha1(inner.read_bytes()).hexdigest()
    server = tmp_path / "server"
    server.mkdir()
    for digits in (sha1[:8], "00000000" if not sha1.startswith("0000") else "ffffffff"):
        name = f"igcv2_fmnist-0920-{digits}.pth"
        with zipfile.ZipFile(server / f"{name}.zip", "w") as archive:
            archive.write(inner, name)
    good = server / f"igcv2_fmnist-0920-{sha1[:8]}.pth.zip"
    model = create_model(NAME, pretrained=good.as_uri())
    assert torch.equal(outputs(model), outputs(trained()))
    assert torch.equal(outputs(create_model(NAME, pretrained=good)), outputs(trained()))
    bad = next(p for p in server.iterdir() if p != good)
    with pytest.raises(IGCError, match=r"fails its SHA-1 check \(pytorchcv's file name: "):
        create_model(NAME, pretrained=bad.as_uri())
    with pytest.raises(IGCError, match="fails its SHA-1 check"):
        create_model(NAME, pretrained=bad)  # a local file with that name too


@pytest.mark.parametrize("spec, match", [
    ("ftp://example.org/w.pt", r"http\(s\):// or file:// URL"),
    ("file:///", "names no file"),
    ("file:///nonexistent/folder/w.pt", "cannot download"),
    # issue 20: parsed with urllib.parse before any request, one line each
    ("http://example.com:abc/w.pt", "not a valid address"),
    ("http://exa mple.com/w.pt", "spaces or control characters"),
    ("http://[::1/w.pt", "not a valid address"),
    ("http:///w.pt", "names no host"),
    ("file://otherhost/w.pt", "names a local file"),
    ("file:///dev/zero", "not a regular file"),
    ("https://example.com/w\n.pt", "control characters"),
])
def test_bad_urls(spec, match):
    with pytest.raises(IGCError, match=match) as err:
        create_model(NAME, pretrained=spec)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("kwargs, match", [
    ({"pretrained": "x.pt", "hash": "XYZ"}, "8 to 64 lowercase hex"),
    ({"pretrained": "x.pt", "hash": "abc"}, "8 to 64 lowercase hex"),
    ({"pretrained": "x.pt", "hash": True}, "8 to 64 lowercase hex"),
    ({"hash": "0" * 64}, "needs pretrained=FILE_OR_URL"),
    ({"pretrained": True, "hash": "0" * 64}, "released weights"),
    ({"pretrained": ""}, "a file path, a URL or hf-hub"),
])
def test_bad_hash_requests(kwargs, match):
    with pytest.raises(IGCError, match=match):
        create_model(NAME, **kwargs)


def test_damaged_zip_and_torn_download_are_one_line(tmp_path):
    server = tmp_path / "server"
    server.mkdir()
    (server / "w.zip").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(IGCError, match="corrupt or not a torch file") as err:
        create_model(NAME, pretrained=(server / "w.zip").as_uri())
    assert "\n" not in str(err.value)
    path, _ = weights_file(server)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(IGCError, match="corrupt or not a torch file"):
        create_model(NAME, pretrained=path.as_uri(), hash=False)
