"""What a network does with an input size, found before any real work.

:func:`measure` runs a network once on a meta-device copy (shapes only: nothing is
allocated, nothing computed) and returns the shape of its output and the sizes of its
activations; a network that cannot take the input is one :class:`IGCError` line. When
an operation has no meta kernel it runs the real network on one image instead.
:func:`check_input` adds the ranges and the memory check of export and benchmarks;
:func:`device_memory` is the memory of a device. One probe for training
(:func:`igc.train.network.build_model`, :func:`igc.train.probe.probe`), ``igc export``,
``igc bench`` and ``igc info``.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass

import torch
from torch import nn

from igc.checks import check_int
from igc.errors import IGCError
from igc.formatting import first_line

#: Largest batch and image side export and benchmarks accept (the memory estimate of
#: :func:`check_input` usually binds first).
MAX_DEPLOY_BATCH = 65536
MAX_INPUT_SIZE = 16384
#: Peak activation memory :func:`check_input` allows, as a fraction of the device's memory.
MEMORY_FRACTION = 0.5


@dataclass(frozen=True)
class Activations:
    """One forward pass measured: output shape and activation sizes.

    ``largest``: elements of the largest output of any module; ``largest_leaf``: of any leaf
    module; ``leaves``: of all leaf modules' outputs together (all zero when the pass had to
    run for real, on one image)."""

    output_shape: tuple[int, ...]
    largest: int
    largest_leaf: int
    leaves: int
    element_size: int = 4


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU when it has none)."""
    ref = next(iter([*model.parameters(), *model.buffers()]), None)
    return ref.device if ref is not None else torch.device("cpu")


def device_memory(device: torch.device) -> int | None:
    """Bytes of memory of ``device`` (the machine's RAM for the CPU), ``None`` if unknown."""
    try:
        if device.type == "cuda":
            return int(torch.cuda.get_device_properties(device).total_memory)
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError, RuntimeError):
        return None


def memory_limit(device: torch.device) -> int | None:
    """Bytes one batch's preparation may hold on ``device``.

    ``$IGC_MEMORY_LIMIT_GB`` GiB when set (the override), else :data:`MEMORY_FRACTION` of
    the device's memory; None if unknown."""
    text = os.environ.get("IGC_MEMORY_LIMIT_GB", "").strip()
    if text:
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not 0 < value < 1 << 30:
            raise IGCError(f"IGC_MEMORY_LIMIT_GB must be a positive number of GiB, got "
                           f"{text[:40]!r}")
        return int(value * 2**30)
    memory = device_memory(device)
    return None if memory is None else int(MEMORY_FRACTION * memory)


def measure(model: nn.Module, in_chans: int, size: int, batch: int = 1, name: str = "model",
            hint: str = "use another --input-size", what: str | None = None) -> Activations:
    """One pass of ``model`` on zeros on the meta device; IGCError if it cannot take them.

    The input is ``(batch, in_chans, size, size)``; the pass runs on a copy unless the model
    is on the meta device already. The error reads ``"{name} cannot take {what} ({reason});
    {hint}"`` (``what`` defaults to ``"CxHxW inputs"``)."""
    what = what or f"{in_chans}x{size}x{size} inputs"
    on_meta = model_device(model).type == "meta"
    meta = model if on_meta else copy.deepcopy(model).to("meta")
    was_training = meta.training
    sizes: list[tuple[bool, int, int]] = []

    def record(module: nn.Module, _args: tuple, out: object) -> None:
        if isinstance(out, torch.Tensor):
            leaf = next(module.children(), None) is None
            sizes.append((leaf, out.numel(), out.element_size()))

    hooks = [m.register_forward_hook(record) for m in meta.modules()]
    x = torch.zeros(batch, in_chans, size, size, device="meta")
    try:
        with torch.no_grad():
            out = meta.eval()(x)
    except NotImplementedError:  # an operation without a meta kernel: run it for real
        if on_meta:
            raise IGCError(f"{name} cannot be measured on the meta device") from None
        return _real_pass(model, in_chans, size, batch, f"{name} cannot take {what}", hint)
    except (RuntimeError, ValueError, IndexError) as exc:
        raise IGCError(f"{name} cannot take {what} ({first_line(exc, 140)}); {hint}") from None
    finally:
        for h in hooks:
            h.remove()
        meta.train(was_training)
    leaves = [n for leaf, n, _ in sizes if leaf]
    return Activations(tuple(out.shape), max((n for _, n, _ in sizes), default=0),
                       max(leaves, default=0), sum(leaves),
                       max((e for *_, e in sizes), default=x.element_size()))


def _real_pass(model: nn.Module, in_chans: int, size: int, batch: int, refused: str,
               hint: str) -> Activations:
    was_training = model.training
    try:
        with torch.inference_mode():
            out = model.eval()(torch.zeros(1, in_chans, size, size,
                                           device=model_device(model)))
    except (RuntimeError, ValueError, IndexError) as exc:
        raise IGCError(f"{refused} ({first_line(exc, 140)}); {hint}") from None
    finally:
        model.train(was_training)
    return Activations((batch, *out.shape[1:]), 0, 0, 0)


def check_input(model: nn.Module, in_chans: int, size: int, batch: int = 1,
                name: str = "model") -> int:
    """IGCError (one line) unless ``model`` takes such inputs within memory.

    Checks ``(batch, in_chans, size, size)`` inputs and returns the estimated peak activation
    bytes: three times the largest activation (input, output and one temporary), which must
    stay under :data:`MEMORY_FRACTION` of the model's device memory."""
    check_int(size, "input size", 1, MAX_INPUT_SIZE)
    check_int(batch, "batch", 1, MAX_DEPLOY_BATCH)
    check_int(in_chans, "input channels", 1, 4096)
    acts = measure(model, in_chans, size, batch, name)
    if acts.largest == 0:  # measured for real on one image: no estimate
        return 0
    need = 3 * max(acts.largest, batch * in_chans * size * size) * acts.element_size
    memory = device_memory(model_device(model))
    if memory is not None and need > MEMORY_FRACTION * memory:
        raise IGCError(f"{name} at batch {batch} and {size}x{size} needs about "
                       f"{need / 2**30:.1f} GiB for activations, more than half of the "
                       f"{memory / 2**30:.0f} GiB here; use a smaller --batch or --input-size")
    return need


__all__ = ["MAX_DEPLOY_BATCH", "MAX_INPUT_SIZE", "MEMORY_FRACTION", "Activations",
           "check_input", "device_memory", "measure", "memory_limit", "model_device"]
