"""Training curves of one or several runs, drawn to a PNG.

Loss, accuracy and learning rate against epochs, read from each run's ``metrics.jsonl``:
training (solid), test (dashed) and, where the run held one out, validation (dotted)."""

from __future__ import annotations

import math
from pathlib import Path

from igc import checks
from igc.errors import IGCError
from igc.files.records import METRICS, RUN_INFO, read_metrics, read_run_info
from igc.viz import pyplot, save_figure

#: The most runs drawn into one figure.
MAX_PLOT_RUNS = 50


def _labels(dirs: list[Path]) -> list[str]:
    """Short distinct labels: the folder name, or parent/name where names repeat."""
    names = [d.resolve().name for d in dirs]
    if len(set(names)) == len(names):
        return names
    return [f"{d.resolve().parent.name}/{d.resolve().name}" for d in dirs]


def _run_title(run: Path) -> str | None:
    if not (run / RUN_INFO).is_file():
        return None
    info = read_run_info(run)
    return f"{info['model']} on {info['data']}"


def _label_smoothing(run: Path) -> float | None:
    from igc.train.recipe import load_recipe

    recipe = run / "recipe.toml"
    return load_recipe(recipe).label_smoothing if recipe.is_file() else None


#: The largest magnitude drawn: a loss or learning rate beyond it (a diverged run's 1e308)
#: is left out of the curve, where matplotlib's axis arithmetic would overflow.
MAX_DRAWN = 1e30


def _values(records: list[dict], key: str) -> list[float]:
    """``key`` of each record as a float, NaN (not drawn) where missing, not finite or
    beyond :data:`MAX_DRAWN`."""
    out = []
    for r in records:
        v = r.get(key)
        out.append(float(v) if v is not None and math.isfinite(v) and abs(v) <= MAX_DRAWN
                   else math.nan)
    return out


def plot_runs(runs: list[str | Path], out: str | Path, title: str | None = None) -> Path:
    """Draw the curves of ``runs`` into the PNG ``out``; returns it.

    ``runs`` are run directories or their ``metrics.jsonl``; every file read is validated;
    the PNG is written atomically."""
    if not runs or len(runs) > MAX_PLOT_RUNS:
        raise IGCError(f"give 1 to {MAX_PLOT_RUNS} run folders to plot, got {len(runs)}")
    out = checks.check_writable_file(out, "--out", (".png",))
    if title is not None:
        title = checks.check_name(title, "--title", 200)
    dirs = [checks.check_path(r, "run folder") for r in runs]
    data = []
    for d in dirs:
        path = d / METRICS if d.is_dir() else d
        if not path.is_file():
            raise IGCError(f"{d} has no {METRICS}; give run directories written by igc train")
        records = read_metrics(path)
        if not records:
            raise IGCError(f"{path} is empty: the run has not finished an epoch yet")
        data.append(records)
    dirs = [d if d.is_dir() else d.parent for d in dirs]
    labels = _labels(dirs)  # every file is read and checked before matplotlib starts
    smoothing = {_label_smoothing(d) for d in dirs} - {0.0, None}
    title = title or (_run_title(dirs[0]) if len(dirs) == 1 else None) or f"{len(dirs)} runs"
    plt = pyplot()
    fig, (ax_loss, ax_acc, ax_lr) = plt.subplots(
        1, 3, figsize=(15, 4.8), gridspec_kw={"width_ratios": [1, 1, 0.62]})
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    accs: list[float] = []
    for i, (label, records) in enumerate(zip(labels, data)):
        color = colors[i % len(colors)]
        ep = [r["epoch"] for r in records]
        tested = [r for r in records if r.get("top1") is not None]
        te = [r["epoch"] for r in tested]
        final = f" (top-1 {tested[-1]['top1']:.2f}%)" if tested else ""
        ax_loss.plot(ep, _values(records, "train_loss"), color=color, lw=1.8,
                     label=f"{label}")
        ax_loss.plot(te, _values(tested, "test_loss"), color=color, lw=1.4, ls="--",
                     marker="o", ms=3.5)
        ax_acc.plot(ep, [r["train_acc"] for r in records], color=color, lw=1.8,
                    label=f"{label}{final}")
        ax_acc.plot(te, [r["top1"] for r in tested], color=color, lw=1.4, ls="--", marker="o",
                    ms=3.5)
        validated = [r for r in records if r.get("val_top1") is not None]
        if validated:  # the validation split (dotted), where the run held one out
            ve = [r["epoch"] for r in validated]
            ax_loss.plot(ve, [r["val_loss"] for r in validated], color=color, lw=1.2,
                         ls=":", marker="s", ms=3)
            ax_acc.plot(ve, [r["val_top1"] for r in validated], color=color, lw=1.2,
                        ls=":", marker="s", ms=3)
        ax_lr.plot(ep, _values(records, "lr"), color=color, lw=1.6, marker=".", ms=4)
        accs += [r["train_acc"] for r in records[1:]] + [r["top1"] for r in tested]
        accs += [r["val_top1"] for r in validated]
        if tested:
            last = tested[-1]
            ax_acc.annotate(f"{last['top1']:.2f}%", (last["epoch"], last["top1"]),
                            textcoords="offset points", xytext=(4, -12), color=color,
                            fontsize=9)
    if accs:
        low = max(0.0, min(accs) - 2)
        ax_acc.set_ylim(low, min(100.0, max(accs) + 1.5))
    loss_title = "loss"
    if smoothing:
        values = ", ".join(f"{v:g}" for v in sorted(smoothing))
        loss_title += f" (train includes label smoothing {values})"
    ax_loss.set(title=loss_title, xlabel="epoch", ylabel="cross-entropy")
    ax_acc.set(title="accuracy", xlabel="epoch", ylabel="%")
    ax_lr.set(title="learning rate (epoch start)", xlabel="epoch")
    for ax in (ax_loss, ax_acc, ax_lr):
        ax.grid(True, alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    # one legend for the line styles, one per panel for the runs
    from matplotlib.lines import Line2D

    styles = [Line2D([], [], color="0.3", lw=1.8, label="train"),
              Line2D([], [], color="0.3", lw=1.4, ls="--", marker="o", ms=3.5, label="test")]
    if any(r.get("val_top1") is not None for records in data for r in records):
        styles.append(Line2D([], [], color="0.3", lw=1.2, ls=":", marker="s", ms=3,
                             label="validation"))
    ax_loss.legend(handles=[*ax_loss.get_legend_handles_labels()[0], *styles], fontsize=8,
                   loc="upper right")
    ax_acc.legend(fontsize=8, loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, out)
