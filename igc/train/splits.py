"""The data set of a run, loaded at the image sizes its recipe asks for."""

from __future__ import annotations

from igc.data import DatasetSplits, load_dataset
from igc.train.recipe import Recipe


def load_splits(data: str, data_dir: str | None, download: bool,
                recipe: Recipe | dict) -> DatasetSplits:
    """The data set ``data`` (from ``data_dir``, downloaded if allowed) at the recipe's
    ``image_size`` / ``resize_size`` when it sets them (``recipe``: a Recipe, or a
    checkpoint's recipe table)."""
    get = recipe.get if isinstance(recipe, dict) else lambda k, d=None: getattr(recipe, k, d)
    options = {}
    if get("image_size"):
        options["image_size"] = int(get("image_size"))
    if get("resize_size"):
        options["resize_size"] = int(get("resize_size"))
    return load_dataset(data, data_dir, download, **options)


__all__ = ["load_splits"]
