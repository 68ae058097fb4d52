"""Progress output, metrics.jsonl and the optional VisualDL/matplotlib outputs."""
import io
import os
import sys
import types

from ppresvar.engine.logger import EPOCH_KEYS, Progress, RunWriter, read_metrics


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_on_a_terminal_and_lines_otherwise():
    tty = Terminal()
    bar = Progress(10, epoch=2, epochs=5, every=4, stream=tty)
    for step in range(1, 11):
        bar.update(step, 1.5, 0.25, 0.1)
    bar.close()
    text = tty.getvalue()
    assert "\repoch 2/5 [" in text and "loss 1.5000" in text and "top1 25.00%" in text
    assert "lr 0.1" in text and "eta" in text and "\n" not in text
    plain = io.StringIO()
    lines = Progress(10, epoch=2, epochs=5, every=4, stream=plain)
    for step in range(1, 11):
        lines.update(step, 1.5, 0.25, 0.1)
    assert [l.split()[3] for l in plain.getvalue().splitlines()] == ["4/10", "8/10", "10/10"]


def test_run_writer_metrics_truncate_and_visualdl(tmp_path, monkeypatch):
    scalars = []

    class LogWriter(object):
        def __init__(self, logdir):
            self.logdir = logdir

        def add_scalar(self, tag, step, value):
            scalars.append((tag, step, value))

        def close(self):
            pass

    monkeypatch.setitem(sys.modules, "visualdl", types.SimpleNamespace(LogWriter=LogWriter))
    writer = RunWriter(str(tmp_path), use_visualdl=True, plot_curves=False)
    for epoch in (1, 2, 3):
        writer.epoch({k: (epoch if k == "epoch" else 0.5) for k in EPOCH_KEYS})
    writer.close()
    assert ("val/top1", 2, 0.5) in scalars and ("train/loss", 3, 0.5) in scalars
    path = os.path.join(str(tmp_path), "metrics.jsonl")
    assert [r["epoch"] for r in read_metrics(path)] == [1, 2, 3]
    writer.truncate(2)  # a resume from the checkpoint of epoch 2
    assert [r["epoch"] for r in read_metrics(path)] == [1, 2]
