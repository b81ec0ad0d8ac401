"""``igc models``: every network of the papers with our counts beside the paper's;
``igc info``: one network's layout, block by block, as in the paper's Tables 8 and 10."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

from igc.errors import IGCError

#: Sources whose change invalidates the cached counts.
_SOURCE_PACKAGES = ("models", "layers", "sparsity")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the registered networks with parameters and MACs",
                       description=__doc__.splitlines()[0])
    p.add_argument("pattern", nargs="?",
                   help="shell-style pattern of names or aliases, e.g. 'igcv3_*'")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.add_argument("--pretrained", action="store_true",
                   help="only networks with released weights")
    p.add_argument("--no-cache", action="store_true",
                   help="recount instead of reading the cache (~/.cache/igc)")
    p.set_defaults(run=run_models)

    q = sub.add_parser("info", help="show one network block by block (paper Tables 8/10)",
                       description=__doc__.splitlines()[1])
    q.add_argument("name", help="registered model name or alias, e.g. igcv2_100")
    q.add_argument("--json", action="store_true",
                   help="print one JSON object (with the metadata, `pretrained_cfg`)")
    q.add_argument("--input-size", type=int, help="count at this input size instead")
    q.set_defaults(run=run_info)


# ---------------------------------------------------------------------------------------
# formatting
# ---------------------------------------------------------------------------------------


def _si(value: int | None) -> str:
    if value is None:
        return "-"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{unit}" if value < 100 * scale else \
                f"{value / scale:.0f}{unit}"
    return str(value)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:+.1f}%"


def _table(headers: list[str], rows: list[list[str]], right: set[int]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]),
                      *(line(r) for r in rows)])


# ---------------------------------------------------------------------------------------
# igc models
# ---------------------------------------------------------------------------------------


def _cache_path() -> Path:
    import torch

    import igc

    root = Path(igc.__file__).parent
    digest = hashlib.sha256(torch.__version__.encode())
    for package in _SOURCE_PACKAGES:
        for path in sorted((root / package).glob("*")):
            if path.suffix in (".py", ".toml"):
                digest.update(path.name.encode() + path.read_bytes())
    digest.update((root / "analysis" / "count.py").read_bytes())
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "igc" / f"models-{digest.hexdigest()[:16]}.json"


def _load_cache(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _save_cache(path: Path, cache: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache))
        tmp.replace(path)
    except OSError:
        pass  # a read-only home only costs the next run its speed


def model_rows(pattern: str | None = None, use_cache: bool = True,
               pretrained: bool = False) -> list[dict]:
    """One dict per registered model matching ``pattern`` (see :func:`paper_counts`)."""
    import torch

    from igc.analysis.count import paper_counts
    from igc.models.registry import list_models, model_entry

    names = list_models(pattern or "", pretrained=pretrained)
    if pattern and not names and not pretrained:
        from igc.errors import unknown_name

        raise unknown_name("model", pattern, list_models())
    path = _cache_path() if use_cache else None
    cache = _load_cache(path) if path else {}
    rows, dirty = [], False
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny passes: threads cost more than they give
    try:
        for name in names:
            entry = model_entry(name)
            key = json.dumps([name, entry.kwargs, entry.num_classes, entry.in_chans,
                              entry.input_size], sort_keys=True, default=str)
            counts = cache.get(key)
            if counts is None:
                counts = paper_counts(name, method="hooks")
                cache[key], dirty = counts, True
            rows.append({"name": name, "family": entry.family, "table": entry.table,
                         "dataset": entry.dataset, "input_size": entry.input_size,
                         "num_classes": entry.num_classes, **counts})
    finally:
        torch.set_num_threads(threads)
    if path and dirty:
        _save_cache(path, cache)
    return rows


def run_models(args: argparse.Namespace) -> int:
    rows = model_rows(args.pattern, use_cache=not args.no_cache, pretrained=args.pretrained)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    headers = ["name", "family", "table", "input", "params", "MACs", "counted", "MACs",
               "paper", "MACs", "diff", "MACs"]
    body = [[r["name"], r["family"], r["table"], f"{r['input_size']}", _si(r["params"]),
             _si(r["macs"]), _si(r["params_counted"]), _si(r["macs_counted"]),
             ("~" if r["paper_approx"] else "") + _si(r["paper_params"]),
             _si(r["paper_macs"]), _pct(r["params_diff"]), _pct(r["macs_diff"])]
            for r in rows]
    print(_table(headers, body, right=set(range(4, 12))))
    print(f"\n{len(rows)} models. params/MACs: the network as built. counted: as the paper "
          "counts (CIFAR/Tiny: conv weights without BN and classifier; 8-layer: one block "
          "at 32x32; ImageNet: all parameters). diff: counted vs paper. See docs/zoo.md.",
          file=sys.stdout)
    return 0


# ---------------------------------------------------------------------------------------
# igc info
# ---------------------------------------------------------------------------------------


def _cells(values: object) -> str:
    if values is None:
        return "-"
    return ",".join(str(v) for v in values)  # type: ignore[union-attr]


def run_info(args: argparse.Namespace) -> int:
    from igc.analysis.count import count_macs, count_params, paper_counts, per_block_counts
    from igc.models.registry import create_model, model_entry

    entry = model_entry(args.name)
    model = create_model(args.name)
    size = args.input_size or entry.input_size
    if size < 1:
        raise IGCError(f"--input-size must be positive, got {size}")
    rows = per_block_counts(model, size, entry.in_chans)
    compared = paper_counts(args.name, model, method="hooks")
    summary = {
        "name": entry.name, "family": entry.family, "table": entry.table,
        "dataset": entry.dataset, "input_size": size, "num_classes": entry.num_classes,
        "in_chans": entry.in_chans, "config": {k: v for k, v in entry.kwargs.items()},
        "aliases": list(entry.aliases), "pretrained_cfg": model.pretrained_cfg,
        "params": count_params(model), "weights": count_params(model, weights_only=True),
        "macs": count_macs(model, size, entry.in_chans, method="hooks"),
        "paper": {k: compared[k] for k in ("paper_params", "paper_macs", "params_counted",
                                           "macs_counted", "params_diff", "macs_diff",
                                           "convention", "paper_table")},
        "blocks": [r.to_dict() for r in rows],
    }
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
        return 0
    print(f"{entry.name}: {entry.family}, paper table {entry.table}, {entry.dataset}, "
          f"{entry.in_chans}x{size}x{size} -> {entry.num_classes} classes")
    print(f"params {summary['params']:,} (weights {summary['weights']:,}), "
          f"MACs {summary['macs']:,}")
    cfg = model.pretrained_cfg
    if entry.aliases:
        print(f"aliases: {', '.join(entry.aliases)}")
    print(f"input: mean {cfg['mean']}, std {cfg['std']}, crop {cfg['crop_pct']:.3f} "
          f"({cfg['interpolation']}); released weights: "
          + (f"{cfg['released']['file']} (top-1 {cfg['released']['top1']}%)"
             if cfg["released"] else "none"))
    if compared["paper_params"] is not None:
        print(f"paper  params {_si(compared['paper_params'])} / MACs "
              f"{_si(compared['paper_macs'])}; ours counted as the paper does "
              f"({compared['convention']}): {_si(compared['params_counted'])} "
              f"({_pct(compared['params_diff'])}) / {_si(compared['macs_counted'])} "
              f"({_pct(compared['macs_diff'])})")
    print()
    grouped: list[list] = []
    for r in rows:
        key = (r.stage, r.type, r.in_channels, r.out_channels, r.stride, r.branch_sizes,
               r.groups, r.condition, r.params, r.macs)
        if grouped and grouped[-1][0] == key:
            grouped[-1][1] += 1
        else:
            grouped.append([key, 1, r])
    headers = ["stage", "block", "x", "c_in", "c_out", "stride", "branch K", "groups",
               "condition", "paths", "params", "MACs"]
    body = []
    for _key, n, r in grouped:
        paths = "-" if r.min_paths is None else f"{r.min_paths}..{r.max_paths}"
        body.append([str(r.stage), r.type, str(n), str(r.in_channels or "-"),
                     str(r.out_channels or "-"), str(r.stride or "-"), _cells(r.branch_sizes),
                     _cells(r.groups), r.condition or "-", paths,
                     f"{r.params * n:,}", f"{r.macs * n:,}"])
    print(_table(headers, body, right={0, 2, 3, 4, 5, 10, 11}))
    print("\nparams/MACs per row are for all x repeated blocks of the row.")
    return 0
