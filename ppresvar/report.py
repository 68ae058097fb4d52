"""Comparison tables and learning curves from run directories.

A run directory holds ``config.yaml`` (the resolved config) and
``metrics.jsonl`` (one JSON object per epoch); that pair is the whole
contract, so a notebook can report on runs trained anywhere.
"""
import json
import os

import yaml

from .errors import DataError


def load_run(run_dir):
    """``{'dir', 'name', 'config', 'metrics'}`` of one run directory."""
    metrics_path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.isfile(metrics_path):
        raise DataError("%s has no metrics.jsonl: is it a run directory of tools/train.py?" % run_dir)
    with open(metrics_path, encoding="utf-8") as f:
        metrics = [json.loads(line) for line in f if line.strip()]
    config = {}
    cfg_path = os.path.join(run_dir, "config.yaml")
    if os.path.isfile(cfg_path):
        with open(cfg_path, encoding="utf-8") as f:
            config = yaml.safe_load(f) or {}
    return {"dir": run_dir, "name": os.path.basename(os.path.normpath(run_dir)),
            "config": config, "metrics": metrics}


def summarize(run, metric="val_top1"):
    """Best epoch by ``metric`` (a validation metric, never the test set),
    its figures, and the final epoch's."""
    rows = [m for m in run["metrics"] if m.get(metric) is not None]
    if not rows:
        raise DataError("run %s has no %r values yet" % (run["dir"], metric))
    best = max(rows, key=lambda m: m[metric])
    arch = run["config"].get("Arch", {}).get("name", run["name"])
    return {"run": run["name"], "model": arch, "epochs": rows[-1]["epoch"], "best_epoch": best["epoch"],
            "best_" + metric: best[metric], "final_" + metric: rows[-1][metric],
            "val_top5": best.get("val_top5"), "images_per_s": rows[-1].get("images_per_s")}


def comparison_table(run_dirs, metric="val_top1", params=None):
    """Markdown table comparing runs; ``params`` maps a model name to its
    parameter count, shown when given."""
    lines = ["| run | model | epochs | best epoch | best %s | final %s | top-5 at best | img/s |%s"
             % (metric, metric, " params |" if params else ""),
             "|---|---|---:|---:|---:|---:|---:|---:|%s" % ("---:|" if params else "")]
    for d in run_dirs:
        s = summarize(load_run(d), metric)
        cells = [s["run"], "`%s`" % s["model"], str(s["epochs"]), str(s["best_epoch"]),
                 "%.4f" % s["best_" + metric], "%.4f" % s["final_" + metric],
                 "-" if s["val_top5"] is None else "%.4f" % s["val_top5"],
                 "-" if s["images_per_s"] is None else "%.0f" % s["images_per_s"]]
        if params:
            cells.append(format(params.get(s["model"], 0), ","))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_curves(run_dirs, path=None, title=None):
    """Loss and accuracy per epoch, train and val, one colour per run.
    Returns the matplotlib figure; saves it when ``path`` is given."""
    import matplotlib

    if path is not None and not os.environ.get("DISPLAY") and "inline" not in matplotlib.get_backend():
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    for i, d in enumerate(run_dirs):
        run = load_run(d)
        ep = [m["epoch"] for m in run["metrics"]]
        colour = "C%d" % i
        for key, ax, style in (("train_loss", ax_loss, "--"), ("val_loss", ax_loss, "-"),
                               ("train_top1", ax_acc, "--"), ("val_top1", ax_acc, "-")):
            ys = [m.get(key) for m in run["metrics"]]
            if any(y is not None for y in ys):
                ax.plot(ep, ys, style, color=colour, label="%s %s" % (run["name"], key.split("_")[0]))
    for ax, ylabel in ((ax_loss, "loss (solid: validation split, dashed: train)"),
                       (ax_acc, "top-1 accuracy (solid: validation split)")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig
