"""The zoo as tables (``igc models``, ``igc info``), the same from the API as the CLI.

:func:`model_rows` gives every registered network's counts beside the paper's,
:func:`model_info` one network block by block. Counting every network takes seconds and
importing torch most of another, so the zoo's counts ship with igc as a table,
``igc/models/counts.json`` (written by ``scripts/count_models.py`` from the built networks;
``tests/test_zoo_counts.py`` fails whenever it differs from them): ``igc models`` reads
it without importing torch, and trusts it. Where the registry is imported, a network the
table does not hold with the same configuration (one registered at run time, or a zoo
network whose configuration changed since) is counted from its built module, and its
counts are kept in the user's cache folder
(:mod:`igc.files.cache`), in a file named after a hash of the sources that decide them (the
model, layer and sparsity packages, the counter and the torch version): a change to any of
them starts a new file. Entries read back are checked field by field; a damaged one is
recounted, a damaged file (table or cache) ignored."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from igc.checks import MAX_IMAGE_SIZE, check_int
from igc.errors import unknown_name
from igc.files.cache import cache_dir, read_cache, write_cache
from igc.formatting import count, pct
from igc.runtime import num_threads

# Counting, the registry and torch stay inside the functions: `igc models` answers from the
# shipped table without them (and tells from sys.modules whether the registry was imported).

#: Packages (and modules) of igc whose sources decide the counts.
SOURCE_PACKAGES = ("models", "layers", "sparsity")
SOURCE_MODULES = ("analysis/count.py",)
#: Seconds of counting before :func:`model_rows` shows its progress bar (the table and a
#: warm cache answer sooner, without one).
PROGRESS_DELAY_S = 0.5
#: The shipped count table (see the module docstring).
TABLE_PATH = Path(__file__).resolve().parent.parent / "models" / "counts.json"
#: The registry's facts at the head of a row and the types each may have.
ENTRY_FIELDS: dict[str, tuple[type, ...]] = {
    "name": (str,), "family": (str,), "table": (str,), "dataset": (str,),
    "input_size": (int,), "num_classes": (int,),
}
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
    return count(value, missing="-")


def diff_cell(value: float | None) -> str:
    """A relative difference (a fraction) in those tables: ``+5.0%``, ``-`` if missing."""
    return pct(None if value is None else 100 * value, 1, missing="-", signed=True)


def cache_path() -> Path:
    """The count cache of this version of the sources (see the module docstring)."""
    import torch  # lazy: see the note above SOURCE_PACKAGES

    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256(torch.__version__.encode())
    for package in SOURCE_PACKAGES:
        for path in sorted((root / package).glob("*")):
            if path.suffix in (".py", ".toml"):
                digest.update(path.name.encode() + path.read_bytes())
    for module in SOURCE_MODULES:
        digest.update((root / module).read_bytes())
    return cache_dir() / f"models-{digest.hexdigest()[:16]}.json"


def _valid(counts: object, fields: dict[str, tuple[type, ...]] = COUNT_FIELDS) -> bool:
    """Whether a cached entry has every field of ``fields`` with a type it may have."""
    if not isinstance(counts, dict) or set(counts) != set(fields):
        return False
    return all(isinstance(counts[k], kinds) and not (isinstance(counts[k], bool)
                                                     and bool not in kinds)
               for k, kinds in fields.items())


def config_key(name: str, kwargs: dict, num_classes: int, in_chans: int,
               input_size: int) -> str:
    """What decides a network's counts, as one string: the key of the cache and table."""
    return json.dumps([name, kwargs, num_classes, in_chans, input_size], sort_keys=True,
                      default=str)


def _entry_key(entry: Any) -> str:
    return config_key(entry.name, entry.kwargs, entry.num_classes, entry.in_chans,
                      entry.input_size)


def _row(entry: Any, counts: dict[str, Any]) -> dict[str, Any]:
    """One row of :func:`model_rows`: the registry's facts of ``entry``, then ``counts``."""
    return {"name": entry.name, "family": entry.family, "table": entry.table,
            "dataset": entry.dataset, "input_size": entry.input_size,
            "num_classes": entry.num_classes, **counts}


def table_entry(name: str) -> dict[str, Any]:
    """The count-table entry of network ``name``, counted from its built module.

    Keys: ``aliases``, ``in_chans``, ``kwargs`` (with the row, what the entry is valid
    for) and ``row`` (as :func:`model_rows` gives it)."""
    from igc.analysis.count import paper_counts  # lazy: see the note above SOURCE_PACKAGES
    from igc.models.registry import model_entry

    entry = model_entry(name)
    with num_threads(1):
        counts = paper_counts(entry.name, method="hooks")
    return {"aliases": list(entry.aliases), "in_chans": entry.in_chans,
            "kwargs": entry.kwargs, "row": _row(entry, counts)}


def _counts(row: dict[str, Any]) -> dict[str, Any]:
    """The counts of a row (its ``name``, then the fields after the registry's facts)."""
    return {k: v for k, v in row.items() if k == "name" or k not in ENTRY_FIELDS}


def _well_formed(name: str, item: object) -> bool:
    """Whether ``item`` is a table entry of :func:`table_entry` for network ``name``."""
    if not isinstance(item, dict) or set(item) != {"aliases", "in_chans", "kwargs", "row"}:
        return False
    row, aliases = item["row"], item["aliases"]
    return (isinstance(aliases, list) and all(isinstance(a, str) for a in aliases)
            and isinstance(item["kwargs"], dict) and isinstance(item["in_chans"], int)
            and isinstance(row, dict) and row.get("name") == name
            and list(row)[:len(ENTRY_FIELDS)] == list(ENTRY_FIELDS)
            and _valid({k: row[k] for k in ENTRY_FIELDS}, ENTRY_FIELDS)
            and _valid(_counts(row)))


def read_table(path: Path | None = None) -> dict[str, dict[str, Any]]:
    """The shipped count table: canonical name -> entry, ``{}`` if missing or damaged.

    ``path`` defaults to :data:`TABLE_PATH`. Each entry is one of :func:`table_entry` plus
    its ``key`` (:func:`config_key`); entries that are not well formed are left out (so
    counted again)."""
    try:
        data = json.loads((path or TABLE_PATH).read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    models = data.get("models") if isinstance(data, dict) else None
    return {name: {**item, "key": config_key(name, item["kwargs"], item["row"]["num_classes"],
                                            item["in_chans"], item["row"]["input_size"])}
            for name, item in (models.items() if isinstance(models, dict) else ())
            if _well_formed(name, item)}


def model_rows(pattern: str | None = None, use_cache: bool = True,
               pretrained: bool = False, progress: bool = False) -> list[dict[str, Any]]:
    """One dict per registered network matching ``pattern``: ``igc models``' rows.

    ``pattern`` is shell-style (all networks without one; ``pretrained``: only those with
    released weights). Each dict holds the registry facts (``name``, ``family``, ``table``,
    ``dataset``, ``input_size``, ``num_classes``) and the counts of
    :func:`~igc.analysis.count.paper_counts`. With ``use_cache``, counts come from the
    shipped table, else the user's cache, else the built network; without it every network
    is counted again. While the registry has not been imported it holds exactly the zoo,
    which the table lists, so the rows are read from the table alone, without torch
    (``pretrained`` reads the weights manifest through the registry). ``progress``: a
    progress bar on stderr while networks are counted, when stderr is a terminal and the
    counting lasts longer than :data:`PROGRESS_DELAY_S`. IGCError for a pattern that
    matches nothing."""
    table = read_table() if use_cache else {}
    if table and not pretrained and "igc.models.registry" not in sys.modules:
        return _table_rows(pattern, table)
    return _counted_rows(pattern, table, use_cache, pretrained, progress)


def _table_rows(pattern: str | None, table: dict[str, dict[str, Any]]
                ) -> list[dict[str, Any]]:
    """:func:`model_rows` from the table alone (the matching of ``list_models``)."""
    names = [name for name, item in sorted(table.items())
             if not pattern or any(fnmatch.fnmatchcase(n, pattern)
                                   for n in (name, *item["aliases"]))]
    if pattern and not names:
        raise unknown_name("model", pattern, sorted(table))
    return [dict(table[name]["row"]) for name in names]


def _counted_rows(pattern: str | None, table: dict[str, dict[str, Any]], use_cache: bool,
                  pretrained: bool, progress: bool) -> list[dict[str, Any]]:
    """:func:`model_rows` through the registry: table, cache or the built network."""
    from tqdm import tqdm

    from igc.analysis.count import paper_counts  # lazy: see the note above SOURCE_PACKAGES
    from igc.models.registry import list_models, model_entry

    names = list_models(pattern or "", pretrained=pretrained)
    if pattern and not names and not pretrained:
        raise unknown_name("model", pattern, list_models())
    path, cache, rows, dirty = None, {}, [], False
    # disable=None: tqdm draws only when stderr is a terminal (as igc's download messages)
    bar = tqdm(names, desc="counting networks", unit="network", file=sys.stderr,
               leave=False, dynamic_ncols=True, delay=PROGRESS_DELAY_S,
               disable=None if progress else True)
    with num_threads(1), bar:  # tiny passes: threads cost more than they give
        for name in bar:
            bar.set_postfix_str(name, refresh=False)
            entry = model_entry(name)
            key = _entry_key(entry)
            item = table.get(name)
            if item is not None and item["key"] == key:
                rows.append(_row(entry, _counts(item["row"])))
                continue
            if use_cache and path is None:
                path = cache_path()
                cache = read_cache(path)
            counts = cache.get(key)
            if not _valid(counts):
                counts = paper_counts(name, method="hooks")
                cache[key], dirty = counts, True
            rows.append(_row(entry, counts))
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

    # lazy: see the note above SOURCE_PACKAGES
    from igc.analysis.count import count_macs, count_params, paper_counts, per_block_counts
    from igc.analysis.probe import check_input
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


__all__ = ["COUNT_FIELDS", "ENTRY_FIELDS", "SOURCE_PACKAGES", "TABLE_PATH", "cache_path",
           "config_key", "count_cell", "diff_cell", "model_info", "model_rows", "read_table",
           "table_entry"]
