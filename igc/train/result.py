"""The outcome of a training run (:class:`RunResult`, also ``summary.json``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from igc.formatting import count, duration, pct


@dataclass
class RunResult:
    """The outcome of :func:`train` (also written to ``summary.json``): ``top1``,
    ``top5`` and ``test_loss`` are the test split's after the last epoch; ``val_*`` the
    validation split's (``val_images`` held out of the training set; None without one).
    ``seconds`` is the wall time summed over every session that trained the run (a resumed
    run has several: ``sessions``, each with its commit, threads and seconds;
    ``session_seconds`` the last one's); ``commits``: every commit that trained part of it."""

    model: str
    data: str
    out: str
    params: int
    macs: int | None
    epochs: int
    top1: float | None
    top5: float | None
    test_loss: float | None
    train_loss: float | None
    seconds: float
    train_seconds: float
    images_per_s: float
    seed: int
    world_size: int
    device: str
    threads: int
    recipe: str = ""
    thread_steps: dict = field(default_factory=dict)
    ema_top1: float | None = None
    ema_top5: float | None = None
    val_images: int = 0
    val_top1: float | None = None
    val_top5: float | None = None
    val_loss: float | None = None
    ema_val_top1: float | None = None
    session_seconds: float | None = None
    sessions: list = field(default_factory=list)
    commits: list = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def summary_line(self) -> str:
        val = (f"; validation {pct(self.val_top1)} on {self.val_images:,} held-out images"
               if self.val_top1 is not None else "")
        return (f"{self.model} on {self.data}: {self.params:,} parameters, "
                f"{count(self.macs)} multiply-adds, top-1 {pct(self.top1)} (test{val}), "
                f"top-5 {pct(self.top5)}, {self.epochs} epochs in {duration(self.seconds)} "
                f"(training {duration(self.train_seconds)}), "
                f"{self.images_per_s:,.0f} images/s")


__all__ = ["RunResult"]
