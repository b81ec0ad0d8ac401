"""Input sizes: what a model expects, and one probe that checks a size and batch before
any real work (ranges, whether the network can take it, whether its activations fit in
memory), on a meta-device copy that allocates nothing."""

from __future__ import annotations

import copy
import os

import torch
from torch import nn

from igc.checks import check_int
from igc.errors import IGCError

#: Largest batch and image side accepted anywhere in ``igc.deploy`` (the memory estimate
#: of :func:`check_input` usually binds first).
MAX_DEPLOY_BATCH = 65536
MAX_INPUT_SIZE = 16384
#: Peak activation memory allowed, as a fraction of the device's memory.
MEMORY_FRACTION = 0.5


def model_input(model: nn.Module) -> tuple[int, int] | None:
    """``(in_chans, size)`` a model was built for: timm's ``pretrained_cfg`` /
    ``default_cfg`` ``input_size`` (every zoo network has one); looks inside wrappers
    that hold the network as ``.model``. ``None`` when nothing says."""
    for m in (model, getattr(model, "model", None)):
        if m is None:
            continue
        for attr in ("pretrained_cfg", "default_cfg"):
            cfg = getattr(m, attr, None)
            size = cfg.get("input_size") if isinstance(cfg, dict) else None
            if isinstance(size, (tuple, list)) and len(size) == 3 and size[1] == size[2]:
                return int(size[0]), int(size[1])
    return None


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU when it has none)."""
    ref = next(iter([*model.parameters(), *model.buffers()]), None)
    return ref.device if ref is not None else torch.device("cpu")


def device_memory(device: torch.device) -> int | None:
    """Bytes of memory of ``device`` (the machine's RAM for the CPU), ``None`` if unknown."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:140] if text else type(exc).__name__


def check_input(model: nn.Module, in_chans: int, size: int, batch: int = 1,
                name: str = "model") -> int:
    """IGCError (one line) unless ``model`` takes ``(batch, in_chans, size, size)`` inputs
    within memory; returns the estimated peak activation bytes.

    Runs the model once on a meta-device copy (shapes only, no memory, no arithmetic),
    recording every module's output; the estimate is three times the largest activation
    (input, output and one temporary), and must stay under :data:`MEMORY_FRACTION` of the
    model's device memory.
    """
    check_int(size, "input size", 1, MAX_INPUT_SIZE)
    check_int(batch, "batch", 1, MAX_DEPLOY_BATCH)
    check_int(in_chans, "input channels", 1, 4096)
    device = model_device(model)
    largest = 0

    def record(_m: nn.Module, _args: tuple, out: object) -> None:
        nonlocal largest
        if isinstance(out, torch.Tensor):
            largest = max(largest, out.numel() * out.element_size())

    meta = copy.deepcopy(model).eval().to("meta")
    hooks = [m.register_forward_hook(record) for m in meta.modules()]
    x = torch.zeros(batch, in_chans, size, size, device="meta")
    try:
        with torch.no_grad():
            meta(x)
    except NotImplementedError:  # an operation without a meta kernel: run it for real
        try:
            with torch.inference_mode():
                model.eval()(torch.zeros(1, in_chans, size, size, device=device))
        except (RuntimeError, ValueError, IndexError) as exc:
            raise IGCError(f"{name} cannot take {in_chans}x{size}x{size} inputs "
                           f"({_first_line(exc)}); use another --input-size") from None
        return 0
    except (RuntimeError, ValueError, IndexError) as exc:
        raise IGCError(f"{name} cannot take {in_chans}x{size}x{size} inputs "
                       f"({_first_line(exc)}); use another --input-size") from None
    finally:
        for h in hooks:
            h.remove()
    need = 3 * max(largest, x.numel() * x.element_size())
    memory = device_memory(device)
    if memory is not None and need > MEMORY_FRACTION * memory:
        raise IGCError(f"{name} at batch {batch} and {size}x{size} needs about "
                       f"{need / 2**30:.1f} GiB for activations, more than half of the "
                       f"{memory / 2**30:.0f} GiB here; use a smaller --batch or --input-size")
    return need


__all__ = ["MAX_DEPLOY_BATCH", "MAX_INPUT_SIZE", "check_input", "device_memory",
           "model_device", "model_input"]
