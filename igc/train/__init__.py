"""Training and evaluation: recipes, the training loop, checkpoints, metrics.

``igc train`` / ``igc eval`` / ``igc plot`` / ``igc summarize`` are thin layers over this
package: :func:`train` runs a :class:`RunConfig`; :func:`load_recipe` and :func:`override`
build the recipe; :func:`evaluate_checkpoint` evaluates a saved run.
"""

from igc.train.recipe import Recipe, list_recipes, load_recipe, override

__all__ = ["Recipe", "RunConfig", "RunResult", "evaluate_checkpoint", "list_recipes",
           "load_recipe", "override", "train"]


def __getattr__(name: str):  # the heavy modules load on first use
    if name in ("RunConfig", "RunResult", "train", "Trainer", "Interrupted",
                "TrainingDiverged"):
        from igc.train import trainer

        return getattr(trainer, name)
    if name == "evaluate_checkpoint":
        from igc.train.evaluate import evaluate_checkpoint

        return evaluate_checkpoint
    raise AttributeError(f"module 'igc.train' has no attribute {name!r}")
