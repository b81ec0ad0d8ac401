"""The ``openvino`` form of ``igc bench`` (igc.deploy.bench): skipped in one line without
OpenVINO, and where it is installed the same outputs as the eval model, in the
``small-dense`` export form."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from conftest import randomize_bn

from igc.deploy import bench
from igc.deploy.export import OPENVINO_FORM
from igc.deploy.optimize import optimize
from igc.models.registry import create_model

HAS_OPENVINO = importlib.util.find_spec("openvino") is not None and \
    importlib.util.find_spec("onnx") is not None


def test_without_openvino_the_form_is_skipped_in_one_line(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name: None if name == "openvino" else real(name))
    keep, notes = bench.available_forms(["naive", "openvino"])
    assert keep == ["naive"]
    assert notes == ["openvino form skipped: openvino/onnx not installed "
                     "(pip install 'igc-torch[openvino]')"]


@pytest.mark.skipif(not HAS_OPENVINO, reason="openvino is an optional extra")
def test_openvino_runs_the_small_dense_export_with_the_models_outputs():
    model = randomize_bn(create_model("igcv2_fmnist")).eval()
    x = torch.randn(2, 1, 28, 28)
    call = bench.openvino_runner(optimize(model, OPENVINO_FORM), x, threads=1)
    got = torch.from_numpy(next(iter(call().values())))
    with torch.inference_mode():
        want = model(x)
    assert got.shape == want.shape
    assert (got - want).abs().max() < 1e-3 * max(1.0, want.abs().max().item())


@pytest.mark.skipif(not HAS_OPENVINO, reason="openvino is an optional extra")
def test_bench_times_the_openvino_form():
    report = bench.bench_models(["igcv2_fmnist"], forms=["openvino"], repeats=2, threads=1)
    (result,) = report.results
    assert result.form == "openvino" and result.timing.median > 0
