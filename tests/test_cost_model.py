"""The cost model's calibration file: written by ``igc bench --calibrate``, validated past
its top level when read, and a corrupt one ignored with one warning line."""

from __future__ import annotations

import json
import logging
import os

import pytest

from igc.cli import main
from igc.deploy import block_forms, optimize
from igc.deploy.chain import BUILTIN, CostModel, calibration_path, cost_model
from igc.deploy.chain.calibrate import NARROW, fit_branch_rate, write_calibration
from igc.deploy.chain.cost import FILE_FORMAT, from_json, to_json
from igc.errors import IGCError
from igc.models.registry import create_model


@pytest.fixture(autouse=True)
def cache_home(tmp_path, monkeypatch):
    """igc's cache in a temporary folder; torch's extension cache (the native kernel's
    build, which follows XDG_CACHE_HOME by default) stays where it was."""
    from torch.utils.cpp_extension import get_default_build_root

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", os.environ.get("TORCH_EXTENSIONS_DIR")
                       or get_default_build_root())
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _valid(**constants) -> dict:
    data = json.loads(to_json(CostModel(dense_rate=5e9), "cpu", {"threads": 1}))
    data["constants"].update(constants)
    return data


def test_round_trip_and_use(cache_home):
    model = CostModel(dense_rate=1e10, memory_rate=2e10, l2_bytes=1 << 21,
                      full_rate_branch=32.0, max_branch_efficiency=0.9,
                      dense_full_branch=20.0, strided_spatial_rate=3e9,
                      channel_major_spatial=0.4)
    path = write_calibration(model, "cpu", {"threads": 1})
    assert path == calibration_path("cpu") and path.parent == cache_home / "igc"
    loaded = cost_model("cpu")
    assert loaded == model and loaded.calibrated
    assert cost_model("cuda") is BUILTIN  # another device type has its own file
    rows = block_forms(optimize(create_model("igcv2_fmnist")))
    assert rows and all("(calibrated)" in r.reason for r in rows)


#: The constants of a version-2 file (before the narrow-input and stride rates).
V2_CONSTANTS = ("dense_rate", "memory_rate", "l2_bytes", "full_rate_branch",
                "max_branch_efficiency", "spatial_rate", "fused_rate", "fused_full_branch",
                "fused_spatial_rate")
#: The constants of a version-1 file (before the block constants).
OLD_CONSTANTS = ("dense_rate", "memory_rate", "l2_bytes", "full_rate_branch",
                 "max_branch_efficiency")

CORRUPT = {
    "not json": "{not json",
    "binary": b"\xff\xfe\x00garbage",
    "a list": json.dumps([1, 2]),
    "other format": json.dumps({**_valid(), "format": "something"}),
    "other version": json.dumps({**_valid(), "version": 99}),
    "other device": json.dumps({**_valid(), "device": "cuda"}),
    "missing constant": json.dumps({**_valid(), "constants": {"dense_rate": 1e10}}),
    "extra constant": json.dumps(_valid(turbo=1.0)),
    "string rate": json.dumps(_valid(dense_rate="fast")),
    "negative rate": json.dumps(_valid(memory_rate=-1.0)),
    "absurd rate": json.dumps(_valid(dense_rate=1e30)),
    "bool": json.dumps(_valid(max_branch_efficiency=True)),
    "fractional l2": json.dumps(_valid(l2_bytes=1000.5)),
    "info not an object": json.dumps({**_valid(), "info": [1]}),
    "version 1 (no block constants)": json.dumps(
        {**_valid(), "version": 1, "constants": {k: v for k, v in _valid()["constants"].items()
                                                 if k in OLD_CONSTANTS}}),
    "version 2 (no narrow-input or stride rates)": json.dumps(
        {**_valid(), "version": 2, "constants": {k: v for k, v in _valid()["constants"].items()
                                                 if k in V2_CONSTANTS}}),
    "version 3 without the stride rate": json.dumps(
        {**_valid(), "constants": {k: v for k, v in _valid()["constants"].items()
                                   if k != "strided_spatial_rate"}}),
    "zero strided rate": json.dumps(_valid(strided_spatial_rate=0.0)),
    "absurd dense branch": json.dumps(_valid(dense_full_branch=1e9)),
    "NCHW faster than itself": json.dumps(_valid(channel_major_spatial=1.5)),
    "missing fused constant": json.dumps(
        {**_valid(), "constants": {k: v for k, v in _valid()["constants"].items()
                                   if k != "fused_rate"}}),
    "zero fused rate": json.dumps(_valid(fused_rate=0.0)),
    "absurd branch": json.dumps(_valid(fused_full_branch=1e9)),
    "huge": " " * (1 << 17),
}


@pytest.mark.parametrize("name", sorted(CORRUPT))
def test_corrupt_file_is_ignored_with_one_warning(name, caplog):
    path = calibration_path("cpu")
    path.parent.mkdir(parents=True)
    content = CORRUPT[name]
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with caplog.at_level(logging.WARNING):
        assert cost_model("cpu") is BUILTIN
        assert cost_model("cpu") is BUILTIN  # warned once per file content
        fast = optimize(create_model("igcv2_fmnist"))  # not fatal
    assert fast is not None
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    message = warnings[0].getMessage()
    assert "\n" not in message and str(path) in message and "built-in" in message


def test_from_json_names_the_problem():
    with pytest.raises(IGCError, match="dense_rate"):
        from_json(json.dumps(_valid(dense_rate=0)), "cpu", "test")
    with pytest.raises(IGCError, match=FILE_FORMAT):
        from_json("{}", "cpu", "test")


def test_fit_recovers_the_model_it_fits():
    truth = CostModel(full_rate_branch=48.0, max_branch_efficiency=0.7)
    measured = {k: truth.efficiency(k) for k in (4, 8, 16, 32, 64, 128)}
    full, top = fit_branch_rate(measured)
    assert top == pytest.approx(0.7)
    assert full == pytest.approx(48.0, rel=0.03)


@pytest.mark.parametrize("truth", [12.0, 24.0, 40.0])
def test_fit_with_a_fixed_top_recovers_the_dense_ramp(truth):
    """The narrow dense 1x1s' fit (top fixed at 1) recovers ``dense_full_branch``."""
    model = CostModel(dense_full_branch=truth)
    measured = {k: model.dense_efficiency(k, True) for k in NARROW}
    full, top = fit_branch_rate(measured, top=1.0)
    assert top == 1.0
    assert full == pytest.approx(truth, rel=0.03)
    assert model.dense_efficiency(4, False) == 1.0  # in cache: full rate


def test_cli_calibrate_writes_a_valid_file(capsys, cache_home):
    assert main(["bench", "--calibrate", "--threads", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    path = calibration_path("cpu")
    assert out["file"] == str(path)
    model = from_json(path.read_text(), "cpu", "test")
    assert model.constants() == out["constants"]
    assert out["info"]["threads"] == 1
    assert sorted(out["info"]["narrow_dense_efficiency"], key=int) == [str(k) for k in NARROW]
    # the fused kernel's constants are measured where it is available, else built in
    if out["info"]["fused"] == "measured":
        assert sorted(out["info"]["fused_branch_gmacs"]) == ["128", "16", "256", "32", "64"]
    else:
        assert out["info"]["fused"].startswith("not measured")
        assert model.fused_rate == BUILTIN.fused_rate
    assert main(["bench", "igcv2_fmnist", "--calibrate"]) == 2
    assert "drop the names" in capsys.readouterr().err
    assert main(["bench"]) == 2
    assert "--calibrate" in capsys.readouterr().err


def test_calibration_without_the_native_kernel_keeps_the_built_in_fused_constants(
        monkeypatch):
    """No compiler: the fused constants are the documented defaults (the fused form is
    never built, so never priced), the reason is recorded; the others are measured."""
    from igc.deploy import native as nat
    from igc.deploy.chain.calibrate import calibrate

    monkeypatch.setattr(nat, "native", lambda: None)
    monkeypatch.setattr(nat, "native_reason", lambda: "no C++ compiler (c++) on PATH")
    model, info = calibrate("cpu", repeats=2)
    assert info["fused"] == ("not measured: the native kernel is not available (no C++ "
                             "compiler (c++) on PATH)")
    assert info["fused_branch_gmacs"] == {}
    for name in ("fused_rate", "fused_full_branch", "fused_spatial_rate"):
        assert getattr(model, name) == getattr(BUILTIN, name)
    assert model.spatial_rate != BUILTIN.spatial_rate  # measured
    assert model.strided_spatial_rate != BUILTIN.strided_spatial_rate
    assert model.dense_full_branch != BUILTIN.dense_full_branch
    assert 0.01 <= model.channel_major_spatial <= 1.0
    assert from_json(to_json(model, "cpu", info), "cpu", "test") == model


def test_cli_calibrate_prints_the_narrow_and_stride_rates(capsys, monkeypatch):
    from igc.deploy.chain import calibrate as cal

    model = CostModel(dense_full_branch=21.5, strided_spatial_rate=3.3e9,
                      channel_major_spatial=0.45, source="test")
    monkeypatch.setattr(cal, "calibrate", lambda device: (model, {"threads": 1,
                                                                  "fused": "measured"}))
    assert main(["bench", "--calibrate"]) == 0
    out = capsys.readouterr().out
    assert "out of cache at min(1, k/21.5)" in out and "(stride 2: 3.3; NCHW x0.45)" in out
    assert from_json(calibration_path("cpu").read_text(), "cpu", "test") == model
