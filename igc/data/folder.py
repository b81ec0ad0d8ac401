"""Image folders (ImageNet-style): ``root/train/<class>/*`` and ``root/val/<class>/*``.

Images (jpg, jpeg, png, bmp, webp; any case; nested folders allowed) are decoded with Pillow
per item, in DataLoader workers. Training items get a random scale-and-crop (a random area
fraction and aspect ratio, cropped and resized to ``size``); validation items are resized
so the shorter side is ``resize`` and centre-cropped to ``size``. Flips and normalisation
are left to the batch augmentation (:mod:`igc.data.augment`).
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset

from igc.data.base import DatasetSplits, decode_rgb, is_image_file, mix_seed, pil_to_tensor
from igc.errors import IGCError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Transform = Callable[[Image.Image, random.Random], Image.Image]
#: Resampling filters by the names timm's ``pretrained_cfg["interpolation"]`` uses.
INTERPOLATIONS = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
                  "bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS,
                  "box": Image.Resampling.BOX, "hamming": Image.Resampling.HAMMING}


class ScaleCrop:
    """Random crop of ``scale`` of the area and aspect ratio in ``ratio`` (log-uniform),
    resized to ``size`` x ``size``; falls back to a centre crop after 10 tries."""

    def __init__(self, size: int, scale: tuple[float, float] = (0.08, 1.0),
                 ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> None:
        self.size, self.scale, self.ratio = size, scale, ratio

    def box(self, width: int, height: int, rng: random.Random) -> tuple[int, int, int, int]:
        """A random crop box ``(left, top, right, bottom)`` inside a ``width`` x ``height``."""
        area = width * height
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            u = [rng.random() for _ in range(4)]
            target = area * (self.scale[0] + u[0] * (self.scale[1] - self.scale[0]))
            aspect = math.exp(log_ratio[0] + u[1] * (log_ratio[1] - log_ratio[0]))
            w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
            if 0 < w <= width and 0 < h <= height:
                left, top = int(u[2] * (width - w + 1)), int(u[3] * (height - h + 1))
                return left, top, left + w, top + h
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        return left, top, left + side, top + side

    def __call__(self, img: Image.Image, rng: random.Random) -> Image.Image:
        box = self.box(*img.size, rng)
        return img.resize((self.size, self.size), Image.Resampling.BILINEAR, box=box)


class ResizeCenterCrop:
    """Resize so the shorter side is ``resize`` (with ``interpolation``, a name of
    :data:`INTERPOLATIONS`), then take the centre ``size`` x ``size``."""

    def __init__(self, resize: int, size: int, interpolation: str = "bilinear") -> None:
        if size > resize:
            raise IGCError(f"crop size {size} exceeds resize {resize}; use a resize >= the crop")
        if interpolation not in INTERPOLATIONS:
            raise IGCError(f"unknown interpolation {interpolation!r}; use one of "
                           f"{', '.join(INTERPOLATIONS)}")
        self.resize, self.size = resize, size
        self.filter = INTERPOLATIONS[interpolation]

    def __call__(self, img: Image.Image, rng: random.Random | None = None) -> Image.Image:
        w, h = img.size
        scale = self.resize / min(w, h)
        w, h = max(self.size, round(w * scale)), max(self.size, round(h * scale))
        img = img.resize((w, h), self.filter)
        left, top = (w - self.size) // 2, (h - self.size) // 2
        return img.crop((left, top, left + self.size, top + self.size))


class ImageFolderDataset(Dataset):
    """File-backed split: items are ``(uint8 tensor (3, size, size), int label)``.

    Item ``i``'s random crop depends only on ``(seed, i)``: call :meth:`set_seed` (the
    loaders do, per epoch) for reproducible crops with any number of workers.
    """

    def __init__(self, samples: list[tuple[Path, int]], classes: list[str],
                 transform: Transform) -> None:
        self.samples, self.classes, self.transform = samples, classes, transform
        self.seed = 0

    def set_seed(self, seed: int) -> None:
        """Seed the per-item random crops."""
        self.seed = seed

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        rng = random.Random(mix_seed(self.seed, index))
        return pil_to_tensor(self.transform(decode_rgb(path), rng)), label


def _scan(split_dir: Path, classes: list[str] | None) -> tuple[list[str], list[tuple[Path, int]]]:
    """The class folders of ``split_dir`` and its ``(path, label)`` samples, sorted."""
    if not split_dir.is_dir():
        raise IGCError(f"{split_dir} is missing; an image folder needs train/<class>/ and "
                       "val/<class>/ subfolders holding images")
    found = sorted(d.name for d in split_dir.iterdir() if d.is_dir())
    classes = found if classes is None else classes
    extra = sorted(set(found) - set(classes))
    if extra:
        raise IGCError(f"{split_dir} has classes {', '.join(extra[:3])} that train/ lacks; "
                       "give val/ the same class folders as train/")
    index = {c: i for i, c in enumerate(classes)}
    samples = []
    for name in found:
        for parent, dirs, files in os.walk(split_dir / name):
            dirs.sort()
            images = [Path(parent) / f for f in sorted(files) if is_image_file(f)]
            odd = next((f for f in images if not f.is_file()), None)
            if odd is not None:  # a FIFO named f.png would block the reader forever
                raise IGCError(f"{odd} is not a regular file (a FIFO, device, socket or "
                               "broken link); image folders hold image files only: remove it")
            samples += [(f, index[name]) for f in images]
    if not samples:
        raise IGCError(f"{split_dir} holds no images in class subfolders; put images "
                       "(jpg, jpeg, png, bmp, webp) in <split>/<class>/")
    return classes, samples


def load_image_folder(root: str | Path, size: int = 224, resize: int | None = None,
                      scale: tuple[float, float] = (0.08, 1.0)) -> DatasetSplits:
    """An image folder as file-backed splits of ``(uint8 (3, size, size), label)`` items.

    Train: random scale-and-crop to ``size``. Val (the test split): resize the shorter side
    to ``resize`` (default ``size * 8 / 7``, 256 for 224), centre crop ``size``.
    Classes are the sorted folder names of ``train/``; mean/std are ImageNet's.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise IGCError(f"image folder {root} does not exist; pass --data-dir DIR holding "
                       "train/<class>/ and val/<class>/")
    classes, train = _scan(root / "train", None)
    empty = sorted(set(range(len(classes))) - {label for _, label in train})
    if empty:
        raise IGCError(f"{root / 'train' / classes[empty[0]]} holds no images; add images or "
                       "remove the folder")
    _, val = _scan(root / "val", classes)
    resize = resize or round(size * 8 / 7)
    return DatasetSplits(
        "imagefolder", ImageFolderDataset(train, classes, ScaleCrop(size, scale)),
        ImageFolderDataset(val, classes, ResizeCenterCrop(resize, size)), classes,
        in_channels=3, image_size=size, mean=IMAGENET_MEAN, std=IMAGENET_STD,
        origin=str(root))


def load_eval_folder(folder: str | Path, size: int, resize: int,
                     interpolation: str = "bilinear") -> ImageFolderDataset:
    """An ImageNet-style validation folder ``folder/<class>/*`` (or the ``val/`` of an image
    folder holding ``train/`` and ``val/``) for evaluation: every image resized so its
    shorter side is ``resize`` and centre-cropped to ``size``; labels are the sorted class
    folders' indices (ImageNet's class order for its 1000 synset folders)."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise IGCError(f"validation folder {root} does not exist; pass --data-dir DIR holding "
                       "one folder of images per class")
    if (root / "train").is_dir() and (root / "val").is_dir():
        root = root / "val"
    classes, samples = _scan(root, None)
    return ImageFolderDataset(samples, classes, ResizeCenterCrop(resize, size, interpolation))
