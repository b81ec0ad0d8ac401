"""The shared plumbing: atomic writes, field validation, TOML round trips, formatters, the
thread-count context, the CLI argument types and the model of a checkpoint."""

from __future__ import annotations

import argparse
import os

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from igc import checks
from igc.cli import args as A
from igc.errors import IGCError
from igc.files.atomic import atomic_write, atomic_writer, stale_temp_files
from igc.files.schema import Spec, check, check_fields, check_plain
from igc.formatting import count, duration, first_line, mean_std, pct
from igc.runtime import num_threads
from igc.train.recipe import Recipe, load_recipe, override


# ------------------------------------------------------------------------------ atomic
def test_atomic_write_replaces_whole_or_not_at_all(tmp_path):
    target = tmp_path / "f.txt"
    atomic_write(target, "old")
    with pytest.raises(RuntimeError), atomic_writer(target) as handle:
        handle.write(b"half of the new")
        raise RuntimeError("crash while writing")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["f.txt"]
    atomic_write(target, b"new")
    assert target.read_bytes() == b"new" and os.listdir(tmp_path) == ["f.txt"]
    with pytest.raises(IGCError, match="cannot write file"):
        atomic_write(tmp_path / "missing" / "f.txt", "x")


def test_stale_temp_files_are_those_of_dead_processes(tmp_path):
    mine = tmp_path / f".checkpoint.pt.tmp{os.getpid()}"
    dead = tmp_path / ".checkpoint.pt.tmp999999"
    other = tmp_path / ".notes.txt.tmp999999"
    for path in (mine, dead, other):
        path.write_bytes(b"")
    assert stale_temp_files(tmp_path, ("checkpoint.pt",)) == [dead]
    assert stale_temp_files(tmp_path) == [dead, other]


# ------------------------------------------------------------------------------ schema
def test_check_fields_types_ranges_and_items():
    fields = {"n": Spec(int, 1, 10), "x": Spec(float, 0, 1, null=True),
              "names": Spec(list, 0, 3, items=Spec(str, 1, 5)), "opt": Spec(str, optional=True)}
    good = {"n": 3, "x": None, "names": ["a", "bcd"]}
    assert check_fields(good, fields, "f", "fix it") == good
    bad = [({"n": True, "x": 0.5, "names": []}, "n must be an integer in [1, 10]"),
           ({"n": 11, "x": 0.5, "names": []}, "n must be an integer in [1, 10]"),
           ({"n": 1, "x": float("nan"), "names": []}, "x must be a number"),
           ({"n": 1, "x": 0.5, "names": ["toolong"]}, "names[0] must be a string"),
           ({"n": 1, "x": 0.5, "names": ["a"] * 4}, "4 entries"),
           ({"n": 1, "x": 0.5}, "lacks names"),
           ([1], "must be a table")]
    for record, message in bad:
        with pytest.raises(IGCError, match=message.replace("[", r"\[").replace("]", r"\]")):
            check_fields(record, fields, "f", "fix it")
    assert check(float("inf"), Spec(float, finite=False), "f", "") == float("inf")


def test_check_plain_depth_size_and_numbers():
    assert check_plain({"a": [1, 2.5, "x", None, True]}, "v", "") == \
        {"a": [1, 2.5, "x", None, True]}
    for value, message in (([[[[[1]]]]], "plain value"), ({"a": float("nan")}, "finite"),
                           ({1: 2}, "not a string"), (list(range(300)), "300 entries"),
                           ({"w": 10**9}, "is over")):
        with pytest.raises(IGCError, match=message):
            check_plain(value, "v", "", max_number=10**6)


# ------------------------------------------------------------------------------ TOML
@settings(max_examples=40, deadline=None)
@given(epochs=st.integers(1, 10**5), lr=st.floats(1e-6, 10.0),
       text=st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=40),
       width=st.integers(1, 4096), augment=st.lists(st.sampled_from(
           ["hflip", "pad_crop:2", "normalize", "hflip:0.25"]), max_size=4))
def test_recipe_toml_round_trip(tmp_path_factory, epochs, lr, text, width, augment):
    recipe = override(load_recipe("cifar"), [
        ("epochs", epochs), ("lr", lr), ("description", text),
        ("model_args", {"width": width, "branch_sizes": [[2, 4], [4, 8]]}),
        ("train_augment", augment), ("milestones", [])])
    path = tmp_path_factory.mktemp("toml") / "recipe.toml"
    recipe.save(path)
    assert load_recipe(path).to_dict() == recipe.to_dict()


# ------------------------------------------------------------------------------ formatting
def test_formatters():
    assert [count(v) for v in (None, 950, 25634, 4.1e6, 123.4e6, 2.5e9)] == \
        ["n/a", "950", "25.6k", "4.1M", "123M", "2.5G"]
    assert [pct(v) for v in (None, 91.234, float("nan"))] == ["n/a", "91.23%", "n/a"]
    assert mean_std(92.0, 2.0) == "92.00 ± 2.00" and mean_std(92.0, None) == "92.00"
    assert [duration(s) for s in (12.34, 372.4, 4000)] == ["12.3s", "6m12s", "1h06m40s"]
    assert first_line(RuntimeError("\n  first line\nsecond")) == "first line"
    assert first_line(KeyError()) == "KeyError"


def test_num_threads_restores_the_callers_count():
    before = torch.get_num_threads()
    with pytest.raises(ValueError), num_threads(1) as inside:
        assert inside == 1 == torch.get_num_threads()
        torch.set_num_threads(2)  # code inside may change it again
        raise ValueError
    assert torch.get_num_threads() == before
    with num_threads(None) as used:
        assert used == before
    with pytest.raises(IGCError, match="at least 1"), num_threads(0):
        pass
    assert torch.get_num_threads() == before


# ------------------------------------------------------------------------------ arguments
def test_argument_types_share_the_library_limits(tmp_path):
    seed = A.integer("seed", 0, checks.MAX_SEED)
    assert seed(" 12_000 ") == 12000
    for text, message in (("x", "expected an integer"), (str(2**63), "at most"),
                          ("-1", "at least 0")):
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            seed(text)
    lr = A.number("lr", hi=checks.MAX_LR, positive=True)
    assert lr("0.5") == 0.5
    for text in ("0", "nan", "-inf", "1e5"):
        with pytest.raises(argparse.ArgumentTypeError):
            lr(text)
    (tmp_path / "file").write_text("")
    assert A.out_dir()(str(tmp_path / "a" / "b")) == tmp_path / "a" / "b"
    assert not (tmp_path / "a").exists()  # checking makes nothing
    for bad in ("", str(tmp_path / "file"), str(tmp_path / "file" / "x"), "a" * 300):
        with pytest.raises(argparse.ArgumentTypeError):
            A.out_dir()(bad)
    assert A.out_file((".png",))(str(tmp_path / "c.PNG")).name == "c.PNG"
    with pytest.raises(argparse.ArgumentTypeError, match=r"must end in \.png"):
        A.out_file((".png",))(str(tmp_path / "c.jpg"))
    with pytest.raises(argparse.ArgumentTypeError, match="does not exist"):
        A.existing("dir", "--data-dir")(str(tmp_path / "nope"))
    with pytest.raises(IGCError, match="must be an integer"):
        checks.check_int(True, "n")


# ------------------------------------------------------------------------------ checkpoints
@pytest.mark.usefixtures("tiny_models")
def test_model_from_checkpoint(tmp_path, tiny_data):
    from igc.train.checkpoint import model_from_checkpoint
    from igc.train.trainer import RunConfig, train

    recipe = override(Recipe(), [("epochs", 1), ("batch_size", 32), ("threads", 1),
                                 ("ema", True)])
    train(RunConfig(model="test_tiny_igcv2", data="fashion-mnist", recipe=recipe,
                    out=tmp_path / "r", quiet=True, device="cpu"))
    loaded = model_from_checkpoint(tmp_path / "r")
    state = loaded.state
    assert (loaded.name, loaded.num_classes, loaded.in_chans, loaded.image_size) == \
        ("test_tiny_igcv2", 10, 1, 8)
    assert not loaded.model.training
    for key, value in loaded.model.state_dict().items():
        assert torch.equal(value, state["state_dict"][key])
    averaged = model_from_checkpoint(state, ema=True).model.state_dict()
    for key, value in averaged.items():
        assert torch.equal(value, state["ema_state_dict"][f"module.{key}"])
    state["model"] = "nope"
    with pytest.raises(IGCError, match="unknown model 'nope'"):
        model_from_checkpoint(state)
