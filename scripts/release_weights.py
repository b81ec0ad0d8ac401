"""Release the weights of a finished training run (a maintainer's tool, not installed).

    python scripts/release_weights.py KEY RUN_DIR [--seed-runs DIR ...] [--command TEXT]
                                      [--commit SHA]
    python scripts/release_weights.py --convert     # released .pt files -> .safetensors

``KEY`` is the name users load it by: a canonical zoo name (``igcv2_c64_d8``) or
``NAME.TAG`` (timm's pretrained tags, e.g. ``igcv2_8l_c144.fig2a_k2``). The run's
checkpoint is reduced to what a user needs (network, builder options, classes, channels,
normalisation, state dict), written to ``igc/weights/KEY.safetensors`` (that metadata and
the model card in its header, :mod:`igc.files.safetensors`), evaluated fresh on its data
set's test split exactly as ``tests/test_weights.py`` does (``create_model(KEY,
pretrained=True)`` on the CPU), and entered in ``igc/weights/weights.toml`` with its
SHA-256 and model card: the data set, recipe, command, epochs, this file's top-1, the
mean and sample standard deviation of the final top-1 over ``--seed-runs`` (default: the
run alone) with their seeds, and the commit the run was trained at. ``--convert`` rewrites
the manifest's ``.pt`` files as ``.safetensors`` (the same tensors; the ``.pt`` stays).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from igc.errors import IGCError  # noqa: E402
from igc.files.atomic import atomic_write  # noqa: E402
from igc.files.checkpoint import load_checkpoint  # noqa: E402
from igc.files.records import read_summary  # noqa: E402
from igc.files.safetensors import safetensors_bytes  # noqa: E402
from igc.files.tomlfile import read_toml, write_toml  # noqa: E402
from igc.models.pretrained import MANIFEST, weights_dir  # noqa: E402
from igc.models.registry import model_entry, split_tag  # noqa: E402

#: What a released file keeps of a checkpoint.
KEEP = ("model", "model_args", "num_classes", "in_chans", "image_size", "data", "classes",
        "mean", "std")


def final_top1(run: Path) -> tuple[float, int]:
    """``(top-1, seed)`` of a finished run folder (its ``summary.json``)."""
    summary = read_summary(run / "summary.json")
    if summary.get("top1") is None:
        raise IGCError(f"{run} has no final top-1 (unfinished run?)")
    return float(summary["top1"]), int(summary["seed"])


def commit_of(run: Path) -> str:
    """The commit a run was trained at: reproduce's ``result.json``, else ``run.json``."""
    for name in ("result.json", "run.json"):
        path = run / name
        if path.is_file():
            info = json.loads(path.read_text("utf-8"))
            commit = info.get("commit") or info.get("git_commit")
            if commit:
                return str(commit)
    return "unknown"


def release(key: str, run: Path, seed_runs: list[Path], command: str,
            commit: str | None = None) -> dict:
    """Write the weights file and its card; returns the card."""
    from igc.train.evaluate_pretrained import evaluate_pretrained

    name, _ = split_tag(key)
    model_entry(name)  # an unknown network fails here
    state = load_checkpoint(run / "checkpoint.pt")
    if not state.get("complete"):
        raise IGCError(f"{run} is not finished; release finished runs only")
    scores = [final_top1(r) for r in (seed_runs or [run])]
    recipe = state["recipe"]
    card = {
        "dataset": state["data"], "recipe": str(recipe.get("name", "custom")),
        "command": command, "epochs": int(state["epoch"]),
        "top1_mean": round(statistics.fmean(s for s, _ in scores), 2),
        "top1_std": round(statistics.stdev(s for s, _ in scores), 2) if len(scores) > 1
        else 0.0,
        "seeds": sorted(seed for _, seed in scores), "commit": commit or commit_of(run),
    }
    card = write_release(key, state, {**card, "top1": 0.0})  # top-1 measured below
    folder = weights_dir()
    manifest = folder / MANIFEST
    data = read_toml(manifest) if manifest.is_file() else {}
    models = dict(data.get("models", {}))
    models[key] = card
    write_toml(manifest, {"models": models}, header=HEADER)
    result = evaluate_pretrained(key, pretrained=True, data=state["data"], device="cpu",
                                 download=False)
    card = write_release(key, state, {**card, "top1": round(float(result["top1"]), 2)})
    models[key] = card
    write_toml(manifest, {"models": models}, header=HEADER)
    return card


def write_release(key: str, state: dict, card: dict) -> dict:
    """Write ``igc/weights/KEY.safetensors``: ``state``'s weights, the fields of
    :data:`KEEP` and ``card`` (less ``file`` and ``sha256``) in the header; returns the
    card with the file's name and SHA-256."""
    card = {k: v for k, v in card.items() if k not in ("file", "sha256")}
    header = {**{k: state[k] for k in KEEP if state.get(k) is not None}, "card": card}
    payload = safetensors_bytes(state["state_dict"], header)
    path = weights_dir() / f"{key}.safetensors"
    atomic_write(path, payload)
    return {"file": path.name, "sha256": hashlib.sha256(payload).hexdigest(), **card}


def convert_released() -> list[str]:
    """Rewrite every ``.pt`` file of the manifest as ``.safetensors`` (the same tensors,
    checked) and point the manifest at it; returns the keys converted."""
    from igc.files.weights import read_weights

    manifest = weights_dir() / MANIFEST
    models = dict(read_toml(manifest)["models"])
    done = []
    for key, card in models.items():
        if not card["file"].endswith(".pt"):
            continue
        state = torch.load(weights_dir() / card["file"], map_location="cpu", weights_only=True)
        models[key] = write_release(key, state, card)
        again = read_weights(weights_dir() / models[key]["file"])
        if again.state_dict.keys() != state["state_dict"].keys() or not all(
                torch.equal(again.state_dict[k], v) for k, v in state["state_dict"].items()):
            raise IGCError(f"{key}: the safetensors file does not hold the same tensors")
        done.append(key)
    write_toml(manifest, {"models": models}, header=HEADER)
    return done


HEADER = """Released weights of the zoo: one [models."NAME"] (or [models."NAME.TAG"]) table per
file beside this manifest. Format and meaning of every field: igc/models/pretrained.py.
`create_model(NAME[.TAG], pretrained=True)` checks the SHA-256 and loads the file;
tests/test_weights.py checks that every file listed here scores `top1` (+-0.05 points)
on its test set. Written by scripts/release_weights.py."""


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv == ["--convert"]:
        print("converted:", ", ".join(convert_released()) or "nothing")
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("key")
    parser.add_argument("run", type=Path)
    parser.add_argument("--seed-runs", nargs="*", type=Path, default=[])
    parser.add_argument("--command", default="igc train")
    parser.add_argument("--commit", help="the commit the run was trained at (default: the "
                        "run's result.json / run.json)")
    args = parser.parse_args(argv)
    try:
        card = release(args.key, args.run, args.seed_runs, args.command, args.commit)
    except IGCError as exc:
        print(f"release_weights: {exc}", file=sys.stderr)
        return 2
    print(f"{args.key}: {card['file']} {card['sha256'][:12]}... top-1 {card['top1']}% "
          f"(seeds {card['seeds']}: {card['top1_mean']} +- {card['top1_std']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
