"""Batch augmentations on whole image tensors, on any device, without per-image loops.

Images are ``(N, C, H, W)`` tensors, uint8 (0..255) or floating point; every geometric op
keeps the dtype. Random ops draw from the ``torch.Generator`` given (on the generator's own
device, then moved), so a seeded CPU generator reproduces the same batch on CPU and GPU.

:class:`BatchAugment` builds a pipeline from a recipe's spec: a list whose items are either
strings ``"op"`` / ``"op:arg1,arg2"`` (positional) or tables ``{op = "name", param = value}``::

    ["pad_crop:4", "hflip", "normalize"]                                   # CIFAR
    ["scale_crop:64,80,64", "hflip:0.5", "normalize"]                      # Tiny ImageNet
    [{op = "pad_crop", pad = 4}, {op = "hflip", p = 0.5}, "normalize"]   # TOML tables

Ops: ``pad_crop(pad)``, ``hflip(p=0.5)``, ``scale_crop(min_size, max_size, out_size)``,
``erase(p=0.5, min_area=0.02, max_area=0.33)``, ``center_crop(size)`` and ``normalize``
(with the data set's mean/std). The pipeline always returns float32: without ``normalize``
it ends by scaling uint8 to 0..1.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F

from igc.checks import MAX_IMAGE_SIZE
from igc.errors import IGCError, unknown_name


def _rand(n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """``n`` uniform [0, 1) float32 draws from ``generator``, moved to ``device``."""
    source = generator.device if generator is not None else device
    return torch.rand(n, generator=generator, device=source).to(device)


def _randint(high: torch.Tensor | int, n: int, generator: torch.Generator | None,
             device: torch.device) -> torch.Tensor:
    """``n`` integers uniform in ``[0, high)`` (``high`` scalar or per item), int64."""
    return (_rand(n, generator, device) * high).long().clamp_(min=0)


def crop_per_image(x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, height: int,
                   width: int) -> torch.Tensor:
    """Crop image ``i`` of ``x (N, C, H, W)`` at ``(top[i], left[i])`` to ``(height, width)``.

    ``top``/``left`` are int64 ``(N,)`` on ``x``'s device; returns ``(N, C, height, width)``.
    """
    n, c, _, w_in = x.shape
    rows = top[:, None] + torch.arange(height, device=x.device)
    cols = left[:, None] + torch.arange(width, device=x.device)
    x = x.gather(2, rows[:, None, :, None].expand(n, c, height, w_in))
    return x.gather(3, cols[:, None, None, :].expand(n, c, height, width))


def pad_crop(x: torch.Tensor, pad: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero-pad ``x (N, C, H, W)`` by ``pad`` on every side, then crop each image back to
    ``(H, W)`` at a random offset (the CIFAR "random crop with padding")."""
    if pad <= 0:
        return x
    n, _, h, w = x.shape
    top = _randint(2 * pad + 1, n, generator, x.device)
    left = _randint(2 * pad + 1, n, generator, x.device)
    return crop_per_image(F.pad(x, (pad, pad, pad, pad)), top, left, h, w)


def hflip(x: torch.Tensor, p: float = 0.5,
          generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror each image of ``x (N, C, H, W)`` left-right with probability ``p``."""
    flip = _rand(x.shape[0], generator, x.device) < p
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def scale_crop(x: torch.Tensor, min_size: int, max_size: int, out_size: int,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """Resize each image of ``x (N, C, H, W)`` (bilinear) to a random ``s x s`` with ``s`` in
    ``[min_size, max_size]``, then crop a random ``out_size x out_size`` window.

    One ``grid_sample`` call for the whole batch (equal to ``F.interpolate`` + crop with
    ``align_corners=False``); uint8 input is rounded back to uint8. Returns
    ``(N, C, out_size, out_size)``.
    """
    if not out_size <= min_size <= max_size:
        raise IGCError(f"scale_crop needs out_size <= min_size <= max_size, got {out_size}, "
                       f"{min_size}, {max_size}; fix the augmentation spec")
    n, c = x.shape[:2]
    size = min_size + _randint(max_size - min_size + 1, n, generator, x.device)
    top = _randint(size - out_size + 1, n, generator, x.device)
    left = _randint(size - out_size + 1, n, generator, x.device)
    # output pixel j samples resized pixel offset + j, i.e. normalised input coordinate
    # (2 * (offset + j) + 1) / size - 1 = (out / size) * u_out + (2 * offset + out) / size - 1
    theta = torch.zeros(n, 2, 3, device=x.device)
    scale = out_size / size.float()
    theta[:, 0, 0] = theta[:, 1, 1] = scale
    theta[:, 0, 2] = (2 * left + out_size) / size.float() - 1
    theta[:, 1, 2] = (2 * top + out_size) / size.float() - 1
    grid = F.affine_grid(theta, [n, c, out_size, out_size], align_corners=False)
    source = x if x.is_floating_point() else x.float()
    out = F.grid_sample(source, grid.to(source.dtype), mode="bilinear", padding_mode="border",
                        align_corners=False)
    return out if x.is_floating_point() else out.round_().clamp_(0, 255).to(x.dtype)


def erase(x: torch.Tensor, p: float = 0.5, min_area: float = 0.02, max_area: float = 0.33,
          generator: torch.Generator | None = None) -> torch.Tensor:
    """Random erasing (Zhong et al., 2017): with probability ``p`` set a random rectangle
    of each image of ``x (N, C, H, W)`` to 0. Its area is a uniform fraction in
    ``[min_area, max_area]`` of the image and its aspect ratio log-uniform in [0.3, 3.3];
    keeps the dtype. Zero is the background of Fashion-MNIST and MNIST (put ``erase``
    before ``normalize`` there)."""
    if not (0 <= p <= 1 and 0 < min_area <= max_area <= 1):
        raise IGCError(f"erase needs 0 <= p <= 1 and 0 < min_area <= max_area <= 1, got "
                       f"{p}, {min_area}, {max_area}; fix the augmentation spec")
    n, _, h, w = x.shape
    area = (min_area + (max_area - min_area) * _rand(n, generator, x.device)) * (h * w)
    ratio = torch.exp(math.log(0.3) + math.log(3.3 / 0.3) * _rand(n, generator, x.device))
    eh = torch.sqrt(area * ratio).round().clamp(1, h).long()
    ew = torch.sqrt(area / ratio).round().clamp(1, w).long()
    top = (_rand(n, generator, x.device) * (h - eh + 1)).long()
    left = (_rand(n, generator, x.device) * (w - ew + 1)).long()
    on = _rand(n, generator, x.device) < p
    rows = torch.arange(h, device=x.device)[None, :]
    cols = torch.arange(w, device=x.device)[None, :]
    inside_r = (rows >= top[:, None]) & (rows < (top + eh)[:, None])
    inside_c = (cols >= left[:, None]) & (cols < (left + ew)[:, None])
    mask = (inside_r[:, :, None] & inside_c[:, None, :]) & on[:, None, None]
    return x.masked_fill(mask[:, None], 0)


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """The central ``size x size`` window of each image of ``x (N, C, H, W)``."""
    h, w = x.shape[-2:]
    if size > min(h, w):
        raise IGCError(f"center_crop size {size} exceeds the {h}x{w} images; use a smaller size")
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top:top + size, left:left + size]


def normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``(x / 255 - mean) / std`` per channel as float32 ``(N, C, H, W)``.

    ``x`` is uint8 (0..255) or floating point already on the 0..1 scale.
    """
    m = torch.tensor(mean, dtype=torch.float32, device=x.device)[:, None, None]
    s = torch.tensor(std, dtype=torch.float32, device=x.device)[:, None, None]
    if x.is_floating_point():
        return (x.float() - m) / s
    return (x.float() - m * 255) / (s * 255)


# op name -> (function, parameter names, defaults); ``normalize`` is bound to the data set
_OPS: dict[str, tuple[Callable[..., torch.Tensor], tuple[str, ...], dict[str, float]]] = {
    "pad_crop": (pad_crop, ("pad",), {}),
    "hflip": (hflip, ("p",), {"p": 0.5}),
    "scale_crop": (scale_crop, ("min_size", "max_size", "out_size"), {}),
    "center_crop": (center_crop, ("size",), {}),
    "erase": (erase, ("p", "min_area", "max_area"), {"p": 0.5, "min_area": 0.02,
                                                      "max_area": 0.33}),
    "normalize": (normalize, (), {}),
}
_RANDOM = {"pad_crop", "hflip", "scale_crop", "erase"}


def _number(text: str, item: str) -> float:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise IGCError(f"augmentation {item!r}: {text!r} is not a number; write e.g. "
                       "'pad_crop:4'") from None


def _parse(item: str | Mapping[str, object]) -> tuple[str, dict[str, object]]:
    """One spec item as ``(op name, keyword arguments)``."""
    if isinstance(item, Mapping):
        params = dict(item)
        name = str(params.pop("op", "")).strip()
        values: list[float] = []
    elif isinstance(item, str):
        name, _, args = (part.strip() for part in item.partition(":"))
        values = [_number(a.strip(), item) for a in args.split(",")] if args else []
        params = {}
    else:
        raise IGCError(f"augmentation {item!r} must be a string like 'pad_crop:4' or a table "
                       "with an 'op' key; fix the recipe")
    if name not in _OPS:
        raise unknown_name("augmentation", name, _OPS)
    _, names, defaults = _OPS[name]
    params.update(zip(names, values))
    unknown = set(params) - set(names)
    missing = set(names) - set(params) - set(defaults)
    if unknown or missing or len(values) > len(names):
        raise IGCError(f"augmentation {item!r} has bad parameters; use "
                       f"{name}:{','.join(n.upper() for n in names)} or a table with op = "
                       f"{name!r}{''.join(f', {n} = ...' for n in names)}")
    return name, {**defaults, **params}


class BatchAugment:
    """A pipeline of batch ops from a spec (see the module docstring).

    ``augment(x_uint8 (N, C, H, W), generator) -> float32 (N, C, H', W')``.
    """

    def __init__(self, spec: Sequence[str | Mapping[str, object]], mean: Sequence[float],
                 std: Sequence[float]) -> None:
        if isinstance(spec, str | Mapping):
            spec = [spec]
        self.spec = list(spec)
        self.ops = [_parse(item) for item in self.spec]
        self.mean, self.std = tuple(mean), tuple(std)

    @property
    def random(self) -> bool:
        """Whether any op is random (a training pipeline)."""
        return any(name in _RANDOM for name, _ in self.ops)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        normalized = False
        for name, params in self.ops:
            fn = _OPS[name][0]
            if name == "normalize":
                x, normalized = normalize(x, self.mean, self.std), True
            elif name in _RANDOM:
                x = fn(x, **params, generator=generator)
            else:
                x = fn(x, **params)
        if normalized:
            return x
        return x.float() if x.is_floating_point() else x.float().div_(255)

    def plan(self, channels: int, height: int, width: int) -> tuple[int, int, int]:
        """``(out_height, out_width, peak_bytes)`` of the pipeline on one uint8 image of
        ``channels x height x width``: the output's side and the most bytes held at once by
        one op (its input, intermediates and output), from the shapes alone."""
        h, w, item = height, width, 1
        peak = channels * h * w * item
        for name, params in self.ops:
            inp = channels * h * w * item
            if name == "pad_crop":
                pad = max(0, int(params["pad"]))
                work = channels * ((h + 2 * pad) * (w + 2 * pad) + h * (w + 2 * pad)) * item
                out = inp
            elif name == "scale_crop":
                side = int(params["out_size"])
                work = channels * h * w * 4 + side * side * 8 + channels * side * side * 4
                h = w = side
                out = channels * h * w * item
            elif name == "center_crop":
                h, w = min(h, int(params["size"])), min(w, int(params["size"]))
                work, out = 0, channels * h * w * item
            elif name == "normalize":
                item = 4
                work, out = 0, channels * h * w * item
            else:  # hflip, erase: masks and a copy the size of the input
                work, out = inp + h * w * 4, inp
            peak = max(peak, inp + work + out)
        return h, w, max(peak, channels * h * w * 4)  # the float32 result

    def check_batch(self, batch: int, channels: int, size: int, limit: int | None,
                    what: str = "train_augment") -> int:
        """The output side of a ``batch`` of ``channels x size x size`` images; IGCError
        (one line) when it exceeds :data:`~igc.checks.MAX_IMAGE_SIZE` or the pipeline would
        hold more than ``limit`` bytes at once (see :meth:`plan`)."""
        h, w, peak = self.plan(channels, size, size)
        if max(h, w) > MAX_IMAGE_SIZE:
            raise IGCError(f"{what} {self.spec} makes {h}x{w} images, over the limit of "
                           f"{MAX_IMAGE_SIZE}; fix the augmentation's sizes")
        need = peak * batch
        if limit is not None and need > limit:
            raise IGCError(f"{what} {self.spec} needs about {need / 2**30:,.1f} GiB for a "
                           f"batch of {batch} {channels}x{size}x{size} images, over the limit "
                           f"of {limit / 2**30:,.1f} GiB; fix the augmentation's sizes, lower "
                           "--batch-size, or raise the limit with IGC_MEMORY_LIMIT_GB")
        return h

    def __repr__(self) -> str:
        return f"BatchAugment({self.spec!r})"

