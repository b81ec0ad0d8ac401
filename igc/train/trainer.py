"""The training loop behind ``igc train``.

:func:`train` runs one training run into a run folder (made with the first checkpoint)::

    run/.igc-run         marks the folder as igc's (see igc.files.run_dir)
    run/checkpoint.pt    the latest checkpoint (every epoch, and on SIGINT/SIGTERM)
    run/recipe.toml      the resolved recipe of that checkpoint (--recipe run/recipe.toml)
    run/run.json         model, data set and its files, command line, versions, world size,
                         the git commit of the code
    run/metrics.jsonl    one JSON line per epoch; every accuracy names its split:
                         ``val_loss``/``val_top1``/``val_top5`` (the validation split held
                         out of the training set, evaluated every ``eval_every`` epochs)
                         and ``test_loss``/``test_top1``/``test_top5`` (the test split:
                         after the last epoch only when there is a validation split, else
                         every ``eval_every`` epochs). ``top1``/``top5`` repeat the test
                         split's numbers under their older names (files written before the
                         validation split have only those); ``ema_``-prefixed: the same
                         for the moving average of the weights
    run/summary.json     the final result (written when the last epoch is done)

Exactness: the data order and augmentation of every epoch depend only on (seed, epoch,
rank), and a checkpoint holds the weights, their moving average, the optimizer, scaler and
RNG states, and the position inside the epoch (in images), so a resumed run on CPU ends
with the same weights as an uninterrupted one. The schedule is a ``LambdaLR`` rebuilt at
that position.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from igc.data import DatasetSplits
from igc.errors import IGCError
from igc.files.records import METRICS, RUN_INFO, read_run_info, truncate_metrics, write_json
from igc.files.run_dir import RECIPE
from igc.log import get_logger
from igc.provenance import git_commit
from igc.runtime import num_threads
from igc.train import builders as B
from igc.train import distributed as D
from igc.train.callbacks import CallbackFn, default_callbacks
from igc.train.checkpoint import CHECKPOINT, save_checkpoint
from igc.train.config import RunConfig
from igc.train.devices import thread_governor
from igc.train.evaluate import EvalResult, autocast, evaluate
from igc.train.optim import current_lr
from igc.train.result import RunResult
from igc.train.signals import Interrupted, StopFlag
from igc.train.snapshot import capture
from igc.train.state import EMPTY_PARTIAL

log = get_logger(__name__)

Callback = CallbackFn


class TrainingDiverged(IGCError):
    """The loss became NaN or infinite."""

_NO_TEST = {"test_loss": None, "test_top1": None, "test_top5": None, "top1": None,
            "top5": None, "eval_seconds": 0.0}
_NO_VAL = {"val_loss": None, "val_top1": None, "val_top5": None}


class Trainer:
    """One run: :meth:`setup` builds everything (:mod:`igc.train.builders`): the run's
    fixed set-up as attributes (``config``, ``recipe``, ``splits``, ``dist``, loaders) and
    what training changes as :attr:`state` (a :class:`~igc.train.state.TrainState`); then
    :meth:`fit`. ``callbacks(trainer, event)`` get the events listed in
    :mod:`igc.train.callbacks`, after the trainer's own."""

    def __init__(self, config: RunConfig, splits: DatasetSplits | None = None,
                 callbacks: list[Callback] | None = None) -> None:
        self.config = config
        self.user_callbacks = list(callbacks or [])
        self.callbacks: list[Callback] = []
        self.start_time = time.perf_counter()
        self.stop = StopFlag()
        self._splits = splits
        self.resume_state: dict | None = None
        self.result: RunResult | None = None
        self.evaluated = False
        self.progress: dict[str, float] = {}
        self._meta_written = False

    # -------------------------------------------------------------- setup
    def setup(self) -> None:
        """Build the run from its configuration; nothing is written to disk yet."""
        c = self.config.check()
        self.device, self.dist = B.build_process(c)
        self.main = self.dist.is_main
        self.quiet = c.quiet or not self.main
        self.folder = B.open_run_folder(c, self.dist)
        self.resume_state = B.load_resume_state(c, self.dist)
        self.recipe, self.changes = B.build_recipe(c, self.resume_state, self.dist)
        r = self.recipe
        self.governor = thread_governor(r.threads, self.dist.local_world_size, self.device,
                                        r.adaptive_threads)
        self.threads = self.governor.current
        self.amp, self.channels_last = r.amp, r.channels_last
        self.splits, val_images = B.build_splits(c, r, self._splits)
        if val_images != r.val_images:  # recipe.toml records the number resolved
            self.recipe = r = dataclasses.replace(r, val_images=val_images)
        model, self.params, self.macs = B.build_network(c, self.splits, r, self.device,
                                                        self.dist)
        self.train_loader, self.test_loader = B.build_loaders(c, self.splits, r, self.device,
                                                              self.dist)
        self.val_loader = B.build_val_loader(c, self.splits, r, self.device, self.dist)
        self.steps_per_epoch = len(self.train_loader)
        opt = B.build_optimiser(model, r, self.device)
        self.criterion, self.lr = opt.criterion, opt.lr
        self.last_eval: EvalResult | None = None
        self.state = B.build_state(model, opt, r, self.dist, self.steps_per_epoch,
                                   self.resume_state)
        self.sessions = earlier_sessions(self.resume_state, self._recorded_commit())
        self.session = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        "commit": git_commit(), "threads": self.threads, "seconds": 0.0}
        self.net: nn.Module = model
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            # Gradients are views of DDP's buckets, laid out as the parameters
            # (channels-last included) and kept (zeroed, not freed, each step): no copy
            # into the buckets and no "Grad strides do not match bucket view strides".
            for p in model.parameters():
                if p.requires_grad and p.grad is None:
                    p.grad = torch.zeros_like(p)
            self.net = nn.parallel.DistributedDataParallel(self.net, device_ids=ids,
                                                           gradient_as_bucket_view=True)
        if r.compile:
            self.net = torch.compile(self.net)
        self.callbacks = [*default_callbacks(self.quiet), *self.user_callbacks]

    # -------------------------------------------------------------- checkpoints
    def checkpoint(self) -> dict[str, Any]:
        """Everything the checkpoint holds (every rank takes part: RNG states are
        gathered); see :func:`igc.train.snapshot.capture`."""
        return capture(self)

    def _recorded_commit(self) -> str | None:
        """The commit in the run folder's ``run.json`` before this session rewrites it
        (None when absent or unreadable)."""
        if self.resume_state is None or not self.main:
            return None
        try:
            commit = read_run_info(self.config.out).get("commit")
        except IGCError:
            return None
        return commit if isinstance(commit, str) else None

    def all_sessions(self) -> list[dict[str, Any]]:
        """Every session that trained this run, this one last with its seconds so far
        (``threads``: the most torch threads it used)."""
        used = max(self.governor.steps, default=self.threads)
        now = {**self.session, "seconds": time.perf_counter() - self.start_time,
               "threads": max(used, self.threads)}
        return [*self.sessions, now]

    def save(self) -> None:
        """Write the checkpoint (rank 0), then, once per process, the run's metadata that
        matches it (``recipe.toml``, ``run.json``)."""
        state = self.checkpoint()
        if not self.main:
            return
        assert self.folder is not None
        self.folder.begin()
        save_checkpoint(state, self.config.out / CHECKPOINT)
        if not self._meta_written:
            self.recipe.save(self.config.out / RECIPE)
            write_json(self.config.out / RUN_INFO, self.run_info(), "run info")
            self._meta_written = True

    def run_info(self) -> dict[str, Any]:
        """The content of ``run.json``."""
        c, r = self.config, self.recipe
        return {"model": c.model, "data": self.splits.name, "data_dir": c.data_dir,
                "data_files": self.splits.origin,
                "model_args": r.model_args, "params": self.params, "macs": self.macs,
                "recipe": r.name, "command": c.command, "world_size": self.dist.world_size,
                "device": str(self.device), "threads": self.threads,
                "torch": str(torch.__version__), "lr": self.lr, "ema": r.ema,
                "steps_per_epoch": self.steps_per_epoch, "commit": git_commit(),
                "commits": session_commits(self.all_sessions()),
                "train_images": len(self.splits.train), "val_images": r.val_images,
                "val_seed": r.val_seed, "test_images": len(self.splits.test)}

    # -------------------------------------------------------------- the loop
    def _emit(self, event: str) -> None:
        for callback in self.callbacks:
            callback(self, event)

    def close(self) -> None:
        """Close the callbacks (progress bars) and release the run folder's lock, also
        after an error."""
        try:
            for callback in self.callbacks:
                closer = getattr(callback, "close", None)
                if closer is not None:
                    closer()
        finally:
            folder = getattr(self, "folder", None)
            if folder is not None:
                folder.release()

    def _check_finite(self, loss_sum: torch.Tensor) -> None:
        value = loss_sum.item()
        if not math.isfinite(value):
            epoch = self.state.epoch
            where = f"epoch {epoch + 1}, step {self.state.step_in_epoch}"
            ckpt = self.config.out / CHECKPOINT
            kept = (f"the last good checkpoint (epoch {epoch}) is kept in {ckpt}"
                    if epoch > 0 or ckpt.exists() else "no checkpoint was written")
            raise TrainingDiverged(f"the training loss became {value} at {where}; {kept}; "
                                   f"lower the learning rate (now {self.lr:g}) or enable "
                                   "warm-up and start again")

    def _interrupted(self, where: str, saved: bool = True) -> Interrupted:
        signum = self.stop.signum or signal.SIGINT
        saved_to = f"; checkpoint saved to {self.config.out / CHECKPOINT}" if saved else ""
        return Interrupted(128 + int(signum),
                           f"{signal.Signals(signum).name}: stopped {where}{saved_to}; "
                           f"continue with: {self.config.resume_command()}")

    @contextlib.contextmanager
    def _signal_failures(self) -> Iterator[None]:
        """A step that fails *because* SIGINT/SIGTERM arrived (the signal killed a compiler
        that ``torch.compile`` was running, say) ends as :class:`Interrupted` in one line,
        not as that step's traceback; the last checkpoint is kept as it was."""
        try:
            yield
        except (Interrupted, IGCError, KeyboardInterrupt):
            raise
        except Exception as exc:
            if self.stop.signum is None:
                raise
            ckpt = self.config.out / CHECKPOINT
            kept = f"the checkpoint in {ckpt} is kept" if ckpt.exists() else \
                "no checkpoint was written"
            raise self._interrupted(
                f"in epoch {self.state.epoch + 1}, which it broke off "
                f"({type(exc).__name__}); {kept}", saved=False) from None

    def train_epoch(self) -> dict[str, Any]:
        """Train the rest of the current epoch; returns its training statistics."""
        r, dev, st = self.recipe, self.device, self.state
        scheduler = st.scheduler
        assert scheduler is not None  # positioned by build_state
        loader = self.train_loader
        loader.set_epoch(st.epoch)
        skip = st.step_in_epoch
        loss_sum = torch.tensor(st.partial["loss"], dtype=torch.float64, device=dev)
        correct = torch.tensor(st.partial["correct"], dtype=torch.int64, device=dev)
        count = int(st.partial["count"])
        seconds = float(st.partial["seconds"])
        self.net.train()
        self._emit("epoch_start")
        tick = time.perf_counter()
        window_images, window_start = 0, tick
        for i, (x, y) in enumerate(loader):
            if i < skip:  # resumed mid-epoch: these batches were trained on already
                continue
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
            with autocast(dev, self.amp):
                logits = self.net(x)
                loss = self.criterion(logits.float(), y)
            st.optimizer.zero_grad(set_to_none=not self.dist.enabled)
            st.scaler.scale(loss).backward()
            if r.grad_clip > 0:
                st.scaler.unscale_(st.optimizer)
                nn.utils.clip_grad_norm_(st.model.parameters(), r.grad_clip)
            st.scaler.step(st.optimizer)
            st.scaler.update()
            scheduler.step()
            if st.ema is not None:
                st.ema.update_parameters(st.model)
            n = y.shape[0]
            loss_sum += loss.detach().double() * n
            correct += (logits.detach().argmax(1) == y).sum()
            count += n
            st.images_seen += n * self.dist.world_size
            self.governor.tick()
            st.step_in_epoch = i + 1
            st.global_step += 1
            window_images += n
            if st.step_in_epoch % r.log_every == 0 or \
                    st.step_in_epoch == self.steps_per_epoch:
                self._check_finite(loss_sum)
                now = time.perf_counter()
                self.progress = {
                    "loss": loss_sum.item() / max(count, 1),
                    "acc": 100.0 * correct.item() / max(count, 1),
                    "images_per_s": window_images * self.dist.world_size
                    / max(now - window_start, 1e-9), "lr": current_lr(scheduler)}
                self._emit("log")
                window_images, window_start = 0, now
            self._emit("step")
            # a stop on the epoch's last step is handled after the epoch (save + eval)
            if st.step_in_epoch < self.steps_per_epoch and \
                    D.any_rank(self.stop.signum is not None, self.dist, dev):
                self._check_finite(loss_sum)
                if self.stop.signum is None:
                    self.stop.request(signal.SIGTERM)
                now = time.perf_counter()
                st.partial = {"loss": loss_sum.item(), "correct": int(correct.item()),
                              "count": count, "seconds": seconds + now - tick}
                st.train_seconds += now - tick
                self._emit("stop")
                raise self._interrupted(f"at epoch {st.epoch + 1}, step "
                                        f"{st.step_in_epoch} of {self.steps_per_epoch}")
        elapsed = time.perf_counter() - tick
        self._check_finite(loss_sum)
        seconds += elapsed
        st.train_seconds += elapsed
        totals = torch.stack([loss_sum, correct.double(), torch.tensor(
            float(count), dtype=torch.float64, device=dev)])
        D.all_reduce_sum(totals, self.dist)
        images = int(totals[2].item())
        st.partial = dict(EMPTY_PARTIAL)
        return {"train_loss": totals[0].item() / max(images, 1),
                "train_acc": 100.0 * totals[1].item() / max(images, 1),
                "images": images, "seconds": seconds,
                "images_per_s": images / seconds if seconds > 0 else float("nan")}

    def _evaluate(self, model: nn.Module, split: str = "test") -> EvalResult:
        loader = self.val_loader if split == "val" else self.test_loader
        return evaluate(model, loader, self.splits.num_classes, self.device,
                        channels_last=self.channels_last, amp=self.amp, dist=self.dist)

    def _evaluate_split(self, record: dict[str, Any], split: str) -> None:
        """Evaluate the weights (and their average) on ``split`` into ``record``."""
        result = self._evaluate(self.state.model, split)
        record[f"{split}_loss"] = result.loss
        record[f"{split}_top1"], record[f"{split}_top5"] = result.top1, result.top5
        record["eval_seconds"] = record.get("eval_seconds", 0.0) + result.seconds
        if split == "test":
            self.last_eval = result
            record.update({"top1": result.top1, "top5": result.top5})
        if self.state.ema is not None:
            averaged = self._evaluate(self.state.ema.module, split)
            if split == "test":
                record.update({"ema_test_loss": averaged.loss, "ema_top1": averaged.top1,
                               "ema_top5": averaged.top5})
            else:
                record.update({"ema_val_loss": averaged.loss, "ema_val_top1": averaged.top1,
                               "ema_val_top5": averaged.top5})

    def _complete_epoch(self) -> None:
        """Evaluate the epoch just trained if due (after its checkpoint): on the
        validation split when there is one, on the test split after the last epoch (or
        whenever there is no validation split); then emit ``epoch`` with the complete
        record."""
        st = self.state
        record = dict(st.last_record or {})
        self.evaluated = st.pending_eval
        if st.pending_eval:
            record["eval_seconds"] = 0.0
            if self.val_loader is not None:
                self._evaluate_split(record, "val")
            if self.val_loader is None or st.epoch == self.recipe.epochs:
                self._evaluate_split(record, "test")
        st.pending_eval = False
        st.last_record = record
        self._emit("epoch")

    def _reconcile_metrics(self) -> None:
        """On resume: drop ``metrics.jsonl`` lines the checkpoint does not cover (a torn
        last line, or the record of an epoch whose evaluation is still pending)."""
        if self.main and self.resume_state is not None:
            truncate_metrics(self.config.out / METRICS,
                             self.state.epoch - (1 if self.state.pending_eval else 0))

    def fit(self) -> RunResult:
        """Train the remaining epochs; saves and raises :class:`Interrupted` on a stop."""
        r, st = self.recipe, self.state
        assert st.scheduler is not None  # positioned by build_state
        with self.stop, self._signal_failures():
            self._reconcile_metrics()  # a damaged metrics file: refused before any report
            if self.main and self.changes:  # reported even with --quiet
                log.warning("igc train: resuming %s at epoch %d with changes: %s",
                            self.config.out, st.epoch + 1, "; ".join(self.changes))
            self._emit("start")
            if st.pending_eval:  # the checkpoint was saved, its evaluation failed
                self._complete_epoch()
            while st.epoch < r.epochs:
                lr = self.lr * st.scheduler.lr_lambdas[0](st.epoch * self.steps_per_epoch)
                stats = self.train_epoch()
                st.epoch += 1
                st.step_in_epoch = 0
                due = st.epoch == r.epochs or bool(r.eval_every and
                                                   st.epoch % r.eval_every == 0)
                st.last_record = {"epoch": st.epoch, **stats, "lr": lr, **_NO_TEST,
                                  **(_NO_VAL if self.val_loader is not None else {}),
                                  "step": st.global_step}
                st.pending_eval = due
                self._emit("trained")  # the checkpoint first: evaluation cannot lose it
                self._complete_epoch()
                if D.any_rank(self.stop.signum is not None, self.dist, self.device):
                    raise self._interrupted(f"after epoch {st.epoch}")
        self.result = self._finish()
        self._emit("end")
        return self.result

    def _finish(self) -> RunResult:
        st = self.state
        rec = st.last_record or {}
        sessions = self.all_sessions()
        return RunResult(
            model=self.config.model, data=self.splits.name, out=str(self.config.out),
            params=self.params, macs=self.macs, epochs=st.epoch, top1=rec.get("top1"),
            top5=rec.get("top5"), test_loss=rec.get("test_loss"),
            train_loss=rec.get("train_loss"),
            seconds=sum(float(s.get("seconds") or 0.0) for s in sessions),
            train_seconds=st.train_seconds,
            images_per_s=st.images_seen / st.train_seconds if st.train_seconds else 0.0,
            seed=self.recipe.seed, world_size=self.dist.world_size, device=str(self.device),
            threads=self.threads, recipe=self.recipe.name,
            thread_steps={str(k): v for k, v in sorted(self.governor.steps.items())},
            ema_top1=rec.get("ema_top1"), ema_top5=rec.get("ema_top5"),
            val_images=self.recipe.val_images, val_top1=rec.get("val_top1"),
            val_top5=rec.get("val_top5"), val_loss=rec.get("val_loss"),
            ema_val_top1=rec.get("ema_val_top1"), session_seconds=sessions[-1]["seconds"],
            sessions=sessions, commits=session_commits(sessions))


def earlier_sessions(state: dict | None, commit: str | None = None) -> list[dict[str, Any]]:
    """The sessions a checkpoint says trained the run before this one; for a checkpoint
    older than that record, one entry with its training seconds (the per-epoch times,
    summed over its sessions; their evaluation and start-up were not recorded) and
    ``commit`` (the one its ``run.json`` names: that of its last session; None if
    unknown)."""
    if state is None:
        return []
    if isinstance(state.get("sessions"), list):
        return [dict(s) for s in state["sessions"]]
    return [{"started": None, "commit": commit, "threads": None,
             "seconds": float(state.get("train_seconds", 0.0)),
             "derived": "training seconds of earlier sessions; evaluation not recorded"}]


def session_commits(sessions: list[dict[str, Any]]) -> list[str]:
    """The distinct commits of ``sessions``, in the order they first trained the run."""
    return list(dict.fromkeys(str(s["commit"]) for s in sessions if s.get("commit")))


def train(config: RunConfig, splits: DatasetSplits | None = None,
          callbacks: list[Callback] | None = None,
          on_start: Callable[[Trainer], None] | None = None) -> RunResult:
    """Run (or resume) one training run; see :class:`Trainer`. ``splits`` replaces loading
    ``config.data``; ``on_start(trainer)`` runs on rank 0 after the setup. Raises
    :class:`Interrupted` after saving on SIGINT/SIGTERM and IGCError on bad input or
    divergence. The caller's torch thread count is restored."""
    trainer = Trainer(config, splits, callbacks)
    with num_threads():
        try:
            trainer.setup()
            if on_start is not None and trainer.main:
                on_start(trainer)
            result = trainer.fit()
            D.barrier(trainer.dist)  # no rank leaves the group while another still works
            return result
        finally:
            trainer.close()
            D.teardown(getattr(trainer, "dist", D.DistInfo()))


__all__ = ["Interrupted", "RunConfig", "RunResult", "Trainer", "TrainingDiverged", "train"]
