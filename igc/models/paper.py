"""The numbers the IGCV2 paper reports, as data.

``paper_results.toml`` (beside this module) holds every row of the paper's Tables 2-7, 9 and
11, typed from the paper: parameters, multiply-adds ("FLOPs" in the paper) and accuracies.
They are published values to show beside our own counts, never computed here.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

from igc.files.tomlfile import parse_toml

__all__ = ["PAPER_DATASETS", "TABLES", "paper_reference", "paper_rows"]

#: The tables of the paper that are stored.
TABLES = ("2", "3", "4", "5", "6", "7", "9", "11")
#: The values of the ``dataset`` field.
PAPER_DATASETS = ("cifar10", "cifar100", "tiny-imagenet", "imagenet")

# Which data set's row to compare a network's counts with first: the CIFAR-100 counts include
# the 100-way classifier that our CIFAR networks are usually built with.
_DATASET_PREFERENCE = {"cifar100": 0, "cifar10": 1, "tiny-imagenet": 2, "imagenet": 3}


@functools.lru_cache(maxsize=1)
def _load() -> tuple[dict[str, Any], ...]:
    text = resources.files("igc.models").joinpath("paper_results.toml").read_text("utf-8")
    return tuple(parse_toml(text, "paper_results.toml")["row"])


def paper_rows(
    model: str | None = None, table: str | int | None = None, dataset: str | None = None
) -> list[dict[str, Any]]:
    """The stored rows, in the paper's order, filtered by any of the arguments given.

    ``model`` is our registry name (e.g. ``"igcv2star_c416_d20"``), ``table`` the table number
    (``"9"`` or ``9``), ``dataset`` one of :data:`PAPER_DATASETS`. Each row is a fresh ``dict``.
    """
    table = None if table is None else str(table)
    return [
        dict(row)
        for row in _load()
        if (model is None or row.get("model") == model)
        and (table is None or row["table"] == table)
        and (dataset is None or row["dataset"] == dataset)
    ]


def paper_reference(model: str) -> dict[str, Any] | None:
    """The row to compare our parameter and multiply-add counts of ``model`` with.

    Among the rows of ``model`` that give a parameter count, prefer one that also gives
    multiply-adds, then a CIFAR-100 row (its counts include the 100-way classifier), then the
    earliest table. The row's ``scope`` says whether the counts are per network or per block.
    Returns ``None`` when the paper reports nothing for ``model``.
    """
    rows = [(i, row) for i, row in enumerate(_load()) if row.get("model") == model]
    rows = [(i, row) for i, row in rows if "params" in row]
    if not rows:
        return None
    _, best = min(
        rows,
        key=lambda ir: (
            "macs" not in ir[1],
            _DATASET_PREFERENCE.get(ir[1]["dataset"], len(_DATASET_PREFERENCE)),
            int(ir[1]["table"]),
            ir[0],
        ),
    )
    return dict(best)
