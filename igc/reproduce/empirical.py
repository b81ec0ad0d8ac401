"""Empirical reproduction targets: train the paper's comparisons under a budget.

A target is a list of :class:`Arm` s (a network of the zoo, its overrides, where the paper
reports it) trained for several seeds each by :func:`igc.train.trainer.train`. Every run
lives in ``OUT/runs/<key>/`` (the trainer's run directory: recipe, metrics.jsonl, checkpoint,
summary.json), where ``key`` hashes the model, its overrides, the resolved recipe, the seed,
the data (name, subset, image size) and the budget. So:

* a finished run is never trained again (its ``summary.json`` is read back);
* an interrupted run resumes from its last checkpoint when the same command is run again;
* ``OUT/reproduce.json`` records the configuration (data, budget, epochs, subset, recipe):
  running another configuration into the same directory is an error, not a silent mix.

Budgets (:data:`BUDGETS`):

``smoke``  seconds, for tests: 64 training and 32 test images resized to 8x8, one epoch,
           one seed, one thread.
``short``  about 30 minutes on 2 CPU cores on Fashion-MNIST: a fixed subset (the first
           images of a seeded permutation), 3 epochs, 2 seeds, one thread per run; the
           8-layer networks without down-sampling get a stride-2 stem (14x14 maps), and
           Tables 2 and 5 keep only their first group of rows, to fit.
``full``   the paper's CIFAR recipe (400 epochs, ...), all images, 3 seeds: for a GPU.

Every budget trains with the paper's CIFAR recipe (``igc/recipes/cifar.toml``: SGD with
Nesterov momentum 0.9, lr 0.1, batch 64, weight decay 1e-4, pad-4 crop and flip), its
epochs and learning-rate milestones scaled to the budget's epochs.
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from igc.errors import IGCError
from igc.models.paper import paper_rows
from igc.reproduce import analytic
from igc.reproduce.report import (
    BLUE,
    GREEN,
    RED,
    Plot,
    Section,
    Table,
    fmt_count,
    fmt_mean_std,
)

#: Version of the run-key and configuration format (bump to invalidate old caches).
FORMAT = 1
CONFIG_FILE = "reproduce.json"
#: Seconds between partial reports of an empirical target while its runs finish.
PARTIAL_EVERY = 30.0
#: Trainer callbacks added to every run (``callback(trainer, event)``; tests use it to stop
#: a run in the middle).
CALLBACKS: list[Callable[..., None]] = []


# ------------------------------------------------------------------------------ budgets

@dataclass(frozen=True)
class Budget:
    """How much training a reproduction gets."""

    name: str
    train_size: int | None  # None: the whole training split
    test_size: int | None
    epochs: int | None  # None: the recipe's
    seeds: int
    image_size: int | None  # resize every image (smoke only)
    stem_stride_8l: int  # stem stride of the 8-layer networks without down-sampling
    depths: tuple[int, ...]  # depths of the Table 4/6 networks
    figure_budget: int  # per-block parameters of the Figure 3 sweep
    recipe: str  # a shipped recipe, its epochs (and milestones) scaled to the budget
    description: str
    threads: int = 0  # torch threads per run (0: every core)
    groups: int | None = None  # Tables 2 and 5: only the first N groups of rows
    batch_size: int | None = None  # override the recipe's batch (lr follows its scaling)

    def summary(self) -> str:
        parts = [f"training images: {self.train_size or 'all'}",
                 f"test images: {self.test_size or 'all'}",
                 f"epochs: {self.epochs or 'as the recipe says'}", f"seeds: {self.seeds}"]
        if self.image_size:
            parts.append(f"images resized to {self.image_size}x{self.image_size}")
        if self.stem_stride_8l != 1:
            parts.append(f"the 8-layer networks with a stride-{self.stem_stride_8l} stem")
        if self.batch_size:
            parts.append(f"batch {self.batch_size}")
        if self.threads:
            parts.append(f"{self.threads} thread{'s' if self.threads > 1 else ''} per run")
        if self.groups:
            parts.append(f"Tables 2 and 5: only their first {self.groups} group(s) of rows")
        return "; ".join(parts)


BUDGETS: dict[str, Budget] = {
    "smoke": Budget("smoke", 64, 32, 1, 1, 8, 1, (8,), analytic.FIGURE2_BUDGET, "cifar",
                    "seconds, for tests: 64 training / 32 test images resized to 8x8, "
                    "1 epoch, 1 seed, the first group of Tables 2 and 5", threads=1, groups=1),
    "short": Budget("short", 2000, 1000, 3, 2, None, 2, (8,), analytic.FIGURE2_BUDGET,
                    "cifar",
                    "about 30 minutes on 2 CPU cores: a fixed subset of 2,000 training and "
                    "1,000 test images, 3 epochs, batch 64, 2 seeds, one thread per run; the "
                    "8-layer networks on 14x14 maps (stride-2 stem); Tables 2 and 5 only "
                    "their first (smallest) group of rows; Figure 2 only panel (a)",
                    threads=1, groups=1),
    "full": Budget("full", None, None, None, 3, None, 1, (8, 20, 26), analytic.FIGURE3_BUDGET,
                   "cifar",
                   "the paper's CIFAR recipe (400 epochs, lr 0.1 x0.1 at 200/300/350, batch "
                   "64, wd 1e-4, Nesterov), all images, 3 seeds: for a GPU machine"),
}


def get_budget(name: str) -> Budget:
    try:
        return BUDGETS[name]
    except KeyError:
        from igc.errors import unknown_name

        raise unknown_name("budget", name, BUDGETS) from None


# ------------------------------------------------------------------------- configuration

@dataclass(frozen=True)
class Config:
    """Everything that identifies a reproduction's results (not the seeds or the targets)."""

    data: str
    budget: Budget
    epochs: int | None = None  # --epochs
    data_dir: str | None = None
    seeds: int | None = None  # --seeds
    device: str = "auto"

    @property
    def num_seeds(self) -> int:
        return self.seeds or self.budget.seeds

    def recipe(self):
        """The resolved base recipe (seed 0); each run sets its own seed."""
        from igc.train.recipe import load_recipe, override

        b = self.budget
        base = load_recipe(b.recipe)
        changes: list[tuple[str, Any]] = [("eval_every", 0), ("seed", 0), ("data", self.data),
                                          ("model", ""), ("model_args", {}),
                                          ("threads", b.threads)]
        epochs = self.epochs or b.epochs
        if epochs:
            changes.append(("epochs", epochs))
            if base.schedule == "multistep" and base.milestones:
                # keep the milestones at the same fractions of training
                scaled = sorted({max(1, round(m * epochs / base.epochs))
                                 for m in base.milestones if m < base.epochs})
                changes.append(("milestones", [m for m in scaled if m < epochs] or []))
        batch = b.batch_size or base.batch_size
        if b.train_size is not None and b.train_size < batch:
            batch = max(1, b.train_size // 2)
        if batch != base.batch_size:
            changes.append(("batch_size", batch))
        return override(base, changes)

    def identity(self) -> dict[str, Any]:
        """What must agree for two reproductions to share an output directory."""
        from igc.data import canonical_name

        recipe = self.recipe().to_dict()
        recipe.pop("seed", None)
        recipe.pop("name", None)
        return {"format": FORMAT, "data": canonical_name(self.data),
                "budget": self.budget.name, "train_size": self.budget.train_size,
                "test_size": self.budget.test_size, "image_size": self.budget.image_size,
                "stem_stride_8l": self.budget.stem_stride_8l, "recipe": recipe}


def check_out_dir(out: Path, config: Config) -> None:
    """Create ``out`` for ``config`` or check that it already belongs to it."""
    identity = config.identity()
    path = out / CONFIG_FILE
    if out.exists() and not out.is_dir():
        raise IGCError(f"--out {out} is a file, not a directory; choose another --out")
    if path.is_file():
        try:
            held = json.loads(path.read_text(encoding="utf-8"))["config"]
        except (OSError, ValueError, KeyError, TypeError):
            raise IGCError(f"{path} is damaged; delete {out} or choose another --out") from None
        if held != identity:
            diff = [k for k in sorted(set(held) | set(identity))
                    if held.get(k) != identity.get(k)]
            shown = ", ".join(f"{k}: {_short(held.get(k))} there, {_short(identity.get(k))} "
                              f"now" for k in diff[:3])
            raise IGCError(f"{out} holds results of another configuration ({shown}); use "
                           f"another --out or delete {out}")
        return
    if out.is_dir() and (out / "runs").exists():
        raise IGCError(f"{out} holds runs but no {CONFIG_FILE}; use another --out or delete "
                       f"{out}")
    try:
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"config": identity}, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise IGCError(f"cannot write to --out {out} ({exc.strerror or exc})") from None


def _short(value: Any) -> str:
    if isinstance(value, dict):
        return "a different recipe"
    return str(value)


# ---------------------------------------------------------------------------------- data

_DATA_CACHE: dict[tuple, Any] = {}


def load_data(config: Config):
    """The data set of ``config``, cut to the budget's fixed subset (and image size)."""
    import torch

    from igc.data import DatasetSplits, TensorImageDataset, load_dataset

    b = config.budget
    key = (config.data, config.data_dir, b.train_size, b.test_size, b.image_size)
    if key in _DATA_CACHE:
        return _DATA_CACHE[key]
    splits = load_dataset(config.data, config.data_dir)

    def cut(split, size: int | None, salt: int):
        if not isinstance(split, TensorImageDataset):
            if size is None and not b.image_size:
                return split
            raise IGCError(f"the {b.name} budget takes a subset of an in-memory data set; "
                           f"{config.data} is file-backed: use --budget full")
        images, labels = split.images, split.labels
        if size is not None and size < len(labels):
            gen = torch.Generator().manual_seed(1234 + salt)
            index = torch.randperm(len(labels), generator=gen)[:size].sort().values
            images, labels = images[index], labels[index]
        if b.image_size and images.shape[-1] != b.image_size:
            images = torch.nn.functional.interpolate(
                images.float(), size=(b.image_size, b.image_size), mode="area"
            ).round().clamp(0, 255).to(torch.uint8)
        return TensorImageDataset(images.contiguous(), labels)

    out = DatasetSplits(splits.name, cut(splits.train, b.train_size, 0),
                        cut(splits.test, b.test_size, 1), list(splits.classes),
                        splits.in_channels, b.image_size or splits.image_size, splits.mean,
                        splits.std)
    _DATA_CACHE[key] = out
    return out


# ---------------------------------------------------------------------------------- arms

@dataclass(frozen=True)
class Arm:
    """One network of a comparison."""

    label: str  # the paper's name, e.g. "IGCV2 (C144)"
    model: str  # zoo name
    family: str
    group: str = ""  # arms compared with each other (a row group of the paper's table)
    model_args: tuple[tuple[str, Any], ...] = ()
    paper_model: str | None = None  # the paper_results name, when the paper reports it
    paper_table: str | None = None
    info: tuple[tuple[str, Any], ...] = ()  # extra columns (L, K, colour, ...)

    @property
    def args(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.model_args}

    @property
    def extra(self) -> dict[str, Any]:
        return dict(self.info)


def _eight_layer_args(config: Config, **args: Any) -> tuple[tuple[str, Any], ...]:
    if config.budget.stem_stride_8l != 1:
        args["stem_stride"] = config.budget.stem_stride_8l
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in args.items()))


#: Zoo name of the configurable 8-layer IGCV2 network used for the Figure 2/3 sweeps.
SWEEP_MODEL = "igcv2_8l_c144"


def sweep_model(width: int, branch_sizes: Sequence[int], num_classes: int = 10,
                in_chans: int = 3, **extra: Any):
    """The 8-layer IGCV2 network of a Figure 2/3 sweep point, from the zoo."""
    from igc.models.registry import create_model

    return create_model(SWEEP_MODEL, num_classes=num_classes, in_chans=in_chans,
                        **_sweep_args(width, branch_sizes), **extra)


def _sweep_args(width: int, branch_sizes: Sequence[int]) -> dict[str, Any]:
    return {"width": int(width), "branch_sizes": [int(k) for k in branch_sizes]}


def _family(name: str) -> str:
    return name.split("_")[0]


def _paper_arms(table: str, config: Config, eight_layer: bool,
                groups: Callable[[dict], str]) -> list[Arm]:
    seen, arms, kept = set(), [], []
    for row in paper_rows(table=table):
        name = row.get("model")
        if not name or name in seen or row["dataset"] == "tiny-imagenet":
            continue
        seen.add(name)
        args = _eight_layer_args(config) if eight_layer else ()
        label = row["network"] if "(" in row["network"] else f"{row['network']} (C{row['width']})"
        group = groups(row)
        if group not in kept:
            if config.budget.groups is not None and len(kept) >= config.budget.groups:
                continue
            kept.append(group)
        arms.append(Arm(label, name, _family(name), group, args, name, table))
    return arms


def table2_arms(config: Config) -> list[Arm]:
    return _paper_arms("2", config, True, lambda r: f"≈{r['params']:,} / block")


def table5_arms(config: Config) -> list[Arm]:
    return _paper_arms("5", config, True, lambda r: f"≈{r['params']:,} / block")


def table4_arms(config: Config) -> list[Arm]:
    arms = []
    for depth in config.budget.depths:
        for table in ("4", "6"):
            for row in paper_rows(table=table, dataset="cifar100"):
                if row.get("depth") == depth and row.get("model"):
                    arms.append(Arm(f"{row['network']} D{depth}", row["model"],
                                    _family(row["model"]),
                                    f"D = {depth}", (), row["model"], table,
                                    (("depth", depth),)))
    return arms


def figure2_arms(config: Config) -> list[Arm]:
    panels = analytic.FIGURE2_PANELS if config.budget.name == "full" else \
        analytic.FIGURE2_PANELS[:1]
    arms = []
    for p in analytic.figure2_points(analytic.FIGURE2_BUDGET, panels):
        sizes = [p["branch"]] * (p["layers"] - 1)
        arms.append(Arm(f"L={p['layers']} K={p['branch']} C={p['width']}", SWEEP_MODEL,
                        "igcv2", f"({p['panel']}) L = {p['layers']}",
                        _eight_layer_args(config, **_sweep_args(p["width"], sizes)),
                        info=tuple(sorted({**p, "branch_sizes": tuple(sizes)}.items()))))
    return arms


def figure3_arms(config: Config) -> list[Arm]:
    arms = []
    for p in analytic.figure3_points(config.budget.figure_budget):
        sizes = p["branch_sizes"][1:]
        arms.append(Arm(f"L={p['layers']} C={p['width']}", SWEEP_MODEL, "igcv2",
                        f"Q ≈ {config.budget.figure_budget:,} / block",
                        _eight_layer_args(config, **_sweep_args(p["width"], sizes)),
                        info=tuple(sorted({**p, "branch_sizes": tuple(p["branch_sizes"])}
                                          .items()))))
    return arms


# ---------------------------------------------------------------------------------- runs

def run_key(arm: Arm, config: Config, seed: int) -> str:
    """A hash of everything that determines a run's result."""
    payload = {"format": FORMAT, "model": arm.model, "model_args": arm.args, "seed": seed,
               "config": config.identity()}
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class RunRecord:
    arm: Arm
    seed: int
    key: str
    summary: dict[str, Any] | None = None  # the trainer's summary.json
    cached: bool = False


def _read_summary(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / "summary.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def execute(arms: Sequence[Arm], config: Config, out: Path, train: bool = True,
            on_result: Callable[[list[RunRecord]], None] | None = None,
            log: Callable[[str], None] | None = None) -> list[RunRecord]:
    """Train (or read back) every arm for every seed, seed-major so that each seed's full
    comparison finishes before the next starts; ``on_result`` is called after each run."""
    from igc.train.checkpoint import CHECKPOINT

    log = log or (lambda text: print(text, file=sys.stderr, flush=True))
    records = [RunRecord(arm, seed, run_key(arm, config, seed))
               for seed in range(config.num_seeds) for arm in arms]
    for rec in records:
        rec.summary = _read_summary(out / "runs" / rec.key)
        rec.cached = rec.summary is not None
    todo = [r for r in records if r.summary is None]
    if todo and train:
        base = config.recipe()
        splits = load_data(config)
        for i, rec in enumerate(todo, 1):
            run_dir = out / "runs" / rec.key
            resume = (run_dir / CHECKPOINT).is_file()
            log(f"igc reproduce: [{i}/{len(todo)}] {rec.arm.label} seed {rec.seed}"
                + (" (resuming)" if resume else ""))
            rec.summary = _train_one(rec, base, config, splits, run_dir, resume)
            log(f"igc reproduce:   top-1 {rec.summary['top1']:.2f}% in "
                f"{rec.summary['seconds']:.0f} s")
            if on_result:
                on_result(records)
    return records


def _train_one(rec: RunRecord, base, config: Config, splits, run_dir: Path,
               resume: bool) -> dict[str, Any]:
    from igc.train.recipe import override
    from igc.train.trainer import RunConfig, train

    recipe = override(base, [("seed", rec.seed), ("model", rec.arm.model),
                             ("model_args", rec.arm.args)])
    run = RunConfig(model=rec.arm.model, data=config.data, recipe=recipe, out=run_dir,
                    data_dir=config.data_dir, device=config.device, resume=resume,
                    force=not resume, quiet=True,
                    command=f"igc reproduce (run {rec.key})")
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    train(run, splits=splits, callbacks=list(CALLBACKS))
    summary = _read_summary(run_dir)
    if summary is None:
        raise IGCError(f"the run in {run_dir} finished without a summary.json")
    return summary


# ----------------------------------------------------------------------------- results

@dataclass
class ArmResult:
    arm: Arm
    top1: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    params: int | None = None
    macs: int | None = None
    by_seed: dict[int, float] = field(default_factory=dict)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.top1) if self.top1 else None

    @property
    def std(self) -> float | None:
        return statistics.stdev(self.top1) if len(self.top1) >= 2 else None


def collect(records: Sequence[RunRecord]) -> list[ArmResult]:
    by_arm: dict[Arm, ArmResult] = {}
    for rec in records:
        res = by_arm.setdefault(rec.arm, ArmResult(rec.arm))
        if rec.summary and rec.summary.get("top1") is not None:
            res.top1.append(float(rec.summary["top1"]))
            res.by_seed[rec.seed] = float(rec.summary["top1"])
            res.seconds.append(float(rec.summary.get("seconds", 0.0)))
            res.params = rec.summary.get("params", res.params)
            res.macs = rec.summary.get("macs", res.macs)
    return list(by_arm.values())


def paired(result: ArmResult, reference: ArmResult) -> tuple[float | None, float | None]:
    """Mean and sample std over the seeds both finished of ``result - reference`` (same seed:
    same data order, so the shared part of the seed-to-seed noise cancels)."""
    diffs = [result.by_seed[s] - reference.by_seed[s]
             for s in sorted(set(result.by_seed) & set(reference.by_seed))]
    if not diffs:
        return None, None
    return statistics.fmean(diffs), (statistics.stdev(diffs) if len(diffs) >= 2 else None)


def _group_reference(results: Sequence[ArmResult]) -> dict[str, ArmResult]:
    """The first network of each group: the paper's baseline (Xception, IGCV1, ...)."""
    refs: dict[str, ArmResult] = {}
    for r in results:
        refs.setdefault(r.arm.group, r)
    return refs


def _paper_acc(arm: Arm, dataset: str) -> tuple[float, float | None] | None:
    if not arm.paper_model:
        return None
    name = arm.paper_model + ("_tiny" if dataset == "tiny-imagenet" else "")
    rows = paper_rows(model=name, table=arm.paper_table, dataset=dataset)
    if not rows or rows[0].get("top1") is None:
        return None
    return rows[0]["top1"], rows[0].get("top1_std")


def _order(names_values: Sequence[tuple[str, float]]) -> list[str]:
    return [n for n, _ in sorted(names_values, key=lambda nv: -nv[1])]


def ordering_notes(results: Sequence[ArmResult], datasets: Sequence[str]) -> list[str]:
    """Per group: does our accuracy order the networks as the paper's does?"""
    notes = []
    groups: dict[str, list[ArmResult]] = {}
    for r in results:
        groups.setdefault(r.arm.group, []).append(r)
    for group, members in groups.items():
        ours = [(m.arm.label, m.mean) for m in members if m.mean is not None]
        if len(ours) < 2 or len(ours) < len(members):
            continue
        our_order = _order(ours)
        ranked = sorted(members, key=lambda m: -(m.mean or 0))
        diff, spread = paired(ranked[0], ranked[1])
        if diff is not None and spread is not None and diff < spread:
            notes.append(f"{group + ': ' if group else ''}{ranked[0].arm.label} leads "
                         f"{ranked[1].arm.label} by {diff:.2f} points on average over seeds, "
                         f"less than the std of that difference ({spread:.2f}): this budget "
                         "does not resolve their order.")
        for ds in datasets:
            paper = [(m.arm.label, _paper_acc(m.arm, ds)) for m in members]
            if any(p is None for _, p in paper):
                continue
            paper_order = _order([(n, p[0]) for n, p in paper])
            where = f"{group}: " if group else ""
            if paper_order == our_order:
                notes.append(f"{where}same ordering as the paper's {_DS[ds]} column "
                             f"({' > '.join(our_order)}).")
            else:
                notes.append(f"{where}**ordering differs** from the paper's {_DS[ds]} column: "
                             f"ours {' > '.join(our_order)}; paper "
                             f"{' > '.join(paper_order)}.")
    return notes


_DS = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "tiny-imagenet": "Tiny ImageNet"}


def _pareto(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    front, best = [], -math.inf
    for x, y in sorted(points):
        if y > best:
            front.append((x, y))
            best = y
    return front


_FAMILY_COLOURS = {"xception": "#7f7f7f", "igcv1": "#ff7f0e", "igcv2": BLUE,
                   "igcv2i": "#9467bd", "igcv2ii": BLUE, "igcv2star": "#17becf"}


def pareto_plot(results: Sequence[ArmResult], title: str, data_name: str):
    def draw(plt, path: Path) -> None:
        fig, ax = plt.subplots(figsize=(6.6, 4.6))
        pts = [(r.params, r.mean) for r in results if r.mean is not None and r.params]
        for r in results:
            if r.mean is None or not r.params:
                continue
            colour = _FAMILY_COLOURS.get(r.arm.family, "k")
            ax.errorbar(r.params, r.mean, yerr=r.std or 0, fmt="o", color=colour, capsize=3)
            ax.annotate(r.arm.label, (r.params, r.mean), fontsize=7, xytext=(4, 3),
                        textcoords="offset points")
        front = _pareto(pts)
        if len(front) > 1:
            ax.plot(*zip(*front), "--", color="0.5", lw=1, label="Pareto front")
            ax.legend(fontsize=8)
        xs = [x for x, _ in pts]
        if xs and max(xs) > 5 * min(xs):
            ax.set_xscale("log")
        ax.margins(x=0.15)
        ax.set_xlabel("parameters (whole network, ours)")
        ax.set_ylabel(f"top-1 on {data_name} (%), mean ± std")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3, which="both")
        fig.tight_layout()
        fig.savefig(path, dpi=110)

    return draw


def _bars_plot(results: Sequence[ArmResult], title: str, data_name: str):
    """Figure 2 style: accuracy bars per K, coloured red / blue / green."""
    def draw(plt, path: Path) -> None:
        panels = list(dict.fromkeys(r.arm.group for r in results))
        fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8),
                                 squeeze=False)
        colours = {"red": RED, "blue": BLUE, "green": GREEN}
        for ax, panel in zip(axes[0], panels):
            sub = [r for r in results if r.arm.group == panel]
            xs = list(range(len(sub)))
            ys = [r.mean if r.mean is not None else 0 for r in sub]
            ax.bar(xs, ys, yerr=[r.std or 0 for r in sub], capsize=3,
                   color=[colours[r.arm.extra.get("colour", "blue")] for r in sub])
            ax.set_xticks(xs, [f"K={r.arm.extra['branch']}\nC={r.arm.extra['width']}"
                               for r in sub], fontsize=7)
            done = [y for y in ys if y]
            if done:
                ax.set_ylim(max(0, min(done) - 5), min(100, max(done) + 3))
            ax.set_title(panel, fontsize=9)
            ax.set_ylabel(f"top-1 on {data_name} (%)")
        fig.suptitle(title, fontsize=9)
        fig.tight_layout()
        fig.savefig(path, dpi=110)

    return draw


def _curve_plot(results: Sequence[ArmResult], title: str, data_name: str):
    """Figure 3 style: accuracy, width and non-sparsity versus L."""
    def draw(plt, path: Path) -> None:
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        done = [r for r in results if r.mean is not None]
        ls = [r.arm.extra["layers"] for r in done]
        ax.errorbar(ls, [r.mean for r in done], yerr=[r.std or 0 for r in done], fmt="o-",
                    color=RED, capsize=3, label="accuracy")
        ax.set_xlabel("L")
        ax.set_ylabel(f"top-1 on {data_name} (%)", color=RED)
        ax2 = ax.twinx()
        ax2.plot([r.arm.extra["layers"] for r in results],
                 [r.arm.extra["width"] for r in results], "s--", color=BLUE, label="width")
        ax2.set_ylabel("width C", color=BLUE)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(path, dpi=110)

    return draw


# ------------------------------------------------------------------------- the sections

@dataclass(frozen=True)
class Spec:
    target: str
    title: str
    intro: str
    arms: Callable[[Config], list[Arm]]
    paper_datasets: tuple[str, ...]
    plot: str  # "pareto" | "bars" | "curve"


SPECS = {
    "table2": Spec("table2", "Table 2: Xception vs IGCV2, 8-layer networks (accuracy)",
                   "Six blocks at one resolution between a 3x3 stem and the classifier; each "
                   "pair has about the same number of parameters per block.", table2_arms,
                   ("cifar10", "cifar100"), "pareto"),
    "table5": Spec("table5", "Table 5: IGCV1 vs IGCV2-I vs IGCV2-II, 8-layer networks "
                   "(accuracy)", "IGCV2-I keeps IGCV1's group 3x3 (K_1 = 2) and splits the "
                   "1x1 into two; IGCV2-II uses a channel-wise 3x3 and two balanced group "
                   "1x1 (the paper's recommended design).", table5_arms,
                   ("cifar10", "cifar100"), "pareto"),
    "figure2": Spec("figure2", "Figure 2: the K sweep at fixed L and budget (accuracy)",
                    "8-layer IGCV2 networks with a channel-wise 3x3 and L-1 group 1x1 of "
                    "branch size K at about the same number of parameters per block "
                    f"({analytic.FIGURE2_BUDGET:,}); widths and conditions as in "
                    "`figure2-design`. Red: (nearly) complementary; blue: dense, redundant; "
                    "green: sparse. The paper plots Figure 2 without printing numbers.",
                    figure2_arms, (), "bars"),
    "figure3": Spec("figure3", "Figure 3: the L sweep at one parameter count (accuracy)",
                    "8-layer IGCV2 networks, channel-wise 3x3 and L-1 balanced group 1x1, "
                    "the widest strictly complementary block per L within the budget (as in "
                    "`figure3-sparsity`). The paper plots Figure 3 without printing numbers.",
                    figure3_arms, (), "curve"),
    "table4": Spec("table4", "Tables 4 and 6: Xception, IGCV1 and IGCV2 at matched size "
                   "(accuracy)", "The residual networks of Table 1 (D = 3B + 2): Xception "
                   "C35 and IGCV2 C64 (Table 4), IGCV1 C48 and IGCV2 C80 (Table 6), all about "
                   "0.05M parameters at D = 8.", table4_arms, ("cifar100", "tiny-imagenet"),
                   "pareto"),
}


def section(target: str, config: Config, records: Sequence[RunRecord],
            command: str = "") -> Section:
    """The markdown/plot section of an empirical target from its run records."""
    spec = SPECS[target]
    results = collect(records)
    data_name = config.data
    pending = sum(1 for r in records if r.summary is None)
    headers = ["group", "network", "zoo model", "params (ours)", "mult-adds (ours)", "seeds",
               f"top-1 {data_name} (ours)", "vs the group's first (paired by seed)",
               "mean wall time / run"]
    headers += [f"paper {_DS[d]}" for d in spec.paper_datasets]
    if spec.plot == "bars":
        headers[1:1] = []
        headers.insert(2, "condition")
        headers.insert(3, "colour")
    if spec.plot == "curve":
        headers.insert(2, "non-sparsity")
    rows = []
    refs = _group_reference(results)
    for r in results:
        extra = r.arm.extra
        ref = refs[r.arm.group]
        d, ds_ = paired(r, ref)
        versus = "—" if r is ref or d is None else (
            f"{d:+.2f}" + (f" ± {ds_:.2f}" if ds_ is not None else ""))
        row = [r.arm.group, r.arm.label, f"`{r.arm.model}`", fmt_count(r.params),
               fmt_count(r.macs), str(len(r.top1)), fmt_mean_std(r.mean, r.std), versus,
               f"{statistics.fmean(r.seconds):.0f} s" if r.seconds else "—"]
        for ds in spec.paper_datasets:
            p = _paper_acc(r.arm, ds)
            row.append("—" if p is None else fmt_mean_std(p[0], p[1]))
        if spec.plot == "bars":
            row.insert(2, extra.get("condition", ""))
            row.insert(3, extra.get("colour", ""))
        if spec.plot == "curve":
            row.insert(2, f"{extra.get('nonsparsity', 0):.4f}")
        rows.append(row)
    total = sum(s for r in results for s in r.seconds)
    runs_done = sum(len(r.top1) for r in results)
    intro = spec.intro + (
        f"\n\n**Ours: {data_name}, budget `{config.budget.name}`** "
        f"({config.budget.summary()}; recipe: {_recipe_line(config)}); "
        f"{runs_done} runs, {total / 60:.1f} min of training wall time in all." )
    if spec.paper_datasets:
        intro += (" **The paper's columns are its CIFAR / Tiny ImageNet results at full "
                  "training, not comparable in absolute value with ours**: compare the "
                  "orderings.")
    if command:
        intro += f"\n\nCommand: `{command}`"
    notes = ordering_notes(results, spec.paper_datasets)
    if pending:
        notes.insert(0, f"{pending} of {len(records)} runs are not finished; rerun the "
                     "command to train them (finished runs are reused).")
    if spec.plot == "bars":
        notes += _figure2_notes(results)
    if spec.plot == "curve":
        notes += _figure3_notes(results)
    caption = (f"mean ± sample std over seeds 0..{config.num_seeds - 1}; params and "
               f"multiply-adds of our network at {data_name}'s input size"
               + (f" ({config.budget.image_size}x{config.budget.image_size})"
                  if config.budget.image_size else ""))
    draw = {"pareto": pareto_plot, "bars": _bars_plot, "curve": _curve_plot}[spec.plot]
    plot_title = f"{spec.title.split(':')[0]} on {data_name} ({config.budget.name} budget)"
    data = {"target": target, "config": config.identity(), "seeds": config.num_seeds,
            "arms": [{"label": r.arm.label, "model": r.arm.model, "model_args": r.arm.args,
                      "group": r.arm.group, "top1": r.top1, "mean": r.mean, "std": r.std,
                      "top1_by_seed": r.by_seed,
                      "seconds": r.seconds, "params": r.params, "macs": r.macs,
                      **{k: v for k, v in r.arm.extra.items()}} for r in results],
            "runs": {rec.key: {"model": rec.arm.model, "seed": rec.seed,
                               "done": rec.summary is not None} for rec in records}}
    return Section(target, spec.title, intro, [Table(headers, rows, caption)], notes,
                   [Plot(f"{target}-{config.budget.name}.png", plot_title,
                         draw(results, plot_title, data_name))], data)


def _recipe_line(config: Config) -> str:
    r = config.recipe()
    return (f"{r.name}: {r.epochs} epochs, batch {r.batch_size}, SGD lr {r.lr:g} "
            f"({r.schedule}{' ' + str(r.milestones) if r.schedule == 'multistep' else ''}), "
            f"momentum {r.momentum:g}{' Nesterov' if r.nesterov else ''}, wd {r.weight_decay:g}, "
            f"augmentation {', '.join(r.train_augment)}")


def _figure2_notes(results: Sequence[ArmResult]) -> list[str]:
    notes = []
    for panel in dict.fromkeys(r.arm.group for r in results):
        sub = [r for r in results if r.arm.group == panel and r.mean is not None]
        if len(sub) < 2:
            continue
        best = max(sub, key=lambda r: r.mean)
        red = [r for r in sub if r.arm.extra.get("colour") == "red"]
        if not red:
            continue
        neighbours = {i for i, r in enumerate(sub) if r.arm.extra.get("colour") == "red"}
        near = {j for i in neighbours for j in (i - 1, i, i + 1)}
        verdict = ("as in the paper, the best bar is the red one or next to it"
                   if sub.index(best) in near else
                   "**unlike the paper**, the best bar is neither the red one nor next to it")
        notes.append(f"{panel}: best K = {best.arm.extra['branch']} "
                     f"({best.mean:.2f}%); {verdict}.")
    return notes


def _figure3_notes(results: Sequence[ArmResult]) -> list[str]:
    done = [r for r in results if r.mean is not None]
    if len(done) < 3:
        return []
    best = max(done, key=lambda r: r.mean)
    ls = [r.arm.extra["layers"] for r in done]
    inner = min(ls) < best.arm.extra["layers"] < max(ls)
    return [f"Best accuracy at L = {best.arm.extra['layers']} ({best.mean:.2f}%); the paper "
            f"finds its maximum at an intermediate L: "
            + ("ours agrees." if inner else "**ours does not** (the best is at an end of the "
               "sweep).")]


def arms_for(target: str, config: Config) -> list[Arm]:
    return SPECS[target].arms(config)


def run_target(target: str, config: Config, out: Path, train: bool = True,
               command: str = "", write: Callable[[Section], None] | None = None) -> Section:
    """Train what is missing of ``target`` and return its section; ``write`` is called with
    the partial section after every finished run (partial results as they come)."""
    arms = arms_for(target, config)
    last = [time.monotonic()]

    def progress(records: list[RunRecord]) -> None:
        # partial results as runs finish, at most every PARTIAL_EVERY seconds
        if write is not None and time.monotonic() - last[0] >= PARTIAL_EVERY:
            write(section(target, config, records, command))
            last[0] = time.monotonic()

    records = execute(arms, config, out, train=train, on_result=progress)
    return section(target, config, records, command)


__all__ = ["BUDGETS", "SPECS", "Arm", "Budget", "Config", "RunRecord",
           "check_out_dir", "execute", "get_budget", "load_data", "run_key", "run_target",
           "section", "sweep_model"]
