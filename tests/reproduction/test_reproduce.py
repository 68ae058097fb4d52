"""reproduction/reproduce.py and the ledger: a tiny experiment trained, evaluated
and kept in a results folder; the ledger written from a fixture results/
folder (mean, spread, error vs accuracy, rows not yet run, the parity
verdict); the manifest's checks; the committed ledger is up to date."""
import json
import os
import re

import pytest
import yaml

from cli_helpers import ROOT, run_tool
from reproduction import ledger
from reproduction import runner as reproduce
from ppresvar.errors import ConfigError

TINY = ["Global.cpu_processes=1", "DataLoader.*.dataset.val_size=32", "DataLoader.*.batch_size=32",
        "Global.iterations=null", "Global.epochs=1", "Optimizer.lr.milestones=[6, 9]"]


def _has_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def write_manifest(path, rows):
    with open(path, "w") as f:
        yaml.safe_dump({"tiny": {"title": "Tiny", "seed": None, "metric": "test_top1", "about": "A test.",
                                 "rows": rows}}, f)
    return str(path)


def test_reproduce_trains_evaluates_and_keeps_small_files(archive, tmp_path):
    manifest = write_manifest(tmp_path / "m.yaml", {"r20": {
        "label": "ResNet-20", "config": "configs/resnet20.yaml", "overrides": TINY, "seeds": [0, 1],
        "budget": "1 epoch", "paper": {"value": 91.25, "source": "a paper"}}})
    results, runs = str(tmp_path / "results"), str(tmp_path / "runs")
    # (--allow-dirty: a developer's checkout may hold changes; a clean one keeps no diff)
    args = ["tiny", "--manifest", manifest, "--results", results, "--runs-dir", runs, "--data", archive,
            "--allow-dirty"]
    r = run_tool("reproduction/reproduce", args)
    assert r.returncode == 0, r.stderr[-2000:]
    kept = os.path.join(results, "tiny", "r20", "seed0")
    # curves.png is drawn only where matplotlib is installed (the paddle 2.6 CI leg has none)
    expected = ["config.yaml", "metrics.jsonl", "run.json", "test.json"]
    if _has_matplotlib():
        expected.append("curves.png")
    if json.load(open(os.path.join(kept, "run.json")))["dirty"]:
        expected.append("uncommitted.diff")
    # the first run of a row keeps its last weights; the others do not
    assert sorted(os.listdir(kept)) == sorted(expected + ["model.safetensors"])
    assert sorted(os.listdir(os.path.join(results, "tiny", "r20", "seed1"))) == sorted(expected)
    test = json.load(open(os.path.join(kept, "test.json")))
    assert test["last"]["split"] == "test" and test["last"]["samples"] == 40 and "best" in test
    # the ledger's command, run on the kept weights when they were kept, gave the run's figure
    assert test["weights"]["top1"] == test["last"]["top1"] and test["weights"]["samples"] == 40
    run = json.load(open(os.path.join(kept, "run.json")))
    assert run["epochs"] == 1 and run["train_time_s"] > 0 and run["machine"]["cores"] >= 1
    assert "tools/train.py -c configs/resnet20.yaml" in run["command"] and "Global.seed=0" in run["command"]
    assert len(run["commit"] or "x" * 40) == 40
    assert os.path.isfile(os.path.join(runs, "tiny", "r20-seed0", "checkpoints", "last.pdckpt"))
    assert machine_paths_in(kept) == []
    assert yaml.safe_load(open(os.path.join(kept, "config.yaml")))["Global"]["output_dir"] == "<runs dir>/tiny"
    assert "data_file=<cifar archive>" in run["command"] and test["last"]["weights"].startswith("<runs dir>/")
    # the ledger shows what was kept, and the command that recomputes the kept weights' figure
    md = ledger.build(reproduce.load_manifest(manifest), results)
    assert "| 0: %.2f, 1: " % (100 * test["last"]["top1"]) in md and "91.25 (a paper)" in md
    check = ("python tools/eval.py -c results/tiny/r20/seed0/config.yaml -o "
             "Global.pretrained_model=results/tiny/r20/seed0/model.safetensors -o "
             "'DataLoader.*.dataset.data_file=<cifar archive>'")
    assert "- r20 (%s; prints top-1 %.2f%%, as the run): `%s`" % (
        test["weights"]["dtype"], 100 * test["last"]["top1"], check) in md
    # that command, run as a user would (the kept config names no archive: the user gives theirs)
    argv = check.replace("results/", results + "/").replace("<cifar archive>", archive).replace("'", "").split()[2:]
    got = run_tool("eval", argv)
    assert got.returncode == 0, got.stderr[-2000:]
    assert json.loads(got.stdout.strip().splitlines()[-1])["top1"] == test["last"]["top1"]
    # a second call finds the row done and trains nothing
    r = run_tool("reproduction/reproduce", args + ["--dry-run"])
    assert r.returncode == 0 and r.stdout.split()[0] == "done"
    # the kept file is in the dtype test.json names: float16 when that gave the run's figure
    from ppresvar import safetensors

    path = os.path.join(kept, "model.safetensors")
    tensors, meta = safetensors.load(path)
    assert meta["dtype"] == test["weights"]["dtype"] == tensors["fc.weight"].dtype.name
    # weights kept in float32 before float16 existed: --halve-weights keeps them again, checked
    safetensors.save({k: v.astype("float32") if v.dtype.kind == "f" else v for k, v in tensors.items()}, path,
                     metadata={"format": "paddle-state-dict"})
    del test["weights"]["dtype"]
    json.dump(test, open(os.path.join(kept, "test.json"), "w"))
    r = run_tool("reproduction/reproduce", args + ["--halve-weights"])
    assert r.returncode == 0, r.stderr[-2000:]
    again = json.load(open(os.path.join(kept, "test.json")))
    tensors, meta = safetensors.load(path)
    assert meta["dtype"] == again["weights"]["dtype"] == tensors["fc.weight"].dtype.name
    assert abs(again["weights"]["top1"] - test["last"]["top1"]) <= 2e-4 and not os.path.exists(kept + ".part")


ABSOLUTE_PATH = re.compile(r"""(?:^|[\s=:"'])(/[\w.-]+(?:/[\w.-]+)+)""", re.M)


def machine_paths_in(result_dir):
    """Absolute paths written in a kept result's text files."""
    found = []
    for name in ("config.yaml", "run.json", "test.json"):
        with open(os.path.join(result_dir, name), encoding="utf-8") as f:
            found += ["%s: %s" % (name, m) for m in ABSOLUTE_PATH.findall(f.read())]
    return found


def test_a_torch_row_needs_a_torch_python(archive, tmp_path):
    manifest = write_manifest(tmp_path / "m.yaml", {"t": {
        "label": "PyTorch", "torch": ["--epochs", "1"], "seeds": [0], "budget": "1 epoch",
        "eval": {"config": "configs/parity_resnet20.yaml"}}})
    r = run_tool("reproduction/reproduce", ["tiny", "--manifest", manifest, "--results", str(tmp_path / "r"),
                               "--runs-dir", str(tmp_path / "runs"), "--data", archive])
    assert r.returncode == 2 and r.stderr.startswith("error: ") and "--torch-python" in r.stderr


def fake_run(results, exp, row, seed, top1, commit="a" * 40):
    d = reproduce.result_dir_of(results, exp, row, seed)
    os.makedirs(d)
    json.dump({"last": {"top1": top1, "split": "test"}}, open(os.path.join(d, "test.json"), "w"))
    json.dump({"train_time_s": 600.0, "commit": commit, "dirty": False, "command": "python tools/train.py -c X",
               "machine": {"cores": 2, "cpu": "Test CPU"}}, open(os.path.join(d, "run.json"), "w"))


def fixture_manifest(tmp_path):
    path = tmp_path / "m.yaml"
    with open(path, "w") as f:
        yaml.safe_dump({
            "parity": {"title": "Parity", "seed": None, "metric": "test_top1", "about": "Two frameworks.", "rows": {
                "a": {"label": "A", "config": "configs/resnet20.yaml", "seeds": [0, 1], "budget": "2 epochs"},
                "b": {"label": "B", "torch": [], "seeds": [0, 1], "budget": "2 epochs",
                      "eval": {"config": "configs/parity_resnet20.yaml"}}}},
            "err": {"title": "Errors", "seed": "001", "metric": "test_error", "about": "Error rates.", "rows": {
                "r20": {"label": "R20", "config": "configs/resnet20.yaml", "seeds": [0], "budget": "64k",
                        "paper": {"value": 8.75, "source": "He"}},
                "r56": {"label": "R56", "config": "configs/resnet56.yaml", "seeds": [0], "budget": "64k",
                        "estimate": "about 7 h"},
                "again": {"label": "R20 again", "same_as": "err/r20", "config": "configs/resnet20.yaml",
                          "seeds": [0], "budget": "64k"}}}}, f)
    return reproduce.load_manifest(str(path))


def test_ledger_from_fixture_results(tmp_path):
    manifest, results = fixture_manifest(tmp_path), str(tmp_path / "results")
    fake_run(results, "parity", "a", 0, 0.90)
    fake_run(results, "parity", "a", 1, 0.92)
    fake_run(results, "parity", "b", 0, 0.905)
    fake_run(results, "parity", "b", 1, 0.915)
    fake_run(results, "err", "r20", 0, 0.9125)
    md = ledger.build(manifest, results)
    assert "| A | 2 epochs | - | - | **91.00** +- 1.41 (n=2) | 0: 90.00, 1: 92.00 | 10 min, 10 min |" in md
    assert "**91.00** +- 0.71 (n=2)" in md
    # the means agree (gap 0.00) within the larger range (2.00 points)
    assert "differ by 0.00 points; the larger seed-to-seed range is 2.00 points: **within the spread**" in md
    assert "| R20 | 64k | 8.75 (He) | - | **8.75** (n=1, no spread) |" in md  # error = 100 - top-1
    assert "| R56 | 64k | - | - | not yet run; estimated about 7 h on this machine |" in md
    # the one command that recomputes a row's figure, once a run kept its weights; a row with
    # runs but no weights, and a row not yet run, say which they are
    open(os.path.join(results, "err", "r20", "seed0", "model.safetensors"), "wb").close()
    md = ledger.build(manifest, results)
    assert "- r20 (float32): `python tools/eval.py -c results/err/r20/seed0/config.yaml" in md
    # with what that command printed when the weights were kept, here in float16 one image off
    test = os.path.join(results, "err", "r20", "seed0", "test.json")
    json.dump({"last": {"top1": 0.9125, "split": "test"}, "weights": {"top1": 0.9124, "dtype": "float16"}},
              open(test, "w"))
    md = ledger.build(manifest, results)
    assert ("- r20 (float16; prints top-1 91.24%, the run's float32 weights: 91.25%): "
            "`python tools/eval.py -c results/err/r20/seed0/config.yaml") in md
    assert "Kept: 1 files (1 in float16), 0.0 MB in all." in md
    assert "- r56: not yet run" in md
    # a seed folder without a run (no run.json: not a kept run) gives no command, whatever it holds
    os.makedirs(os.path.join(results, "err", "r56", "seed3"))
    open(os.path.join(results, "err", "r56", "seed3", "model.safetensors"), "wb").close()
    md = ledger.build(manifest, results)
    assert "- r56: not yet run" in md and "results/err/r56/" not in md
    assert "Kept: 2 files (1 in a folder of no kept run, 1 in float16), 0.0 MB in all." in md
    assert "2 cores, Test CPU" in md and "`aaaaaaa`" in md
    assert "| R20 again | 64k | - | - | **8.75** (n=1, no spread) |" in md and "- again: the runs of err/r20" in md
    assert reproduce.plan(manifest, "err", ["again"], "/tmp/r", results)[0]["action"] == "shared with err/r20"
    # a gap larger than the spread is called so
    other = str(tmp_path / "other")
    for row, seed, top1 in (("a", 0, 0.900), ("a", 1, 0.902), ("b", 0, 0.910), ("b", 1, 0.911)):
        fake_run(other, "parity", row, seed, top1)
    assert ("differ by 0.95 points; the larger seed-to-seed range is 0.20 points: **outside the spread**"
            in ledger.build(manifest, other))


@pytest.mark.parametrize("row, message", [
    ({"label": "x", "config": "c", "torch": [], "seeds": [0], "budget": "b"}, "exactly one of config"),
    ({"label": "x", "config": "c", "seeds": [0], "budget": "b", "epochs": 3}, "unknown keys"),
    ({"label": "x", "config": "c", "seeds": [0]}, "has no budget"),
    ({"label": "x", "config": "c", "seeds": ["a"], "budget": "b"}, "seeds must be"),
    ({"label": "x", "config": "c", "seeds": [0], "budget": "b", "paper": 8.75}, "paper must be"),
    ({"label": "x", "config": "c", "seeds": [0], "budget": "b", "same_as": "tiny/none"}, "names no row"),
    ({"label": "x", "config": "d", "seeds": [0], "budget": "b", "same_as": "tiny/ok"}, "trains something else"),
])
def test_manifest_errors(tmp_path, row, message):
    path = write_manifest(tmp_path / "m.yaml", {"r": row, "ok": {"label": "y", "config": "c", "seeds": [0],
                                                                  "budget": "b"}})
    with pytest.raises(ConfigError, match=message):
        reproduce.load_manifest(path)


def test_unknown_experiment_and_row():
    m = reproduce.load_manifest()
    with pytest.raises(ConfigError, match="unknown experiment 'parit'"):
        reproduce.plan(m, "parit", None, "/tmp/r", "/tmp/x")
    with pytest.raises(ConfigError, match="has no row 'resnet21'"):
        reproduce.plan(m, "he2015", ["resnet21"], "/tmp/r", "/tmp/x")


def test_committed_ledger_is_up_to_date_and_results_hold_no_checkpoints():
    assert ledger.check(), "docs/reproductions.md is out of date: run python reproduction/ledger.py"
    manifest = reproduce.load_manifest()
    weights = 0
    for dirpath, _, files in os.walk(os.path.join(ROOT, "results")):
        for f in files:
            assert f.endswith((".json", ".jsonl", ".yaml", ".png")) or f in ("model.safetensors", "uncommitted.diff"), \
                os.path.join(dirpath, f)
        if "run.json" in files:
            required = ["config.yaml", "curves.png", "metrics.jsonl", "run.json", "test.json"]
            assert sorted(set(files) - {"model.safetensors", "uncommitted.diff"}) == required, dirpath
            rel = os.path.relpath(dirpath, os.path.join(ROOT, "results")).split(os.sep)
            assert rel[0] in manifest and rel[1] in manifest[rel[0]]["rows"]
            assert machine_paths_in(dirpath) == []
            if "model.safetensors" in files:  # weights only, loadable without pickle
                from ppresvar import safetensors

                tensors, meta = safetensors.load(os.path.join(dirpath, "model.safetensors"))
                assert meta.get("format") == "paddle-state-dict" and tensors
                weights += os.path.getsize(os.path.join(dirpath, "model.safetensors"))
    assert weights < 30 * 2 ** 20, "the kept weights take %.1f MB: keep results/ under 30 MB" % (weights / 2 ** 20)


def test_ledger_commands_name_no_path_of_the_machine():
    cmd = ("python tools/train.py -c configs/x.yaml -o Global.output_dir=/work/runs/parity "
           "-o DataLoader.*.dataset.data_file=/home/me/cifar-10-python.tar.gz")
    assert ledger.portable(cmd) == ("python tools/train.py -c configs/x.yaml -o Global.output_dir=<runs dir> "
                                    "-o DataLoader.*.dataset.data_file=<cifar archive>")
    torch = "python scripts/torch_reference.py --train --seed 0 --data /d/c.tar.gz --out /r/torch-seed0"
    assert ledger.portable(torch) == ("python reference/torch_reference.py --train --seed 0 --data <cifar archive> "
                                      "--out <run dir>")
    kept = ("python tools/train.py -o Global.output_dir=<runs dir>/parity -o X.data_file=<cifar archive> "
            "--out <runs dir>/p")
    assert ledger.portable(kept) == kept  # written portable by reproduce.collect: left as it is
    text = open(os.path.join(ROOT, "docs", "reproductions.md"), encoding="utf-8").read()
    assert "/work/" not in text and "/home/" not in text


def test_a_dirty_tree_is_refused_or_its_diff_kept(tmp_path, monkeypatch):
    """A kept result says what code made it: a run does not start from a tree
    with uncommitted changes unless asked, and then the diff is kept."""
    monkeypatch.setattr(reproduce, "git_commit", lambda: ("c" * 40, True))
    monkeypatch.setattr(reproduce, "uncommitted_diff", lambda: "--- a/x\n+++ b/x\n+changed\n")
    step = {"argv": ["tools/train.py", "-c", "configs/resnet20.yaml"]}
    run_dir = str(tmp_path / "exp" / "row-seed0")
    with pytest.raises(ConfigError, match="uncommitted changes"):
        reproduce.write_provenance(run_dir, step, "python")
    assert not os.path.exists(reproduce.provenance_path(run_dir))
    reproduce.write_provenance(run_dir, step, "python", allow_dirty=True)
    assert json.load(open(reproduce.provenance_path(run_dir)))["dirty"] is True
    assert open(run_dir + ".provenance.diff").read().endswith("+changed\n")


def test_a_torch_row_needs_its_eval_config(tmp_path):
    with pytest.raises(ConfigError, match="eval: {config"):
        write_manifest(tmp_path / "m.yaml", {"t": {"label": "P", "torch": [], "seeds": [0], "budget": "1"}})
        reproduce.load_manifest(str(tmp_path / "m.yaml"))


def _orderings(values_a, values_b, metric="test_top1"):
    rows = [{"name": n, "spec": {"label": n.upper(), "seed_figure": {"value": f, "source": "s"}},
             "runs": [{"value": v} for v in vals]} for n, f, vals in (("a", 92.0, values_a), ("b", 91.0, values_b))]
    return "\n".join(ledger.orderings_markdown({"seed": "000", "metric": metric}, rows))


def test_orderings_reproduced_reversed_or_not_resolved():
    assert "**reproduced**" in _orderings([80.0, 80.5, 80.2], [78.0, 78.4, 78.1])   # 2.07 apart > both ranges
    assert "**reversed**" in _orderings([78.0, 78.4, 78.1], [80.0, 80.5, 80.2])
    assert "not resolved at this budget" in _orderings([80.0, 81.5, 80.2], [79.5, 80.4, 79.9])  # within a range
    assert "fewer than 2 seeds" in _orderings([80.0], [78.0, 78.2])
    # for an error metric a higher published figure is the worse row
    assert "**reproduced**" in _orderings([10.0, 10.2], [8.0, 8.1], metric="test_error")


def fake_seeds(results, experiment, rows, per_seed):
    """Kept runs of ``rows`` of one experiment: ``per_seed[s]`` holds each row's top-1 for seed s."""
    for seed, values in enumerate(per_seed):
        for row, top1 in zip(rows, values):
            fake_run(results, experiment, row, seed, top1)


def test_the_gap_to_the_paper_is_split_into_data_and_port(tmp_path):
    manifest, results = fixture_manifest(tmp_path), str(tmp_path / "results")
    manifest["err"]["gap"] = {"ppresvar": "r20", "torch": "r20_torch", "parity": "parity"}
    manifest["err"]["rows"]["r20_torch"] = {"label": "R20 torch", "torch": [], "seeds": [0], "budget": "64k",
                                            "paper": {"value": 8.75, "source": "He"}, "eval": {"config": "x"}}
    fake_seeds(results, "parity", ("a", "b"), ((0.85, 0.851), (0.86, 0.861)))
    fake_run(results, "err", "r20", 0, 0.8731)         # 12.69 % error
    fake_run(results, "err", "r20_torch", 0, 0.8850)   # 11.50 %
    md = ledger.experiment_markdown(manifest, results, "err")
    assert "is +3.94 points from it = +2.75 points that both frameworks show" in md
    assert "+1.19 points between them (ppresvar - PyTorch: the port)" in md
    assert "larger than the parity table's larger seed-to-seed range (1.00 points); one seed per framework" in md
    fake_run(results, "err", "r20", 1, 0.8851)         # a second seed: 12.69 and 11.49, mean 12.09 %
    md = ledger.experiment_markdown(manifest, results, "err")
    assert "+0.59 points between them (ppresvar - PyTorch: the port)" in md
    assert "ppresvar's figure is the mean of 2 seeds, PyTorch's a single run" in md


def test_estimates_scale_a_measured_time(tmp_path):
    manifest, results = fixture_manifest(tmp_path), str(tmp_path / "results")
    manifest["err"]["rows"]["r56"]["estimate"] = {"from": "err/r20", "times": 2.89, "why": "55 layers against 19"}
    assert "until err/r20 has run" in ledger.estimate_text(manifest["err"]["rows"]["r56"], manifest, results)
    fake_run(results, "err", "r20", 0, 0.87)           # 600 s of training
    text = ledger.estimate_text(manifest["err"]["rows"]["r56"], manifest, results)
    assert text == "about 29 min on Test CPU (err/r20's measured 10 min x 2.89, 55 layers against 19)"
    # runs on two kinds of CPU: one estimate each, not a mean that fits neither
    fake_run(results, "err", "r20", 1, 0.87)
    run_json = os.path.join(reproduce.result_dir_of(results, "err", "r20", 1), "run.json")
    run = json.load(open(run_json))
    run.update(train_time_s=1200.0, machine={"cores": 2, "cpu": "Other CPU"})
    json.dump(run, open(run_json, "w"))
    text = ledger.estimate_text(manifest["err"]["rows"]["r56"], manifest, results)
    assert text == ("about 29 min on Test CPU, 58 min on Other CPU (err/r20's measured 10 min, 20 min x 2.89, "
                    "55 layers against 19)")
    # two machines with one CPU name (a cloud's "AMD EPYC"): their range, not a mean that fits neither;
    # a recorded cpu_id tells CPUs of one name apart
    for seed, seconds, machine in ((2, 1800.0, {"cpu": "Other CPU"}),
                                   (3, 300.0, {"cpu": "Test CPU", "cpu_id": "family 26 model 2, AVX-512"})):
        fake_run(results, "err", "r20", seed, 0.87)
        run_json = os.path.join(reproduce.result_dir_of(results, "err", "r20", seed), "run.json")
        run = json.load(open(run_json))
        run.update(train_time_s=seconds, machine=machine)
        json.dump(run, open(run_json, "w"))
    text = ledger.estimate_text(manifest["err"]["rows"]["r56"], manifest, results)
    assert text == ("about 29 min on Test CPU, 58 min to 1 h 27 min on Other CPU, 14 min on Test CPU (family 26 "
                    "model 2, AVX-512) (err/r20's measured 10 min, 20 min to 30 min, 5 min x 2.89, "
                    "55 layers against 19)")


def test_machine_tells_apart_cpus_of_one_name():
    from reproduction.runner import cpu_label, machine
    m = machine()
    assert m["cores"] >= 1 and m["cpu"]
    if os.path.exists("/proc/cpuinfo") and "cpu family" in open("/proc/cpuinfo").read():
        assert re.fullmatch(r"family \d+ model \d+(, AVX-512|, AVX2)?", m["cpu_id"])
        assert cpu_label(m) == "%s (%s)" % (m["cpu"], m["cpu_id"])
    assert cpu_label({"cpu": "AMD EPYC"}) == "AMD EPYC" and cpu_label(None) == "an unrecorded CPU"
    assert cpu_label({}, missing="?") == "?"


def test_per_epoch_table_shows_each_rows_curve(tmp_path):
    manifest, results = fixture_manifest(tmp_path), str(tmp_path / "results")
    for row, values in (("a", [0.2, 0.4]), ("b", [0.3, 0.5])):
        fake_run(results, "parity", row, 0, 0.9)
        with open(os.path.join(reproduce.result_dir_of(results, "parity", row, 0), "metrics.jsonl"), "w") as f:
            for e, v in enumerate(values, 1):
                f.write(json.dumps({"epoch": e, "train_top1": v}) + "\n")
    manifest["parity"]["per_epoch"] = "train_top1"
    md = ledger.experiment_markdown(manifest, results, "parity")
    assert "| epoch | A | B |" in md and "| 1 | 20.0 | 30.0 |" in md and "| 2 | 40.0 | 50.0 |" in md


def test_step_parity_passes_the_configs_model_and_recipe_to_pytorch():
    from ppresvar.engine.config import load_config
    from reference.step_parity import torch_arguments

    cfg = load_config(os.path.join(ROOT, "configs", "resnet18_dyrelu_a.yaml"),
                      ["Arch.widths=[16,32,64,128]", "Arch.dyrelu_init=random", "Arch.reduction=4"])
    args = torch_arguments(cfg)
    pairs = {k: args[i + 1] for i, k in enumerate(args) if k.startswith("--")}
    assert pairs["--model"] == "resnet18_dyrelu_a" and pairs["--batch"] == "256"
    assert pairs["--label-smoothing"] == "0.1" and pairs["--weight-decay"] == "0.0005"
    assert pairs["--dyrelu-init"] == "random" and pairs["--reduction"] == "4"
    assert args[args.index("--widths") + 1:args.index("--widths") + 5] == ["16", "32", "64", "128"]
    # a model option the PyTorch side cannot build is an error, not a silent mismatch
    cfg["Arch"]["k"] = 3
    with pytest.raises(SystemExit, match="no option for Arch.k"):
        torch_arguments(cfg)


def test_ledger_shows_an_experiments_step_parity(tmp_path):
    manifest, results = fixture_manifest(tmp_path), str(tmp_path / "results")
    os.makedirs(os.path.join(results, "err"))
    report = {"command": "python reference/step_parity.py -c configs/x.yaml", "config": "configs/x.yaml",
              "overrides": ["Arch.dyrelu_init=random"], "model": "resnet18_dyrelu_a", "kernels": "onednn",
              "recipe": {"batch": 256, "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4, "label_smoothing": 0.1},
              "checks": [{"steps": 1, "loss_diff": 2e-7, "ppresvar_vs_torch64": 0.0244,
                          "torch32_vs_torch64": 0.0240, "ppresvar_vs_torch32": 0.0274,
                          "torch32_threads": [2, 1], "torch32_vs_torch32_other_threads": 0.0191}]}
    with open(os.path.join(results, "err", "step_parity.json"), "w") as f:
        json.dump(report, f)
    md = ledger.experiment_markdown(manifest, results, "err")
    assert "the same resnet18_dyrelu_a, Arch.dyrelu_init=random weights" in md
    assert "weight decay 0.0005 on every parameter, label smoothing 0.1, learning rate 0.1, batch 256" in md
    assert "| 1 | 2.0e-07 | 2.4e-02 | 2.4e-02 | 2.7e-02 | 1.9e-02 (2 vs 1 threads) |" in md


def test_pairs_say_whether_two_ways_of_training_agree(tmp_path):
    manifest, results = fixture_manifest(tmp_path), str(tmp_path / "results")
    manifest["err"]["pairs"] = [["r20", "r56"]]
    md = ledger.experiment_markdown(manifest, results, "err")
    assert "| R20 / R56 | - | - | - | not resolved: fewer than 2 seeds |" in md
    fake_seeds(results, "err", ("r20", "r56"), ((0.90, 0.91), (0.92, 0.915)))
    md = ledger.experiment_markdown(manifest, results, "err")   # error rates: 10.0/8.0 vs 9.0/8.5
    assert "| R20 / R56 | 9.00 vs 8.75 (n=2, 2) | +0.25 | 2.00 | **agree** |" in md
    other = str(tmp_path / "other")
    fake_seeds(other, "err", ("r20", "r56"), ((0.90, 0.95), (0.901, 0.951)))
    assert "| +5.00 | 0.10 | **differ** |" in ledger.experiment_markdown(manifest, other, "err")


@pytest.mark.parametrize("extra, message", [
    ({"claims": [{"above": "ok", "below": "nope", "source": "s"}]}, "name no row of it: nope"),
    ({"pairs": [["ok", "gone"]]}, "name no row of it: gone"),
    ({"pairs": [["ok"]]}, "pairs must be a list of"),
])
def test_claims_and_pairs_name_rows_of_the_experiment(tmp_path, extra, message):
    path = tmp_path / "m.yaml"
    with open(path, "w") as f:
        yaml.safe_dump({"tiny": dict({"title": "Tiny", "seed": None, "metric": "test_top1", "about": "A test.",
                                      "rows": {"ok": {"label": "y", "config": "c", "seeds": [0], "budget": "b"}}},
                                     **extra)}, f)
    with pytest.raises(ConfigError, match=message):
        reproduce.load_manifest(str(path))


def test_weights_are_kept_in_float16_only_when_they_give_the_runs_figure(tmp_path):
    """write_weights keeps float16 when the ledger's command on that file
    gives the run's top-1, float32 when the rounding moves it, and refuses
    weights that give neither; float16's range is not exceeded silently."""
    import numpy as np

    from ppresvar import safetensors
    from ppresvar.errors import DataError

    rng = np.random.RandomState(0)
    state = {"w": rng.randn(4, 3).astype(np.float32), "steps": np.array([7], np.int64)}
    path = str(tmp_path / "model.safetensors")
    seen = []

    def evaluate_as(figures):
        def evaluate(p):
            dtype = safetensors.load(p)[0]["w"].dtype.name
            seen.append(dtype)
            return {"top1": figures[dtype], "top5": 1.0, "loss": 0.5, "samples": 100}
        return evaluate

    got = reproduce.write_weights(state, path, 0.9, 2e-4, evaluate_as({"float16": 0.9, "float32": 0.9}), "test")
    kept, meta = safetensors.load(path)
    assert got["dtype"] == "float16" and meta["dtype"] == "float16" and seen == ["float16"]
    np.testing.assert_array_equal(kept["w"], state["w"].astype(np.float16))
    assert kept["steps"].dtype == np.int64 and meta["format"] == "paddle-state-dict"

    seen.clear()
    got = reproduce.write_weights(state, path, 0.9, 2e-4, evaluate_as({"float16": 0.8995, "float32": 0.9}), "test")
    kept, meta = safetensors.load(path)
    assert got["dtype"] == "float32" and seen == ["float16", "float32"]
    np.testing.assert_array_equal(kept["w"], state["w"])

    with pytest.raises(DataError, match="gives top-1 0.5000, the run's test figure is 0.9000"):
        reproduce.write_weights(state, path, 0.9, 2e-4, evaluate_as({"float16": 0.5, "float32": 0.5}), "test")

    seen.clear()
    big = dict(state, w=np.array([1e5], np.float32))
    assert reproduce.write_weights(big, path, 0.9, 2e-4, evaluate_as({"float32": 0.9}), "test")["dtype"] == "float32"
    assert seen == ["float32"]


@pytest.mark.skipif(os.path.isfile(os.path.join(ROOT, "data", "cifar-10-python.tar.gz")),
                    reason="the checkout holds the archive reproduce.py takes by default")
def test_halve_weights_without_an_archive_is_one_clear_error():
    r = run_tool("reproduction/reproduce", ["parity", "--halve-weights"])
    assert r.returncode == 2 and r.stderr.startswith("error: ") and "--data" in r.stderr, r.stderr
