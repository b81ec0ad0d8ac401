"""The training loop behind ``igc train``.

:func:`train` runs one training run into a run directory::

    run/recipe.toml      the resolved recipe (readable with --recipe run/recipe.toml)
    run/run.json         model, data set, command line, versions, world size
    run/metrics.jsonl    one JSON line per epoch
    run/checkpoint.pt    the latest checkpoint (every epoch, and on SIGINT/SIGTERM)
    run/summary.json     the final result (written when the last epoch is done)

Exactness: the data order and augmentation of every epoch depend only on (seed, epoch,
rank), and a checkpoint holds the weights, optimizer, schedule, scaler and RNG states plus
the position inside the epoch, so a resumed run on CPU ends with the same weights as an
uninterrupted one.
"""

from __future__ import annotations

import json
import math
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from igc.data import BatchAugment, DatasetSplits, make_loader
from igc.errors import IGCError
from igc.train import distributed as D
from igc.train.checkpoint import (
    CHECKPOINT,
    load_checkpoint,
    load_model_weights,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from igc.train.evaluate import EvalResult, autocast, eval_loader, evaluate
from igc.train.metrics import METRICS, SUMMARY, append_jsonl, duration, pct, truncate_metrics
from igc.train.optim import Schedule, build_optimizer
from igc.train.recipe import from_mapping
from igc.train.run import (
    Interrupted,
    RunConfig,
    RunResult,
    StopFlag,
    TrainingDiverged,
    build_model,
    check_run_dir,
    load_splits,
    pick_device,
    probe,
    thread_governor,
)

# ------------------------------------------------------------------------------ the trainer
Callback = Callable[["Trainer", str], None]


class Trainer:
    """One run: build everything, then :meth:`fit`. ``callbacks(trainer, event)`` are
    called with events ``"step"`` (after every optimizer step) and ``"epoch"``."""

    def __init__(self, config: RunConfig, splits: DatasetSplits | None = None,
                 callbacks: list[Callback] | None = None) -> None:
        self.config = config
        self.callbacks = list(callbacks or [])
        self.start_time = time.perf_counter()
        self.stop = StopFlag()
        self._splits = splits

    # -------------------------------------------------------------- setup
    def setup(self) -> None:
        c = self.config
        self.device = pick_device(c.device)
        self.dist = D.setup(self.device.type)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        self.main = self.dist.is_main
        self.quiet = c.quiet or not self.main

        D.agree(check_run_dir(c) if self.main else None, self.dist)
        self.resume_state: dict | None = None
        recipe = c.recipe
        if c.resume:
            loaded: tuple[dict | None, str | None] = (None, None)
            if self.main:
                try:
                    loaded = (load_checkpoint(c.out), None)
                except IGCError as exc:
                    loaded = (None, str(exc))
            state, error = D.broadcast(loaded, self.dist)
            if error:
                raise IGCError(error)
            self.resume_state = state
            if state["model"] != c.model:
                raise IGCError(f"the checkpoint in {c.out} is of model {state['model']!r}, "
                               f"not {c.model!r}; resume with --model {state['model']} or "
                               "choose another --out")
            if state.get("data") and state["data"] != c.data:
                raise IGCError(f"the checkpoint in {c.out} was trained on {state['data']}, "
                               f"not {c.data}; resume with --data {state['data']}")
            saved = from_mapping({k: v for k, v in state["recipe"].items() if k != "name"},
                                 state["recipe"].get("name", "custom"))
            from igc.train.recipe import override

            recipe = override(saved, c.overrides) if c.overrides else saved
            changed = [k for k, v in recipe.to_dict().items() if saved.to_dict()[k] != v]
            if changed and not self.quiet:
                print(f"igc: resuming with changed recipe keys: {', '.join(changed)}",
                      file=sys.stderr)
        self.recipe = r = recipe
        if r.batch_size % self.dist.world_size:
            raise IGCError(f"the global batch size {r.batch_size} does not split evenly over "
                           f"{self.dist.world_size} processes; use a multiple of "
                           f"{self.dist.world_size}")
        self.governor = thread_governor(r.threads, self.dist.local_world_size, self.device)
        self.threads = self.governor.max_threads
        self.amp = r.amp
        self.channels_last = r.channels_last

        splits = self._splits or load_splits(c.data, c.data_dir, c.download, r)
        self.splits = splits
        torch.manual_seed(r.seed)
        model = build_model(c.model, splits, r.model_args)
        self.params, self.macs = probe(model, splits, c.model)
        if self.dist.enabled and r.sync_bn:
            if self.device.type != "cuda":
                raise IGCError("--sync-bn needs CUDA: PyTorch's SyncBatchNorm does not run on "
                               "CPU; drop --sync-bn for CPU processes")
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.model = model.to(self.device)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)

        per_rank = r.batch_size // self.dist.world_size
        augment = BatchAugment(r.train_augment, splits.mean, splits.std)
        on_gpu = self.device if self.device.type == "cuda" else None
        self.train_loader = make_loader(
            splits.train, per_rank, shuffle=True, drop_last=r.drop_last, augment=augment,
            seed=r.seed, rank=self.dist.rank, world_size=self.dist.world_size,
            num_workers=c.num_workers, device=on_gpu)
        self.steps_per_epoch = len(self.train_loader)
        if self.steps_per_epoch == 0:
            raise IGCError(f"the training split has too few images ({len(splits.train)}) for "
                           f"one batch of {r.batch_size}; lower --batch-size")
        self.test_loader = eval_loader(splits, r.eval_augment, r.eval_batch_size, self.device,
                                       self.dist, c.num_workers)

        self.lr = r.scaled_lr()
        self.optimizer = build_optimizer(self.model, r, self.lr)
        self.schedule = Schedule(self.optimizer, r, self.lr, self.steps_per_epoch)
        use_scaler = self.amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=r.label_smoothing)

        self.epoch, self.step_in_epoch, self.global_step = 0, 0, 0
        self.partial = {"loss": 0.0, "correct": 0, "count": 0, "seconds": 0.0}
        self.train_seconds = 0.0
        self.images_seen = 0
        self.last_eval: EvalResult | None = None
        self.last_record: dict | None = None
        if self.resume_state is not None:
            self._restore(self.resume_state)

        self.net: nn.Module = self.model
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(self.net, device_ids=ids)
        if r.compile:
            self.net = torch.compile(self.net)

        if self.main:
            c.out.mkdir(parents=True, exist_ok=True)
            r.save(c.out / "recipe.toml")
            info = {"model": c.model, "data": splits.name, "model_args": r.model_args,
                    "params": self.params, "macs": self.macs, "recipe": r.name,
                    "command": c.command, "world_size": self.dist.world_size,
                    "device": str(self.device), "threads": self.threads,
                    "torch": str(torch.__version__), "lr": self.lr,
                    "steps_per_epoch": self.steps_per_epoch}
            (c.out / "run.json").write_text(json.dumps(info, indent=2) + "\n")
            if self.resume_state is not None:
                truncate_metrics(c.out / METRICS, self.epoch)

    def _restore(self, state: dict) -> None:
        load_model_weights(self.model, state, self.config.model)
        try:
            self.optimizer.load_state_dict(state["optimizer"])
        except (ValueError, KeyError) as exc:
            raise IGCError(f"the optimizer state in {state['path']} does not fit ({exc}); "
                           "the checkpoint belongs to another configuration") from None
        self.schedule.load_state_dict(state["schedule"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.epoch = int(state["epoch"])
        self.step_in_epoch = int(state.get("step_in_epoch", 0))
        self.global_step = int(state.get("global_step", 0))
        self.partial = dict(state.get("partial") or self.partial)
        self.train_seconds = float(state.get("train_seconds", 0.0))
        self.images_seen = int(state.get("images_seen", 0))
        self.last_record = state.get("last_record")
        rng = state.get("rng")
        if isinstance(rng, list):  # one entry per rank
            rng = rng[self.dist.rank] if self.dist.rank < len(rng) else rng[0]
        if rng:
            set_rng_state(rng)

    # -------------------------------------------------------------- checkpoints
    def state(self) -> dict[str, Any]:
        rngs = [rng_state()]
        if self.dist.enabled:
            import torch.distributed as dist

            gathered: list = [None] * self.dist.world_size
            dist.all_gather_object(gathered, rngs[0])
            rngs = gathered
        return {
            "model": self.config.model, "model_args": dict(self.recipe.model_args),
            "data": self.splits.name, "classes": list(self.splits.classes),
            "num_classes": self.splits.num_classes, "in_chans": self.splits.in_channels,
            "image_size": self.splits.image_size, "mean": list(self.splits.mean),
            "std": list(self.splits.std), "params": self.params, "macs": self.macs,
            "state_dict": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "rng": rngs, "epoch": self.epoch, "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step, "partial": dict(self.partial),
            "train_seconds": self.train_seconds, "images_seen": self.images_seen,
            "loader": {"seed": self.recipe.seed, "epoch": self.epoch,
                       "world_size": self.dist.world_size},
            "recipe": self.recipe.to_dict(), "last_record": self.last_record,
            "complete": self.epoch >= self.recipe.epochs, "torch": str(torch.__version__),
        }

    def save(self) -> None:
        state = self.state()  # every rank takes part (RNG states are gathered)
        if self.main:
            save_checkpoint(state, self.config.out / CHECKPOINT)

    # -------------------------------------------------------------- the loop
    def _emit(self, event: str) -> None:
        for callback in self.callbacks:
            callback(self, event)

    def _print(self, text: str) -> None:
        if not self.quiet:
            from tqdm import tqdm

            tqdm.write(text, file=sys.stderr)

    def _check_finite(self, loss_sum: torch.Tensor) -> None:
        value = loss_sum.item()
        if not math.isfinite(value):
            where = f"epoch {self.epoch + 1}, step {self.step_in_epoch}"
            kept = (f"the last good checkpoint (epoch {self.epoch}) is kept in "
                    f"{self.config.out / CHECKPOINT}" if self.epoch > 0 or
                    (self.config.out / CHECKPOINT).exists() else "no checkpoint was written")
            raise TrainingDiverged(f"the training loss became {value} at {where}; {kept}; "
                                   f"lower the learning rate (now {self.lr:g}) or enable "
                                   "warm-up and start again")

    def _stop(self) -> None:
        """Save and raise :class:`Interrupted` after a SIGINT/SIGTERM."""
        signum = self.stop.signum or signal.SIGINT
        self.save()
        code = 128 + int(signum)
        name = signal.Signals(signum).name
        c = self.config
        message = (f"{name}: stopped at epoch {self.epoch + 1}, step {self.step_in_epoch} of "
                   f"{self.steps_per_epoch}; checkpoint saved to {c.out / CHECKPOINT}; "
                   f"continue with: igc train --model {c.model} --data {c.data} "
                   f"--out {c.out} --resume")
        raise Interrupted(code, message)

    def train_epoch(self) -> dict[str, Any]:
        r, dev = self.recipe, self.device
        loader = self.train_loader
        loader.set_epoch(self.epoch)
        skip = self.step_in_epoch
        loss_sum = torch.tensor(self.partial["loss"], dtype=torch.float64, device=dev)
        correct = torch.tensor(self.partial["correct"], dtype=torch.int64, device=dev)
        count = int(self.partial["count"])
        seconds = float(self.partial["seconds"])
        self.net.train()
        bar = None
        if not self.quiet:
            from tqdm import tqdm

            bar = tqdm(total=self.steps_per_epoch, initial=skip, leave=False, file=sys.stderr,
                       desc=f"epoch {self.epoch + 1}/{r.epochs}", unit="step",
                       dynamic_ncols=True)
        tick = time.perf_counter()
        window_images, window_start = 0, tick
        try:
            for i, (x, y) in enumerate(loader):
                if i < skip:  # resumed mid-epoch: these batches were trained on already
                    continue
                if self.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
                with autocast(dev, self.amp):
                    logits = self.net(x)
                    loss = self.criterion(logits.float(), y)
                self.optimizer.zero_grad(set_to_none=True)
                self.scaler.scale(loss).backward()
                if r.grad_clip > 0:
                    self.scaler.unscale_(self.optimizer)
                    nn.utils.clip_grad_norm_(self.model.parameters(), r.grad_clip)
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.schedule.step()
                n = y.shape[0]
                loss_sum += loss.detach().double() * n
                correct += (logits.detach().argmax(1) == y).sum()
                count += n
                self.images_seen += n * self.dist.world_size
                self.governor.tick()
                self.step_in_epoch = i + 1
                self.global_step += 1
                window_images += n
                if self.step_in_epoch % r.log_every == 0 or \
                        self.step_in_epoch == self.steps_per_epoch:
                    self._check_finite(loss_sum)
                    if bar is not None:
                        now = time.perf_counter()
                        rate = window_images * self.dist.world_size / max(now - window_start,
                                                                           1e-9)
                        bar.set_postfix_str(
                            f"loss {loss_sum.item() / max(count, 1):.4f} "
                            f"acc {100.0 * correct.item() / max(count, 1):.2f}% "
                            f"{rate:,.0f} img/s lr {self.schedule.current:.4g}", refresh=False)
                        bar.update(self.step_in_epoch - bar.n)
                        window_images, window_start = 0, now
                self._emit("step")
                # a stop on the epoch's last step is handled after the epoch (eval + save)
                if self.step_in_epoch < self.steps_per_epoch and \
                        D.any_rank(self.stop.signum is not None, self.dist, dev):
                    self._check_finite(loss_sum)
                    if self.stop.signum is None:
                        self.stop.request(signal.SIGTERM)
                    now = time.perf_counter()
                    self.partial = {"loss": loss_sum.item(), "correct": int(correct.item()),
                                    "count": count, "seconds": seconds + now - tick}
                    self.train_seconds += now - tick
                    self._stop()
        finally:
            if bar is not None:
                bar.close()
        elapsed = time.perf_counter() - tick
        self._check_finite(loss_sum)
        seconds += elapsed
        self.train_seconds += elapsed
        totals = torch.stack([loss_sum, correct.double(), torch.tensor(
            float(count), dtype=torch.float64, device=dev)])
        D.all_reduce_sum(totals, self.dist)
        images = int(totals[2].item())
        self.partial = {"loss": 0.0, "correct": 0, "count": 0, "seconds": 0.0}
        return {"train_loss": totals[0].item() / max(images, 1),
                "train_acc": 100.0 * totals[1].item() / max(images, 1),
                "images": images, "seconds": seconds,
                "images_per_s": images / seconds if seconds > 0 else float("nan")}

    def fit(self) -> RunResult:
        r = self.recipe
        with self.stop:
            while self.epoch < r.epochs:
                lr = self.schedule.lr_at(self.epoch * self.steps_per_epoch)
                stats = self.train_epoch()
                self.epoch += 1
                self.step_in_epoch = 0
                last = self.epoch == r.epochs
                record: dict[str, Any] = {"epoch": self.epoch, **stats, "lr": lr}
                if last or (r.eval_every and self.epoch % r.eval_every == 0):
                    result = evaluate(self.model, self.test_loader, self.splits.num_classes,
                                      self.device, channels_last=self.channels_last,
                                      amp=self.amp, dist=self.dist)
                    self.last_eval = result
                    record.update({"test_loss": result.loss, "top1": result.top1,
                                   "top5": result.top5, "eval_seconds": result.seconds})
                else:
                    record.update({"test_loss": None, "top1": None, "top5": None,
                                   "eval_seconds": 0.0})
                record["step"] = self.global_step
                self.last_record = record
                self.save()
                if self.main:
                    append_jsonl(self.config.out / METRICS, record)
                self._print(self._epoch_line(record))
                self._emit("epoch")
                if D.any_rank(self.stop.signum is not None, self.dist, self.device):
                    self._stop_after_epoch()
        return self._finish()

    def _stop_after_epoch(self) -> None:
        c = self.config
        signum = self.stop.signum or signal.SIGINT
        raise Interrupted(128 + int(signum),
                          f"{signal.Signals(signum).name}: stopped after epoch {self.epoch}; "
                          f"checkpoint saved to {c.out / CHECKPOINT}; continue with: igc "
                          f"train --model {c.model} --data {c.data} --out {c.out} --resume")

    def _epoch_line(self, rec: dict[str, Any]) -> str:
        test = (f"test loss {rec['test_loss']:.4f} top-1 {pct(rec['top1'])} "
                f"top-5 {pct(rec['top5'])}  " if rec.get("top1") is not None else "")
        return (f"epoch {rec['epoch']:>3}/{self.recipe.epochs}  train loss "
                f"{rec['train_loss']:.4f} acc {pct(rec['train_acc'])}  {test}lr {rec['lr']:.4g}  "
                f"{duration(rec['seconds'])} {rec['images_per_s']:,.0f} img/s")

    def _finish(self) -> RunResult:
        rec = self.last_record or {}
        result = RunResult(
            model=self.config.model, data=self.splits.name, out=str(self.config.out),
            params=self.params, macs=self.macs, epochs=self.epoch, top1=rec.get("top1"),
            top5=rec.get("top5"), test_loss=rec.get("test_loss"),
            train_loss=rec.get("train_loss"), seconds=time.perf_counter() - self.start_time,
            train_seconds=self.train_seconds,
            images_per_s=self.images_seen / self.train_seconds if self.train_seconds else 0.0,
            seed=self.recipe.seed, world_size=self.dist.world_size, device=str(self.device),
            threads=self.threads, recipe=self.recipe.name,
            thread_steps={str(k): v for k, v in sorted(self.governor.steps.items())})
        if self.main:
            (self.config.out / SUMMARY).write_text(json.dumps(result.to_dict(), indent=2)
                                                   + "\n")
        return result


def train(config: RunConfig, splits: DatasetSplits | None = None,
          callbacks: list[Callback] | None = None,
          on_start: Callable[[Trainer], None] | None = None) -> RunResult:
    """Run (or resume) one training run; see :class:`Trainer`. ``splits`` replaces loading
    ``config.data``; ``on_start(trainer)`` runs on rank 0 after the setup. Raises
    :class:`Interrupted` after saving on SIGINT/SIGTERM and IGCError on bad input or
    divergence."""
    trainer = Trainer(config, splits, callbacks)
    threads = torch.get_num_threads()
    try:
        trainer.setup()
        if on_start is not None and trainer.main:
            on_start(trainer)
        return trainer.fit()
    finally:
        D.teardown(getattr(trainer, "dist", D.DistInfo()))
        torch.set_num_threads(threads)


__all__ = ["Interrupted", "RunConfig", "RunResult", "Trainer", "TrainingDiverged", "train"]
