"""Training and evaluation: recipes, the training loop, checkpoints, metrics.

``igc train`` / ``igc eval`` / ``igc plot`` / ``igc summarize`` are thin layers over this
package, so the API gives what the command line gives: :func:`resolve_run` builds the
:class:`RunConfig` ``igc train`` would (defaults included), :func:`train` runs it and
:func:`train_seeds` runs several seeds; :func:`load_recipe` and :func:`override` build
recipes; :func:`evaluate_checkpoint` evaluates a saved run and :func:`model_from_checkpoint`
rebuilds its network. The loop's pieces: :mod:`igc.train.builders` (what a run is built
from: :mod:`~igc.train.config`, :mod:`~igc.train.devices`, :mod:`~igc.train.splits`,
:mod:`~igc.train.network`, :mod:`~igc.train.probe`), :mod:`igc.train.state` (what training
changes, ``trainer.state``), :mod:`igc.train.callbacks` (what happens on its events),
:mod:`igc.train.snapshot` (the checkpoint: the state plus the run's metadata) and
:mod:`igc.train.signals` (SIGINT/SIGTERM).
"""

import importlib

from igc.train.recipe import Recipe, list_recipes, load_recipe, override

__all__ = ["Recipe", "RunConfig", "RunResult", "evaluate_checkpoint", "list_recipes",
           "load_recipe", "model_from_checkpoint", "override", "resolve_run", "train",
           "train_seeds"]

_LAZY = {"RunConfig": "config", "RunResult": "result", "train": "trainer",
         "Trainer": "trainer", "Interrupted": "trainer", "TrainingDiverged": "trainer",
         "evaluate_checkpoint": "evaluate", "model_from_checkpoint": "checkpoint",
         "resolve_run": "resolve", "train_seeds": "resolve"}


def __getattr__(name: str):  # the heavy modules load on first use
    if name in _LAZY:
        return getattr(importlib.import_module(f"igc.train.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'igc.train' has no attribute {name!r}")
