"""Recipes: the shipped files match the papers (SPEC section 3), overrides parse and
validate, the resolved recipe round-trips through TOML."""

from __future__ import annotations

import pytest

from igc.data import BatchAugment
from igc.errors import IGCError
from igc.train.recipe import (
    Recipe,
    list_recipes,
    load_recipe,
    override,
    parse_assignment,
    parse_value,
)


def test_shipped_recipes_exist_and_name_their_augmentation():
    names = list_recipes()
    assert {"cifar", "tiny-imagenet", "imagenet", "fashion-mnist-cpu"} <= set(names)
    for name in names:
        r = load_recipe(name)
        assert r.name == name and r.description
        assert r.train_augment and r.eval_augment
        BatchAugment(r.train_augment, (0.5,), (0.25,))
        assert r.data, f"{name} names no default data set"


def test_cifar_recipe_is_the_papers():
    r = load_recipe("cifar")
    assert (r.epochs, r.batch_size, r.lr, r.momentum, r.nesterov, r.weight_decay) == \
        (400, 64, 0.1, 0.9, True, 1e-4)
    assert (r.schedule, r.milestones, r.gamma) == ("multistep", [200, 300, 350], 0.1)
    assert r.train_augment == ["pad_crop:4", "hflip", "normalize"]
    assert r.eval_augment == ["normalize"] and r.label_smoothing == 0


def test_tiny_imagenet_and_imagenet_recipes():
    t = load_recipe("tiny-imagenet")
    assert (t.epochs, t.milestones, t.model_args) == (200, [100, 150, 175], {"stem_stride": 2})
    assert t.train_augment == ["scale_crop:64,80,64", "hflip", "normalize"]
    i = load_recipe("imagenet")
    assert (i.momentum, i.weight_decay, i.batch_size, i.lr) == (0.9, 4e-5, 96, 0.045)
    assert (i.image_size, i.resize_size, i.data) == (224, 256, "imagefolder")
    assert i.lr_scaling == "linear" and i.reference_batch == 96


def test_parse_value_forms():
    assert parse_value("0.1") == 0.1 and parse_value("3") == 3
    assert parse_value("true") is True and parse_value("[1, 2]") == [1, 2]
    assert parse_value("cosine") == "cosine" and parse_value('"a b"') == "a b"
    assert parse_value('["pad_crop:2", "hflip"]') == ["pad_crop:2", "hflip"]
    assert parse_assignment("lr = 0.5") == ("lr", 0.5)
    with pytest.raises(IGCError, match="KEY=VALUE"):
        parse_assignment("lr")


def test_override_types_tables_and_errors():
    r = override(load_recipe("cifar"), ["epochs=3", "lr=1", "model_args.width=48",
                                        "milestones=[1,2]", "nesterov=false",
                                        ("train_augment", "hflip")])
    assert (r.epochs, r.lr, r.model_args, r.milestones, r.nesterov) == \
        (3, 1.0, {"width": 48}, [1, 2], False)
    assert isinstance(r.lr, float) and r.train_augment == ["hflip"]
    assert override(r, ["epochs=4.0"]).epochs == 4
    cases = {
        "epochs=1.5": "must be an integer",
        "nesterov=yes": "must be true or false",
        "lr=fast": "must be a number",
        "epochs=0": "epochs must be at least 1",
        "batch_size=0": "batch size must be at least 1",
        "milestones=[3,2]": "milestones must increase",
        "weight_decay=-1": "weight_decay must be >= 0",
        "warmup_factor=2": "warmup_factor",
        "lr_scaling=quadratic": "lr_scaling must be one of",
        "epoch=3": "did you mean epochs",
        "lr.x=1": "only tables",
        "train_augment=[\"pad_crop\"]": "train_augment",
        "eval_augment=[\"blur\"]": "unknown augmentation",
    }
    for item, message in cases.items():
        with pytest.raises(IGCError, match=message):
            override(r, [item])


def test_lr_scaling():
    r = load_recipe("cifar")
    assert override(r, ["batch_size=128"]).scaled_lr() == pytest.approx(0.2)
    assert override(r, ["batch_size=256", "lr_scaling=sqrt"]).scaled_lr() == pytest.approx(0.2)
    assert override(r, ["batch_size=256", "lr_scaling=none"]).scaled_lr() == pytest.approx(0.1)


def test_toml_round_trip_and_file_errors(tmp_path):
    r = override(load_recipe("tiny-imagenet"), ["description=\"quotes \\\" and \\\\ \"",
                                                "min_lr=1e-5"])
    r.save(tmp_path / "recipe.toml")
    again = load_recipe(tmp_path / "recipe.toml")
    assert again.to_dict() == r.to_dict()
    (tmp_path / "bad.toml").write_text("epochs = [\n")
    with pytest.raises(IGCError, match="not valid TOML"):
        load_recipe(tmp_path / "bad.toml")
    (tmp_path / "partial.toml").write_text("epochs = 7\n")
    partial = load_recipe(tmp_path / "partial.toml")
    assert partial.epochs == 7 and partial.lr == Recipe().lr and partial.name == "partial"
    with pytest.raises(IGCError, match="did you mean cifar"):
        load_recipe("cifr")
