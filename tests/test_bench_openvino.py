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
from igc.errors import IGCError
from igc.models.registry import create_model
from igc.names import BENCH_FORMS, DEFAULT_BENCH_FORMS

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


def _relative_error(precision: str) -> float:
    model = randomize_bn(create_model("igcv2_fmnist")).eval()
    x = torch.randn(2, 1, 28, 28)
    call = bench.openvino_runner(optimize(model, OPENVINO_FORM), x, threads=1,
                                 precision=precision)
    got = torch.from_numpy(next(iter(call().values())))
    with torch.inference_mode():
        want = model(x)
    assert got.shape == want.shape
    return ((got - want).abs().max() / want.abs().max()).item()


@pytest.mark.skipif(not HAS_OPENVINO, reason="openvino is an optional extra")
def test_openvino_runs_the_small_dense_export_in_float32():
    # left to itself OpenVINO runs in bfloat16 on CPUs with AVX512-BF16 or AMX (about 4e-3
    # relative error on this model there); the runner asks for float32
    assert _relative_error("f32") < 1e-5


@pytest.mark.skipif(not HAS_OPENVINO, reason="openvino is an optional extra")
def test_openvino_bf16_is_asked_for_by_name_and_stays_close():
    assert _relative_error("bf16") < 3e-2


def test_openvino_precision_is_checked_before_anything_loads():
    with pytest.raises(IGCError, match="OpenVINO precision must be one of f32, bf16"):
        bench.openvino_runner(torch.nn.Identity(), torch.zeros(1, 1, 4, 4), precision="fp16")


def test_default_forms_are_the_float32_ones():
    assert "openvino-bf16" in BENCH_FORMS and "openvino-bf16" not in DEFAULT_BENCH_FORMS
    assert set(DEFAULT_BENCH_FORMS) == set(BENCH_FORMS) - {"openvino-bf16"}


@pytest.mark.skipif(not HAS_OPENVINO, reason="openvino is an optional extra")
def test_bench_times_the_openvino_form():
    report = bench.bench_models(["igcv2_fmnist"], forms=["openvino"], repeats=2, threads=1)
    (result,) = report.results
    assert result.form == "openvino" and result.timing.median > 0
