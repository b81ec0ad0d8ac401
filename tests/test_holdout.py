"""The validation split (igc.data.holdout, ``--val``/``val_images``): exact stratification,
disjoint from the training images, deterministic per seed; the trainer evaluates it during
training and the test split once at the end; bad input is one line and exit 2."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from igc.data.base import DatasetSplits, TensorImageDataset
from igc.data.holdout import resolve_val_images, stratified_holdout, with_validation
from igc.errors import IGCError
from igc.train.metrics import read_jsonl
from igc.train.recipe import load_recipe, override
from igc.train.trainer import RunConfig, train

TINY = "test_tiny_igcv2"


@st.composite
def labels_and_n(draw):
    classes = draw(st.integers(1, 12))
    counts = draw(st.lists(st.integers(1, 40), min_size=classes, max_size=classes))
    labels = torch.tensor([c for c, k in enumerate(counts) for _ in range(k)])
    labels = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(
        draw(st.integers(0, 1000))))]
    return labels, draw(st.integers(0, len(labels) - 1)), counts


@settings(max_examples=200, deadline=None)
@given(labels_and_n(), st.integers(0, 2**31))
def test_holdout_is_exactly_stratified_disjoint_and_complete(case, seed):
    labels, n, counts = case
    train, val = stratified_holdout(labels, n, seed)
    total = len(labels)
    assert len(val) == n
    assert set(train.tolist()).isdisjoint(val.tolist())
    assert sorted(train.tolist() + val.tolist()) == list(range(total))
    per_class = torch.bincount(labels[val], minlength=len(counts)).tolist()
    shares = [k * n / total for k in counts]
    # each class gives floor or ceil of its exact share, and the classes with the largest
    # fractional parts are the ones rounded up (largest remainders)
    assert all(math.floor(s) <= got <= math.floor(s) + 1 for s, got in zip(shares, per_class))
    up = [i for i, (s, got) in enumerate(zip(shares, per_class)) if got > math.floor(s)]
    down = [i for i in range(len(counts)) if i not in up]
    frac = [s - math.floor(s) for s in shares]
    if up and down:
        assert min(frac[i] for i in up) >= max(frac[i] for i in down) - 1e-12


def test_fashion_mnist_shape_gives_500_per_class():
    labels = torch.arange(60000) % 10
    train, val = stratified_holdout(labels, 5000, 0)
    assert torch.bincount(labels[val]).tolist() == [500] * 10
    assert len(train) == 55000


def test_holdout_is_deterministic_per_seed():
    labels = torch.arange(1000) % 7
    a = stratified_holdout(labels, 100, 3)[1]
    assert torch.equal(a, stratified_holdout(labels, 100, 3)[1])
    assert not torch.equal(a, stratified_holdout(labels, 100, 4)[1])


def _numbered_splits(n_train: int = 120, name: str = "fashion-mnist") -> DatasetSplits:
    """Images that carry their own index (pixel 0 = index % 256, pixel 1 = index // 256)."""
    def split(n: int) -> TensorImageDataset:
        images = torch.zeros(n, 1, 8, 8, dtype=torch.uint8)
        images[:, 0, 0, 0] = torch.arange(n) % 256
        images[:, 0, 0, 1] = torch.arange(n) // 256
        return TensorImageDataset(images, torch.arange(n) % 10)

    return DatasetSplits(name, split(n_train), split(40), [str(i) for i in range(10)], 1, 8,
                         (0.5,), (0.25,))


def _ids(split: TensorImageDataset) -> set[int]:
    return set((split.images[:, 0, 0, 0].int() + 256 * split.images[:, 0, 0, 1].int()).tolist())


def test_with_validation_moves_images_out_of_training():
    splits = _numbered_splits(500)
    held = with_validation(splits, 50, 0).check()
    assert len(held.val) == 50 and len(held.train) == 450
    assert _ids(held.train).isdisjoint(_ids(held.val))
    assert _ids(held.train) | _ids(held.val) == set(range(500))
    assert torch.bincount(held.val.labels).tolist() == [5] * 10
    assert held.test is splits.test
    assert with_validation(splits, 0, 0) is splits


@pytest.mark.parametrize(("requested", "name", "size", "expected"), [
    (-1, "fashion-mnist", 60000, 5000), (-1, "mnist", 60000, 5000),
    (-1, "cifar10", 50000, 5000), (-1, "cifar100", 50000, 5000),
    (-1, "tiny-imagenet", 100000, 0), (-1, "imagefolder", 10**6, 0),
    (-1, "fashion-mnist", 96, 0),  # a subset far smaller than the default: none
    (0, "fashion-mnist", 60000, 0), (0, "tiny-imagenet", 100000, 0),
    (123, "fashion-mnist", 60000, 123)])
def test_resolve_val_images(requested, name, size, expected):
    assert resolve_val_images(requested, name, size) == expected


@pytest.mark.parametrize(("requested", "name", "size", "words"), [
    (-2, "fashion-mnist", 60000, ">= 0"),
    (60000, "fashion-mnist", 60000, "whole training split"),
    (70000, "fashion-mnist", 60000, "whole training split"),
    (10, "tiny-imagenet", 100000, "ships its own validation set"),
    (10, "imagefolder", 1000, "ships its own validation set")])
def test_resolve_val_images_refuses(requested, name, size, words):
    with pytest.raises(IGCError, match=words):
        resolve_val_images(requested, name, size)


# ------------------------------------------------------------------------------ training
def _recipe(**changes):
    settings_ = {"epochs": 3, "batch_size": 16, "eval_batch_size": 32, "lr": 0.05,
                 "log_every": 1, "eval_every": 1, "threads": 1, "model": TINY, **changes}
    return override(load_recipe("fashion-mnist-cpu"), list(settings_.items()))


def _train(out: Path, splits: DatasetSplits, **changes):
    config = RunConfig(model=TINY, data=splits.name, recipe=_recipe(**changes), out=out,
                       quiet=True, device="cpu")
    return train(config, splits=splits)


@pytest.mark.usefixtures("tiny_models", "one_thread")
def test_trainer_evaluates_validation_during_and_test_once_at_the_end(tmp_path, tiny_splits):
    splits = tiny_splits(n_train=120)
    result = _train(tmp_path / "r", splits, val_images=20, ema=True)
    records = read_jsonl(tmp_path / "r" / "metrics.jsonl")
    assert [r["val_top1"] is not None for r in records] == [True, True, True]
    assert [r["test_top1"] is not None for r in records] == [False, False, True]
    assert [r["top1"] is not None for r in records] == [False, False, True]
    assert records[-1]["top1"] == records[-1]["test_top1"] == result.top1
    assert records[0]["ema_val_top1"] is not None and records[0].get("ema_top1") is None
    assert records[-1]["ema_top1"] is not None
    assert result.val_top1 == records[-1]["val_top1"] and result.val_images == 20
    run = json.loads((tmp_path / "r" / "run.json").read_text())
    assert (run["val_images"], run["train_images"], run["test_images"]) == (20, 100, 40)
    assert records[0]["images"] == 96  # 100 training images, batch 16, last dropped
    assert load_recipe(tmp_path / "r" / "recipe.toml").val_images == 20
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["val_images"] == 20 and summary["val_top1"] == result.val_top1


@pytest.mark.usefixtures("tiny_models", "one_thread")
def test_without_validation_the_test_split_is_evaluated_as_before(tmp_path, tiny_splits):
    splits = tiny_splits(n_train=96)
    result = _train(tmp_path / "r", splits, epochs=2)  # -1: too small for the default
    records = read_jsonl(tmp_path / "r" / "metrics.jsonl")
    assert all(r["top1"] is not None and r["test_top1"] == r["top1"] for r in records)
    assert all("val_top1" not in r for r in records)
    assert result.val_images == 0 and result.val_top1 is None
    run = json.loads((tmp_path / "r" / "run.json").read_text())
    assert run["val_images"] == 0 and run["train_images"] == 96


@pytest.mark.usefixtures("tiny_models", "one_thread")
def test_resume_keeps_the_validation_split(tmp_path, tiny_splits):
    splits = tiny_splits(n_train=120)
    whole = _train(tmp_path / "a", splits, val_images=20)

    def stop(trainer, event):
        if event == "step" and trainer.state.global_step == 8:
            trainer.stop.request()

    from igc.train.trainer import Interrupted

    config = RunConfig(model=TINY, data=splits.name, recipe=_recipe(val_images=20),
                       out=tmp_path / "b", quiet=True, device="cpu")
    with pytest.raises(Interrupted):
        train(config, splits=splits, callbacks=[stop])
    resumed = train(RunConfig(model=TINY, data=splits.name, recipe=_recipe(),
                              out=tmp_path / "b", quiet=True, device="cpu", resume=True),
                    splits=splits)
    assert (resumed.val_top1, resumed.top1) == (whole.val_top1, whole.top1)


@pytest.mark.usefixtures("tiny_models", "one_thread")
def test_a_resume_cannot_change_the_validation_split(tmp_path, tiny_data, refused):
    from igc.cli import main

    out = tmp_path / "r"
    assert main(["train", "--model", TINY, "--out", str(out), "--epochs", "1", "--quiet",
                 "--val", "20", "--batch-size", "16", "--set", "threads=1"]) == 0
    for args in (["--val", "10"], ["--set", "val_seed=3"]):
        line = refused(["train", "--out", str(out), "--resume", "--epochs", "2", "--quiet",
                        *args], tmp_path, 60)
        assert "cannot change its validation split" in line


def test_checkpoint_without_val_key_resumes_with_no_holdout(tmp_path):
    from igc.train import builders as B
    from igc.train import distributed as D

    recipe = _recipe()
    saved = {k: v for k, v in recipe.to_dict().items() if k not in ("val_images", "val_seed")}
    state = {"path": "x", "model": TINY, "data": "fashion-mnist", "recipe": saved,
             "epoch": 1, "loader": {"world_size": 1}}
    config = RunConfig(model=TINY, data="fashion-mnist", recipe=recipe, out=tmp_path)
    resumed, _ = B.build_recipe(config, state, D.DistInfo())
    assert resumed.val_images == 0


# ------------------------------------------------------------------------------ bad input
@pytest.mark.usefixtures("tiny_models")
@pytest.mark.parametrize(("args", "words"), [
    (["--val", "-5"], "--val"), (["--val", "96"], "whole training split"),
    (["--val", "5000"], "whole training split"), (["--set", "val_images=-3"], "val_images")])
def test_cli_bad_val_is_one_line(tmp_path, tiny_data, refused, args, words):
    line = refused(["train", "--model", TINY, "--out", str(tmp_path / "r"), "--epochs", "1",
                    "--quiet", *args], tmp_path, 60)
    assert words in line


@pytest.mark.usefixtures("tiny_models")
def test_cli_val_on_a_data_set_with_its_own_validation_set(tmp_path, monkeypatch, refused):
    import igc.train.splits as splits_mod

    splits = _numbered_splits(120, "tiny-imagenet")
    monkeypatch.setattr(splits_mod, "load_dataset", lambda *a, **k: splits)
    line = refused(["train", "--model", TINY, "--data", "tiny-imagenet", "--out",
                    str(tmp_path / "r"), "--epochs", "1", "--quiet", "--val", "10"],
                   tmp_path, 60)
    assert "ships its own validation set" in line


def test_medium_budget_keeps_its_identity():
    """The medium reproduction's runs were trained without a validation split: its budget
    says val_images = 0, and the identity of its committed results is unchanged."""
    from igc.reproduce.budgets import get_budget
    from igc.reproduce.config import Config

    config = Config("fashion-mnist", get_budget("medium"))
    assert config.recipe().val_images == 0
    held = Path(__file__).parents[1] / "results" / "fashion-mnist-medium" / "reproduce.json"
    if held.is_file():
        assert json.loads(held.read_text())["config"] == config.identity()
    assert "val_images" not in config.identity()["recipe"]


@pytest.mark.usefixtures("tiny_models", "one_thread")
def test_plot_and_summarize_read_runs_with_a_validation_split(tmp_path, tiny_splits, capsys):
    from igc.cli import main

    _train(tmp_path / "runs" / "v", tiny_splits(n_train=120), val_images=20, epochs=2)
    png = tmp_path / "c.png"
    assert main(["plot", str(tmp_path / "runs" / "v"), "--out", str(png)]) == 0
    assert png.stat().st_size > 1000
    capsys.readouterr()
    assert main(["summarize", str(tmp_path / "runs"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    summary = json.loads((tmp_path / "runs" / "v" / "summary.json").read_text())
    assert json.dumps(summary["top1"]) in json.dumps(rows)
