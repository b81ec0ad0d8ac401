"""The latency-aware designer (issue 17, item 3): ``igc design --rank latency`` and
:mod:`igc.deploy.latency`. The ranking follows the cost model it is given (fake models
whose costs the tests choose), the roofline arithmetic matches a hand computation, the
measured mode runs on tiny blocks, and bad input is one line with exit status 2. No test
here asserts a timing."""

from __future__ import annotations

import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from igc import checks, names
from igc.cli import main
from igc.deploy import latency
from igc.deploy.chain.cost import CostModel
from igc.deploy.latency import (
    MAX_CANDIDATES,
    design_block,
    design_by_latency,
    predict,
    rank_latency,
)
from igc.errors import IGCError
from igc.sparsity.design import MAX_ALTERNATIVES, Design, design

#: Arithmetic and memory so fast that spatial convolutions and copies cost ~nothing.
FREE = {"dense_rate": 1e17, "memory_rate": 1e15, "spatial_rate": 1e17}


@pytest.fixture(autouse=True)
def no_fused_kernel(monkeypatch):
    """The fake cost models here price the unfused forms: the fused kernel is made
    unavailable to the pricing (tests of the fused price undo this)."""
    monkeypatch.setattr(latency, "native", lambda: None)
    monkeypatch.setattr(latency, "native_reason", lambda: "IGC_NO_NATIVE is set")


class TableCost(CostModel):
    """A fake cost model: a structured 1x1 segment whose branch sizes are ``K_2..K_L``
    costs ``table[(K_2, ..., K_L)]`` seconds per pixel, its dense form ``dense``."""

    def __init__(self, table: dict[tuple[int, ...], float], dense: float = 1.0) -> None:
        super().__init__(**FREE, source="fake")
        object.__setattr__(self, "table", table)
        object.__setattr__(self, "dense", dense)

    def estimate(self, segment, pixels=None, channel_major=False):
        key = tuple(c.in_channels // c.groups for c in segment.convs)
        return {"dense": self.dense, "structured": self.table[key]}


def _ones(designs):
    return {d.branch_sizes[1:]: 1.0 for d in designs}


@settings(max_examples=25, deadline=None)
@given(channels=st.sampled_from([8, 12, 16, 24, 36, 48, 64]), data=st.data())
def test_ranking_follows_the_given_cost_model(channels, data):
    # every design with a structured 1x1 part (a single dense 1x1 is always "dense")
    designs = [d for d in design(channels, channelwise=True, limit=1000).designs
               if d.layers >= 3]
    keys = sorted({d.branch_sizes[1:] for d in designs})
    costs = [k / 1000 for k in data.draw(st.lists(st.integers(1, 1000), min_size=len(keys),
                                                      max_size=len(keys), unique=True))]
    table = dict(zip(keys, costs))
    size, batch = data.draw(st.integers(1, 9)), data.draw(st.integers(1, 4))
    ranking = rank_latency(designs, cost=TableCost(table, dense=2.0), size=size, batch=batch)
    got = [table[r.design.branch_sizes[1:]] for r in ranking.rows]
    assert got == sorted(costs)
    for r in ranking.rows:
        assert r.seconds == pytest.approx(table[r.design.branch_sizes[1:]] * size * size * batch,
                                          rel=1e-6)
        assert r.kernels == ("dw3x3", "structured") and r.mode == "auto"


def test_a_cost_model_that_favours_depth_puts_the_deepest_design_first():
    designs = design(64, channelwise=True, limit=1000).designs
    deep = {d.branch_sizes[1:]: 1.0 / len(d.branch_sizes) for d in designs}
    ranking = rank_latency([d for d in designs if d.layers > 1], cost=TableCost(deep))
    assert ranking.fastest.design.branch_sizes == (1, 2, 2, 2, 2, 2, 2)
    # the designer's own order (fewest parameters) put a 4-factor design first
    assert designs[0].branch_sizes != ranking.fastest.design.branch_sizes


def test_the_cheaper_form_of_each_segment_is_priced():
    designs = [d for d in design(16, channelwise=True, limit=1000).designs if d.layers > 1]
    ranking = rank_latency(designs, cost=TableCost(_ones(designs), dense=0.25), size=2)
    assert all(r.kernels[-1] == "dense" and r.seconds == pytest.approx(0.25 * 4, rel=1e-6)
               for r in ranking.rows)
    # ties keep the designer's order (fewest parameters first)
    assert [r.design for r in ranking.rows] == designs


def test_roofline_matches_a_hand_computation():
    # C = 64, (1, 8, 8); 1 G MAC/s dense, branches of k at k/64 of it, depthwise
    # 0.2 G MAC/s, memory ~free.
    cost = CostModel(dense_rate=1e9, memory_rate=1e15, full_rate_branch=64.0,
                     max_branch_efficiency=0.8, spatial_rate=2e8)
    seconds, kernels = predict(Design(64, (1, 8, 8)), size=4, batch=2, cost=cost)
    depthwise = 64 * 9 / 2e8  # per pixel: 9 taps per output at the depthwise rate
    dense_1x1 = 64 * 64 / 1e9  # the segment multiplied out beats 2 x 512 MACs at 8/64
    memory = 8 * 64 / 1e15  # the result written once into the channels-last output
    assert kernels == ("dw3x3", "dense")
    assert seconds == pytest.approx((depthwise + dense_1x1) * 32, rel=1e-3)
    assert memory * 32 < seconds * 1e-3


def test_group_spatial_factor_and_single_factor_designs_are_priced():
    cost = CostModel(dense_rate=1e9, memory_rate=1e15)
    seconds, kernels = predict(Design(16, (16,)), size=3, cost=cost)  # one dense 3x3
    assert kernels == ("conv3x3",)
    assert seconds == pytest.approx(16 * 16 * 9 / (1e9 * 0.8) * 9, rel=1e-3)
    _, kernels = predict(Design(16, (2, 8)), size=3, cost=cost)
    assert kernels[0] == "conv3x3/g8"


def test_design_block_is_the_designs_product_on_meta_without_weights():
    d = Design(64, (1, 4, 16))
    block = design_block(d, "meta")
    assert block.product.branch_sizes == d.branch_sizes
    assert all(p.device.type == "meta" for p in block.parameters())
    real = design_block(d)
    assert sum(m.weight.numel() for m in real.modules()
               if isinstance(m, torch.nn.Conv2d)) == d.params


def test_measure_mode_runs_on_tiny_blocks():
    ranking = design_by_latency(8, candidates=3, source="measure", size=4, batch=2, repeats=2)
    assert len(ranking.rows) == 3 and ranking.cost is None
    assert all(r.seconds > 0 and r.iqr is not None and r.iqr >= 0 for r in ranking.rows)
    assert [r.seconds for r in ranking.rows] == sorted(r.seconds for r in ranking.rows)
    assert ranking.load_average is not None and ranking.threads == 1
    assert all(r.mode in latency.MODES for r in ranking.rows)
    # the kernels optimize() chose, one per segment: C = 8 designs have one segment each
    assert all(len(r.kernels) == 1 and r.kernels[0] in (*names.FORMS, "fused")
               for r in ranking.rows)
    assert "IQR us" in ranking.table()


def test_a_fused_mode_is_picked_up_when_names_has_it(monkeypatch):
    monkeypatch.setattr(latency, "MODES", (*latency.MODES, "fused"))
    calls = []
    original = latency.optimize

    def spy(model, mode="auto", **kw):
        calls.append(mode)
        return original(model, "auto" if mode == "fused" else mode, **kw)

    monkeypatch.setattr(latency, "optimize", spy)
    ranking = design_by_latency(8, candidates=2, source="measure", size=3, repeats=1)
    assert calls.count("fused") == 2 and calls.count("auto") == 2
    assert {r.mode for r in ranking.rows} <= {"auto", "fused"}
    modelled = design_by_latency(8, candidates=2)
    assert any("fused" in n for n in modelled.notes)


@pytest.mark.skipif("fused" in names.MODES, reason="optimize() has a fused mode now")
def test_a_mode_that_refuses_a_design_is_noted_not_fatal(monkeypatch):
    monkeypatch.setattr(latency, "MODES", (*latency.MODES, "fused"))  # optimize() refuses it
    ranking = design_by_latency(8, candidates=2, source="measure", size=3, repeats=1)
    assert all(r.mode == "auto" for r in ranking.rows)
    assert sum("mode fused" in n for n in ranking.notes) == 2


def run_json(capsys, *argv: str) -> dict:
    assert main(["design", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_schema(capsys):
    out = run_json(capsys, "-C", "64", "--rank", "latency", "--candidates", "7", "--size", "8")
    assert {"channels", "kernel_area", "rank", "latency", "size", "batch", "threads",
            "repeats", "cost_model", "load_average", "notes", "designs"} <= set(out)
    assert (out["channels"], out["rank"], out["latency"], out["size"], out["batch"]) == \
        (64, "latency", "model", 8, 1)
    assert set(out["cost_model"]["constants"]) == {
        "dense_rate", "memory_rate", "l2_bytes", "full_rate_branch", "max_branch_efficiency",
        "dense_full_branch", "spatial_rate", "strided_spatial_rate", "channel_major_spatial",
        "fused_rate", "fused_full_branch", "fused_spatial_rate"}
    rows = out["designs"]
    assert len(rows) == 7
    assert {d["params"] for d in rows} == {d.params for d in design(64, limit=7).designs}
    ratios = [r["ratio_to_fastest"] for r in rows]
    assert ratios[0] == 1.0 and ratios == sorted(ratios)
    for r in rows:
        assert math.prod(r["branch_sizes"]) == 64 and r["condition"] == "strict"
        assert r["latency_us"] > 0 and r["iqr_us"] is None and r["kernels"]
        assert r["mode"] == "auto"
        assert r["latency_us"] == pytest.approx(rows[0]["latency_us"] * r["ratio_to_fastest"])


@pytest.mark.parametrize("clock", [[], ["--cpu-time"]])
def test_json_measured(capsys, clock):
    out = run_json(capsys, "-C", "8", "--rank", "latency", "--latency", "measure",
                   "--candidates", "2", "--size", "3", "--repeats", "2", "--threads", "1",
                   *clock)
    assert out["latency"] == "measure" and out["cost_model"] is None and out["repeats"] == 2
    assert any("CPU time" in n for n in out["notes"]) == bool(clock)
    assert len(out["load_average"]) == 2 and out["threads"] == 1
    assert all(r["iqr_us"] is not None for r in out["designs"])


def test_text_table(capsys):
    assert main(["design", "-C", "1024", "--rank", "latency", "--size", "7",
                 "--candidates", "4"]) == 0
    text = capsys.readouterr().out
    head, cols, *rows = text.splitlines()
    notes = [r for r in rows if r.startswith("note: ")]
    rows = rows[:len(rows) - len(notes)]
    assert "4 design(s) ranked by latency from the cost model" in head and "7x7" in head
    assert cols.split()[:6] == ["rank", "branch", "sizes", "L", "params", "us"]
    assert len(rows) == 4 and rows[0].startswith("1 ") and "1.00x" in rows[0]
    assert all(r.endswith("auto   dw3x3 structured") for r in rows)
    assert any("fused kernel" in n for n in notes) == ("fused" in names.MODES)


def test_draw_the_fastest(tmp_path, capsys):
    png = tmp_path / "fast.png"
    assert main(["design", "-C", "16", "--rank", "latency", "--draw", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_without_torch_latency_is_one_line_and_params_still_work():
    from test_cli_startup import run_blocked  # tests/ is on sys.path (rootdir-less tests)

    proc = run_blocked(["design", "-C", "64", "--rank", "latency"], ("torch",))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("igc: error: --rank latency needs PyTorch")
    assert run_blocked(["design", "-C", "64", "--rank", "params"], ("torch",)).returncode == 0


def test_limits_agree_with_the_designer():
    assert MAX_CANDIDATES == MAX_ALTERNATIVES == checks.MAX_LATENCY_CANDIDATES


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--rank", "speed"], "unknown --rank 'speed'"),
        (["--rank", "latency", "--latency", "guess"], "unknown --latency 'guess'"),
        (["--rank", "latency", "--size", "0"], "--size must be at least 1"),
        (["--rank", "latency", "--size", "4096"], "--size must be at most 1,024"),
        (["--rank", "latency", "--batch", "0"], "--batch must be at least 1"),
        (["--rank", "latency", "--batch", "2000"], "--batch must be at most"),
        (["--rank", "latency", "--threads", "0"], "--threads must be at least 1"),
        (["--rank", "latency", "--repeats", "0"], "--repeats must be at least 1"),
        (["--rank", "latency", "--candidates", "0"], "--candidates must be at least 1"),
        (["--rank", "latency", "--candidates", "1001"], "--candidates must be at most"),
        (["--rank", "latency", "--size", "x"], "expected an integer"),
        (["--size", "16"], "--size applies to --rank latency only"),
        (["--latency", "measure"], "--latency applies to --rank latency only"),
        (["--rank", "latency", "--check", "--branch-sizes", "1,8,8"], "does not combine"),
        (["--rank", "latency", "--branch-sizes", "1,8,8"], "--branch-sizes is for --check"),
        (["--rank", "latency", "--branch-size", "5"], "does not divide"),
        (["--cpu-time"], "--cpu-time applies to --rank latency only"),
        (["--rank", "latency", "--cpu-time"], "needs --latency measure and --threads 1"),
        (["--rank", "latency", "--latency", "measure", "--threads", "2", "--cpu-time"],
         "needs --latency measure and --threads 1"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, argv, message):
    assert main(["design", "--channels", "64", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("igc: error:") and message in err, err
    assert "\n" not in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--channels", "4096", "--size", "1024"], "floats to time"),
        (["--channels", "16384", "--layers", "1"], "weights, more than"),
    ],
)
def test_measuring_too_much_is_refused_before_any_work(capsys, argv, message):
    assert main(["design", *argv, "--rank", "latency", "--latency", "measure"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: rank_latency([]), "no designs"),
        (lambda: rank_latency([Design(8, (1, 8)), Design(16, (1, 16))]), "one width"),
        (lambda: rank_latency([Design(8, (1, 8))], "guess"), "latency source"),
        (lambda: rank_latency([Design(8, (1, 8))], threads=True), "threads"),
        (lambda: rank_latency([Design(8, (1, 8))], size=2.5), "input size"),
        (lambda: design_by_latency(8, candidates=0), "candidates"),
    ],
)
def test_api_bad_input(call, message):
    with pytest.raises(IGCError, match=message):
        call()
