"""tools/benchmark.py's parts on tiny sizes (timings here mean nothing; the
real run is documented in docs/benchmarks.md)."""
import os

import pytest

from ppresvar import bench
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
                "train": {"ppresvar": {"train_img_s": train}, "dp": {"train_img_s": train * 1.5}},
                "infer": {"eager_img_s": 50.0, "predictor_onednn_img_s": 300.0, "onnxruntime_img_s": 400.0}}

    torch = {"torch": "x", "models": {
        "resnet20": {"params_trainable": 10, "train_img_s": 300.0, "train_channels_last_img_s": 400.0,
                     "eager_img_s": 100.0, "compile_img_s": 200.0}}}
    return {"config": {"steps": 3, "warmup": 1, "batch": 8, "infer_batch": 8, "num_classes": 10,
                       "settings": ["ppresvar", "dp"], "max_seconds": None},
            "machine": {"cpu": "cpu", "cores": 2}, "torch": torch,
            "models": [row("resnet20", 100.0), row("rir18", 30.0), row("rir18 fused=False", 10.0),
                       row("resnet18", 20.0), row("resnet18_dyrelu_c", 10.0)],
            "pipeline": [{"workers": 0, "pipeline_img_s": 4000.0}]}


def test_summary_and_goals():
    rows, goals = bench.summarize(_fake_result())
    r20 = rows[0]
    assert r20["best_train"] == 150.0 and r20["best_train_setting"] == "dp"
    assert r20["train_ratio"] == pytest.approx(150.0 / 400.0)
    assert r20["infer_ratio"] == pytest.approx(2.0)
    g = {text: value for text, value, _, _ in goals}
    assert g["input pipeline >= 20x resnet20 training"] == pytest.approx(4000.0 / 150.0)
    assert g["fused RiR-18 training >= 1.5x four convolutions"] == pytest.approx(3.0)
    assert g["DyReLU-C ResNet-18 step <= 1.3x ReLU ResNet-18 step"] == pytest.approx(2.0)
    md = bench.to_markdown(_fake_result(), "python tools/benchmark.py")
    assert "10 (equal)" in md and "| input pipeline >= 20x resnet20 training | 26.67x | yes |" in md


def test_markdown_between_markers(tmp_path):
    path = str(tmp_path / "b.md")
    with open(path, "w") as f:
        f.write("# T\nintro\n%s\nold\n%s\nafter\n" % (bench.BEGIN, bench.END))
    bench.write_markdown(path, "new table\n")
    text = open(path).read()
    assert "intro" in text and "after" in text and "new table" in text and "old" not in text


TORCH_PYTHON = os.environ.get("PPRESVAR_TORCH_PYTHON")


@pytest.mark.skipif(not TORCH_PYTHON, reason="set PPRESVAR_TORCH_PYTHON to a python with torch")
def test_torch_reference_has_our_parameter_counts():
    models = ["resnet20", "resnet56", "resnet18", "rir18", "resnet18_dyrelu_c", "resnet50_nam"]
    res = bench.run_torch(TORCH_PYTHON, [(m, {}) for m in models],
                          dict(batch=2, infer_batch=2, steps=1, warmup=0, no_compile=True))
    for m in models:
        assert res["models"][m]["params_trainable"] == count_params(ppresvar.create_model(m, num_classes=10))[1], m
