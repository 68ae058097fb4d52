"""The training loop.

``train(cfg)`` builds everything from a validated config, trains for
``Global.epochs`` (or ``Global.iterations``), validates on the held-out
``DataLoader.Eval`` split after every epoch, and writes the run directory::

    <Global.output_dir>/<run name>/
        config.yaml      the resolved config
        metrics.jsonl    one JSON line per epoch (logger.EPOCH_KEYS)
        train.log        what was printed, with times
        curves.png       loss and accuracy (with matplotlib)
        checkpoints/last.pdckpt, checkpoints/best.pdckpt
        vdl/             VisualDL scalars (with visualdl)

Repeatability: every epoch reseeds Python, NumPy and paddle from ``(seed,
epoch, rank)`` and shuffles with a seed from ``(seed, epoch)``; mixing draws
from its own generator seeded the same way. So a CPU run repeats exactly, and
``resume`` from the checkpoint of epoch k continues as if never stopped (the
test kills a run with SIGKILL and compares ``metrics.jsonl``).

The test split (``DataLoader.Test``) is never read here: ``tools/eval.py``
evaluates it once training is over.
"""
import math
import os
import time
import warnings

import numpy as np
import paddle

from .. import kernels
from ..data.datasets import check_same_classes
from ..data.loader import build_loader, derive_seed
from ..data.mixing import build_batch_transforms
from ..errors import CheckpointError, ConfigError, DataError, TrainingError
from . import distributed, faults, launch
from .builder import build_model, resolve_num_classes
from .device import cpu_threads, seed_everything, setup_device, setup_kernels
from .checkpoint import (load_checkpoint, load_optimizer_state, load_weights, optimizer_state, rng_state,
                         remove_stale_temporaries, save_checkpoints, set_rng_state)
from .config import save_config
from .evaluator import autocast, eval_topk, evaluate
from .logger import Progress, RunWriter, format_duration, get_logger, read_metrics, split_label
from .losses import TrainLoss, to_soft_targets
from .metrics import MetricSums, topk_correct
from .optim import ModelEMA, build_lr_scheduler, build_optimizer, swap_weights
from .runlock import FolderLock

__all__ = ["train", "Trainer", "resolve_resume_path", "new_run_dir",
           "run_dir_of", "lock_run_dir", "starts_over"]


def new_run_dir(output_dir, name):
    """``output_dir/name``, or ``name-2``, ``name-3``... when that one is in
    use: a new run never overwrites an old one's files."""
    base = os.path.join(output_dir, name)
    path, i = base, 2
    while os.path.exists(path) and os.listdir(path):
        path = "%s-%d" % (base, i)
        i += 1
    os.makedirs(os.path.join(path, "checkpoints"), exist_ok=True)
    return path


def resolve_resume_path(path):
    """``--resume`` takes a checkpoint file or a run directory."""
    if path and os.path.isdir(path):
        return os.path.join(path, "checkpoints", "last.pdckpt")
    return path


def lock_run_dir(run_dir):
    """Hold ``run_dir`` for this process (see ``runlock``): a second process
    on a run directory in use is refused with one line."""
    return FolderLock(run_dir, "run directory", "wait for it to end or stop it (its checkpoints are kept) "
                      "and resume then; a new run needs no --resume").acquire()


def starts_over(resume):
    """``--resume RUN`` of a run killed before its first checkpoint: its
    directory has the config but no checkpoint, so it starts over there."""
    return bool(resume and os.path.isdir(resume) and os.path.isfile(os.path.join(resume, "config.yaml"))
                and not os.path.isfile(resolve_resume_path(resume)))


def run_dir_of(ckpt_path):
    folder = os.path.dirname(os.path.abspath(ckpt_path))
    return os.path.dirname(folder) if os.path.basename(folder) == "checkpoints" else folder


def _better(name, new, old):
    if new is None or (isinstance(new, float) and math.isnan(new)):
        return False
    if old is None:
        return True
    return new < old if name == "val_loss" else new > old


class Trainer(object):
    """One training run. Build with :func:`train`; ``fit()`` runs it."""

    def __init__(self, cfg, run_dir=None, resume_state=None, resume_path=None, run_name=None):
        """``run_dir``: the directory of the run being resumed; a new run
        gets ``<Global.output_dir>/<run_name>`` (made once everything built,
        so a bad config or missing data leaves nothing behind)."""
        self.cfg = cfg
        g = cfg["Global"]
        self.rank, self.world = distributed.rank(), distributed.world_size()
        self.main = self.rank == 0
        self.device, self.amp = setup_device(cfg)
        self.kernels, self._kernel_note = setup_kernels(cfg, self.device)
        self.seed = g["seed"]
        seed_everything(self.seed)

        loaders = cfg["DataLoader"]
        if not loaders.get("Train"):
            raise ConfigError("training needs a DataLoader.Train section")
        if not loaders.get("Eval"):
            raise ConfigError("training needs a DataLoader.Eval section (a held-out split, e.g. "
                              "subset: val with val_size: 5000), so the best epoch is not chosen on test data")
        cache = {}
        self.train_loader, self.train_sampler, self.train_set = build_loader(
            launch.split_batch(cfg, self.world), "DataLoader.Train", self.seed, self.rank, self.world, training=True, cache=cache)
        self.val_loader, _, self.val_set = build_loader(
            loaders["Eval"], "DataLoader.Eval", self.seed, self.rank, self.world, training=False, cache=cache)
        check_same_classes(self.train_set.class_names, self.val_set.class_names, "DataLoader.Train",
                           "DataLoader.Eval")
        self.mixer = build_batch_transforms(loaders["Train"]["batch_transforms"])
        self.iters_per_epoch = len(self.train_sampler)
        self.global_batch = launch.split_batch(cfg, self.world)["batch_size"] * self.world
        if self.iters_per_epoch == 0:
            raise DataError("DataLoader.Train has %d images, fewer than one batch of %d (drop_last is on)"
                            % (len(self.train_set), loaders["Train"]["batch_size"]))
        self.total_iters = g["iterations"] or g["epochs"] * self.iters_per_epoch
        self.epochs = -(-self.total_iters // self.iters_per_epoch)
        g["epochs"] = self.epochs
        cfg["Arch"]["num_classes"] = self.num_classes = resolve_num_classes(cfg)

        self.model = build_model(cfg)
        if g["pretrained_model"] and resume_state is None:
            load_weights(self.model, g["pretrained_model"])
        self.unit = cfg["Optimizer"]["lr"]["unit"]
        self.scheduler = build_lr_scheduler(cfg, self.iters_per_epoch, self.total_iters)
        self.optimizer = build_optimizer(cfg, self.model, self.scheduler)
        self.loss_fn = TrainLoss.from_config(cfg)
        self.topk = eval_topk(cfg)
        decay = cfg["EMA"]["decay"]
        self.ema = ModelEMA(self.model, decay) if decay else None
        self.amp_level = cfg["AMP"]["level"]
        self.scaler = None
        if self.amp:
            self.scaler = paddle.amp.GradScaler(init_loss_scaling=cfg["AMP"]["init_loss_scaling"])
            if self.amp_level == "O2":
                self.model, self.optimizer = paddle.amp.decorate(models=self.model, optimizers=self.optimizer,
                                                                 level="O2")
        self.epoch, self.step = 0, 0
        self.at = (1, 0)  # (epoch, iteration in it) being trained, for error messages
        self._resume_note = None
        self.best_metric, self.best_epoch = None, None
        if resume_state is not None:
            self._restore(resume_state, resume_path)
        distributed.wait_for_ranks("the start (reading data, building the model)")
        self.net = paddle.DataParallel(self.model) if self.world > 1 else self.model

        if run_dir is None:
            name = run_name or g["run_name"] or cfg["Arch"]["name"]
            run_dir = new_run_dir(g["output_dir"], name) if self.main else os.path.join(g["output_dir"], name)
            g["run_name"] = os.path.basename(run_dir)
        self.run_dir = run_dir
        self.ckpt_dir = os.path.join(run_dir, "checkpoints")
        # one writer per run directory (rank 0 writes; a second process on it is refused)
        self.lock = lock_run_dir(run_dir) if self.main else None
        if self.main:
            remove_stale_temporaries(self.ckpt_dir)  # what a process killed mid-write left
        self.log = get_logger(os.path.join(run_dir, "train.log") if self.main else None, quiet=not self.main)
        self.writer = RunWriter(run_dir, g["use_visualdl"], g["plot_curves"], self.log,
                                title="%s, run %s" % (cfg["Arch"]["name"], os.path.basename(run_dir)),
                                val_label=split_label(cfg)) if self.main else None

    # ------------------------------------------------------------ state
    def _restore(self, state, path):
        load_weights(self.model, state, use_ema=False, source=path)
        # The schedule is rebuilt from the config and advanced as many steps as
        # the run took: the same arithmetic as an uninterrupted run (so exact),
        # and a changed schedule (e.g. a lower rate after a NaN) takes effect.
        opt_state = dict(state["optimizer"])
        opt_state["LR_Scheduler"] = self.scheduler.state_dict()
        with warnings.catch_warnings():  # paddle warns about LinearWarmup's nested state
            warnings.simplefilter("ignore")
            load_optimizer_state(self.optimizer, self.model, opt_state)
        for _ in range(int((state.get("lr_scheduler") or {}).get("last_epoch", 0))):
            self.scheduler.step()
        if self.ema is not None and state.get("ema"):
            self.ema.set_state_dict(state["ema"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self._check_resume_setup(state, path)
        self.best_metric, self.best_epoch = state.get("best_metric"), state.get("best_epoch")
        set_rng_state(state.get("rng"))

    def _check_resume_setup(self, state, path):
        """A run resumed on another number of processes continues when the
        global batch (and so the iterations per epoch and the schedule) is
        the same; it is refused when they changed."""
        world, batch = state.get("world"), state.get("global_batch")  # None: an older checkpoint
        expected = min(self.epoch * self.iters_per_epoch, self.total_iters)
        if (batch is not None and batch != self.global_batch) or self.step != expected:
            was = ("a global batch of %d (%d process%s)" % (batch, world, "es" if world > 1 else "")
                   if batch else "another batch size")
            raise ConfigError(
                "%s was trained with %s, %d iterations in %d epochs; this setup has a global batch of %d "
                "(%d process%s) and %d iterations per epoch: resume it as it was trained (the self-launched "
                "CPU processes keep the global batch, a hand-started launcher multiplies it)"
                % (path, was, self.step, self.epoch, self.global_batch, self.world, "es" if self.world > 1 else "",
                   self.iters_per_epoch))
        if world is not None and world != self.world:
            self._resume_note = ("resumed on %d process%s, the run trained on %d: the same global batch (%d) "
                                 "and schedule; batch-norm statistics and random draws are now per process, "
                                 "so the epochs from here differ from an uninterrupted run's" % (
                                     self.world, "es" if self.world > 1 else "", world, self.global_batch))

    def state(self):
        return {
            "model": self.model.state_dict(),
            "optimizer": optimizer_state(self.optimizer, self.model),
            "lr_scheduler": self.scheduler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "epoch": self.epoch,
            "step": self.step,
            "best_metric": self.best_metric,
            "best_epoch": self.best_epoch,
            "rng": rng_state(),
            "world": self.world,
            "global_batch": self.global_batch,
            "config": self.cfg,
            "arch": self.cfg["Arch"]["name"],
        }

    # ------------------------------------------------------------- loop
    def fit(self):
        best_key = self.cfg["Metric"]["best"]
        try:
            self._banner()
            if self.main:
                save_config(self.cfg, os.path.join(self.run_dir, "config.yaml"))
                self.writer.truncate(self.epoch)
            with kernels.use(self.kernels == "onednn", channels_last=self.cfg["Global"]["cpu_channels_last"]):
                self._loop(best_key)
            return self._finish()
        except BaseException as e:
            # where it happened, for the launcher's report of a failed rank (cli.run_tool)
            if getattr(e, "ppresvar_where", None) is None:
                try:
                    e.ppresvar_where = "epoch %d, iteration %d" % self.at
                except Exception:
                    pass
            raise
        finally:
            self.close()

    def close(self):
        """Release the run directory (the process's end releases it too)."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def _loop(self, best_key):
        while self.epoch < self.epochs and self.step < self.total_iters:
            epoch = self.epoch + 1
            start = time.time()
            seed_everything(derive_seed(self.seed, "epoch", epoch, self.rank))
            train = self.train_epoch(epoch)
            distributed.average_buffers(self.model, [self.ema.state if self.ema else None])
            with swap_weights(self.model, self.ema.state if (self.ema and self.cfg["EMA"]["eval_ema"]) else None):
                val = evaluate(self.model, self.val_loader, self.topk, self.amp, self.amp_level, epoch=epoch)
            if self.unit == "epoch":
                self.scheduler.step()
            self.epoch = epoch
            record = {
                "epoch": epoch, "lr": train["lr"], "train_loss": train["loss"], "train_top1": train["top1"],
                "val_loss": val.loss, "val_top1": val.accuracy(1), "val_top5": val.accuracy(5),
                "epoch_time_s": time.time() - start, "images_per_s": train["images_per_s"],
            }
            for k in self.topk:
                if k not in (1, 5):
                    record["val_top%d" % k] = val.accuracy(k)
            improved = _better(best_key, record[best_key], self.best_metric)
            if improved:
                self.best_metric, self.best_epoch = record[best_key], epoch
            if self.main:
                self.writer.epoch(record)
                faults.point("logged", epoch)
                paths = [os.path.join(self.ckpt_dir, "best.pdckpt")] if improved else []
                save_checkpoints(paths + [os.path.join(self.ckpt_dir, "last.pdckpt")], self.state())
                self._epoch_line(record, improved)
            distributed.barrier("the end of epoch %d (rank 0 writing checkpoints)" % epoch)

    def train_epoch(self, epoch):
        self.net.train()
        self.train_sampler.set_epoch(epoch)
        mix_rng = np.random.RandomState(derive_seed(self.seed, "mix", epoch, self.rank))
        sums = MetricSums((1,))
        steps = min(self.iters_per_epoch, self.total_iters - self.step)
        progress = Progress(steps, epoch, self.epochs, self.cfg["Global"]["print_batch_step"],
                            logger=self.log, enabled=self.main)
        compute, lr, i = 0.0, self.optimizer.get_lr(), 0
        batches = iter(self.train_loader)
        while i < steps:
            faults.point("batch", epoch, i + 1)
            batch = next(batches, None)
            if batch is None:
                break
            images, labels = batch
            if i == 0:  # loader workers start now: a rank may be far behind the others
                distributed.wait_for_ranks("the first batch of epoch %d" % epoch)
            t0 = time.time()
            lr = self.optimizer.get_lr()
            self.at = (epoch, i + 1)
            loss_value, hits, n = self.train_step(images, labels, mix_rng)
            sums.update(loss_value, hits, n)
            compute += time.time() - t0
            i += 1
            progress.update(i, sums.loss, sums.accuracy(1), lr)
        batches.close()  # ends the loader's workers now, not when the generator is collected
        progress.close()
        sums.all_reduce()
        return {"loss": sums.loss, "top1": sums.accuracy(1), "lr": lr,
                "images_per_s": sums.count / compute if compute > 0 else None}

    def train_step(self, images, labels, mix_rng):
        """One optimizer step; returns ``(loss as float, [top-1 hits], batch size)``.
        A loss that is not finite on any rank raises TrainingError on every rank."""
        targets = to_soft_targets(labels, self.num_classes)
        if self.mixer is not None:
            images, targets = self.mixer(images, targets, mix_rng)
            labels = paddle.argmax(targets, axis=-1)  # the dominant label counts for accuracy
        with autocast(self.amp, self.amp_level):
            logits = self.net(images)
        loss = self.loss_fn(logits, targets, self.model)
        if faults.point("loss", self.step + 1):
            loss = loss * float("nan")
        # every rank learns every rank's loss before the gradient all-reduce, so a
        # NaN on one rank stops them all at the same step (not the others waiting)
        losses = distributed.gather_floats(float(loss))
        if not all(math.isfinite(v) for v in losses):
            raise self._nan_error(self.at[0], self.at[1], losses)
        loss_value = losses[self.rank]
        if self.scaler is not None:
            scaled = self.scaler.scale(loss)
            scaled.backward()
            self.scaler.minimize(self.optimizer, scaled)
        else:
            loss.backward()
            self.optimizer.step()
        self.optimizer.clear_grad()
        if self.unit == "iteration":
            self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model)
        self.step += 1
        faults.point("step", self.step)
        return loss_value, topk_correct(logits.detach(), labels, (1,)), int(labels.shape[0])

    def _nan_error(self, epoch, it, losses):
        last = os.path.join(self.ckpt_dir, "last.pdckpt")
        kept = ("the last good checkpoint, %s (epoch %d), is kept" % (last, self.epoch)
                if self.epoch and os.path.isfile(last) else "no checkpoint had been written yet")
        bad = ["%s%s" % (v, " on rank %d of %d" % (r, self.world) if self.world > 1 else "")
               for r, v in enumerate(losses) if not math.isfinite(v)]
        return TrainingError("loss is %s at epoch %d, iteration %d: training stopped; %s. Lower "
                             "Optimizer.lr.learning_rate or set Optimizer.grad_clip, then resume with --resume"
                             % (" and ".join(bad), epoch, it, kept))

    # ---------------------------------------------------------- output
    def _banner(self):
        params = sum(int(np.prod(p.shape)) for p in self.model.parameters() if not p.stop_gradient)
        threads = ""
        if self.device == "cpu":
            threads = " (%d threads, %s kernels)" % (cpu_threads(self.cfg),
                                                     "oneDNN" if self.kernels == "onednn" else "paddle's")
        if self._kernel_note:
            self.log.warning(self._kernel_note)
        self.log.info("model %s: %.2fM trainable parameters, %d classes" % (self.cfg["Arch"]["name"], params / 1e6,
                                                                    self.num_classes))
        self.log.info("data: %d training images, %d validation images; %d iterations per epoch%s"
                      % (len(self.train_set), len(self.val_set), self.iters_per_epoch,
                         "" if self.world == 1 else " on each of %d ranks" % self.world))
        self.log.info("device %s%s%s; %d epochs, %d iterations; run directory %s" % (
            self.device, threads, ", AMP " + self.amp_level if self.amp else "", self.epochs,
            self.total_iters, self.run_dir))
        if self._resume_note:
            self.log.warning(self._resume_note)
        if self.epoch:
            self.log.info("resumed after epoch %d (iteration %d), best %s %s" % (
                self.epoch, self.step, self.cfg["Metric"]["best"], self.best_metric))

    def _epoch_line(self, r, improved):
        self.log.info(
            "epoch %d/%d  train_loss %.4f  train_top1 %.2f%%  val_loss %.4f  val_top1 %.2f%%  val_top5 %.2f%%"
            "  lr %.4g  %.1fs  %s img/s%s" % (
                r["epoch"], self.epochs, r["train_loss"], 100 * r["train_top1"], r["val_loss"],
                100 * r["val_top1"], 100 * r["val_top5"], r["lr"], r["epoch_time_s"],
                "%.0f" % r["images_per_s"] if r["images_per_s"] else "?", "  *best*" if improved else ""))

    def _finish(self):
        summary = {"run_dir": self.run_dir, "epochs": self.epoch, "iterations": self.step,
                   "best_metric": self.best_metric, "best_epoch": self.best_epoch,
                   "metric": self.cfg["Metric"]["best"]}
        if self.main:
            self.writer.close()
            records = read_metrics(os.path.join(self.run_dir, "metrics.jsonl"))
            total = sum(r["epoch_time_s"] for r in records)
            self.log.info("done: best %s %s at epoch %s; %s in all; run directory %s" % (
                summary["metric"], _fmt(summary["best_metric"], summary["metric"]), self.best_epoch,
                format_duration(total), self.run_dir))
        return summary


def _fmt(value, key):
    if value is None:
        return "?"
    return "%.4f" % value if key == "val_loss" else "%.2f%%" % (100 * value)


def train(cfg, resume=None, config_name=None, resume_state=None):
    """Train from a validated config; ``resume`` is a checkpoint path (or a
    run directory) to continue from (``resume_state``: that checkpoint,
    already loaded). Returns a summary dict with ``run_dir``."""
    warnings.filterwarnings("ignore", message="When training, we now always track")  # paddle BN noise
    distributed.init()
    state, path = None, None
    if resume and starts_over(resume):
        print("no checkpoint in %s yet (it stopped before the end of its first epoch): starting it over there"
              % resume)
        return Trainer(cfg, os.path.abspath(resume)).fit()
    if resume:
        path = resolve_resume_path(resume)
        state = resume_state if resume_state is not None else load_checkpoint(path)
        if "format_version" not in state or "optimizer" not in state:
            raise CheckpointError("%s holds weights only, not a training state: resume needs a "
                                  "last.pdckpt or best.pdckpt written by tools/train.py" % path)
        return Trainer(cfg, run_dir_of(path), state, path).fit()
    return Trainer(cfg, run_name=cfg["Global"]["run_name"] or config_name).fit()
