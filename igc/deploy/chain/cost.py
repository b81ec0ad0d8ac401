"""The cost rule that picks a form per linear segment: a roofline per product, with
constants that describe the machine (:class:`CostModel`).

Each form is a sequence of passes over the activations; a pass costs
``max(multiply-adds / rate, bytes moved / memory_rate)`` per pixel. The dense form is one
product ``C_in x C_out`` at ``dense_rate``. The structured form is one batched product per
factor (``C_l K_l`` multiply-adds) at ``dense_rate * min(max_branch_efficiency,
K_l / full_rate_branch)``, half that when its channels-last operands outgrow the L2 cache
(pixel count known), plus, on channels-last activations, one pass to write its result in
place, and one pass per activation copy (:func:`~igc.deploy.chain.segments.structured_copies`).
A dense product of ``k`` inputs whose operands outgrow L2 runs at ``dense_rate * min(1,
k / dense_full_branch)`` (the same ramp, :func:`ramp`: a narrow input is too short a dot
product to hide the output's memory traffic). Five more constants price whole blocks
(:mod:`igc.deploy.chain.block_cost`): the PyTorch depthwise convolution of the unfused
form at stride 1 (``spatial_rate``) and at stride 2 and more (``strided_spatial_rate``),
both times ``channel_major_spatial`` on a channel-major (NCHW) activation, and the fused
kernel's 1x1 micro-kernel and spatial pass (``fused_rate``,
``fused_full_branch``, ``fused_spatial_rate``).

:data:`BUILTIN` holds the constants measured on the development CPUs; ``igc bench
--calibrate`` measures them on the machine at hand (:mod:`igc.deploy.chain.calibrate`)
and writes them to :func:`calibration_path`, which :func:`cost_model` then reads.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from igc.deploy.chain.segments import Segment, structured_copies
from igc.errors import IGCError
from igc.files.cache import cache_dir
from igc.formatting import first_line

log = logging.getLogger(__name__)

#: The ``format`` field of a calibration file, and its version.
FILE_FORMAT = "igc-cost-model"
FILE_VERSION = 3  # 2: the block constants (spatial_rate, fused_*); 3: dense_full_branch,
#                   strided_spatial_rate, channel_major_spatial

#: Accepted ranges of the constants (anything outside is a corrupt or absurd file).
_RANGES = {
    "dense_rate": (1e6, 1e17),  # multiply-adds per second
    "memory_rate": (1e6, 1e15),  # bytes per second
    "l2_bytes": (1 << 10, 1 << 34),
    "full_rate_branch": (1.0, 1e5),
    "max_branch_efficiency": (0.01, 1.0),
    "dense_full_branch": (1.0, 1e5),
    "spatial_rate": (1e6, 1e17),  # multiply-adds per second
    "strided_spatial_rate": (1e6, 1e17),  # multiply-adds per second
    "channel_major_spatial": (0.01, 1.0),  # a fraction of the two above
    "fused_rate": (1e6, 1e17),  # executed multiply-adds per second
    "fused_full_branch": (1.0, 1e5),
    "fused_spatial_rate": (1e6, 1e17),  # executed multiply-adds per second
}


def ramp(k: float, full: float, top: float = 1.0) -> float:
    """The rate, relative to full speed, of a product whose dot products are ``k`` long:
    ``min(top, k / full)`` (full speed from ``k = full * top`` on)."""
    return min(top, k / full)


@dataclass(frozen=True)
class CostModel:
    """The machine constants of the cost rule.

    ``dense_rate``: multiply-adds per second of a dense 1x1 product. ``memory_rate``:
    bytes per second of a pass that reads and writes an activation. ``l2_bytes``: the L2
    cache. A batched product over branches of ``k`` inputs runs at ``dense_rate *
    min(max_branch_efficiency, k / full_rate_branch)`` (``k / (2 full_rate_branch)`` on
    channels-last operands larger than L2); a dense one of ``k`` inputs at ``dense_rate *
    min(1, k / dense_full_branch)`` when its operands are larger than L2, else at
    ``dense_rate``. ``spatial_rate`` and ``strided_spatial_rate``: multiply-adds per
    second of the unfused form's depthwise KxK convolution (PyTorch, channels-last) at
    stride 1 and at stride 2 or more (per output multiply-add, several times slower),
    both times ``channel_major_spatial`` on a channel-major (NCHW) activation. The fused
    kernel (:mod:`igc.deploy.chain.fused`): its 1x1 micro-kernel runs a branch of ``k``
    inputs at ``fused_rate * min(1, k / fused_full_branch)`` executed multiply-adds per
    second (the zeros of padded vectors and joined branches counted,
    :func:`~igc.deploy.chain.block_cost.executed_macs`), its spatial pass at
    ``fused_spatial_rate`` (the tile loop and the rolling input rows included).
    ``source`` says where the numbers came from.
    """

    dense_rate: float = 35e9
    memory_rate: float = 12e9
    l2_bytes: int = 1 << 20
    full_rate_branch: float = 64.0
    max_branch_efficiency: float = 0.8
    dense_full_branch: float = 32.0
    spatial_rate: float = 8e9
    strided_spatial_rate: float = 4e9
    channel_major_spatial: float = 0.5
    fused_rate: float = 52e9
    fused_full_branch: float = 26.0
    fused_spatial_rate: float = 8e9
    source: str = field(default="built-in", compare=False)

    def __post_init__(self) -> None:
        for name, (lo, hi) in _RANGES.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or not lo <= value <= hi:
                raise IGCError(f"cost model {name} must be a number in [{lo:g}, {hi:g}], "
                               f"got {value!r}")

    @property
    def calibrated(self) -> bool:
        return self.source != "built-in"

    def efficiency(self, k: int, strided_out_of_cache: bool = False) -> float:
        """Rate of a batched product over branches of ``k`` inputs, relative to dense."""
        full = self.full_rate_branch * (2 if strided_out_of_cache else 1)
        return ramp(k, full, self.max_branch_efficiency)

    def dense_efficiency(self, k: int, out_of_cache: bool) -> float:
        """Rate of a dense product of ``k`` inputs, relative to ``dense_rate``: full in
        cache, :func:`ramp` over ``dense_full_branch`` when its operands outgrow L2."""
        return ramp(k, self.dense_full_branch) if out_of_cache else 1.0

    def _big(self, pixels: int | None, channels: int) -> bool:
        """Whether ``pixels`` pixels of ``channels`` floats outgrow L2."""
        return pixels is not None and pixels * 4 * channels > self.l2_bytes

    def _pass(self, macs: float, rate: float, floats: float) -> float:
        """Seconds per pixel of one pass: bound by arithmetic or by moving activations."""
        return max(macs / rate, 4 * floats / self.memory_rate)

    def estimate(self, segment: Segment, pixels: int | None = None,
                 channel_major: bool = False) -> dict[str, float]:
        """Seconds per output pixel of the ``dense`` and ``structured`` forms, for
        ``pixels = N*H*W`` output pixels per call (``None``: small, in cache) on a
        channel-major (NCHW, one image) or channels-last activation."""
        width = segment.in_channels + segment.out_channels
        dense = self._pass(segment.dense_macs(), self.dense_rate * self.dense_efficiency(
            segment.in_channels, self._big(pixels, width)), width)
        structured = 0.0
        for c in segment.convs:
            big = self._big(pixels, c.in_channels + c.out_channels)
            rate = self.dense_rate * (self.dense_efficiency(c.in_channels, big) if c.dense
                                      else self.efficiency(c.in_channels // c.groups,
                                                           big and not channel_major))
            structured += self._pass(c.macs_per_pixel(), rate, c.in_channels + c.out_channels)
        width = max(max(c.in_channels, c.out_channels) for c in segment.convs)
        copies = structured_copies(segment)
        if channel_major:  # written in place, a trailing shuffle as strided rows
            copies -= segment.items[-1] is not segment.convs[-1]
        else:  # the result is written once more into the channels-last output
            structured += 8 * segment.out_channels / self.memory_rate
        structured += 8 * copies * width / self.memory_rate
        return {"dense": dense, "structured": structured}

    def choose(self, segment: Segment, pixels: int | None = None,
               channel_major: bool = False) -> tuple[str, str]:
        """``(form, reason)``: the cheaper of :meth:`estimate`'s forms (a segment of one
        dense factor is dense)."""
        convs = segment.convs
        if len(convs) == 1 and convs[0].dense:
            return "dense", "one dense 1x1"
        cost = self.estimate(segment, pixels, channel_major)
        form = min(cost, key=cost.get)
        where = "" if pixels is None else \
            f" at {pixels} pixels" + (" NCHW" if channel_major else "")
        tag = " (calibrated)" if self.calibrated else ""
        return form, (f"estimated {cost['dense'] * 1e9:.1f} ns/pixel dense, "
                      f"{cost['structured'] * 1e9:.1f} structured{where}{tag}")

    def fused_veto(self, segments: list[Segment], pixels: int | None = None,
                   split: bool = False) -> str:
        """Why the cost rule keeps a block with these 1x1 ``segments`` unfused for
        ``pixels = N*H*W`` output pixels per call whatever the prices say; ``""`` when the
        prices decide (:func:`~igc.deploy.chain.block_cost.price_block`).

        One measured fact the per-multiply-add price cannot capture: a dense 1x1 whose
        weights outgrow a quarter of L2 over many pixels (1024 and more: MobileNet's
        C = 1024 at batch 32; fused 1.28x MKL's GEMM, docs/deployment.md). The
        micro-kernel streams a branch's whole weight matrix through the caches once per
        tile of a few rows, BLAS blocks the product so that each weight is read once per
        call; the fused price is calibrated at 256 channels, where the weights stay in
        cache. (Branches too narrow to fill the kernel's vectors, which this rule vetoed
        before, are priced: their padded and joined multiply-adds are counted.)

        ``split``: the batch runs in micro-batches (:mod:`igc.deploy.micro_batch`), and
        there the rule is wrong: MobileNetV1-1.0 at batch 32 in pieces of 6, one thread,
        9 interleaved rounds, ran 0.955x of ``"fused"`` without it against 1.052x with it
        (IGCV2-1.0 0.989x against 0.993x), while on the whole batch it still holds
        (1.112x without, 1.036x with; 2026-12-05, docs/deployment.md)."""
        if split:
            return ""
        convs = [c for s in segments for c in s.convs]
        big = max((c.weight.numel() for c in convs if c.dense), default=0)
        if pixels is not None and pixels >= 1024 and 16 * big > self.l2_bytes:
            return (f"a dense 1x1 of {big} weights over {pixels} pixels (BLAS is faster "
                    "there)")
        return ""

    def constants(self) -> dict[str, float]:
        """The constants by name."""
        return {k: v for k, v in asdict(self).items() if k in _RANGES}


#: The constants measured on the development CPUs (2-core AMD EPYC, AVX-512, 1 MiB L2 per
#: core, fp32, one thread; ``benchmarks/blocks.py``): 35 G multiply-adds/s dense, 12 GB/s
#: effective memory rate, branches of ``k`` at about ``k / 64`` of the dense rate, at most
#: 0.8 (18 GMAC/s for ``k = 32``, 28 for ``k = 128``). The block constants: two runs of
#: :func:`~igc.deploy.chain.calibrate.calibrate` timed in this thread's CPU time (the
#: machine was shared, load average 4-6), pinned to one core, 2026-12-05: depthwise 3x3
#: 7.8 and 8.4 GMAC/s; the fused kernel's 1x1 products 30.7-32.2 GMAC/s executed for
#: branches of 16 inputs, 42 for 32, 49-50 for 64, 50-52 for 128 and dense 256
#: (``min(1, k / 26)`` of 52), its spatial pass 7.6 and 8.4 GMAC/s. Without the native
#: kernel the fused form is never built, so these are never used. The PyTorch passes that
#: MobileNetV2's first blocks run (one thread, channels-last, interleaved, load average
#: 1.9-2.4, 2026-12-05 06:36-06:41): a dense 1x1 of 8 inputs out of cache at 10-22 GMAC/s,
#: of 16 at 17.5-24 (16 -> 96 over 112x112, batch 1 and 32), of 32 and more at 27-47, hence
#: ``dense_full_branch`` 32; a depthwise 3x3 at stride 2 at 3.1-5.6 GMAC/s on outputs of
#: 28x28 and less (stride 1 there: 8.4-16), hence ``strided_spatial_rate`` 4 G (on 56x56 and
#: larger outputs, stride 2 ran at 10-11 GMAC/s, no slower than stride 1 out of cache);
#: the same depthwise passes on NCHW input at 0.27-0.62 of their channels-last rate at
#: batch 1 (0.15-0.76 at batch 32), hence ``channel_major_spatial`` 0.5.
BUILTIN = CostModel()


def calibration_path(device: str = "cpu") -> Path:
    """Where ``igc bench --calibrate`` writes the cost model of a device type:
    ``$XDG_CACHE_HOME/igc/cost-model-<device>.json`` (``~/.cache`` by default)."""
    return cache_dir() / f"cost-model-{device}.json"


def to_json(model: CostModel, device: str, info: dict | None = None) -> str:
    """The calibration file's text: ``format``, ``version``, ``device``, ``constants``
    and free-form ``info`` (threads, torch version, machine, date)."""
    return json.dumps({"format": FILE_FORMAT, "version": FILE_VERSION, "device": device,
                       "constants": model.constants(), "info": info or {}}, indent=2) + "\n"


def from_json(text: str, device: str, source: str) -> CostModel:
    """A :class:`CostModel` from a calibration file's text; IGCError naming the first
    problem (not JSON, another format or version, another device, a missing, extra or
    out-of-range constant)."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise IGCError(f"not JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FILE_FORMAT:
        raise IGCError(f"not an {FILE_FORMAT} file")
    if data.get("version") != FILE_VERSION:
        raise IGCError(f"version {data.get('version')!r}, expected {FILE_VERSION}")
    if data.get("device") != device:
        raise IGCError(f"made for device {data.get('device')!r}, not {device!r}")
    constants = data.get("constants")
    if not isinstance(constants, dict) or set(constants) != set(_RANGES):
        raise IGCError(f"constants must be exactly {', '.join(sorted(_RANGES))}")
    if not isinstance(data.get("info", {}), dict):
        raise IGCError("info must be an object")
    values = dict(constants)
    if isinstance(values["l2_bytes"], float) and values["l2_bytes"].is_integer():
        values["l2_bytes"] = int(values["l2_bytes"])
    if not isinstance(values["l2_bytes"], int) or isinstance(values["l2_bytes"], bool):
        raise IGCError(f"l2_bytes must be an integer, got {values['l2_bytes']!r}")
    return CostModel(**values, source=source)


_loaded: dict[tuple[str, bytes, str], CostModel] = {}


def _read_small(path: Path) -> bytes:
    size = path.stat().st_size
    if size > 1 << 16:
        raise IGCError(f"{size} bytes, more than a calibration file holds")
    return path.read_bytes()


def cost_model(device: torch.device | str | None = None) -> CostModel:
    """The cost model for ``device``'s type: its calibration file when there is a valid
    one, else :data:`BUILTIN`. A file that cannot be read or fails validation is ignored
    with one warning line (logged once per file content)."""
    kind = torch.device(device or "cpu").type
    path = calibration_path(kind)
    if not path.exists():
        return BUILTIN
    try:
        blob, problem = _read_small(path), ""
    except (OSError, IGCError) as exc:
        blob, problem = b"", str(exc) or type(exc).__name__
    key = (str(path), blob, problem)
    if key not in _loaded:
        try:
            if problem:
                raise IGCError(problem)
            _loaded[key] = from_json(blob.decode(), kind, f"calibrated ({path})")
        except (UnicodeDecodeError, IGCError) as exc:
            reason = first_line(exc, 300)
            log.warning("igc: ignoring the cost-model calibration %s: %s; using the built-in "
                        "constants (rerun `igc bench --calibrate`)", path, reason)
            _loaded[key] = BUILTIN
    return _loaded[key]


__all__ = ["BUILTIN", "FILE_FORMAT", "FILE_VERSION", "CostModel", "calibration_path",
           "cost_model", "from_json", "ramp", "to_json"]
