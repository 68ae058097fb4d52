import json
import os

import pytest
import yaml

from ppresvar import report
from ppresvar.errors import DataError


def make_run(root, name, arch, vals):
    d = os.path.join(str(root), name)
    os.makedirs(d)
    with open(os.path.join(d, "config.yaml"), "w") as f:
        yaml.safe_dump({"Arch": {"name": arch}}, f)
    with open(os.path.join(d, "metrics.jsonl"), "w") as f:
        for i, v in enumerate(vals, 1):
            f.write(json.dumps({"epoch": i, "lr": 0.1, "train_loss": 2.0 / i, "train_top1": v - 0.05,
                                "val_loss": 2.1 / i, "val_top1": v, "val_top5": min(1.0, v + 0.2),
                                "epoch_time_s": 1.0, "images_per_s": 100.0 * i}) + "\n")
    return d


def test_best_epoch_is_picked_on_validation_and_final_is_last(tmp_path):
    d = make_run(tmp_path, "a", "rir18", [0.5, 0.7, 0.6])
    s = report.summarize(report.load_run(d))
    assert (s["best_epoch"], s["best_val_top1"], s["final_val_top1"], s["epochs"]) == (2, 0.7, 0.6, 3)
    assert s["model"] == "rir18"


def test_comparison_table_has_a_row_per_run(tmp_path):
    a = make_run(tmp_path, "a", "rir18", [0.5, 0.7])
    b = make_run(tmp_path, "b", "rir_resnet18", [0.4, 0.65])
    t = report.comparison_table([a, b], params={"rir18": 9532234})
    lines = t.strip().splitlines()
    assert len(lines) == 4
    assert "| a | `rir18` | 2 | 2 | 0.7000 | 0.7000 | 0.9000 | 200 | 9,532,234 |" in lines


def test_curves_are_written(tmp_path):
    pytest.importorskip("matplotlib")
    a = make_run(tmp_path, "a", "rir18", [0.5, 0.7])
    out = os.path.join(str(tmp_path), "curves.png")
    report.plot_curves([a], out, title="t")
    assert os.path.getsize(out) > 1000


def test_not_a_run_directory(tmp_path):
    with pytest.raises(DataError, match="metrics.jsonl"):
        report.load_run(str(tmp_path))
