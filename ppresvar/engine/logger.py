"""What a run writes: console lines, ``train.log``, ``metrics.jsonl``,
``curves.png`` and VisualDL scalars; and the progress bar.

``metrics.jsonl`` has one JSON object per epoch with the keys of
:data:`EPOCH_KEYS` (accuracies are fractions in [0, 1]); it and
``config.yaml`` are what notebooks and reports read. Only the main process
(rank 0) writes files.
"""
import json
import logging
import math
import os
import sys
import time

__all__ = ["EPOCH_KEYS", "get_logger", "Progress", "RunWriter", "read_metrics", "format_duration"]

EPOCH_KEYS = ("epoch", "lr", "train_loss", "train_top1", "val_loss", "val_top1", "val_top5",
              "epoch_time_s", "images_per_s")


def get_logger(log_file=None, quiet=False):
    """The ``ppresvar`` logger: messages to stdout (unless ``quiet``) and to ``log_file``."""
    logger = logging.getLogger("ppresvar")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for h in list(logger.handlers):
        logger.removeHandler(h)
        h.close()
    if not quiet:
        h = logging.StreamHandler(sys.stdout)
        h.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(h)
    if log_file:
        h = logging.FileHandler(log_file, encoding="utf-8")
        h.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
        logger.addHandler(h)
    return logger


def format_duration(seconds):
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return "%d:%02d:%02d" % (h, m, s) if h else "%d:%02d" % (m, s)


class Progress(object):
    """A one-line progress bar on a terminal; plain lines every
    ``every`` steps otherwise (logs, notebooks' captured output, CI)."""

    def __init__(self, total, epoch, epochs, every=20, stream=None, logger=None, enabled=True):
        self.total, self.epoch, self.epochs, self.every = total, epoch, epochs, max(1, every)
        self.stream = stream or sys.stdout
        self.logger = logger
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.time()
        self.last_draw = 0.0

    def update(self, step, loss, top1, lr):
        if not self.enabled:
            return
        elapsed = time.time() - self.start
        eta = elapsed / step * (self.total - step) if step else None
        text = "loss %.4f  top1 %.2f%%  lr %.4g  eta %s" % (loss, 100 * top1, lr, format_duration(eta))
        if self.tty:
            now = time.time()
            if now - self.last_draw < 0.2 and step < self.total:
                return
            self.last_draw = now
            width = 24
            filled = int(width * step / max(self.total, 1))
            self.stream.write("\repoch %d/%d [%s%s] %d/%d  %s " % (
                self.epoch, self.epochs, "#" * filled, "." * (width - filled), step, self.total, text))
            self.stream.flush()
        elif step % self.every == 0 or step == self.total:
            line = "epoch %d/%d step %d/%d  %s" % (self.epoch, self.epochs, step, self.total, text)
            if self.logger is not None:
                self.logger.info(line)
            else:
                self.stream.write(line + "\n")

    def close(self):
        if self.tty:
            self.stream.write("\r" + " " * 110 + "\r")
            self.stream.flush()


def read_metrics(path):
    """The epoch records of a ``metrics.jsonl`` (a list of dicts)."""
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


class RunWriter(object):
    """Files of one run directory (rank 0 only)."""

    def __init__(self, run_dir, use_visualdl=True, plot_curves=True, logger=None, title=None, val_label="validation"):
        self.run_dir = run_dir
        self.title, self.val_label = title, val_label
        self.metrics_path = os.path.join(run_dir, "metrics.jsonl")
        self.plot_curves = plot_curves
        self.logger = logger
        self.vdl = None
        if use_visualdl:
            try:
                from visualdl import LogWriter

                self.vdl = LogWriter(logdir=os.path.join(run_dir, "vdl"))
            except Exception:  # not installed, or broken: scalars are optional
                self.vdl = None

    def truncate(self, last_epoch):
        """Keep the records of epochs <= ``last_epoch`` (resume after a crash)."""
        kept = [r for r in read_metrics(self.metrics_path) if r["epoch"] <= last_epoch]
        tmp = self.metrics_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            for r in kept:
                f.write(json.dumps(r) + "\n")
        os.replace(tmp, self.metrics_path)

    def epoch(self, record):
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
        if self.vdl is not None:
            for key, value in record.items():
                if key != "epoch" and isinstance(value, (int, float)) and value is not None:
                    self.vdl.add_scalar(tag=key.replace("_", "/", 1), step=record["epoch"], value=value)
        if self.plot_curves:
            plot_curves(read_metrics(self.metrics_path), os.path.join(self.run_dir, "curves.png"), self.title,
                        self.val_label)

    def close(self):
        if self.vdl is not None:
            self.vdl.close()


def split_label(cfg, section="Eval"):
    """What a loader section's images are, for a curve's legend: e.g.
    "5000 images held out of Cifar10's training split (split_seed 0)"."""
    d = ((cfg.get("DataLoader") or {}).get(section) or {}).get("dataset") or {}
    name, mode = d.get("name", "?"), d.get("mode")
    if d.get("subset") == "val":
        return "%s images held out of %s's %s split (split_seed %s)" % (d.get("val_size"), name, mode or "train",
                                                                      d.get("split_seed"))
    return "%s's %s split" % (name, mode or d.get("subset") or "whole")


def plot_curves(records, path, title=None, val_label="validation"):
    """Loss and top-1 accuracy per epoch, train and validation, to ``path``
    (skipped when matplotlib is not installed): ``title`` above (model and
    run), ``val_label`` says which images the validation curves are.
    Returns True when written."""
    if not records:
        return False
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception:
        return False
    epochs = [r["epoch"] for r in records]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label, style in (("train_loss", "train", "-"), ("val_loss", "validation", "--")):
        ax1.plot(epochs, [r.get(key) for r in records], style, marker=".", label=label)
    for key, label, style in (("train_top1", "train top-1", "-"), ("val_top1", "validation top-1", "--"),
                              ("val_top5", "validation top-5", ":")):
        ax2.plot(epochs, [100 * r[key] if r.get(key) is not None else None for r in records], style,
                 marker=".", label=label)
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("cross entropy")
    ax1.set_title("loss")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("accuracy (%)")
    ax2.set_title("accuracy")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("%s\nvalidation: %s" % (title or os.path.basename(os.path.dirname(os.path.abspath(path))), val_label),
                 fontsize=10)
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
    return True
