"""Markdown of the empirical targets: a :class:`~igc.reproduce.empirical.TargetResult`
becomes a :class:`~igc.reproduce.report.Section` with the accuracy of every network (mean ±
std over the seeds listed), the test of each of the paper's claims about them, the learning
curves and plots."""

from __future__ import annotations

from typing import TYPE_CHECKING

import igc.reproduce.plots as plots
from igc.reproduce.arms import paper_accuracy
from igc.reproduce.claims import PAPER_COLUMNS, ClaimTest
from igc.reproduce.config import Config
from igc.reproduce.empirical import TargetResult
from igc.reproduce.report import Plot, Section, Table, as_record, fmt_count, fmt_mean_std
from igc.reproduce.stats import CONTRADICTS

if TYPE_CHECKING:
    from igc.train.recipe import Recipe

DATASET_NAMES = PAPER_COLUMNS  # the old name


def recipe_line(config: Config) -> str:
    """The shared recipe in one line."""
    r = config.recipe()
    return (f"{r.name}: {r.epochs} epochs, batch {r.batch_size}, SGD lr {r.lr:g} "
            f"({schedule_text(r)}), "
            f"momentum {r.momentum:g}{' Nesterov' if r.nesterov else ''}, wd {r.weight_decay:g}, "
            f"augmentation {', '.join(r.train_augment)}")


def schedule_text(recipe: Recipe) -> str:
    """The schedule as run: ``x0.1 after epochs 2 and 4 (2 decays)`` for the milestones
    actually used (the budget's epochs round the recipe's fractions)."""
    if recipe.schedule != "multistep":
        return recipe.schedule
    if not recipe.milestones:
        return "constant: no decay within the epochs"
    ms = [str(m) for m in recipe.milestones]
    where = ms[0] if len(ms) == 1 else ", ".join(ms[:-1]) + " and " + ms[-1]
    n = len(ms)
    return (f"x{recipe.gamma:g} after epoch{'s' if n > 1 else ''} {where}: {n} "
            f"decay{'s' if n > 1 else ''}")


def interval_text(test: ClaimTest) -> str:
    """``+0.83 [+0.21, +1.45]``: ours, better - worse, with the 95 % interval."""
    if test.interval is None:
        if test.better.mean is None or test.worse.mean is None:
            return "—"
        return f"{test.better.mean - test.worse.mean:+.2f}"
    w = test.interval
    if w.se == 0:
        return f"{w.diff:+.2f} (no spread over seeds: no interval)"
    return f"{w.diff:+.2f} [{w.low:+.2f}, {w.high:+.2f}]"


def compared(test: ClaimTest) -> str:
    """Which two networks a claim compared (the best of each side for a set)."""
    return f"{test.better.arm.label} vs {test.worse.arm.label}"


def claims_table(tests: list[ClaimTest]) -> Table:
    """The claims of the paper and our verdicts."""
    headers = ["claim (paper)", "where", "compared", "paper: difference",
               "ours: difference of means [95 % CI]", "seeds", "verdict"]
    rows = []
    for t in tests:
        paper = "—" if t.paper_diff is None else (
            f"{t.paper_diff:+.2f} ({DATASET_NAMES[t.claim.paper or '']})")
        seeds = f"{len(t.better.top1)} / {len(t.worse.top1)}"
        ours = interval_text(t) + (" (paired by seed)" if t.claim.paired else "")
        rule = " (Holm over the pairs below)" if t.pairs else ""
        rows.append([t.claim.claim, t.claim.where, compared(t), paper, ours, seeds,
                     f"**{t.verdict}**{rule}"])
    return Table(headers, rows, "Differences are top-1 points, better minus worse as the "
                 "paper claims them; the interval is Welch's 95 % interval over seeds (the "
                 "paired t interval over common seeds where marked). A claim about a set "
                 "(\"the best K is ...\") shows its best network of each side, but is "
                 "decided over every pair with Holm's correction: it agrees when one network "
                 "of the better side beats every network of the other (adjusted p < 0.05), "
                 "contradicts in the reverse case, and is not resolved otherwise. Seeds: "
                 "runs of each side.")


def pairs_table(tests: list[ClaimTest]) -> Table | None:
    """Every pair of the set claims, with Welch's interval and Holm-adjusted p-values."""
    rows = []
    for t in tests:
        for p in t.pairs or []:
            w = p.interval
            diff = (f"{w.diff:+.2f}" if w.se == 0 else
                    f"{w.diff:+.2f} [{w.low:+.2f}, {w.high:+.2f}]")
            rows.append([t.claim.where, p.better, p.worse, diff, f"{p.p:.3f}",
                         f"{p.p_holm:.3f}"])
    if not rows:
        return None
    return Table(["claim", "better side", "worse side", "difference [95 % CI, Welch]", "p",
                  "p (Holm, over the claim's pairs)"], rows,
                 "The pairs of each set claim: two-sided Welch p-values and Holm's "
                 "step-down adjustment over all pairs of the claim.")


def _results_table(r: TargetResult) -> Table:
    spec, data_name = r.spec, r.config.data
    headers = ["group", "network", "zoo model", "params (ours)", "mult-adds (ours)",
               f"top-1 {data_name} (ours), mean ± std", "seeds", "top-1 per seed",
               "mean wall time / run"]
    headers += [f"paper {DATASET_NAMES[d]}" for d in spec.paper_datasets]
    if spec.plot == "bars":
        headers[2:2] = ["condition", "colour"]
    if spec.plot == "curve":
        headers.insert(2, "non-sparsity")
    rows = []
    for a in r.arms:
        seconds = a.budget_seconds
        row = [a.arm.group, a.arm.label, f"`{a.arm.model}`", fmt_count(a.params),
               fmt_count(a.macs), fmt_mean_std(a.mean, a.std),
               ", ".join(map(str, a.seeds)) or "—",
               ", ".join(f"{v:.2f}" for v in a.top1) or "—",
               f"{sum(seconds) / len(seconds):.0f} s" if seconds else "—"]
        for ds in spec.paper_datasets:
            p = paper_accuracy(a.arm, ds)
            row.append("—" if p is None else fmt_mean_std(p[0], p[1]))
        extra = a.arm.extra
        if spec.plot == "bars":
            row[2:2] = [str(extra.get("condition", "")), str(extra.get("colour", ""))]
        if spec.plot == "curve":
            row.insert(2, f"{extra.get('nonsparsity', 0):.4f}")
        rows.append(row)
    size = r.config.budget.image_size
    caption = ("mean ± sample std over the seeds listed; params and multiply-adds of our "
               f"network at {data_name}'s input size" + (f" ({size}x{size})" if size else ""))
    return Table(headers, rows, caption)


def _curves_table(r: TargetResult) -> Table | None:
    curves = [(a, a.curve()) for a in r.arms]
    length = max((len(c) for _, c in curves), default=0)
    if length < 2:
        return None
    headers = ["network", *[f"epoch {i}" for i in range(1, length + 1)], "last epoch's gain"]
    rows = [[a.arm.label, *[f"{v:.2f}" for v in c], f"{c[-1] - c[-2]:+.2f}"]
            for a, c in curves if len(c) == length]
    return Table(headers, rows, "Learning curves: test top-1 after each epoch, mean over "
                 "seeds. A small last gain means the recipe is near convergence at this budget.")


def render_target(r: TargetResult, command: str = "") -> Section:
    """The section of an empirical target."""
    spec, config = r.spec, r.config
    machines = r.machines()
    intro = spec.intro + (
        f"\n\n**Ours: {config.data}, budget `{config.budget.name}`** "
        f"({config.budget.summary(config.seeds_text(spec.target))}; recipe: "
        f"{recipe_line(config)}); "
        f"{r.done_runs} of {r.total_runs} runs, {r.wall_seconds / 60:.1f} min of training "
        "wall time in all"
        + (f" on {'; '.join(f'{m} ({n} runs)' for m, n in machines.items())}"
           if machines else "") + ".")
    if spec.paper_datasets:
        intro += (" **The paper's columns are its CIFAR / Tiny ImageNet results at full "
                  "training, not comparable in absolute value with ours**: compare the "
                  "orderings.")
    if command:
        intro += f"\n\nCommand: `{command}`"
    tables = [_results_table(r)]
    if r.tests:
        tables.append(claims_table(r.tests))
        pairs = pairs_table(r.tests)
        if pairs is not None:
            tables.append(pairs)
    curves = _curves_table(r)
    if curves is not None:
        tables.append(curves)
    notes = []
    pending = r.total_runs - r.done_runs
    if pending:
        notes.append(f"{pending} of {r.total_runs} runs are not finished; rerun the command "
                     "to train them (finished runs are reused).")
    notes += [f"Not used: {p}." for p in r.problems]
    notes += [f"Accounting: {f}." for f in r.flags]
    notes += [f"{t.claim.where}: our result **{t.verdict}** ({t.claim.claim}: "
              f"{interval_text(t)})." for t in r.tests if t.verdict == CONTRADICTS]
    title = f"{spec.title.split(':')[0]} on {config.data} ({config.budget.name} budget)"
    drawn = [Plot(f"{spec.target}-{config.budget.name}.png", title,
                  plots.EMPIRICAL[spec.plot](r.arms, title, config.data))]
    if curves is not None:
        drawn.append(Plot(f"{spec.target}-{config.budget.name}-curves.png",
                          f"{title}: learning curves",
                          plots.learning_curves(r.arms, f"{title}: learning curves",
                                                config.data)))
    return Section(spec.target, spec.title, intro, tables, notes, drawn, data(r))


def data(r: TargetResult) -> dict:
    """The JSON of an empirical section: every network's runs and every claim's test."""
    arms = []
    for a in r.arms:
        arms.append({"id": a.arm.id, "label": a.arm.label, "model": a.arm.model,
                     "model_args": a.arm.args, "group": a.arm.group, "seeds": a.seeds,
                     "top1": a.top1, "mean": a.mean, "std": a.std, "seconds": a.seconds,
                     "params": a.params, "macs": a.macs, "curve": a.curve(),
                     "runs": {str(s): {k: a.runs[s].get(k) for k in (
                         "key", "top1", "seconds", "epochs", "machine", "commit", "started",
                         "commits", "threads", "session_seconds")}
                         for s in a.seeds},
                     **a.arm.extra})
    tests = [{"claim": t.claim.claim, "where": t.claim.where, "better": t.better.arm.id,
              "worse": t.worse.arm.id, "verdict": t.verdict, "paper_diff": t.paper_diff,
              "interval": as_record(t.interval), "paired": t.claim.paired,
              "pairs": [{"better": p.better, "worse": p.worse, "interval":
                         as_record(p.interval), "p": p.p, "p_holm": p.p_holm}
                        for p in t.pairs or []]} for t in r.tests]
    return {"target": r.target, "config": r.config.identity(),
            "seeds": r.config.seeds_for(r.target),
            "runs_done": r.done_runs, "runs_total": r.total_runs, "arms": arms,
            "tests": tests, "problems": r.problems,
            "flags": r.flags}
