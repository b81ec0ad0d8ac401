"""What happens around the training loop, as callbacks on the trainer's events.

A callback is any callable ``callback(trainer, event)``. :class:`~igc.train.trainer.Trainer`
emits, in order:

=============  ============================================================================
event          when
=============  ============================================================================
``start``      after the set-up, before the first step
``epoch_start`` before the first step of an epoch (also a resumed, half-done one)
``step``       after every optimizer step
``log``        every ``log_every`` steps and at the end of an epoch (``trainer.progress``)
``trained``    an epoch's steps are done (``trainer.state.epoch`` counts it; not evaluated)
``epoch``      the epoch's record is complete (``trainer.state.last_record``, evaluated if
               due)
``stop``       SIGINT/SIGTERM: the run saves and stops
``end``        the last epoch is done (``trainer.result``)
=============  ============================================================================

What training changes (model, optimizer, position, the last record) is
``trainer.state``, a :class:`~igc.train.state.TrainState`; the rest of the trainer is the
run's fixed set-up (``config``, ``recipe``, ``splits``, ``dist``, ``steps_per_epoch``).
The trainer's own duties are callbacks too, run before the user's: :class:`Checkpointer`
(save after training an epoch *before* evaluating it, so a failing evaluation never loses
a trained epoch; again after the evaluation; on a stop), :class:`MetricsLog`
(``metrics.jsonl``, ``summary.json``) and :class:`Progress` (the bar and the epoch lines;
absent with ``quiet``). :class:`Callback` dispatches an event to its ``on_<event>`` method.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from igc.files.records import METRICS, SUMMARY, append_jsonl, write_json
from igc.formatting import count, duration, pct
from igc.log import get_logger

if TYPE_CHECKING:  # the trainer imports this module
    from igc.train.trainer import Trainer

log = get_logger(__name__)

CallbackFn = Callable[["Trainer", str], None]


class Callback:
    """Base class: ``callback(trainer, event)`` calls ``self.on_<event>(trainer)`` if it
    exists; :meth:`close` runs when the run ends, also on an error."""

    def __call__(self, trainer: Trainer, event: str) -> None:
        handler = getattr(self, f"on_{event}", None)
        if handler is not None:
            handler(trainer)

    def close(self) -> None:
        """Release what the callback holds (a progress bar)."""


class Checkpointer(Callback):
    """Save the checkpoint: after an epoch's steps, after its evaluation, on a stop."""

    def on_trained(self, trainer: Trainer) -> None:
        trainer.save()

    def on_epoch(self, trainer: Trainer) -> None:
        if trainer.evaluated:  # the record gained the test results since the last save
            trainer.save()

    def on_stop(self, trainer: Trainer) -> None:
        trainer.save()


class MetricsLog(Callback):
    """Append each epoch's record to ``metrics.jsonl``; write ``summary.json`` at the end
    (rank 0 only)."""

    def on_epoch(self, trainer: Trainer) -> None:
        record = trainer.state.last_record
        if trainer.main and record is not None:
            append_jsonl(trainer.config.out / METRICS, record)

    def on_end(self, trainer: Trainer) -> None:
        if trainer.main and trainer.result is not None:
            write_json(trainer.config.out / SUMMARY, trainer.result.to_dict(), "summary")


class Progress(Callback):
    """The header line, a progress bar per epoch (loss, accuracy, images/s, lr) and one
    line per epoch, on stderr."""

    def __init__(self) -> None:
        self.bar: Any = None

    def on_start(self, trainer: Trainer) -> None:
        log.info(header(trainer))

    def on_epoch_start(self, trainer: Trainer) -> None:
        self.close()
        state = trainer.state
        self.bar = tqdm(total=trainer.steps_per_epoch, initial=state.step_in_epoch,
                        leave=False, file=sys.stderr, unit="step", dynamic_ncols=True,
                        desc=f"epoch {state.epoch + 1}/{trainer.recipe.epochs}")

    def on_log(self, trainer: Trainer) -> None:
        if self.bar is not None:
            p = trainer.progress
            self.bar.set_postfix_str(
                f"loss {p['loss']:.4f} acc {p['acc']:.2f}% {p['images_per_s']:,.0f} img/s "
                f"lr {p['lr']:.4g}", refresh=False)
            self.bar.update(trainer.state.step_in_epoch - self.bar.n)

    def on_trained(self, trainer: Trainer) -> None:
        self.close()

    def on_epoch(self, trainer: Trainer) -> None:
        self.close()
        log.info(epoch_line(trainer.state.last_record or {}, trainer.recipe.epochs))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def header(trainer: Trainer) -> str:
    """One line before training: model, data, recipe, device, threads, folder."""
    r, s = trainer.recipe, trainer.splits
    state = (f"resuming at epoch {trainer.state.epoch + 1}" if trainer.resume_state
             else "new run")
    origin = f" from {s.origin}" if s.origin else ""
    ema = f", EMA {r.ema_decay:g}" if r.ema else ""
    return (f"igc train: {trainer.config.model} ({trainer.params:,} parameters, "
            f"{count(trainer.macs)} multiply-adds) on {s.name}{origin} ({len(s.train):,} "
            f"train / {len(s.val) if s.val is not None else 0:,} validation / "
            f"{len(s.test):,} test images); recipe {r.name}: {r.epochs} epochs, batch "
            f"{r.batch_size}, lr {trainer.lr:g} {r.schedule}{ema}; {trainer.device}, "
            f"{trainer.governor.describe()} x {trainer.dist.world_size} process(es); "
            f"{state} in {trainer.config.out}")


def epoch_line(rec: dict[str, Any], epochs: int) -> str:
    """``epoch   3/15  train loss … acc …  val loss … top-1 …  test loss … top-1 … top-5 …
    lr …  12.3s 1,676 img/s`` (the splits evaluated this epoch)."""
    test = (f"val loss {rec['val_loss']:.4f} top-1 {pct(rec['val_top1'])}  "
            if rec.get("val_top1") is not None else "")
    test += (f"test loss {rec['test_loss']:.4f} top-1 {pct(rec['top1'])} "
             f"top-5 {pct(rec['top5'])}  " if rec.get("top1") is not None else "")
    if rec.get("ema_val_top1") is not None:
        test += f"EMA val top-1 {pct(rec['ema_val_top1'])}  "
    if rec.get("ema_top1") is not None:
        test += f"EMA top-1 {pct(rec['ema_top1'])}  "
    return (f"epoch {rec.get('epoch', 0):>3}/{epochs}  train loss "
            f"{rec.get('train_loss', float('nan')):.4f} acc {pct(rec.get('train_acc'))}  "
            f"{test}lr {rec.get('lr', float('nan')):.4g}  "
            f"{duration(rec.get('seconds', float('nan')))} "
            f"{rec.get('images_per_s', float('nan')):,.0f} img/s")


def default_callbacks(quiet: bool) -> list[Callback]:
    """The trainer's own callbacks, in the order they run."""
    own: list[Callback] = [MetricsLog(), Checkpointer()]
    return own if quiet else [*own, Progress()]


__all__ = ["Callback", "CallbackFn", "Checkpointer", "MetricsLog", "Progress",
           "default_callbacks", "epoch_line", "header"]
