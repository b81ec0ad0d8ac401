"""The native kernel built for 8-float vectors (AVX2, no AVX-512), as on most desktop CPUs:
built here with ``-mno-avx512f`` added, the zoo's fused networks equal their eval models.
(Found by it: the AVX2 build padded the spatial channels to 8 where the packer pads to 16,
and refused every block whose width is not a multiple of 16; the classifier's packing
assumed 16-float vectors.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from igc.deploy import native as nat
from igc.deploy import optimize
from igc.models.registry import create_model
from igc.runtime import num_threads

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def avx2_kernel():
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        flags = ""
    if " avx2" not in flags or " fma" not in flags:
        pytest.skip("this CPU has no AVX2 and FMA")
    try:
        module = nat.build(nat.SOURCE.read_bytes(), prefix="igc_fused_avx2",
                           flags=(*nat.CFLAGS, "-mno-avx512f"))
    except Exception as exc:  # no compiler, a failed build: nothing to check here
        pytest.skip(f"the AVX2 build failed: {exc}")
    assert module.simd_width() == 8
    return module


@pytest.mark.parametrize(("name", "size"), [("igcv3_070", 64), ("igcv2_100", 64),
                                            ("mobilenetv2_100", 48), ("igcv2_c64_d8", 32)])
def test_fused_networks_equal_their_eval_models(avx2_kernel, monkeypatch, name, size):
    monkeypatch.setitem(nat._state, "module", avx2_kernel)
    torch.manual_seed(0)
    model = create_model(name).eval()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
    nn.init.normal_(model.classifier.weight)
    fast = optimize(model, "fused")
    for batch in (1, 5):  # the native classifier, then the module
        x = torch.randn(batch, 3, size, size)
        with torch.inference_mode():
            want = model(x)
            for threads in (1, 2):
                with num_threads(threads):
                    got = fast(x)
                assert (got - want).abs().max() < 1e-4 * (1 + want.abs().max()), threads
