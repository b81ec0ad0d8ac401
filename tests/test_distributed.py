"""Two CPU processes (gloo, DistributedDataParallel) against one process on the same global
batch: identical weights on both ranks, and the same losses and weights as the single
process within float tolerance."""

from __future__ import annotations

import json
import os
import socket
import warnings
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from igc.data.base import DatasetSplits, TensorImageDataset
from igc.models import registry
from igc.train.checkpoint import load_checkpoint
from igc.train.metrics import read_jsonl
from igc.train.recipe import load_recipe, override
from igc.train.trainer import RunConfig, train

MODEL = "test_dist_tiny"


class _TinyNoBN(nn.Module):
    """Depthwise 3x3 + group 1x1 + dense 1x1, no BatchNorm (its per-rank batch statistics
    would differ from the single process's by design)."""

    def __init__(self, num_classes: int = 10, in_chans: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_chans, 8, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.Conv2d(8, 8, 1, groups=2), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def _register() -> None:
    """In a spawned worker (fixtures do not reach it): register the test model."""
    if MODEL not in registry.list_models():
        registry.register_model(MODEL, _TinyNoBN, family="test", table="test",
                                dataset="fashion-mnist", input_size=8, num_classes=10,
                                in_chans=1)


def _splits() -> DatasetSplits:
    g = torch.Generator().manual_seed(3)
    protos = torch.rand(10, 1, 8, 8, generator=g) * 255

    def split(n: int) -> TensorImageDataset:
        labels = torch.arange(n) % 10
        images = (protos[labels] + torch.randn(n, 1, 8, 8, generator=g) * 40).clamp(0, 255)
        return TensorImageDataset(images.to(torch.uint8), labels)

    return DatasetSplits("fashion-mnist", split(64), split(30), [str(i) for i in range(10)],
                         1, 8, (0.5,), (0.25,))


def _recipe(channels_last: bool = False, model: str = MODEL):
    return override(load_recipe("fashion-mnist-cpu"), [
        ("model", model), ("epochs", 2), ("batch_size", 16), ("eval_batch_size", 8),
        ("lr", 0.1), ("schedule", "cosine"), ("warmup_epochs", 0.0), ("threads", 1),
        ("train_augment", ["normalize"]), ("label_smoothing", 0.1), ("log_every", 2),
        ("channels_last", channels_last), ("eval_every", 1)])


def _worker(rank: int, world: int, port: int, out: str, channels_last: bool = False,
            model: str = MODEL) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      LOCAL_WORLD_SIZE=str(world))
    _register()
    seen = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train(RunConfig(model=model, data="fashion-mnist",
                                 recipe=_recipe(channels_last, model), out=Path(out) / "run",
                                 quiet=True, device="cpu"),
                       splits=_splits(),
                       callbacks=[lambda trainer, event: seen.append(trainer)])
    torch.save(seen[-1].state.model.state_dict(), Path(out) / f"rank{rank}.pt")
    (Path(out) / f"rank{rank}.json").write_text(json.dumps(result.to_dict()))
    (Path(out) / f"warnings{rank}.json").write_text(json.dumps(
        [str(w.message) for w in caught]))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(tmp_path, temp_model):
    temp_model(MODEL, _TinyNoBN, family="test", table="test", dataset="fashion-mnist",
               input_size=8, num_classes=10, in_chans=1)
    single = train(RunConfig(model=MODEL, data="fashion-mnist", recipe=_recipe(),
                             out=tmp_path / "single", quiet=True, device="cpu"),
                   splits=_splits())
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    w0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    w1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for key in w0:
        assert torch.equal(w0[key], w1[key]), key  # DDP keeps the replicas identical
    reference = load_checkpoint(tmp_path / "single")["state_dict"]
    saved = load_checkpoint(tmp_path / "run")["state_dict"]  # written by rank 0 only
    for key in reference:
        torch.testing.assert_close(w0[key], reference[key], rtol=1e-4, atol=1e-5)
        assert torch.equal(saved[key], w0[key])
    one = read_jsonl(tmp_path / "single" / "metrics.jsonl")
    two = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert len(one) == len(two) == 2
    for a, b in zip(one, two):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["test_loss"] == pytest.approx(b["test_loss"], rel=1e-4)
        assert a["images"] == b["images"] == 64
    result = json.loads((tmp_path / "rank0.json").read_text())
    assert result["world_size"] == 2 and result["top1"] == pytest.approx(single.top1)


@pytest.mark.slow
def test_channels_last_ddp_warns_nothing(tmp_path):
    """torchrun's path with an IGCV2 network in channels-last (its kernels' gradients come
    back with other strides in size-1 dimensions than the parameters'; DDP warned once per
    rank before): DDP's gradients are its bucket views (gradient_as_bucket_view), so no
    "Grad strides do not match bucket view strides" warning, and the replicas stay
    identical."""
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path), True, "igcv2_fmnist"), nprocs=2,
             join=True)
    for rank in (0, 1):
        caught = json.loads((tmp_path / f"warnings{rank}.json").read_text())
        assert not [w for w in caught if "strides" in w], caught
    w0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    w1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    weights = [k for k in w0 if not k.rsplit(".", 1)[-1].startswith(("running_", "num_"))]
    assert all(torch.equal(w0[k], w1[k]) for k in weights)  # BN statistics are per rank
