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
* ``l2_bytes``: read from the system (``/sys`` on Linux, the CUDA device properties).

Timing follows :func:`~igc.deploy.timing.time_interleaved` (medians over interleaved
rounds) with the current thread count, which is recorded in the file.
"""

from __future__ import annotations

import datetime
import math
import platform
from pathlib import Path

import torch

from igc.deploy.chain.cost import BUILTIN, CostModel, calibration_path, to_json
from igc.deploy.chain.modules import DenseSegment, StructuredSegment
from igc.deploy.chain.ops import ConvOp
from igc.deploy.chain.segments import Segment
from igc.deploy.timing import device_sync, time_interleaved
from igc.files.atomic import atomic_write

BRANCHES = (4, 8, 16, 32, 64, 128)
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


def _segment(k: int, device: torch.device) -> Segment:
    """One 1x1 factor on 256 channels with branches of ``k`` (``k = 1``: dense)."""
    groups = _CHANNELS // k if k > 1 else 1
    weight = torch.randn(_CHANNELS, _CHANNELS // groups, 1, 1, device=device)
    return Segment([ConvOp(weight, None, groups)], torch.zeros(_CHANNELS, device=device))


def fit_branch_rate(efficiency: dict[int, float]) -> tuple[float, float]:
    """``(full_rate_branch, max_branch_efficiency)`` fitting ``min(max, k / full)`` to the
    measured efficiencies (least squares of the logs over a geometric grid of ``full``)."""
    top = min(1.0, max(0.01, max(efficiency.values())))
    best, best_err = BUILTIN.full_rate_branch, math.inf
    for i in range(401):
        full = 10 ** (i / 100)  # 1 ... 10^4
        err = sum((math.log(min(top, k / full)) - math.log(max(e, 1e-6))) ** 2
                  for k, e in efficiency.items())
        if err < best_err:
            best, best_err = full, err
    return best, top


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
    calls = {name: (lambda mod=mod: mod(x)) for name, mod in modules.items()}
    calls["copy"] = lambda: dst.copy_(src)
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
    model = CostModel(dense_rate=dense_rate, memory_rate=memory_rate, l2_bytes=l2_bytes(dev),
                      full_rate_branch=full, max_branch_efficiency=top,
                      source=f"calibrated on {dev.type}")
    info = {"threads": torch.get_num_threads(), "torch": torch.__version__,
            "machine": platform.machine(), "processor": platform.processor()
            or platform.platform(), "device_name": torch.cuda.get_device_name(dev)
            if dev.type == "cuda" else "cpu",
            "measured": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"),
            "branch_efficiency": {str(k): round(e, 4) for k, e in efficiency.items()}}
    return model, info


def write_calibration(model: CostModel, device: str = "cpu", info: dict | None = None,
                      path: str | Path | None = None) -> Path:
    """Write ``model`` as the calibration file of ``device`` (atomically); returns the
    path (default :func:`~igc.deploy.chain.cost.calibration_path`)."""
    target = Path(path) if path is not None else calibration_path(device)
    return atomic_write(target, to_json(model, device, info), "cost-model calibration",
                        parents=True)


__all__ = ["BRANCHES", "calibrate", "fit_branch_rate", "l2_bytes", "write_calibration"]
