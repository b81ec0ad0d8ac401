"""``igc train``: train a network of the zoo with a recipe; checkpoints, metrics, summary.

With no arguments it trains the small IGCV2 network ``igcv2_fmnist`` on Fashion-MNIST with
the ``fashion-mnist-cpu`` recipe (a few minutes on two CPU cores). Runs under
``torchrun --nproc-per-node N -m igc train ...`` as well (one process per GPU or CPU share).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from igc.errors import IGCError

#: The recipe used for a data set when ``--recipe`` is not given.
DEFAULT_RECIPE = {"fashion-mnist": "fashion-mnist-cpu", "mnist": "fashion-mnist-cpu",
                  "cifar10": "cifar", "cifar100": "cifar", "tiny-imagenet": "tiny-imagenet",
                  "imagefolder": "imagenet"}
DEFAULT_DATA = "fashion-mnist"


def _int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    return value


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a network with a recipe (checkpoints, metrics)",
                       description=__doc__)
    p.add_argument("--model", "-m", metavar="NAME",
                   help="registry name (default: the recipe's model)")
    p.add_argument("--data", "-d", metavar="NAME",
                   help=f"data set (default: the recipe's, else {DEFAULT_DATA})")
    p.add_argument("--recipe", "-r", metavar="NAME|FILE",
                   help="recipe name or TOML file (default: by data set: "
                   + ", ".join(f"{k} -> {v}" for k, v in DEFAULT_RECIPE.items()) + ")")
    p.add_argument("--out", "-o", type=Path, metavar="DIR",
                   help="run directory (default runs/MODEL-DATA)")
    p.add_argument("--epochs", type=_int, metavar="N", help="override the recipe's epochs")
    p.add_argument("--batch-size", type=_int, metavar="N",
                   help="global batch size (the lr scales as the recipe says)")
    p.add_argument("--lr", type=_number, metavar="X", help="learning rate (before batch scaling)")
    p.add_argument("--seed", type=_int, metavar="N", help="random seed")
    p.add_argument("--seeds", type=_int, metavar="N",
                   help="train N runs with seeds seed..seed+N-1 into OUT/seedS, then "
                        "summarize mean +- std")
    p.add_argument("--device", default="auto", metavar="auto|cpu|cuda",
                   help="where to train (default auto: CUDA when available)")
    p.add_argument("--amp", action="store_true", default=None,
                   help="mixed precision (bf16 autocast on CPU, fp16 + GradScaler on CUDA)")
    p.add_argument("--channels-last", action="store_true", default=None,
                   help="channels-last memory format")
    p.add_argument("--compile", action="store_true", default=None, help="torch.compile")
    p.add_argument("--sync-bn", action="store_true", default=None,
                   help="SyncBatchNorm in multi-process GPU runs")
    p.add_argument("--set", dest="assignments", action="append", default=[],
                   metavar="KEY=VALUE", help="override any recipe key (repeatable), e.g. "
                   "--set label_smoothing=0.1 --set milestones=[10,20]")
    p.add_argument("--data-dir", metavar="DIR", help="directory holding the data set's files")
    p.add_argument("--no-download", action="store_true", help="never download data")
    p.add_argument("--workers", type=_int, default=0, metavar="N",
                   help="loader processes for file-backed data sets")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--force", action="store_true", help="overwrite an existing run in --out")
    p.add_argument("--quiet", "-q", action="store_true",
                   help="no progress bar or per-epoch lines: only the summary")
    p.set_defaults(run=run)


def _flag_overrides(args: argparse.Namespace) -> list[tuple[str, object]]:
    pairs = [("epochs", args.epochs), ("batch_size", args.batch_size), ("lr", args.lr),
             ("seed", args.seed), ("amp", args.amp), ("channels_last", args.channels_last),
             ("compile", args.compile), ("sync_bn", args.sync_bn)]
    return [(k, v) for k, v in pairs if v is not None]


def _previous_run(out: Path) -> dict:
    """model/data of an existing run directory (for ``--resume`` without ``--model``)."""
    for path in (out / "run.json", *sorted(out.glob("seed*/run.json"))):
        if path.is_file():
            try:
                return json.loads(path.read_text())
            except (OSError, ValueError):
                break
    return {}


def resolve(args: argparse.Namespace):
    """The model, data set, recipe and run directory the arguments ask for."""
    from igc.data import canonical_name
    from igc.train.recipe import load_recipe, override

    previous = _previous_run(args.out) if args.resume and args.out else {}
    recipe = load_recipe(args.recipe) if args.recipe else None
    data = args.data or previous.get("data") or (recipe.data if recipe else "") or DEFAULT_DATA
    data = canonical_name(data)
    if recipe is None:
        recipe = load_recipe(DEFAULT_RECIPE[data])
    overrides = list(args.assignments) + _flag_overrides(args)
    recipe = override(recipe, overrides)
    model = args.model or previous.get("model") or recipe.model
    if not model:
        raise IGCError(f"recipe {recipe.name!r} names no default model; pass --model NAME "
                       "(see `igc models`)")
    from igc.models.registry import model_entry

    model_entry(model)  # unknown names fail here, with suggestions
    out = args.out or Path("runs") / f"{model}-{data}"
    return model, data, recipe, out, overrides


def run(args: argparse.Namespace) -> int:
    from igc.train.trainer import Interrupted, RunConfig, train

    model, data, recipe, out, overrides = resolve(args)
    seeds = [recipe.seed + i for i in range(args.seeds)] if args.seeds else [None]
    if args.seeds is not None and args.seeds < 1:
        raise IGCError(f"--seeds must be at least 1, got {args.seeds}")
    command = "igc " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    results = []
    for seed in seeds:
        run_recipe, run_overrides, run_out = recipe, overrides, out
        if seed is not None:
            from igc.train.recipe import override

            run_recipe = override(recipe, [("seed", seed)])
            run_overrides = [*overrides, ("seed", seed)]
            run_out = out / f"seed{seed}"
            if args.resume and (run_out / "summary.json").is_file():
                results.append(json.loads((run_out / "summary.json").read_text()))
                continue
        resume = args.resume and (seed is None or (run_out / "checkpoint.pt").is_file())
        if seed is not None and not args.quiet and len(seeds) > 1:
            print(f"igc train: seed {seed} -> {run_out}", file=sys.stderr)
        config = RunConfig(model=model, data=data, recipe=run_recipe, out=run_out,
                           data_dir=args.data_dir, device=args.device, resume=resume,
                           force=args.force, quiet=args.quiet, download=not args.no_download,
                           num_workers=args.workers, overrides=run_overrides, command=command)
        try:
            result = train(config, on_start=None if args.quiet else _announce)
        except Interrupted as stop:
            if _is_main():
                print(f"igc: {stop}", file=sys.stderr)
            return stop.code
        if _is_main():
            print(result.summary_line(), flush=True)
        results.append(result.to_dict())
    if len(seeds) > 1 and _is_main():
        from igc.train.summarize import format_groups, group_runs

        print(format_groups(group_runs(results)))
    return 0


def _is_main() -> bool:
    import os

    return os.environ.get("RANK", "0") == "0"


def _announce(trainer) -> None:
    """One header line before training (stderr)."""
    r, s = trainer.recipe, trainer.splits
    from igc.train.metrics import human

    state = f"resuming at epoch {trainer.epoch + 1}" if trainer.resume_state else "new run"
    print(f"igc train: {trainer.config.model} ({trainer.params:,} parameters, "
          f"{human(trainer.macs)} multiply-adds) on {s.name} ({len(s.train):,} train / "
          f"{len(s.test):,} test images); recipe {r.name}: {r.epochs} epochs, batch "
          f"{r.batch_size}, lr {trainer.lr:g} {r.schedule}; {trainer.device}, "
          f"{trainer.governor.describe()} x {trainer.dist.world_size} process(es); "
          f"{state} in {trainer.config.out}", file=sys.stderr)
