"""The checkpoint of a running trainer: its :class:`~igc.train.state.TrainState` plus the
run's metadata.

:func:`capture` is the checkpoint's content (the file format and its validation live in
:mod:`igc.files.checkpoint`); a resume puts it back with
:meth:`TrainState.load_state_dict <igc.train.state.TrainState.load_state_dict>` in
:func:`igc.train.builders.build_state`, so a resumed run continues exactly where the saved
one stopped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from igc.files.checkpoint import TrainingRecord

if TYPE_CHECKING:  # the trainer imports this module
    from igc.train.trainer import Trainer


def capture(trainer: Trainer) -> dict[str, Any]:
    """The checkpoint table of ``trainer``: what its model is (name, options, data set,
    classes, normalisation, counts), the recipe, the sessions and the loader's position
    beside :meth:`TrainState.state_dict <igc.train.state.TrainState.state_dict>` (every
    rank must call it: the RNG states are gathered)."""
    state, s, r = trainer.state, trainer.splits, trainer.recipe
    return TrainingRecord(
        model=trainer.config.model, model_args=dict(r.model_args), data=s.name,
        classes=list(s.classes), num_classes=s.num_classes,
        in_chans=s.in_channels, image_size=s.image_size, mean=list(s.mean),
        std=list(s.std), params=trainer.params, macs=trainer.macs,
        sessions=trainer.all_sessions(),
        loader={"seed": r.seed, "epoch": state.epoch,
                "world_size": trainer.dist.world_size, "batch_size": r.batch_size},
        recipe=r.to_dict(), complete=state.epoch >= r.epochs,
        torch=str(torch.__version__), **state.state_dict(),
    ).to_table()


__all__ = ["capture"]
