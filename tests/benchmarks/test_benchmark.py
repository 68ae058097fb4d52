"""benchmarks/benchmark.py's parts on tiny sizes (timings here mean nothing; the
real run is documented in docs/benchmarks.md)."""
import json
import os
import subprocess
import sys

import pytest

from benchmarks import bench
from ppresvar import export as E
from ppresvar.flops import count_params

import ppresvar


def test_time_steps_counts_warmup_and_steps():
    calls = []
    med, n = bench.time_steps(lambda: calls.append(1), warmup=2, steps=5)
    assert len(calls) == 7 and n == 5 and med >= 0


def test_time_steps_budget_keeps_three():
    med, n = bench.time_steps(lambda: None, warmup=0, steps=1000, max_seconds=0.0)
    assert n == 3


def test_parse_model_spec():
    assert bench.parse_model_spec("rir18:fused=false,wiring=seed") == ("rir18", {"fused": False, "wiring": "seed"})
    assert bench.model_label("rir18", {"fused": False}) == "rir18 fused=False"


def _spec(**kw):
    spec = dict(model="resnet20", options={}, batch=4, infer_batch=2, steps=1, warmup=0, max_seconds=None,
                num_classes=10, input_shape=[3, 32, 32], threads=None)
    spec.update(kw)
    return spec


def test_meta_worker():
    r = bench.run_worker(_spec(kind="meta"))
    assert r["params_trainable"] == 269722 and r["flops"] > 0


def test_train_worker():
    r = bench.run_worker(_spec(kind="train"))
    assert r["train_img_s"] > 0 and r["train_steps"] == 1 and r["processes"] == 1
    assert r["kernels"] == "paddle" and r["onednn_convs_per_step"] == 0


def test_train_worker_reports_the_threads_it_set():
    r = bench.run_worker(_spec(kind="train", threads=2))
    assert r["threads"] == 2
    eff = r["threads_effective"]
    assert eff.get("iomp", 2) == 2 and eff.get("mkl", 2) == 2   # what paddle's kernels run on


def test_onednn_worker_runs_the_convolutions_on_onednn():
    from ppresvar import kernels

    ok, why = kernels.available(say=lambda *a: None)
    if not ok:
        pytest.skip("oneDNN kernels unavailable here: %s" % why)
    r = bench.run_worker(_spec(kind="train", kernels="onednn"))
    assert r["train_img_s"] > 0 and r["kernels"] == "onednn"
    assert r["onednn_convs_per_step"] == 19   # resnet20: the stem and 18 block convolutions
    assert not kernels.active()


def test_infer_worker_measures_every_backend():
    r = bench.run_worker(_spec(kind="infer"))
    assert r["eager_img_s"] > 0
    assert r["predictor_onednn_img_s"] > 0 and r["predictor_no_onednn_img_s"] > 0
    if E.onnx_available():
        assert r["onnxruntime_img_s"] > 0


def test_pipeline_worker():
    r = bench.run_worker(_spec(kind="pipeline", batch=16, workers=0, pipeline_images=64))
    assert r["pipeline_images"] == 48 and r["pipeline_img_s"] > 0   # 3 batches after the first


def _fake_result():
    def row(label, train, name=None):
        name = name or label.split()[0]
        return {"model": name, "options": {}, "label": label,
                "meta": {"params_trainable": 10, "flops": 2e6},
                "train": {"ppresvar": {"train_img_s": train}, "dp": {"train_img_s": train * 1.5},
                          "onednn": {"train_img_s": train * 2}, "dp_onednn": {"train_img_s": train * 1.6},
                          "onednn_1t": {"train_img_s": train * 1.25}},
                "infer": {"eager_img_s": 50.0, "predictor_onednn_img_s": 300.0, "onnxruntime_img_s": 400.0}}

    torch = {"torch": "x", "models": {
        "resnet20": {"params_trainable": 10, "train_img_s": 300.0, "train_channels_last_img_s": 400.0,
                     "eager_img_s": 100.0, "compile_img_s": 200.0}}}
    return {"config": {"steps": 3, "warmup": 1, "batch": 8, "infer_batch": 8, "num_classes": 10,
                       "settings": ["ppresvar", "dp", "onednn", "dp_onednn", "onednn_1t"], "max_seconds": None},
            "machine": {"cpu": "cpu", "cores": 2}, "torch": torch,
            "models": [row("resnet20", 100.0), row("rir18", 30.0), row("rir18 fused=False", 10.0),
                       row("resnet18", 20.0), row("resnet18_dyrelu_c", 10.0)],
            "pipeline": [{"workers": 0, "pipeline_img_s": 4000.0}]}


def test_summary_and_goals():
    rows, goals = bench.summarize(_fake_result())
    r20 = rows[0]
    assert r20["best_train"] == 200.0 and r20["best_train_setting"] == "onednn"
    assert r20["train_ratio"] == pytest.approx(200.0 / 400.0)
    assert r20["infer_ratio"] == pytest.approx(2.0)
    g = {text: value for text, value, _, _ in goals}
    assert g["input pipeline >= 20x resnet20 training"] == pytest.approx(4000.0 / 200.0)
    assert g["fused RiR-18 training >= 1.5x four convolutions"] == pytest.approx(3.0)
    # the default setting's steps: one process, every core, the kernels
    assert g["DyReLU-C ResNet-18 step <= 1.3x ReLU ResNet-18 step"] == pytest.approx(2.0)
    assert g["resnet20 one process >= data parallel"] == pytest.approx(2.0 / 1.6)
    assert g["resnet20 2 threads >= 1.8x one thread"] == pytest.approx(2.0 / 1.25)
    md = bench.to_markdown(_fake_result(), "python benchmarks/benchmark.py")
    assert "10 (equal)" in md and "| input pipeline >= 20x resnet20 training | 20.00x | yes |" in md
    assert "| resnet20 one process >= data parallel | 1.25x | yes |" in md
    assert "| resnet20 2 threads >= 1.8x one thread | 1.60x | no |" in md


def test_markdown_between_markers(tmp_path):
    path = str(tmp_path / "b.md")
    with open(path, "w") as f:
        f.write("# T\nintro\n%s\nold\n%s\nafter\n" % (bench.BEGIN, bench.END))
    bench.write_markdown(path, "new table\n")
    text = open(path).read()
    assert "intro" in text and "after" in text and "new table" in text and "old" not in text


# ------------------------------------------------------ threads of children

def test_child_env_names_the_threads_whatever_the_parent_has(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")       # what import paddle leaves here
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    monkeypatch.setattr(bench, "USER_ENV", None)
    env = bench.child_env(3, pythonpath=False, base=bench.torch_base_env())
    assert env["OMP_NUM_THREADS"] == "3" and env["MKL_NUM_THREADS"] == "3"
    assert "PYTHONPATH" not in env or env["PYTHONPATH"] == os.environ.get("PYTHONPATH")
    # the user's environment as recorded before import paddle is the base when set
    monkeypatch.setattr(bench, "USER_ENV", {"OMP_NUM_THREADS": "1", "HOME": "/h"})
    env = bench.child_env(4)
    assert env["OMP_NUM_THREADS"] == "4" and env["MKL_NUM_THREADS"] == "4" and env["HOME"] == "/h"
    assert env["PYTHONPATH"].split(os.pathsep)[0] == bench.ROOT
    # paddle as it comes: one thread, none of ppresvar's CPU defaults
    env = bench.child_env(1, base={"MKL_DEBUG_CPU_TYPE": "5", "KMP_BLOCKTIME": "1"}, paddle_defaults=True,
                          extra_env={"X": "1"})
    assert env["OMP_NUM_THREADS"] == "1" and "MKL_DEBUG_CPU_TYPE" not in env and "X" not in env


def test_train_runs_get_the_users_shell_environment(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(bench, "USER_ENV", None)
    assert "OMP_NUM_THREADS" not in bench.user_shell_env()
    monkeypatch.setattr(bench, "USER_ENV", {"OMP_NUM_THREADS": "3"})
    assert bench.user_shell_env() == {"OMP_NUM_THREADS": "3"}


def test_torch_env_drops_ppresvar_cpu_defaults(monkeypatch):
    monkeypatch.setattr(bench, "USER_ENV", None)
    monkeypatch.setenv("MKL_DEBUG_CPU_TYPE", "5")
    monkeypatch.setenv("KMP_BLOCKTIME", "1")
    base = bench.torch_base_env()
    assert "MKL_DEBUG_CPU_TYPE" not in base and "KMP_BLOCKTIME" not in base


def test_setting_plans():
    assert bench.setting_plan("defaults", cores=4) == (1, 1, "paddle")
    assert bench.setting_plan("ppresvar", cores=4) == (1, 4, "paddle")
    assert bench.setting_plan("onednn", cores=4) == (1, 4, "onednn")
    assert bench.setting_plan("dp", cores=4) == (4, 1, "paddle")
    with pytest.raises(Exception, match="unknown benchmark setting"):
        bench.setting_plan("fast")


def test_threads_labels():
    assert bench.threads_label({"threads_named": 2, "processes": 1, "threads_effective": {"iomp": 2}}) == "2"
    assert bench.threads_label({"threads_named": 1, "processes": 2}) == "2x1"
    assert bench.threads_label({"threads_named": 2, "processes": 1, "kernels": "onednn",
                                "threads_effective": {"iomp": 2, "gomp": 1}}) == "2; gomp 1!"
    assert bench.threads_label({"error": "x"}) is None
    assert bench.torch_threads_label({"threads": 1, "threads_named": 2}) == "1; told 2!"


def test_spawned_worker_gets_every_core_with_omp_num_threads_1_here(monkeypatch):
    from ppresvar.runtime import available_cores

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(bench, "USER_ENV", None)
    r = bench.spawn(_spec(kind="train", batch=2), setting="ppresvar")
    cores = available_cores()
    assert r["threads"] == cores and r["threads_named"] == cores and r["omp_num_threads_env"] == str(cores)
    assert r["threads_effective"].get("iomp", cores) == cores


# ----------------------------------------------------------------- reports

def test_public_paths_and_command(tmp_path):
    cmd = bench.public_command(["--torch-python", "/somewhere/venv/bin/python", "--data=/data/c.tar.gz",
                                "--markdown", os.path.join(bench.ROOT, "docs", "b.md")])
    assert cmd == ("python benchmarks/benchmark.py --torch-python '<venv with torch>/bin/python' --data=ARCHIVE "
                   "--markdown ./docs/b.md")
    res = bench.public({"e": ["at %s/x.py and /somewhere/venv/lib/torch" % bench.ROOT]}, "/somewhere/venv/bin/python")
    assert res == {"e": ["at ./x.py and <venv with torch>/lib/torch"]}


def test_json_sections_are_kept(tmp_path):
    path = str(tmp_path / "b.json")
    bench.write_json(path, {"models": [1]})
    bench.write_json(path, {"settings": {}}, "end_to_end")
    bench.write_json(path, {"models": [2]})
    assert json.load(open(path)) == {"models": [2], "end_to_end": {"settings": {}}}


def test_e2e_commands():
    recipe = {"batch": 128, "val_size_override": None}
    cmd, procs, batch = bench.e2e_train_command("ppresvar", "A", "T", recipe)
    assert procs == 1 and batch == 128 and cmd[:4] == ["python", "tools/train.py", "-c", "configs/resnet20.yaml"]
    text = " ".join(cmd)
    for o in ("DataLoader.Train.dataset.data_file=A", "DataLoader.Eval.dataset.data_file=A", "Global.iterations=null",
              "Global.epochs=1", "Global.output_dir=T"):
        assert "-o " + o in text
    assert "batch_size" not in text and "cpu_kernels" not in text
    cmd, procs, batch = bench.e2e_train_command("dp", "A", "T", dict(recipe, val_size_override=0.1), nproc=2)
    text = " ".join(cmd)
    assert procs == 2 and batch == 64 and "-m paddle.distributed.launch --nproc_per_node=2" in text
    assert "-o DataLoader.Train.batch_size=64" in text and "-o DataLoader.Eval.dataset.val_size=0.1" in text
    cmd, _, _ = bench.e2e_train_command("paddle_kernels", "A", "T", recipe)
    assert cmd[-2:] == ["-o", "Global.cpu_kernels=paddle"]
    with pytest.raises(Exception, match="does not split"):
        bench.e2e_train_command("dp", "A", "T", recipe, nproc=3)


def test_e2e_recipe_keeps_the_split_proportion():
    from ppresvar.engine.config import load_config

    cfg = load_config(os.path.join(bench.ROOT, bench.E2E_CONFIG))
    r = bench.e2e_recipe(cfg, 50000)
    assert r["val_size"] == 5000 and r["val_size_override"] is None and r["batch"] == 128
    assert (r["lr"], r["momentum"], r["weight_decay"], r["eval_batch"]) == (0.1, 0.9, 1e-4, 500)
    r = bench.e2e_recipe(cfg, 10000)
    assert r["val_size"] == r["val_size_override"] == 0.1


TORCH_PYTHON = os.environ.get("PPRESVAR_TORCH_PYTHON")


def _torch_python():
    """PPRESVAR_TORCH_PYTHON when torch imports there, else None."""
    if not TORCH_PYTHON:
        return None
    try:
        ok = subprocess.run([TORCH_PYTHON, "-c", "import torch"], capture_output=True, timeout=120).returncode == 0
    except (OSError, subprocess.SubprocessError):
        ok = False
    return TORCH_PYTHON if ok else None


def test_end_to_end_smoke(tmp_path):
    """--end-to-end on a generated archive of 256 images, batch 32: the
    trainer's side always, the PyTorch side with PPRESVAR_TORCH_PYTHON."""
    torch_python = _torch_python()
    out, md = str(tmp_path / "e2e.json"), str(tmp_path / "b.md")
    cmd = [sys.executable, os.path.join(bench.ROOT, "benchmarks", "benchmark.py"), "--end-to-end", "--e2e-images", "256",
           "--e2e-batch", "32", "--e2e-settings", "ppresvar", "--json", out, "--markdown", md]
    if torch_python:
        cmd += ["--torch-python", torch_python]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}  # a shell's
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=str(tmp_path), env=env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    res = json.load(open(out))["end_to_end"]
    assert res["config"]["archive_train_images"] == 256 and res["config"]["recipe"]["val_size"] == 0.1
    row = res["settings"]["ppresvar"]
    assert not row.get("errors"), row.get("errors")
    from ppresvar.runtime import available_cores
    assert row["train_images"] == 230 and row["val_images"] == 26 and row["processes"] >= 1
    # the trainer's own choice, as read from its train.log
    assert row["threads"] == row["threads_named"] == max(1, available_cores() // row["processes"])
    assert row["kernels"] in ("oneDNN", "paddle") and row["env_threads"]["OMP_NUM_THREADS"] is None
    for key in ("epoch_time_s", "train_img_s", "compute_img_s", "process_s"):
        assert row[key]["median"] > 0 and row[key]["runs"] == 1, key
    assert row["train_img_s"]["median"] == pytest.approx(230 / row["epoch_time_s"]["median"])
    assert row["process_s"]["median"] > row["epoch_time_s"]["median"]
    assert row["command"].startswith("python tools/train.py -c configs/resnet20.yaml -o DataLoader.Train.dataset")
    text = open(md).read()
    assert bench.E2E_BEGIN in text and "| ppresvar `tools/train.py`" in text
    assert bench.ROOT not in text and str(tmp_path) not in text and bench.ROOT not in open(out).read()
    if torch_python:
        t = res["torch"]
        assert not t.get("errors"), t.get("errors")
        assert t["threads"] == available_cores() and t["train_images"] == 230
        assert t["epoch_time_s"]["median"] > 0 and row["ratio_to_torch"] > 0
        assert "<venv with torch>" in t["command"] and torch_python not in open(out).read()




@pytest.mark.skipif(not TORCH_PYTHON, reason="set PPRESVAR_TORCH_PYTHON to a python with torch")
def test_torch_reference_has_our_parameter_counts():
    models = ["resnet20", "resnet56", "resnet18", "rir18", "resnet18_dyrelu_c", "resnet50_nam"]
    res = bench.run_torch(TORCH_PYTHON, [(m, {}) for m in models],
                          dict(batch=2, infer_batch=2, steps=1, warmup=0, no_compile=True))
    for m in models:
        assert res["models"][m]["params_trainable"] == count_params(ppresvar.create_model(m, num_classes=10))[1], m


@pytest.mark.skipif(not TORCH_PYTHON, reason="set PPRESVAR_TORCH_PYTHON to a python with torch")
def test_torch_reference_uses_every_core_with_omp_num_threads_1_here(monkeypatch):
    from ppresvar.runtime import available_cores

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(bench, "USER_ENV", None)
    res = bench.run_torch(TORCH_PYTHON, [("resnet20", {})], dict(batch=2, infer_batch=2, steps=1, warmup=0,
                                                                 no_compile=True))
    assert res["threads"] == available_cores() == res["models"]["resnet20"]["threads"]
    assert res["env"]["OMP_NUM_THREADS"] == str(available_cores())
