"""igc's native CPU kernel: the fused IGC block (``fused_block.cpp``), built on first use.

:func:`native` compiles ``fused_block.cpp`` with ``torch.utils.cpp_extension.load``
(``-O3 -march=native -fopenmp``; about a minute the first time, then loaded from torch's
extension cache, ``$TORCH_EXTENSIONS_DIR`` or ``~/.cache/torch_extensions``) and returns the
module, or ``None`` when it cannot: ``IGC_NO_NATIVE=1`` is set, no C++ compiler is found,
or the build fails. The reason is logged once per process as one warning line and kept in
:func:`native_reason`; callers then use the PyTorch form.

The kernel is registered as the custom operator ``igc::fused_block`` (``torch.library``)
with a fake implementation that gives the output's shape and strides (a padded map has
more floats between pixels than channels: :func:`output_strides`), so ``torch.compile``
and ``torch.export`` trace through it. Its ``fused_chain`` entry runs several blocks (and
a stem) in one call (:mod:`igc.deploy.chain.run`; plain eager calls only).

The kernel keeps the storages of its recent outputs (at most 32 and 64 MiB, least recently
used out) and gives a later output of the same byte count one that nothing references any
more (no tensor, view or numpy array of it lives): large fresh outputs are mapped by glibc
and faulted in on every forward otherwise. :func:`pool_stats` says what it holds;
:func:`release_buffers` frees it.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import platform
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import torch

from igc.formatting import first_line
from igc.log import get_logger

_log = get_logger(__name__)
SOURCE = Path(__file__).with_name("fused_block.cpp")
#: Flags of the build; ``-march=native``: the cache name carries the CPU's flags.
CFLAGS = ("-O3", "-march=native", "-fopenmp", "-ffp-contract=fast")

_state: dict[str, object] = {}


def _cpu_tag() -> str:
    """A short hash of the CPU's feature flags (a ``-march=native`` build is per CPU)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
        flags = next((line for line in text.splitlines() if line.startswith("flags")), "")
    except OSError:
        flags = ""
    return hashlib.sha1((platform.machine() + flags).encode()).hexdigest()[:8]


def _build_directory(name: str) -> Path:
    """The folder the kernel ``name`` is built and cached in: ``$TORCH_EXTENSIONS_DIR`` or
    torch's default root, then ``name``."""
    from torch.utils import cpp_extension

    root = os.environ.get("TORCH_EXTENSIONS_DIR") or cpp_extension.get_default_build_root()
    return Path(root) / name


def _build() -> ModuleType:
    """Build (or load from the cache) the kernel module from :data:`SOURCE`'s text. The
    build compiles a copy of the text kept in the build folder, so the cached build does
    not depend on where igc is installed: two checkouts of the same source share one build
    instead of rebuilding each other's (ninja would see another path, or a newer file)."""
    return build(SOURCE.read_bytes())


def build(text: bytes, source: Path | None = None, prefix: str = "igc_fused",
          flags: Sequence[str] = CFLAGS) -> ModuleType:
    """Build (or load from the cache) a kernel module from the C++ ``text`` (``source``:
    the file it is in; else it is written into the build folder, as for igc's own kernel
    and an earlier version of it a benchmark compares with, under its own ``prefix``). The module is
    named ``prefix`` and the hash of the text, the flags and the CPU, and cached so.
    ``flags``: the compiler's (tests build the AVX2 form on an AVX-512 machine with
    ``-mno-avx512f`` added).
    Every igc process builds under an exclusive ``flock`` of ``.igc-build.lock`` in the
    build folder, so concurrent processes wait for one build; torch's own ``lock`` file
    found while holding it was left by a killed build (torch would wait for it forever)
    and is removed."""
    from torch.utils import cpp_extension

    compiler = os.environ.get("CXX", "c++")
    if shutil.which(compiler) is None:
        raise RuntimeError(f"no C++ compiler ({compiler}) on PATH")
    digest = hashlib.sha1(text + " ".join(flags).encode()).hexdigest()[:8]
    name = f"{prefix}_{digest}_{_cpu_tag()}"
    folder = _build_directory(name)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".igc-build.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # released when the file closes or the process dies
        (folder / "lock").unlink(missing_ok=True)
        if source is None:
            source = folder / SOURCE.name
            if not source.exists() or source.read_bytes() != text:
                source.write_bytes(text)
        _log.info("igc: loading the fused CPU kernel (built on first use: about a minute)")
        return cpp_extension.load(name=name, sources=[str(source)], build_directory=str(folder),
                                  extra_cflags=list(flags), extra_ldflags=["-fopenmp"],
                                  verbose=False)


def native() -> ModuleType | None:
    """The compiled kernel module, built on the first call; ``None`` (with one warning line,
    once per process) when it is disabled or cannot be built."""
    if "module" in _state:
        return _state["module"]  # type: ignore[return-value]
    module, reason = None, ""
    if os.environ.get("IGC_NO_NATIVE", "") not in ("", "0"):
        reason = "IGC_NO_NATIVE is set"
    else:
        try:
            module = _build()
        except Exception as exc:  # any build failure means: use the PyTorch form
            reason = f"its build failed: {first_line(exc, 200)}"
    _state["module"], _state["reason"] = module, reason
    if module is None:
        warnings.warn(f"igc: the fused CPU kernel is not available ({reason}); using the "
                      "PyTorch form", RuntimeWarning, stacklevel=2)
    return module


def native_reason() -> str:
    """Why :func:`native` returned ``None`` (``""`` when it is available or not tried)."""
    return str(_state.get("reason", ""))


def reset() -> None:
    """Forget the loaded module and the reason (tests)."""
    _state.clear()


def pool_stats() -> dict[str, int]:
    """The kernel's output pool: ``entries`` and ``bytes`` held, ``hits`` and ``misses``
    (outputs taken from it or allocated, since the process started), ``enabled``,
    ``max_entries`` and ``max_bytes``. All zero when the kernel is not loaded."""
    module = _state.get("module")
    if module is None:
        return dict.fromkeys(("entries", "bytes", "hits", "misses", "enabled", "max_entries",
                              "max_bytes"), 0)
    return dict(module.pool_stats())  # type: ignore[attr-defined]


def release_buffers() -> None:
    """Free the memory the kernel's output pool retains (the storages of earlier outputs
    that nothing else references; outputs still in use stay with their holders). Loads
    nothing: a no-op when the kernel is not loaded. The pool refills on the next calls."""
    module = _state.get("module")
    if module is not None:
        module.clear_pool()  # type: ignore[attr-defined]


def output_shape(x_shape: Sequence[int], config: Sequence[int]) -> tuple[int, int, int, int]:
    """The output ``(N, C_out, H_out, W_out)`` of ``fused_block`` for an input shape and a
    config (layout: :class:`igc.deploy.chain.fused.FusedPlan`)."""
    n, _, h, w = x_shape
    cout, k, stride, pad = config[2], config[3], config[4], config[5]
    return (n, cout, (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1)


@torch.library.custom_op("igc::fused_block", mutates_args=())
def fused_block(x: torch.Tensor, params: list[torch.Tensor], config: list[int]) -> torch.Tensor:
    """One fused IGC block on a float32 CPU input ``(N, C_in, H, W)``: ``(N, C_out, H_out,
    W_out)`` channels-last. ``params`` and ``config``: see
    :class:`igc.deploy.chain.fused.FusedPlan`."""
    module = native()
    if module is None:
        raise RuntimeError(f"igc::fused_block needs the native kernel ({native_reason()})")
    return module.fused_block(x, list(params), list(config))


def output_strides(shape: Sequence[int], config: Sequence[int]) -> tuple[int, int, int, int]:
    """The strides of ``fused_block``'s output of ``shape`` (``output_shape``): channels-last,
    with ``config[14]`` floats between pixels where that is more than ``C_out``."""
    _, c, h, w = shape
    pixel = max(c, config[14])
    return (h * w * pixel, 1, w * pixel, pixel)


@fused_block.register_fake
def _(x: torch.Tensor, params: list[torch.Tensor], config: list[int]) -> torch.Tensor:
    shape = output_shape(x.shape, config)
    return x.new_empty_strided(shape, output_strides(shape, config))


__all__ = ["CFLAGS", "SOURCE", "build", "fused_block", "native", "native_reason", "output_shape",
           "output_strides", "pool_stats", "release_buffers", "reset"]
