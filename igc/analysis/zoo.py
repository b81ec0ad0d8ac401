"""The zoo as tables (``igc models``, ``igc info``), the same from the API as the CLI.

:func:`model_rows` gives every registered network's counts beside the paper's,
:func:`model_info` one network block by block. Counting every network takes seconds, so
:func:`model_rows` keeps the counts in the user's cache folder (:mod:`igc.files.cache`),
in a file named after a hash of the sources that decide them (the model, layer and
sparsity packages, the counter and the torch version): a change to any of them starts a
new file. Entries read back are checked field by field; a damaged one is recounted, a
damaged file rebuilt."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

#: Packages (and modules) of igc whose sources decide the counts.
SOURCE_PACKAGES = ("models", "layers", "sparsity")
SOURCE_MODULES = ("analysis/count.py",)
#: The fields of a cached row and the types each may have.
COUNT_FIELDS: dict[str, tuple[type, ...]] = {
    "name": (str,), "params": (int,), "macs": (int,), "params_counted": (int,),
    "macs_counted": (int,), "paper_params": (int, type(None)),
    "paper_macs": (int, type(None)), "params_diff": (float, int, type(None)),
    "macs_diff": (float, int, type(None)), "scope": (str,), "convention": (str,),
    "paper_table": (str, int, type(None)), "paper_approx": (bool,),
}


def count_cell(value: int | None) -> str:
    """A count in a table of ``igc models`` / ``igc info``: ``25.6k``, ``-`` if missing."""
    from igc.formatting import count

    return count(value, missing="-")


def diff_cell(value: float | None) -> str:
    """A relative difference (a fraction) in those tables: ``+5.0%``, ``-`` if missing."""
    from igc.formatting import pct

    return pct(None if value is None else 100 * value, 1, missing="-", signed=True)


def cache_path() -> Path:
    """The count cache of this version of the sources (see the module docstring)."""
    import torch

    from igc.files.cache import cache_dir

    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256(torch.__version__.encode())
    for package in SOURCE_PACKAGES:
        for path in sorted((root / package).glob("*")):
            if path.suffix in (".py", ".toml"):
                digest.update(path.name.encode() + path.read_bytes())
    for module in SOURCE_MODULES:
        digest.update((root / module).read_bytes())
    return cache_dir() / f"models-{digest.hexdigest()[:16]}.json"


def _valid(counts: object) -> bool:
    """Whether a cached entry has every field with a type it may have."""
    if not isinstance(counts, dict) or set(counts) != set(COUNT_FIELDS):
        return False
    return all(isinstance(counts[k], kinds) and not (isinstance(counts[k], bool)
                                                     and bool not in kinds)
               for k, kinds in COUNT_FIELDS.items())


def model_rows(pattern: str | None = None, use_cache: bool = True,
               pretrained: bool = False) -> list[dict[str, Any]]:
    """One dict per registered network matching ``pattern``: ``igc models``' rows.

    ``pattern`` is shell-style (all networks without one; ``pretrained``: only those with
    released weights). Each dict holds the registry facts (``name``, ``family``, ``table``,
    ``dataset``, ``input_size``, ``num_classes``) and the counts of
    :func:`~igc.analysis.count.paper_counts`. IGCError for a pattern that matches nothing."""
    from igc.analysis.count import paper_counts
    from igc.errors import unknown_name
    from igc.files.cache import read_cache, write_cache
    from igc.models.registry import list_models, model_entry
    from igc.runtime import num_threads

    names = list_models(pattern or "", pretrained=pretrained)
    if pattern and not names and not pretrained:
        raise unknown_name("model", pattern, list_models())
    path = cache_path() if use_cache else None
    cache = read_cache(path) if path else {}
    rows, dirty = [], False
    with num_threads(1):  # tiny passes: threads cost more than they give
        for name in names:
            entry = model_entry(name)
            key = json.dumps([name, entry.kwargs, entry.num_classes, entry.in_chans,
                              entry.input_size], sort_keys=True, default=str)
            counts = cache.get(key)
            if not _valid(counts):
                counts = paper_counts(name, method="hooks")
                cache[key], dirty = counts, True
            rows.append({"name": name, "family": entry.family, "table": entry.table,
                         "dataset": entry.dataset, "input_size": entry.input_size,
                         "num_classes": entry.num_classes, **counts})
    if path and dirty:
        write_cache(path, cache)
    return rows


def model_info(name: str, input_size: int | None = None) -> dict[str, Any]:
    """Network ``name`` (or an alias) block by block, as ``igc info --json`` prints it.

    Keys: the registry facts, ``config``, ``aliases``, ``pretrained_cfg``, ``params``,
    ``weights``, ``macs`` at ``input_size`` (default: the registered one), the paper's counts
    beside ours (``paper``) and one dict per row of
    :func:`~igc.analysis.count.per_block_counts` (``blocks``)."""
    import copy

    from igc.analysis.count import count_macs, count_params, paper_counts, per_block_counts
    from igc.analysis.probe import check_input
    from igc.checks import MAX_IMAGE_SIZE, check_int
    from igc.models.registry import create_model, model_entry

    entry = model_entry(name)
    size = entry.input_size if input_size is None else \
        check_int(input_size, "--input-size", 1, MAX_IMAGE_SIZE)
    model = create_model(name)
    check_input(model, entry.in_chans, size, 1, entry.name)
    shapes = copy.deepcopy(model).to("meta")  # counts need shapes only: fast at any size
    try:
        rows = per_block_counts(shapes, size, entry.in_chans)
    except NotImplementedError:  # an operation without a meta kernel: count for real
        shapes = model
        rows = per_block_counts(shapes, size, entry.in_chans)
    compared = paper_counts(name, model, method="hooks")
    return {
        "name": entry.name, "family": entry.family, "table": entry.table,
        "dataset": entry.dataset, "input_size": size, "num_classes": entry.num_classes,
        "in_chans": entry.in_chans, "config": dict(entry.kwargs),
        "aliases": list(entry.aliases), "pretrained_cfg": model.pretrained_cfg,
        "params": count_params(model), "weights": count_params(model, weights_only=True),
        "macs": count_macs(shapes, size, entry.in_chans, method="hooks"),
        "paper": {k: compared[k] for k in ("paper_params", "paper_macs", "params_counted",
                                           "macs_counted", "params_diff", "macs_diff",
                                           "convention", "paper_table")},
        "blocks": [r.to_dict() for r in rows],
    }


__all__ = ["COUNT_FIELDS", "SOURCE_PACKAGES", "cache_path", "count_cell", "diff_cell",
           "model_info", "model_rows"]
