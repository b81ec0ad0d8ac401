"""``igc reproduce``: every target at the smoke budget, the analytic numbers against the
paper, caching and resuming of runs, and bad input.

The empirical targets train on a tiny Fashion-MNIST written here in the official IDX format
(80 training and 40 test images; the smoke budget keeps 64 / 32 and resizes them to 8x8).
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import math
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from igc.cli import main
from igc.data import sources
from igc.errors import IGCError
from igc.reproduce import analytic, cache, config, reproduce, runner, sweeps
from igc.reproduce.arms import arms_for
from igc.reproduce.budgets import get_budget
from igc.reproduce.targets import ANALYTIC, EMPIRICAL, GROUPS, TARGETS, resolve

IDX = {"train-images-idx3-ubyte.gz": (80, 28, 28), "train-labels-idx1-ubyte.gz": (80,),
       "t10k-images-idx3-ubyte.gz": (40, 28, 28), "t10k-labels-idx1-ubyte.gz": (40,)}


def _idx_bytes(array: np.ndarray) -> bytes:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """A tiny Fashion-MNIST in the official format: class-dependent blobs, learnable."""
    directory = tmp_path_factory.mktemp("fashion")
    rng = np.random.default_rng(0)
    for name, shape in IDX.items():
        if "labels" in name:
            array = np.arange(shape[0]) % 10
        else:
            labels = np.arange(shape[0]) % 10
            array = rng.integers(0, 60, shape)
            for i, label in enumerate(labels):
                array[i, 2 * label: 2 * label + 8, 4:24] += 180
        (directory / name).write_bytes(gzip.compress(_idx_bytes(np.asarray(array))))
    return directory


def _trusted(mp: pytest.MonkeyPatch, data_dir: Path, cache: Path) -> None:
    """No network, no system copy, and the files of ``data_dir`` taken as official."""
    def no_network(url, dest):
        raise AssertionError(f"test tried to download {url}")

    mp.setattr(sources, "_fetch", no_network)
    mp.setattr(sources, "SYSTEM_DIRS", {})
    mp.setenv("IGC_DATA", str(cache))
    source = sources.SOURCES["fashion-mnist"]
    resources = tuple(dataclasses.replace(
        r, md5=hashlib.md5((data_dir / r.filename).read_bytes()).hexdigest())
        for r in source.resources)
    mp.setitem(sources.SOURCES, "fashion-mnist", dataclasses.replace(source,
                                                                     resources=resources))
    mp.setattr(config, "_DATA_CACHE", {})


@pytest.fixture(autouse=True)
def _offline(monkeypatch, data_dir, tmp_path):
    _trusted(monkeypatch, data_dir, tmp_path / "cache")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, data_dir):
    """Every target at the smoke budget, once, with the combined document."""
    root = tmp_path_factory.mktemp("smoke")
    out, docs = root / "out", root / "docs" / "reproduction.md"
    with pytest.MonkeyPatch.context() as mp:
        _trusted(mp, data_dir, root / "cache")
        sections = reproduce(["all"], budget="smoke", out=out, data_dir=str(data_dir),
                             docs=docs)
    return {"out": out, "docs": docs, "sections": {s.target: s for s in sections}}


def _args(out: Path, data_dir: Path, *extra: str) -> list[str]:
    return ["reproduce", *extra, "--budget", "smoke", "--out", str(out), "--data-dir",
            str(data_dir), "-q"]


# ---------------------------------------------------------------------- the target list

def test_list_names_every_target(capsys):
    assert main(["reproduce", "--list"]) == 0
    text = capsys.readouterr().out
    for name in TARGETS:
        assert name in text
    assert {t.kind for t in TARGETS.values()} == {ANALYTIC, EMPIRICAL}
    assert [t.name for t in resolve(["all"])] == list(TARGETS)
    assert set(GROUPS[ANALYTIC]) | set(GROUPS[EMPIRICAL]) == set(TARGETS)


# ------------------------------------------------------------------ analytic: the math

def test_width_vs_layers_gives_back_table2_widths():
    for budget, xception, igcv2 in zip(sweeps.TABLE2_BUDGETS, (64, 98, 125), (144, 256, 361)):
        assert sweeps.widest_channelwise(budget, 2) == xception
        assert sweeps.widest_channelwise(budget, 3) == igcv2
    assert sweeps.widest_channelwise(100, 9) is None  # 2^8 channels cost more
    assert sweeps.balanced_width(sweeps.TABLE2_BUDGETS[1], 3) == pytest.approx(256, abs=1e-6)


def test_params_vs_layers_never_beats_the_bound():
    rows = analytic.params_vs_layers((64, 256)).rows
    for row in rows:
        assert row.params >= row.bound - 1e-6
        if row.channelwise_params is not None:
            assert row.channelwise_params >= row.channelwise_bound - 1e-6
    assert {r.eq14_best for r in rows if r.width == 64} == {6}
    c64 = {r.layers: r for r in rows if r.width == 64}
    assert c64[3].branch_sizes == [1, 8, 8] and c64[3].params == 1600


def test_figure2_sweep_conditions_and_colours():
    pts = sweeps.figure2_points()
    panel_a = [p for p in pts if p.layers == 3]
    red = [p for p in panel_a if p.colour == "red"]
    assert [(p.branch, p.width, p.condition) for p in red] == [(8, 64, "strict")]
    for p in pts:
        assert p.colour != "green" or p.condition == "sparse"
        assert abs(p.params - sweeps.FIGURE2_BUDGET) <= 0.2 * sweeps.FIGURE2_BUDGET + 1


def test_figure3_nonsparsity_is_q_over_s_c_squared():
    pts = sweeps.figure3_points()
    assert [p.layers for p in pts][:2] == [2, 3] and pts[1].width == 256
    for p in pts:
        assert p.nonsparsity == pytest.approx(p.params / (9 * p.width ** 2))
        assert p.condition == "strict" and p.params <= sweeps.FIGURE3_BUDGET
        assert math.prod(p.branch_sizes) == p.width


# --------------------------------------------------- analytic: counts against the paper

def test_block_counts_of_tables_2_and_5(smoke):
    rows = {r["model"]: r for r in smoke["sections"]["table2-counts"].data["rows"]}
    assert rows["xception_8l_c64"]["params"] == 4672  # 9 x 64 + 64^2, the paper's example
    assert rows["igcv2_8l_c144"]["params"] == 4752  # 9 x 144 + 2 x 144 x 12
    rows5 = smoke["sections"]["table5-counts"].data["rows"]
    for row in [*rows.values(), *rows5]:
        assert row["params"] == row["formula"]  # eq. 7, counted from the zoo's module
        assert row["macs"] == 1024 * row["params"]  # one block at 32x32
        assert abs(row["params_diff_pct"]) < 7  # the paper's shared '≈' cells


def test_zoo_counts_match_the_paper_where_unambiguous(smoke):
    def rows(target):
        return {r["model"]: r for r in smoke["sections"][target].data["rows"]}

    t4, t6, t9 = rows("table4-counts"), rows("table6-counts"), rows("table9-counts")
    for depth in (8, 20, 26):
        assert t4[f"xception_c35_d{depth}"]["params_within"] == "yes"
        assert t4[f"xception_c35_d{depth}"]["macs_within"] == "yes"
        assert t6[f"igcv1_c48_d{depth}"]["params_within"] == "yes"
        assert t6[f"igcv1_c48_d{depth}"]["macs_within"] == "yes"
    for alpha in ("100", "050", "025"):
        assert t9[f"mobilenetv1_{alpha}"]["params_within"] == "yes"
        assert t9[f"mobilenetv1_{alpha}"]["macs_within"] == "yes"
    assert t9["mobilenetv1_100"]["macs"] == pytest.approx(569e6, rel=0.001)
    for target in ("table3-counts", "table7-counts", "table11-counts"):
        for row in smoke["sections"][target].data["rows"]:
            assert abs(row["params_diff_pct"]) < 10, row


# ---------------------------------------------------------------- every target, smoke

def test_every_target_writes_markdown_json_and_a_plot(smoke):
    out = smoke["out"]
    assert set(smoke["sections"]) == set(TARGETS)
    for name, section in smoke["sections"].items():
        md = (out / f"{name}.md").read_text()
        assert md.startswith(f"## {section.title}") and "|---|" in md
        json.loads((out / f"{name}.json").read_text())
        assert section.plots and all((out / p.filename).stat().st_size > 1000
                                     for p in section.plots)


def test_empirical_sections_hold_every_run(smoke):
    for name in get_budget("smoke").targets or GROUPS[EMPIRICAL]:
        section = smoke["sections"][name]
        assert section.data["runs_done"] == section.data["runs_total"] > 0
        for arm in section.data["arms"]:
            assert len(arm["top1"]) == 1 and 0 <= arm["mean"] <= 100 and arm["params"] > 0
            assert arm["seeds"] == [0] and arm["runs"]["0"]["machine"]["cpu"]
        assert "budget `smoke`" in section.intro
    table2 = smoke["sections"]["table2"]
    assert "88.82 ± 0.38" in table2.markdown()  # the paper's CIFAR-10 column beside ours
    # one seed: the claim is listed but cannot be tested
    assert [t["verdict"] for t in table2.data["tests"]] == [
        "not tested (needs 2 or more seeds of each network)"]


def test_document_has_commands_budget_and_the_cifar_note(smoke):
    text = smoke["docs"].read_text()
    assert "igc reproduce all --data fashion-mnist --budget smoke" in text
    assert "CIFAR" in text and "only the orderings can be compared" in text
    for section in smoke["sections"].values():
        assert f"## {section.title}" in text
        for plot in section.plots:
            assert f"reproduction/{plot.filename}" in text
            assert (smoke["docs"].parent / "reproduction" / plot.filename).is_file()


# ------------------------------------------------------------------ caching and resuming

def test_finished_runs_are_not_trained_again(smoke, monkeypatch, data_dir):
    def no_training(*args, **kwargs):
        raise AssertionError("a cached run was trained again")

    monkeypatch.setattr(runner, "_train", no_training)
    before = smoke["sections"]["table2"].data["arms"]
    again = reproduce(["table2"], budget="smoke", out=smoke["out"], data_dir=str(data_dir))
    assert [a["top1"] for a in again[0].data["arms"]] == [a["top1"] for a in before]


def test_interrupted_reproduction_resumes_where_it_stopped(tmp_path, monkeypatch, data_dir,
                                                           capsys):
    out = tmp_path / "out"

    def stop_at_first_step(trainer, event):
        if event == "step":
            trainer.stop.request()

    monkeypatch.setattr(runner, "CALLBACKS", [stop_at_first_step])
    assert main(_args(out, data_dir, "table2")) == 130  # SIGINT-like stop, checkpoint saved
    assert "run the same `igc reproduce` command again" in capsys.readouterr().err
    run_dirs = [p.parent for p in out.glob("table2/*/seed-0/identity.json")]
    assert len(run_dirs) == 1 and (run_dirs[0] / "checkpoint.pt").is_file()
    assert not (run_dirs[0] / "result.json").exists()

    monkeypatch.setattr(runner, "CALLBACKS", [])
    trained = []
    real = runner._train

    def counting(task, resume, started):
        trained.append((task.spec.arm.model, resume))
        return real(task, resume, started)

    monkeypatch.setattr(runner, "_train", counting)
    assert main(_args(out, data_dir, "table2")) == 0
    assert trained == [("xception_8l_c64", True), ("igcv2_8l_c144", False)]
    assert "(resuming)" in capsys.readouterr().err
    assert len(list(out.glob("table2/*/seed-0/result.json"))) == 2


def test_run_keys_depend_on_seed_model_and_configuration():
    conf = config.Config("fashion-mnist", get_budget("smoke"))
    arm, other = arms_for("table2", conf.budget)[:2]
    keys = {cache.run_key("table2", arm, conf, 0), cache.run_key("table2", arm, conf, 1),
            cache.run_key("table2", other, conf, 0), cache.run_key("table5", arm, conf, 0),
            cache.run_key("table2", arm, dataclasses.replace(conf, epochs=2), 0)}
    assert len(keys) == 5
    assert cache.run_key("table2", arm, conf, 0) == cache.run_key("table2", arm, conf, 0)
    # threads and device do not change what a run computes
    assert cache.run_key("table2", arm, conf, 0) == cache.run_key(
        "table2", arm, dataclasses.replace(conf, threads=2, device="cpu"), 0)


# ------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("argv, message", [
    (["reproduce", "tabel2"], "unknown reproduction target 'tabel2'; did you mean table2"),
    (["reproduce", "table2", "--budget", "huge"], "unknown budget 'huge'"),
    (["reproduce", "table2", "--data", "cifar11"], "unknown data set 'cifar11'"),
    (["reproduce", "table2", "--epochs", "0"], "--epochs must be at least 1"),
    (["reproduce"], "name a target"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_out_dir_of_another_configuration_is_an_error(smoke, data_dir, capsys):
    assert main(_args(smoke["out"], data_dir, "table2", "--epochs", "2")) == 2
    err = capsys.readouterr().err
    assert "holds results of another configuration" in err and err.count("\n") == 1
    with pytest.raises(IGCError, match="another configuration"):
        reproduce(["table2"], budget="short", out=smoke["out"], data_dir=str(data_dir))


# ------------------------------------------------------- the run cache: damaged runs

def _trained(monkeypatch) -> list[tuple[str, int, bool]]:
    """Record (arm id, seed, resumed?) of every run trained from now on."""
    trained: list[tuple[str, int, bool]] = []
    real = runner._train

    def counting(task, resume, started):
        trained.append((task.spec.arm.id, task.spec.seed, resume))
        return real(task, resume, started)

    monkeypatch.setattr(runner, "_train", counting)
    return trained


def test_a_corrupt_run_is_reported_by_name_and_trained_again(tmp_path, monkeypatch, data_dir,
                                                              capsys):
    out = tmp_path / "out"
    assert main(_args(out, data_dir, "table2")) == 0
    capsys.readouterr()
    damaged = out / "table2" / "xception_8l_c64" / "seed-0"
    (damaged / "result.json").write_text('{"top1": 9')  # torn
    trained = _trained(monkeypatch)
    assert main(_args(out, data_dir, "table2")) == 0
    err = capsys.readouterr().err
    assert ("run table2/xception_8l_c64/seed-0 is corrupt (result.json is not valid JSON); "
            "moved to seed-0.bad-1") in err
    assert trained == [("xception_8l_c64", 0, False)]
    assert (damaged.parent / "seed-0.bad-1" / "result.json").is_file()

    # a record that disagrees with the trainer's summary is not believed either
    other = out / "table2" / "igcv2_8l_c144" / "seed-0" / "result.json"
    record = json.loads(other.read_text())
    record["top1"] = 99.0
    other.write_text(json.dumps(record))
    assert main(_args(out, data_dir, "table2", "--report-only")) == 0
    err = capsys.readouterr().err
    assert "run table2/igcv2_8l_c144/seed-0 is corrupt (result.json disagrees with the " \
           "trainer's summary.json); not used" in err
    assert len(trained) == 1  # --report-only trains nothing
    section = json.loads((out / "table2.json").read_text())
    assert section["runs_done"] == 1 and "99.0" not in json.dumps(section["arms"])


def test_a_checkpoint_that_cannot_be_resumed_is_trained_from_the_start(tmp_path, monkeypatch,
                                                                       data_dir, capsys):
    out = tmp_path / "out"

    def stop_at_first_step(trainer, event):
        if event == "step":
            trainer.stop.request()

    monkeypatch.setattr(runner, "CALLBACKS", [stop_at_first_step])
    assert main(_args(out, data_dir, "table2")) == 130
    monkeypatch.setattr(runner, "CALLBACKS", [])
    run_dir = out / "table2" / "xception_8l_c64" / "seed-0"
    (run_dir / "checkpoint.pt").write_bytes(b"not a checkpoint")
    trained = _trained(monkeypatch)
    capsys.readouterr()
    assert main(_args(out, data_dir, "table2")) == 0
    err = capsys.readouterr().err
    assert "run table2/xception_8l_c64/seed-0: its checkpoint cannot be resumed" in err
    assert trained == [("xception_8l_c64", 0, True), ("xception_8l_c64", 0, False),
                       ("igcv2_8l_c144", 0, False)]
    assert json.loads((run_dir / "result.json").read_text())["top1"] >= 0
    assert list(run_dir.parent.glob("seed-0.bad-*"))


def test_stale_and_locked_runs(tmp_path, monkeypatch, data_dir, capsys):
    out = tmp_path / "out"
    assert main(_args(out, data_dir, "table2")) == 0
    stale = out / "table2" / "igcv2_8l_c144" / "seed-0"
    identity = json.loads((stale / "identity.json").read_text())
    (stale / "identity.json").write_text(json.dumps({**identity, "key": "0" * 16}))
    locked = out / "table2" / "xception_8l_c64" / "seed-0"
    (locked / "result.json").unlink()
    (locked / ".lock").write_text(f"{cache._this_host()} {os.getpid()}\n")  # alive: us
    trained = _trained(monkeypatch)
    capsys.readouterr()
    assert main(_args(out, data_dir, "table2")) == 0
    err = capsys.readouterr().err
    assert "run table2/igcv2_8l_c144/seed-0 is stale" in err
    assert f"run table2/xception_8l_c64/seed-0 is being trained by {cache._this_host()} " \
           f"pid {os.getpid()}; skipped" in err
    assert trained == [("igcv2_8l_c144", 0, False)]
    # its holder died: the lock is taken over; the training had finished (summary.json),
    # only the record is missing, so it is recovered, not trained again
    (locked / ".lock").write_text(f"{cache._this_host()} 999999999\n")
    assert main(_args(out, data_dir, "table2")) == 0
    assert "run table2/xception_8l_c64/seed-0: finished without its record; recovered it " \
           "from the trainer's summary.json" in capsys.readouterr().err
    assert len(trained) == 1 and (locked / "result.json").is_file()


def test_status_estimate_and_shards(tmp_path, monkeypatch, data_dir, capsys):
    out = tmp_path / "out"
    trained = _trained(monkeypatch)
    assert main(_args(out, data_dir, "table2", "--seeds", "2", "--shard", "2/2")) == 0
    err = capsys.readouterr().err
    assert "0 of 4 runs done; shard 2/2: 0 of 2 done" in err
    assert "2 run(s) to train with 1 job(s) x 1 thread(s): about" in err
    assert "2 scaled by their multiply-adds at the rate of the cost model" in err
    # each network's seeds go to different shards
    assert trained == [("igcv2_8l_c144", 0, False), ("xception_8l_c64", 1, False)]
    assert main(_args(out, data_dir, "table2", "--seeds", "2", "--shard", "1/2")) == 0
    err = capsys.readouterr().err
    assert "2 of 4 runs done; shard 1/2: 0 of 2 done" in err
    assert "from recorded runs of 2 network(s))" in err
    assert len(trained) == 4 and len(list(out.glob("table2/*/seed-*/result.json"))) == 4
    assert main(_args(out, data_dir, "table2", "--seeds", "2")) == 0
    assert "4 of 4 runs done" in capsys.readouterr().err and len(trained) == 4


@pytest.mark.parametrize("argv, message", [
    (["--shard", "3/2"], "--shard must be i/n with 1 <= i <= n"),
    (["--shard", "x"], "--shard must be i/n"),
    (["--jobs", "0"], "--jobs must be at least 1"),
    (["--threads", "-1"], "--threads must be at least 0"),
])
def test_bad_parallel_options(argv, message, tmp_path, data_dir, capsys):
    assert main(_args(tmp_path / "out", data_dir, "table2", *argv)) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_a_folder_that_is_not_a_reproduction_is_refused(tmp_path, data_dir, capsys):
    out = tmp_path / "out"
    (out / "table2").mkdir(parents=True)
    assert main(_args(out, data_dir, "table2")) == 2
    assert "holds runs but no reproduce.json" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert main(_args(tmp_path / "file", data_dir, "table2")) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_the_medium_budget_plans_its_seeds_of_eleven_networks(tmp_path):
    conf = config.Config("fashion-mnist", get_budget("medium"))
    specs = cache.plan(list(conf.budget.targets), conf, tmp_path)
    # 3 seeds, 5 for Tables 4 and 2, 12 for Table 4's own pair (issue 18):
    # 2 x 12 + 2 x 5 + 2 x 5 + 5 x 3
    assert len(specs) == 59 and {s.seed for s in specs} == set(range(12))
    assert {s.seed for s in specs if s.target == "figure2"} == {0, 1, 2}
    by_target = {t: {s.arm.id: s.arm.args for s in specs if s.target == t}
                 for t in conf.budget.targets}
    assert set(by_target["table4"]) == {"xception_c35_d8", "igcv2_c64_d8", "igcv1_c48_d8",
                                        "igcv2_c80_d8"}
    assert set(by_target["table2"]) == {"xception_8l_c64", "igcv2_8l_c144"}
    assert len(by_target["figure2"]) == 5
    for target in ("table4", "table2", "figure2"):  # every network: the stride-2 stem
        assert all(args["stem_stride"] == 2 for args in by_target[target].values())
    recipe = conf.recipe()
    assert recipe.name == "reproduce-medium" and recipe.eval_every == 1
    # 5 epochs: x0.1 at 1/2, 3/4 and 7/8 of training, rounded to whole epochs
    assert recipe.milestones == [2, 4] and recipe.epochs == conf.budget.epochs == 5
    shards = [cache.shard(specs, i, 2) for i in (1, 2)]
    assert sorted(s.name for part in shards for s in part) == sorted(s.name for s in specs)
    assert abs(len(shards[0]) - len(shards[1])) <= 1
    for arm in {s.arm.id for s in specs}:  # no network has all its seeds on one machine
        assert all(any(s.arm.id == arm for s in part) for part in shards)


@pytest.mark.slow
def test_jobs_train_in_worker_processes(tmp_path, monkeypatch, capsys):
    """Two worker processes, on the real Fashion-MNIST (the workers find it where
    `igc train` does; skipped where it is not installed)."""
    monkeypatch.undo()  # the workers cannot see this process's patched sources
    from igc.data import sources as real_sources

    if not any((d / "train-images-idx3-ubyte.gz").is_file()
               for d in real_sources.SYSTEM_DIRS.get("fashion-mnist", ())):
        pytest.skip("Fashion-MNIST is not installed (Debian package dataset-fashion-mnist)")
    out = tmp_path / "out"
    argv = ["reproduce", "table2", "--budget", "smoke", "--seeds", "2", "--jobs", "2",
            "--out", str(out), "-q"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "4 run(s) to train with 2 job(s)" in err
    records = [json.loads(p.read_text()) for p in out.glob("table2/*/seed-*/result.json")]
    assert len(records) == 4 and all(r["machine"]["threads"] == 1 for r in records)


# ------------------------------------------------------------------------ the document

def test_the_documents_analytic_sections_are_what_the_code_computes(smoke):
    """docs/reproduction.md cannot drift from the code: each analytic section in it is the
    section the current code renders (regenerate the document when this fails)."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "reproduction.md").read_text()
    for name in GROUPS[ANALYTIC]:
        text = smoke["sections"][name].markdown("reproduction")
        assert text in doc, f"the {name} section of docs/reproduction.md is out of date"


def test_estimate_only_trains_and_writes_nothing(tmp_path, monkeypatch, data_dir, capsys):
    trained = _trained(monkeypatch)
    out = tmp_path / "out"
    assert main(_args(out, data_dir, "table2", "--estimate-only", "--jobs", "2")) == 0
    err = capsys.readouterr().err
    assert "0 of 2 runs done" in err and "2 run(s) to train with 2 job(s)" in err
    assert trained == [] and not out.exists()


def test_the_estimate_times_nothing_and_scales_recorded_runs(tmp_path, monkeypatch,
                                                             data_dir):
    """Issue 21: the estimate timed networks at run time, so a loaded machine gave absurd
    answers (93,000 hours for the full budget); now it reads the recorded runs and the
    cost model only: a clock that runs 1,000 times slow changes nothing, no training step
    is taken, and a network without runs gets the recorded seconds per multiply-add."""
    import time

    import torch

    import igc.reproduce.estimate as estimate
    from igc import create_model
    from igc.analysis.count import count_macs
    from igc.deploy.chain import cost_model

    conf = config.Config("fashion-mnist", get_budget("smoke"), data_dir=str(data_dir))
    splits = config.load_data(conf)
    specs = cache.plan(["table2"], conf, tmp_path)
    states = [cache.RunState(s, cache.NEW) for s in specs]
    fresh = estimate.estimate(states, conf, 1, splits)

    def slow_clock(real):
        return lambda: real() * 1000.0

    monkeypatch.setattr(time, "perf_counter", slow_clock(time.perf_counter))
    monkeypatch.setattr(time, "monotonic", slow_clock(time.monotonic))
    monkeypatch.setattr(torch.optim.SGD, "step", lambda *a, **k: pytest.fail("trained"))
    assert estimate.estimate(states, conf, 1, splits) == fresh
    assert (fresh.measured, fresh.scaled, fresh.modelled) == (0, 0, 2)
    recipe = conf.recipe()
    images = recipe.epochs * len(splits.train) + recipe.epochs * len(splits.test) / 3
    real = [count_macs(create_model(s.arm.model, num_classes=10, in_chans=1, **s.arm.args),
                       splits.image_size, 1) for s in specs]
    assert fresh.total == pytest.approx(3 * images * sum(real) / cost_model("cpu").dense_rate)
    # one network recorded at 100 s: the other is scaled by its multiply-adds
    done = cache.RunState(specs[0], cache.DONE, {"seconds": 100.0})
    mixed = estimate.estimate([done, states[1]], conf, 1, splits)
    assert (mixed.measured, mixed.scaled, mixed.modelled) == (1, 1, 0)
    assert mixed.total == pytest.approx(100.0 * real[1] / real[0])
    assert "the recorded runs" in mixed.rate_source
    assert estimate.macs(specs[1].arm.model, specs[1].arm.args, 1, splits.image_size,
                         10) == real[1]
