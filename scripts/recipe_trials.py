"""The recipe trials of docs/training.md, chosen on the validation split (issue 18).

    python scripts/recipe_trials.py --runs DIR --results DIR
    python scripts/recipe_trials.py --results DIR --table [--docs docs/training.md]

Runs, one after another and one thread each, the seven trial rows of "How the CPU recipes
were chosen" (seed 0), each training on the training set minus the 5,000 held-out
validation images (``--val 5000``, igc.data.holdout). The trial with the highest final
validation top-1 is chosen (ties: fewer parameters, then the row order); the test split is
evaluated by the trainer once at the end of each run and is not read by the choice. The
chosen recipe is then trained on the full training set (``--val 0``, all 60,000 images)
with seeds 0, 1 and 2, whose test top-1 is the headline.

Each run goes to ``RUNS/<name>`` (resumed if a checkpoint is there, skipped if finished);
its small records (summary.json, metrics.jsonl, run.json, recipe.toml; no checkpoint) are
copied to ``RESULTS/<name>/`` as soon as it finishes, and ``RESULTS/choice.json`` records
the choice: every trial's validation top-1 and the rule.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
C64 = ["--model", "igcv2_fmnist", "--set", "model_args.width=64",
       "--set", "model_args.branch_sizes=[[8,8],[16,8],[32,8]]"]
C48 = ["--model", "igcv2_c48_d11_fmnist"]
C24 = ["--model", "igcv2_fmnist", "--set", "model_args.width=24",
       "--set", "model_args.branch_sizes=[[3,8],[6,8],[12,8]]",
       "--set", "model_args.stem_stride=1"]
PAD_FLIP = ["--set", 'train_augment=["pad_crop:2","hflip","normalize"]']
#: name -> (the row of docs/training.md, arguments on top of the fashion-mnist-cpu recipe),
#: in the order they run: the shipped recipe and its closest rival first (on a busy machine
#: an epoch took 4.5 minutes, so not every row may finish in one sitting)
TRIALS = {
    "c48-d11-flips": ("C48, D = 11, 14 epochs, flips only (the shipped recipe)", [*C48]),
    "c48-d11-padcrop": ("C48, D = 11, 14 epochs, pad-crop 2 + flips (EMA evaluated too)",
                        [*C48, *PAD_FLIP, "--set", "ema=true"]),
    "c64-d8-padcrop": ("C64, D = 8, 14 epochs, pad-crop 2 + flips", [*C64, *PAD_FLIP]),
    "c48-d11-padcrop-15ep": ("C48, D = 11, 15 epochs, pad-crop 2 + flips",
                             [*C48, *PAD_FLIP, "--epochs", "15"]),
    "c48-d11-padcrop-erase": (
        "C48, D = 11, 14 epochs, pad-crop 2 + flips + random erasing (erase:0.5,0.02,0.2)",
        [*C48, "--set", 'train_augment=["pad_crop:2","hflip","erase:0.5,0.02,0.2",'
                        '"normalize"]']),
    "c48-d11-padcrop-wd1e-4": ("C48, D = 11, 14 epochs, pad-crop 2 + flips, weight decay "
                               "1e-4", [*C48, *PAD_FLIP, "--set", "weight_decay=1e-4"]),
    "c24-d8-s1-padcrop": ("C24, D = 8, stride-1 stem, 14 epochs, pad-crop 2 + flips",
                          [*C24, *PAD_FLIP]),
}
#: The rows in the order of docs/training.md's table (ties of the choice go to the earlier).
DOC_ORDER = ("c64-d8-padcrop", "c48-d11-padcrop", "c48-d11-padcrop-15ep",
             "c48-d11-padcrop-erase", "c48-d11-padcrop-wd1e-4", "c48-d11-flips",
             "c24-d8-s1-padcrop")
FINAL_SEEDS = (0, 1, 2)
#: The second stage (issue 18: "if the honest figure falls below 92.5 %, say so and improve
#: the recipe on validation until it holds"). The first choice rests on one seed's
#: validation top-1, where the best rows differ by hundredths of a point; so the
#: RECHECK_TOP best trials are trained again on validation with RECHECK_SEEDS and the recipe
#: is chosen again by the mean validation top-1 over seed 0 and those seeds (the test split
#: is still not read by the choice; only the decision to run this stage followed a test
#: figure, the first choice's, as the issue prescribes).
RECHECK_TOP = 2
RECHECK_SEEDS = (1,)
BEGIN = "<!-- trials: python scripts/recipe_trials.py --results results/recipe-trials " \
        "--table --docs docs/training.md -->"
END = "<!-- end of trials -->"
SMALL_FILES = ("summary.json", "metrics.jsonl", "run.json", "recipe.toml")


def train(name: str, args: list[str], runs: Path, results: Path) -> dict:
    """Run (or resume, or skip) one ``igc train``; copy its small records; its summary. A run
    whose records are already in ``results`` (committed) is not trained again."""
    out = runs / name
    target = results / name
    if (target / "summary.json").is_file() and not (out / "summary.json").is_file():
        return json.loads((target / "summary.json").read_text())  # committed: not trained again
    summary = out / "summary.json"
    if not summary.is_file():
        command = [sys.executable, "-m", "igc", "train", "--recipe", "fashion-mnist-cpu",
                   "--threads", "1", "--quiet", "--out", str(out), *args]
        if (out / "checkpoint.pt").is_file():
            command.append("--resume")
        print(f"recipe_trials: {name}: {' '.join(command)}", flush=True)
        subprocess.run(command, check=True)
    target.mkdir(parents=True, exist_ok=True)
    for file in SMALL_FILES:
        if (out / file).is_file():
            shutil.copy2(out / file, target / file)
    data = json.loads(summary.read_text())
    print(f"recipe_trials: {name}: validation top-1 {data.get('val_top1')}, test top-1 "
          f"{data.get('top1')}, {data.get('train_seconds', 0):.0f} s", flush=True)
    return data


def choose(summaries: dict[str, dict]) -> str:
    """The trial with the highest validation top-1 (ties: fewer parameters, row order)."""
    order = list(DOC_ORDER)
    return max(summaries, key=lambda n: (summaries[n]["val_top1"], -summaries[n]["params"],
                                         -order.index(n)))


def ranked(summaries: dict[str, dict]) -> list[str]:
    """The trials, best first by :func:`choose`'s rule."""
    rest, order = dict(summaries), []
    while rest:
        order.append(choose(rest))
        del rest[order[-1]]
    return order


def recheck_mean(name: str, results: Path) -> float | None:
    """Mean validation top-1 of trial ``name`` over seed 0 and RECHECK_SEEDS (None until all
    are finished)."""
    runs = [_read(results, name)] + [_read(results, f"{name}-seed{s}") for s in RECHECK_SEEDS]
    if any(r is None for r in runs):
        return None
    return statistics.fmean(r["val_top1"] for r in runs)


def _read(results: Path, name: str) -> dict | None:
    path = results / name / "summary.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} %"


def tables(results: Path) -> str:
    """Markdown: the trials (validation top-1, the test top-1 beside it) in the order of
    docs/training.md, then the chosen recipe's seeds on the full training set."""
    lines = ["| trial | parameters | validation top-1 | test top-1 (not used) | "
             "training time |", "|---|---|---|---|---|"]
    done = {}
    for name in DOC_ORDER:
        data = _read(results, name)
        if data is None:
            lines.append(f"| {TRIALS[name][0]} | | not finished | | |")
            continue
        done[name] = data
        lines.append(f"| {TRIALS[name][0]} | {data['params']:,} | {_pct(data['val_top1'])} "
                     f"| {_pct(data['top1'])} | {data['train_seconds'] / 60:.1f} min |")
    out = "\n".join(lines)
    if len(done) == len(TRIALS):
        chosen = choose(done)
        rows = final_rows(chosen, results)
        out += f"\n\nChosen: {TRIALS[chosen][0]}.\n\n" + "\n".join(rows)
        out += recheck_table(done, results)
    return out + "\n"


def final_rows(chosen: str, results: Path) -> list[str]:
    """The chosen recipe's seeds on the full training set: test top-1 per seed and the mean
    ± sample standard deviation (range)."""
    seeds = [(seed, _read(results, f"final-{chosen}-seed{seed}")) for seed in FINAL_SEEDS]
    rows = ["| seed | test top-1 | training time |", "|---|---|---|"]
    rows += [f"| {seed} | {_pct(d['top1'])} | {d['train_seconds'] / 60:.1f} min |" if d else
             f"| {seed} | not finished | |" for seed, d in seeds]
    values = [d["top1"] for _, d in seeds if d]
    if len(values) >= 2:
        mean, std = statistics.fmean(values), statistics.stdev(values)
        rows.append(f"| mean ± std ({len(values)} seeds) | {mean:.2f} ± {std:.2f} % "
                    f"(range {min(values):.2f}-{max(values):.2f} %) | |")
    return rows


def recheck_table(done: dict[str, dict], results: Path) -> str:
    """Markdown of the second stage (RECHECK_TOP best trials, validation top-1 per seed and
    the mean), once any of its runs exists; '' before."""
    candidates = ranked(done)[:RECHECK_TOP]
    extra = {(n, s): _read(results, f"{n}-seed{s}") for n in candidates for s in RECHECK_SEEDS}
    if not any(extra.values()):
        return ""
    seeds = ", ".join(f"seed {s}" for s in (0, *RECHECK_SEEDS))
    lines = [f"| trial | {' | '.join(f'validation top-1, seed {s}' for s in (0, *RECHECK_SEEDS))}"
             f" | mean |", "|---|" + "---|" * (len(RECHECK_SEEDS) + 2)]
    means = {}
    for name in candidates:
        cells = [_pct(done[name]["val_top1"])]
        cells += [_pct(extra[name, s]["val_top1"]) if extra[name, s] else "not finished"
                  for s in RECHECK_SEEDS]
        means[name] = recheck_mean(name, results)
        lines.append(f"| {TRIALS[name][0]} | {' | '.join(cells)} | {_pct(means[name])} |")
    out = (f"\n\nSecond stage (the first choice's test mean is below 92.5 %): the "
           f"{RECHECK_TOP} best trials again on validation, chosen by the mean over {seeds}."
           f"\n\n" + "\n".join(lines))
    if all(m is not None for m in means.values()):
        again = max(candidates, key=lambda n: (means[n], -candidates.index(n)))
        out += f"\n\nChosen again: {TRIALS[again][0]}.\n\n" + "\n".join(
            final_rows(again, results))
    return out


def recheck(summaries: dict[str, dict], runs: Path, results: Path, jobs: int) -> int:
    """The second stage: RECHECK_TOP best trials again with RECHECK_SEEDS on validation,
    ``jobs`` at a time; the choice by the mean (written to ``choice-recheck.json``); the
    chosen recipe's FINAL_SEEDS on the full training set."""
    candidates = ranked(summaries)[:RECHECK_TOP]
    work = [(f"{n}-seed{s}", [*TRIALS[n][1], "--val", "5000", "--seed", str(s)])
            for n in candidates for s in RECHECK_SEEDS]
    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(lambda w: train(*w, runs, results), work))
    means = {n: recheck_mean(n, results) for n in candidates}
    again = max(candidates, key=lambda n: (means[n], -candidates.index(n)))
    (results / "choice-recheck.json").write_text(json.dumps({
        "rule": f"the {RECHECK_TOP} best trials by the first stage's rule, trained again on "
                f"validation with seeds {list(RECHECK_SEEDS)}; the highest mean validation "
                f"top-1 over seed 0 and those (ties: the first stage's order); run because "
                f"the first choice's test mean was below 92.5 %",
        "chosen": again, "row": TRIALS[again][0], "mean_val_top1": means}, indent=2) + "\n")
    work = [(f"final-{again}-seed{seed}", [*TRIALS[again][1], "--val", "0", "--seed",
                                           str(seed)]) for seed in FINAL_SEEDS]
    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(lambda w: train(*w, runs, results), work))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path)
    parser.add_argument("--results", type=Path, required=True)
    parser.add_argument("--table", action="store_true",
                        help="print the markdown tables from RESULTS and stop")
    parser.add_argument("--stage", choices=("first", "recheck"), default="first",
                        help="first: the trials, the choice and its seeds; recheck: the "
                             "second stage (RECHECK_TOP best trials with RECHECK_SEEDS, the "
                             "choice by their mean, its seeds)")
    parser.add_argument("--jobs", type=int, choices=(1, 2), default=1,
                        help="runs trained at once in the second stage (one thread each)")
    parser.add_argument("--docs", type=Path,
                        help="with --table: write them between the markers of this file")
    args = parser.parse_args()
    if args.table:
        text = tables(args.results)
        if args.docs is None:
            sys.stdout.write(text)
            return 0
        doc = args.docs.read_text()
        begin, end = doc.index(BEGIN) + len(BEGIN), doc.index(END)
        args.docs.write_text(doc[:begin] + "\n" + text + doc[end:])
        return 0
    if args.runs is None:
        parser.error("--runs is required unless --table")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    summaries = {}
    for name, (_, extra) in TRIALS.items():
        summaries[name] = train(name, [*extra, "--val", "5000", "--seed", "0"], args.runs,
                                args.results)
    chosen = choose(summaries)
    choice = {"rule": "highest validation top-1 after the last epoch (5,000 images held out "
                      "of the training set, stratified, val_seed 0); ties: fewer "
                      "parameters, then the row order; the test split is not read",
              "chosen": chosen, "row": TRIALS[chosen][0],
              "trials": {n: {"row": TRIALS[n][0], "val_top1": s["val_top1"],
                             "test_top1": s["top1"], "params": s["params"]}
                         for n, s in summaries.items()}}
    if args.stage == "recheck":
        return recheck(summaries, args.runs, args.results, args.jobs)
    (args.results / "choice.json").write_text(json.dumps(choice, indent=2) + "\n")
    for seed in FINAL_SEEDS:
        train(f"final-{chosen}-seed{seed}",
              [*TRIALS[chosen][1], "--val", "0", "--seed", str(seed)], args.runs,
              args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
