"""From what a user asks for to runs: defaults, the previous run, several seeds.

``igc train`` is a thin layer over these two functions, so the Python API gives the same
runs as the command line: :func:`resolve_run` fills in the model, data set, recipe and run
folder the way ``igc train`` does (``igc train`` with no arguments trains ``igcv2_fmnist``
on Fashion-MNIST with the ``fashion-mnist-cpu`` recipe); :func:`train_seeds` trains one
run per seed into ``OUT/seedS/`` (``--seeds N``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from igc import checks
from igc.data import canonical_name
from igc.errors import IGCError
from igc.files.checkpoint import CHECKPOINT
from igc.files.records import RUN_INFO, SUMMARY, read_run_info, read_summary
from igc.models.registry import model_entry
from igc.train.config import RunConfig
from igc.train.recipe import DEFAULT_DATA, DEFAULT_RECIPE, load_recipe, override
from igc.train.result import RunResult
from igc.train.trainer import train


def previous_run(out: Path) -> dict[str, Any]:
    """``run.json`` of an existing run folder (or of its first ``seed*/``), checked; {}
    when there is none."""
    for path in (out / RUN_INFO, *sorted(out.glob(f"seed*/{RUN_INFO}"))):
        if path.is_file():
            return read_run_info(path)
    return {}


def resolve_run(model: str | None = None, data: str | None = None,
                recipe: str | Path | None = None, out: str | Path | None = None,
                overrides: Sequence[str | tuple[str, Any]] = (), resume: bool = False,
                **options: Any) -> RunConfig:
    """The :class:`RunConfig` ``igc train`` builds from its options: ``data`` defaults to
    the previous run's (``resume``), the recipe's or Fashion-MNIST; the recipe to the data
    set's (:data:`DEFAULT_RECIPE`); ``model`` (and ``data_dir``) to the previous run's or
    the recipe's; ``out`` to :func:`default_out`. ``overrides`` (``"key=value"`` or
    pairs) apply to the recipe; ``options`` are the other :class:`RunConfig` fields
    (data_dir, device, force, quiet, ...)."""
    out_path = checks.check_path(out, "--out") if out is not None else None
    given = model and data and options.get("data_dir") is not None
    previous = previous_run(out_path) if resume and out_path and not given else {}
    if resume and options.get("data_dir") is None and previous.get("data_dir"):
        options["data_dir"] = previous["data_dir"]  # the folder the run was trained from
    if recipe is not None and not str(recipe).strip():
        raise IGCError("--recipe is empty; give a recipe name "
                       "(see igc/recipes) or a .toml file")
    base = load_recipe(recipe) if recipe is not None else None
    data = data or previous.get("data") or (base.data if base else "") or DEFAULT_DATA
    data = canonical_name(data)
    if base is None:
        base = load_recipe(DEFAULT_RECIPE[data])
    overrides = list(overrides)
    resolved = override(base, overrides)
    model = model or previous.get("model") or resolved.model
    if not model:
        raise IGCError(f"recipe {resolved.name!r} names no default model; pass --model NAME "
                       "(see `igc models`)")
    model_entry(model)  # unknown names fail here, with suggestions
    if out_path is None:
        out_path = default_out(model, data, resume=resume, force=bool(options.get("force")))
    return RunConfig(model=model, data=data, recipe=resolved, out=out_path, resume=resume,
                     overrides=overrides, **options).check()


def default_out(model: str, data: str, resume: bool = False, force: bool = False,
                root: Path = Path("runs")) -> Path:
    """``runs/MODEL-DATA`` when it is free (or ``resume`` / ``force`` ask for it), else the
    first free ``runs/MODEL-DATA-2``, ``-3``, ...: running the same command again starts
    a new run beside the finished (or interrupted) one instead of stopping; an
    interrupted run is continued with ``--out`` and ``--resume``."""
    base = root / f"{model}-{data}"
    if resume or force:
        return base
    candidate, n = base, 1
    while candidate.exists() and any(candidate.iterdir()):
        n += 1
        candidate = root / f"{model}-{data}-{n}"
    return candidate


def train_seeds(config: RunConfig, seeds: int,
                on_result: Callable[[RunResult], None] | None = None,
                on_seed: Callable[[int, Path], None] | None = None,
                **train_options: Any) -> list[dict[str, Any]]:
    """Train ``seeds`` runs with seeds ``seed, seed+1, ...`` into ``OUT/seedS/``; with
    ``config.resume`` a finished seed is read back and an unfinished one continued.
    Returns the results (``RunResult.to_dict()``, or the ``summary.json`` read back) in
    seed order; ``on_seed(seed, folder)`` runs before each run is trained and
    ``on_result(result)`` after it."""
    checks.check_int(seeds, "--seeds", 1, checks.MAX_SEEDS)
    first = config.recipe.seed
    checks.check_int(first + seeds - 1, "the last seed", 0, checks.MAX_SEED)
    results = []
    for seed in range(first, first + seeds):
        out = config.out / f"seed{seed}"
        if config.resume and (out / SUMMARY).is_file():
            result = read_summary(out)
        else:
            if on_seed is not None:
                on_seed(seed, out)
            run = replace(config, recipe=override(config.recipe, [("seed", seed)]), out=out,
                          overrides=[*config.overrides, ("seed", seed)],
                          resume=config.resume and (out / CHECKPOINT).is_file())
            trained = train(run, **train_options)
            if on_result is not None:
                on_result(trained)
            result = trained.to_dict()
        results.append(result)
    return results


__all__ = ["DEFAULT_DATA", "DEFAULT_RECIPE", "RunResult", "default_out", "previous_run",
           "resolve_run", "train_seeds"]
