"""Measure the cost model's constants on the machine at hand (``igc bench --calibrate``).

The constants are measured on the modules the forms run as, at the shapes the cost rule
speaks of (256 channels, a channels-last 16x16 map, operands in cache):

* ``dense_rate``: multiply-adds per second of a ``DenseSegment`` (a dense 1x1
  convolution with bias);
* ``memory_rate``: bytes read and written per second by a copy of 16 MiB;
* ``max_branch_efficiency`` and ``full_rate_branch``: a ``StructuredSegment`` of one
  grouped 1x1 factor with branches of ``k`` channels (``k`` = 4 ... 128), its time less
  the modelled pass that writes its result, as a rate relative to ``dense_rate``, fitted
  by ``min(max_efficiency, k / full_rate_branch)`` (least squares of the logs);
* ``dense_full_branch``: ``DenseSegment`` products of ``k`` = 8, 16, 32 inputs to
  ``6 k`` outputs (an inverted-residual expansion) on a 112x112 map (operands larger than
  L2), as a rate relative to ``dense_rate``, fitted by ``min(1, k / dense_full_branch)``;
* ``l2_bytes``: read from the system (``/sys`` on Linux, the CUDA device properties);
* ``spatial_rate`` and ``strided_spatial_rate``: multiply-adds per second of a
  ``SpatialConv`` (a depthwise 3x3) at stride 1 on the 16x16 map and at stride 2 on a
  32x32 one (the same output); ``channel_major_spatial``: the stride-1 one on the NCHW
  map, as a fraction of its channels-last rate;
* the fused kernel's constants, on the CPU when the native kernel is available
  (:func:`igc.deploy.native.native`): ``fused_rate`` and ``fused_full_branch`` from its 1x1
  products alone (the native ``segment`` entry, in the fused block's tiles) with branches
  of ``k`` = 16 ... 256 inputs, as executed multiply-adds per second (the fastest is
  ``fused_rate``; the others fitted by ``min(1, k / fused_full_branch)``), and
  ``fused_spatial_rate`` from a fused block (depthwise 3x3, then the 1x1 of branches of
  16) less its 1x1 products. Without the kernel they keep :data:`BUILTIN`'s values (the
  fused form is then never built, so never priced) and ``info["fused"]`` says why.

Timing follows :func:`~igc.deploy.timing.time_interleaved` (medians over interleaved
rounds) with the current thread count, which is recorded in the file.
"""

from __future__ import annotations

import datetime
import math
import platform
from pathlib import Path

import torch

from igc.deploy.chain.block_cost import executed_macs, spatial_executed_macs
from igc.deploy.chain.cost import BUILTIN, CostModel, calibration_path, to_json
from igc.deploy.chain.modules import DenseSegment, SpatialConv, StructuredSegment
from igc.deploy.chain.ops import ConvOp
from igc.deploy.chain.segments import Segment
from igc.deploy.timing import device_sync, time_interleaved
from igc.files.atomic import atomic_write

BRANCHES = (4, 8, 16, 32, 64, 128)
#: Inputs ``k`` of the dense 1x1 products timed out of cache (to ``6 k`` outputs, on a
#: 112x112 map: the expansion of MobileNetV2's first blocks).
NARROW = (8, 16, 32)
_BIG_SIDE, _EXPANSION = 112, 6
#: Inputs per branch of the fused kernel's 1x1 products timed (256: dense).
FUSED_BRANCHES = (16, 32, 64, 128, 256)
_CHANNELS, _SIDE = 256, 16


def l2_bytes(device: torch.device) -> int:
    """The L2 cache of ``device`` in bytes (the built-in value when the system does not
    say)."""
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).L2_cache_size) or BUILTIN.l2_bytes
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            if (index / "level").read_text().strip() != "2":
                continue
            text = (index / "size").read_text().strip().upper()
        except OSError:
            continue
        units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
        if text[-1:] in units and text[:-1].isdigit():
            return int(text[:-1]) * units[text[-1]]
        if text.isdigit():
            return int(text)
    return BUILTIN.l2_bytes


def _segment(k: int, device: torch.device, inputs: int = _CHANNELS,
             outputs: int = _CHANNELS) -> Segment:
    """One 1x1 factor from ``inputs`` to ``outputs`` channels with branches of ``k``
    (``k = 1``: dense)."""
    groups = inputs // k if k > 1 else 1
    weight = torch.randn(outputs, inputs // groups, 1, 1, device=device)
    return Segment([ConvOp(weight, None, groups)], torch.zeros(outputs, device=device))


def fit_branch_rate(efficiency: dict[int, float], top: float | None = None
                    ) -> tuple[float, float]:
    """``(full_rate_branch, max_branch_efficiency)`` fitting ``min(max, k / full)`` to the
    measured efficiencies (least squares of the logs over a geometric grid of ``full``);
    ``max`` is the largest efficiency (at most 1) unless ``top`` is given."""
    if top is None:
        top = min(1.0, max(0.01, max(efficiency.values())))
    best, best_err = BUILTIN.full_rate_branch, math.inf
    for i in range(401):
        full = 10 ** (i / 100)  # 1 ... 10^4
        err = sum((math.log(min(top, k / full)) - math.log(max(e, 1e-6))) ** 2
                  for k, e in efficiency.items())
        if err < best_err:
            best, best_err = full, err
    return best, top


def _fused_calls(x: torch.Tensor) -> tuple[dict, dict[str, float], str]:
    """The fused kernel's calls to time on ``x`` (NHWC, 256 channels), the executed
    multiply-adds of each, and ``""`` or why there are none."""
    from igc.deploy.chain.fused import FusedPlan, pack_segment
    from igc.deploy.native import fused_block, native, native_reason

    module = native()
    if module is None:
        return {}, {}, f"not measured: the native kernel is not available ({native_reason()})"
    m = x.shape[0] * x.shape[2] * x.shape[3]
    rows = x.permute(0, 2, 3, 1).reshape(m, _CHANNELS).contiguous()
    dw = torch.randn(_CHANNELS, 1, 3, 3)
    plan = FusedPlan([ConvOp(dw, torch.randn(_CHANNELS), _CHANNELS, 1, 1),
                      *_segment(16, torch.device("cpu")).items])
    plan.set_tile(_SIDE)
    tile = plan.config[9] * _SIDE
    calls, macs = {}, {}
    for k in FUSED_BRANCHES:
        seg = _segment(k, torch.device("cpu"))
        params, config = pack_segment(seg)
        calls[f"fused_k{k}"] = (lambda p=params, c=config:
                                module.segment(rows, p, c, tile, 0))
        macs[f"fused_k{k}"] = executed_macs(seg.convs[0])[0] * m
    params, config = plan.params, plan.config
    calls["fused_block"] = lambda: fused_block(x, params, config)
    macs["fused_block"] = spatial_executed_macs(plan.parts.spatial) * m
    return calls, macs, ""


def _fused_constants(timing: dict, macs: dict[str, float]
                     ) -> tuple[dict[str, float], dict[str, float]]:
    """``fused_rate``, ``fused_full_branch`` and ``fused_spatial_rate`` from the timed
    fused calls, and the measured 1x1 rate per branch size (executed multiply-adds/s)."""
    rate = {k: macs[f"fused_k{k}"] / timing[f"fused_k{k}"].median for k in FUSED_BRANCHES}
    top = max(rate.values())
    full, _ = fit_branch_rate({k: r / top for k, r in rate.items()})
    block = timing["fused_block"].median
    products = timing["fused_k16"].median  # the block's 1x1 products, as timed alone
    spatial = macs["fused_block"] / max(block - products, block / 10)
    return {"fused_rate": top, "fused_full_branch": full, "fused_spatial_rate": spatial}, rate


def calibrate(device: torch.device | str = "cpu", repeats: int = 15
              ) -> tuple[CostModel, dict]:
    """Measure a :class:`CostModel` on ``device``; also returns what was measured (the
    ``info`` of the calibration file)."""
    dev = torch.device(device)
    batch = 64 if dev.type == "cuda" else 1  # enough work to hide a GPU's launch latency
    sync = device_sync(dev)
    x = torch.randn(batch, _CHANNELS, _SIDE, _SIDE, device=dev).contiguous(
        memory_format=torch.channels_last)
    m = batch * _SIDE * _SIDE
    src = torch.randn(1 << 22, device=dev)
    dst = torch.empty_like(src)
    modules = {"dense": DenseSegment(_segment(1, dev))}
    modules.update({f"k{k}": StructuredSegment(_segment(k, dev)) for k in BRANCHES})
    depthwise = (torch.randn(_CHANNELS, 1, 3, 3, device=dev), torch.randn(_CHANNELS, device=dev))
    modules["spatial"] = SpatialConv(ConvOp(*depthwise, _CHANNELS, 1, 1))
    calls = {name: (lambda mod=mod: mod(x)) for name, mod in modules.items()}
    big = batch * _BIG_SIDE * _BIG_SIDE
    wide = torch.randn(batch, _CHANNELS, 2 * _SIDE, 2 * _SIDE, device=dev
                       ).contiguous(memory_format=torch.channels_last)
    strided = SpatialConv(ConvOp(*depthwise, _CHANNELS, 2, 1))
    calls["strided"] = lambda: strided(wide)
    nchw = x.contiguous()
    calls["spatial_nchw"] = lambda: modules["spatial"](nchw)
    for k in NARROW:
        xk = torch.randn(batch, k, _BIG_SIDE, _BIG_SIDE, device=dev).contiguous(
            memory_format=torch.channels_last)
        mod = DenseSegment(_segment(1, dev, k, _EXPANSION * k))
        calls[f"narrow{k}"] = lambda mod=mod, xk=xk: mod(xk)
    calls["copy"] = lambda: dst.copy_(src)
    fused, fused_macs, fused_note = ({}, {}, "not measured: the fused kernel runs on the CPU") \
        if dev.type != "cpu" else _fused_calls(x)
    calls.update(fused)
    with torch.inference_mode():
        timing = time_interleaved(calls, repeats=repeats, warmup=2, min_sample_s=0.005,
                                  sync=sync)
    dense_rate = _CHANNELS * _CHANNELS * m / timing["dense"].median
    memory_rate = 2 * src.numel() * src.element_size() / timing["copy"].median
    write = 8 * _CHANNELS * m / memory_rate  # the modelled pass writing the result
    efficiency = {}
    for k in BRANCHES:
        t = timing[f"k{k}"].median
        efficiency[k] = _CHANNELS * k * m / max(t - write, t / 4) / dense_rate
    full, top = fit_branch_rate(efficiency)
    narrow = {k: _EXPANSION * k * k * big / timing[f"narrow{k}"].median / dense_rate
              for k in NARROW}
    dense_full, _ = fit_branch_rate(narrow, top=1.0)
    spatial_rate = 9 * _CHANNELS * m / timing["spatial"].median
    strided_rate = 9 * _CHANNELS * m / timing["strided"].median
    channel_major = min(1.0, timing["spatial"].median / timing["spatial_nchw"].median)
    constants, fused_rate = _fused_constants(timing, fused_macs) if fused else ({}, {})
    model = CostModel(dense_rate=dense_rate, memory_rate=memory_rate, l2_bytes=l2_bytes(dev),
                      full_rate_branch=full, max_branch_efficiency=top,
                      dense_full_branch=dense_full, spatial_rate=spatial_rate,
                      strided_spatial_rate=strided_rate,
                      channel_major_spatial=max(0.01, channel_major), **constants,
                      source=f"calibrated on {dev.type}")
    info = {"threads": torch.get_num_threads(), "torch": torch.__version__,
            "machine": platform.machine(), "processor": platform.processor()
            or platform.platform(), "device_name": torch.cuda.get_device_name(dev)
            if dev.type == "cuda" else "cpu",
            "measured": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"),
            "branch_efficiency": {str(k): round(e, 4) for k, e in efficiency.items()},
            "narrow_dense_efficiency": {str(k): round(e, 4) for k, e in narrow.items()},
            "fused": fused_note or "measured",
            "fused_branch_gmacs": {str(k): round(r / 1e9, 2) for k, r in fused_rate.items()}}
    return model, info


def write_calibration(model: CostModel, device: str = "cpu", info: dict | None = None,
                      path: str | Path | None = None) -> Path:
    """Write ``model`` as the calibration file of ``device`` (atomically); returns the
    path (default :func:`~igc.deploy.chain.cost.calibration_path`)."""
    target = Path(path) if path is not None else calibration_path(device)
    return atomic_write(target, to_json(model, device, info), "cost-model calibration",
                        parents=True)


__all__ = ["BRANCHES", "FUSED_BRANCHES", "NARROW", "calibrate", "fit_branch_rate", "l2_bytes",
           "write_calibration"]
