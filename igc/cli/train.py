"""Train a network with a recipe: checkpoints, metrics, summary.

With no arguments it trains the IGCV2 network igcv2_c48_d11_fmnist (the model of the
fashion-mnist-cpu recipe) on Fashion-MNIST (a few minutes on two CPU cores). A run folder (default
runs/MODEL-DATA) holds the checkpoint, metrics.jsonl, summary.json, run.json and
recipe.toml; Ctrl-C saves a checkpoint and prints the command that continues the run.
Also runs under `torchrun --nproc-per-node N -m igc train ...` (one process per GPU or
CPU share).

Examples:
  igc train
  igc train --model igcv2_c64_d8 --data cifar10 --epochs 30
  igc train --set label_smoothing=0.1 --set ema=true --seeds 3 --out runs/ls
  igc train --out runs/igcv2_fmnist-fashion-mnist --resume
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from igc import checks
from igc.cli import args as A
from igc.cli import one_line
from igc.cli.parser import add_command
from igc.names import DATASETS, DEVICES
from igc.runtime import available_cores
from igc.train.recipe import DEFAULT_DATA, DEFAULT_RECIPE

# The library is imported inside the functions that use it: `igc --help` and every
# subcommand's --help answer in under 0.5 s without it (tests/test_cli_startup.py).


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``igc train`` to the subcommands ``sub``."""
    p = add_command(sub, "train", __doc__)
    p.add_argument("--model", "-m", metavar="NAME", type=A.name("--model"),
                   help="registry name (default: the recipe's model)")
    p.add_argument("--data", "-d", metavar="NAME", type=A.name("--data"),
                   help=f"data set: {', '.join(DATASETS)} (default: the recipe's, else "
                        f"{DEFAULT_DATA})")
    p.add_argument("--recipe", "-r", metavar="NAME|FILE", type=A.text("--recipe", 4096),
                   help="recipe name or TOML file (default: by data set: "
                   + ", ".join(f"{k} -> {v}" for k, v in DEFAULT_RECIPE.items()) + ")")
    p.add_argument("--out", "-o", type=A.out_dir("--out"), metavar="DIR",
                   help="run directory (default runs/MODEL-DATA)")
    p.add_argument("--epochs", type=A.integer("epochs", 1, checks.MAX_EPOCHS), metavar="N",
                   help="override the recipe's epochs")
    p.add_argument("--batch-size", type=A.integer("batch size", 1, checks.MAX_BATCH),
                   metavar="N", help="global batch size (the lr scales as the recipe says)")
    p.add_argument("--lr", type=A.number("lr", hi=checks.MAX_LR, positive=True), metavar="X",
                   help="learning rate (before batch scaling)")
    p.add_argument("--seed", type=A.integer("seed", 0, checks.MAX_SEED), metavar="N",
                   help="random seed")
    p.add_argument("--seeds", type=A.integer("--seeds", 1, checks.MAX_SEEDS), metavar="N",
                   help="train N runs with seeds seed..seed+N-1 into OUT/seedS, then "
                        "summarize mean +- std")
    p.add_argument("--val", type=A.integer("--val", 0, 10**9), metavar="N",
                   help="hold out N training images (stratified, fixed) as the validation "
                        "split, evaluated during training; the test split only at the end "
                        "(default: 5,000 for Fashion-MNIST, MNIST and CIFAR; 0: none)")
    p.add_argument("--device", default="auto", metavar="DEVICE", type=A.device(),
                   help=f"where to train: {', '.join(DEVICES)} (default auto: CUDA when "
                        "available)")
    p.add_argument("--threads", type=A.integer("--threads", 1, available_cores()),
                   metavar="N", help="torch threads (default: the free cores, switching to one "
                   "while other processes keep the machine busy)")
    p.add_argument("--amp", action="store_true", default=None,
                   help="mixed precision (bf16 autocast on CPU, fp16 + GradScaler on CUDA)")
    p.add_argument("--channels-last", action="store_true", default=None,
                   help="channels-last memory format")
    p.add_argument("--compile", action="store_true", default=None, help="torch.compile")
    p.add_argument("--sync-bn", action="store_true", default=None,
                   help="SyncBatchNorm in multi-process GPU runs")
    p.add_argument("--set", dest="assignments", action="append", default=[],
                   metavar="KEY=VALUE", type=A.text("--set"),
                   help="override any recipe key (repeatable), e.g. "
                   "--set label_smoothing=0.1 --set milestones=[10,20] --set ema=true")
    p.add_argument("--data-dir", metavar="DIR", type=A.existing("dir", "--data-dir"),
                   help="directory holding the data set's files (read from nowhere else)")
    p.add_argument("--no-download", action="store_true", help="never download data")
    p.add_argument("--workers", type=A.integer("--workers", 0, checks.MAX_WORKERS),
                   default=0, metavar="N", help="loader processes for file-backed data sets")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--force", action="store_true",
                   help="start over in --out (removes only igc's files of the old run, once "
                        "the new run saves its first checkpoint)")
    p.add_argument("--quiet", "-q", action="store_true",
                   help="no progress bar or per-epoch lines: only the summary")
    p.set_defaults(run=run)


def _flag_overrides(args: argparse.Namespace) -> list[tuple[str, object]]:
    pairs = [("epochs", args.epochs), ("batch_size", args.batch_size), ("lr", args.lr),
             ("seed", args.seed), ("amp", args.amp), ("channels_last", args.channels_last),
             ("compile", args.compile), ("sync_bn", args.sync_bn),
             ("threads", args.threads), ("val_images", args.val)]
    return [(k, v) for k, v in pairs if v is not None]


def resolve(args: argparse.Namespace):
    """The :class:`~igc.train.config.RunConfig` the arguments ask for."""
    from igc.train.resolve import resolve_run

    return resolve_run(
        args.model, args.data, args.recipe, args.out,
        [*args.assignments, *_flag_overrides(args)], resume=args.resume,
        data_dir=None if args.data_dir is None else str(args.data_dir), device=args.device,
        force=args.force, quiet=args.quiet, download=not args.no_download,
        num_workers=args.workers,
        command="igc " + " ".join(shlex.quote(a) for a in sys.argv[1:]))


def run(args: argparse.Namespace) -> int:
    """Run ``igc train`` with the parsed ``args``; returns the exit status."""
    from igc.train.trainer import Interrupted, train

    config = resolve(args)
    main = os.environ.get("RANK", "0") == "0"
    try:
        if args.seeds is None:
            result = train(config)
            if main:
                print(result.summary_line(), flush=True)
            return 0
        from igc.train.resolve import train_seeds
        from igc.train.summarize import format_groups, group_runs

        def announce(seed, out):
            if main and not args.quiet and args.seeds > 1:
                print(f"igc train: seed {seed} -> {out}", file=sys.stderr)

        def report(result):
            if main:
                print(result.summary_line(), flush=True)

        results = train_seeds(config, args.seeds, on_result=report, on_seed=announce)
        if main and args.seeds > 1:
            print(format_groups(group_runs(results)))
        return 0
    except Interrupted as stop:
        if main:
            print(f"igc: {one_line(str(stop))}", file=sys.stderr)
        return stop.code
