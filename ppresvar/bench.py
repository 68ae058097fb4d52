"""Honest CPU/GPU throughput figures for ``tools/benchmark.py``.

Every figure is ``batch / median step time`` over ``steps`` timed steps after
``warmup`` untimed ones, on a batch made once (data loading excluded), except
the input pipeline's, which is the data package's training loader alone.
Each Paddle setting runs in its own process, because the settings are
environment variables that count only before paddle loads:

``defaults``   what ``import paddle`` gives: one OpenMP thread, MKL's own CPU
               detection (the worker loads paddle and runs a GEMM and a conv
               before ``import ppresvar`` can set anything).
``ppresvar``   what ``import ppresvar`` + the trainer set: every core as
               intra-op threads, ``MKL_DEBUG_CPU_TYPE=5``, ``KMP_BLOCKTIME=1``.
``dp``         ``paddle.distributed.launch`` with one process per core, one
               thread each, the global batch split between them (gloo).

The PyTorch reference (``scripts/torch_reference.py``) runs in another
interpreter (a venv with torch; torch is never a dependency of ppresvar).
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

RESULT_TAG = "BENCH_RESULT "
BEGIN, END = "<!-- benchmark:begin -->", "<!-- benchmark:end -->"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(ROOT, "tools", "benchmark.py")
TORCH_SCRIPT = os.path.join(ROOT, "scripts", "torch_reference.py")
DEFAULT_MODELS = ["resnet20", "resnet56", "resnet18", "rir18", "rir18:fused=false",
                  "resnet18_dyrelu_c", "resnet50_nam"]
CIFAR_MEAN, CIFAR_STD = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]


# ------------------------------------------------------------------ timing

def time_steps(step, warmup=3, steps=10, max_seconds=None, min_steps=3):
    """``(median seconds, steps timed)`` of ``step()``. With ``max_seconds``
    timing stops early once ``min_steps`` are in and the budget is spent."""
    for _ in range(int(warmup)):
        step()
    times = []
    deadline = None if max_seconds is None else time.perf_counter() + float(max_seconds)
    while len(times) < int(steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
        if deadline is not None and len(times) >= min_steps and time.perf_counter() > deadline:
            break
    return statistics.median(times), len(times)


def parse_model_spec(spec):
    """``'rir18:fused=false,wiring=seed'`` -> ``('rir18', {'fused': False, 'wiring': 'seed'})``
    (values read as YAML scalars, never evaluated)."""
    import yaml

    name, _, opts = spec.partition(":")
    options = {}
    for item in filter(None, opts.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            from .errors import ConfigError
            raise ConfigError("model option %r in %r needs key=value" % (item, spec))
        options[key.strip()] = yaml.safe_load(value)
    return name.strip(), options


def model_label(name, options):
    return name + "".join(" %s=%s" % (k, v) for k, v in sorted(options.items()))


# ---------------------------------------------------------------- workers

def paddle_init_defaults():
    """For the ``defaults`` setting: load paddle and initialise MKL and
    OpenMP with a GEMM and a conv before ppresvar can set anything."""
    import paddle

    a = paddle.randn([64, 64])
    paddle.matmul(a, a)
    paddle.nn.functional.conv2d(paddle.randn([1, 3, 8, 8]), paddle.randn([4, 3, 3, 3]))


def _train_step_fn(model, batch, num_classes, seed=0):
    """Forward, loss (the trainer's soft-target cross entropy, plus the NAM
    penalty for NAM models), backward, Momentum step (lr 0.1, L2 5e-4)."""
    import paddle

    from . import nam_sparsity_penalty
    from .engine.losses import soft_cross_entropy

    rng = np.random.RandomState(seed)
    x = paddle.to_tensor(rng.randn(*batch).astype("float32"))
    y = paddle.to_tensor(rng.randint(0, num_classes, (batch[0],)).astype("int64"))
    opt = paddle.optimizer.Momentum(learning_rate=0.1, momentum=0.9, weight_decay=5e-4,
                                    parameters=model.parameters())
    nam = nam_sparsity_penalty(model, 1e-4) is not None
    model.train()

    def step():
        loss = soft_cross_entropy(model(x), y)
        if nam:
            loss = loss + nam_sparsity_penalty(model, 1e-4)
        loss.backward()
        opt.step()
        opt.clear_grad()
        return loss

    return step


def _worker_meta(spec):
    from . import create_model
    from .flops import count_flops, count_params

    model = create_model(spec["model"], num_classes=spec["num_classes"], **spec["options"])
    total, trainable = count_params(model)
    return {"params_total": total, "params_trainable": trainable,
            "flops": count_flops(model, [1] + list(spec["input_shape"]))}


def _worker_train(spec):
    import paddle

    from . import create_model
    from .engine import distributed

    rank, world = distributed.init()
    paddle.seed(0)
    model = create_model(spec["model"], num_classes=spec["num_classes"], **spec["options"])
    if world > 1:
        model = paddle.DataParallel(model)
    batch = [spec["batch"] // world] + list(spec["input_shape"])
    step = _train_step_fn(model, batch, spec["num_classes"], seed=rank)
    med, n = time_steps(step, spec["warmup"], spec["steps"], spec.get("max_seconds"))
    if world > 1:  # the slowest rank sets the pace
        t = paddle.to_tensor([med], dtype="float64")
        paddle.distributed.all_reduce(t, op=paddle.distributed.ReduceOp.MAX)
        med = float(t.numpy()[0])
    return {"train_step_s": med, "train_img_s": spec["batch"] / med, "train_steps": n, "processes": world}


def _worker_infer(spec):
    """Eager inference, then the exported model on every predictor here."""
    import paddle

    from . import create_model
    from . import export as E

    paddle.seed(0)
    model = create_model(spec["model"], num_classes=spec["num_classes"], **spec["options"])
    model.eval()
    b = spec["infer_batch"]
    x_np = np.random.RandomState(0).randn(b, *spec["input_shape"]).astype("float32")
    x = paddle.to_tensor(x_np)
    out = {}

    def eager():
        with paddle.no_grad():
            return model(x)

    med, n = time_steps(eager, spec["warmup"], spec["steps"], spec.get("max_seconds"))
    out["eager_img_s"] = b / med
    with tempfile.TemporaryDirectory() as d:
        paths = E.export_model(model, d, spec["input_shape"], onnx=spec.get("onnx", True) and E.onnx_available(),
                               safetensors=False)
        runs = [("predictor_onednn_img_s", lambda: E.PaddlePredictor(d, onednn=True, threads=spec["threads"])),
                ("predictor_no_onednn_img_s", lambda: E.PaddlePredictor(d, onednn=False, threads=spec["threads"]))]
        if paths["onnx"]:
            runs.append(("onnxruntime_img_s", lambda: E.OnnxPredictor(d, threads=spec["threads"])))
        for key, make in runs:
            try:
                pred = make()
                med, n = time_steps(lambda: pred(x_np), spec["warmup"], spec["steps"], spec.get("max_seconds"))
                out[key] = b / med
            except Exception as e:  # a backend that fails is reported, not fatal
                out[key] = None
                out.setdefault("errors", {})[key] = "%s: %s" % (type(e).__name__, str(e).splitlines()[0][:200])
    return out


def _worker_pipeline(spec):
    """Images/s of the data package's CIFAR training loader (RandomCrop 32
    padding 4, horizontal flip, NormalizeImage) on a synthetic archive in
    the CIFAR format, one full pass after the first batch."""
    from .data import build_loader, write_cifar_archive
    from .engine.config import validate

    with tempfile.TemporaryDirectory() as d:
        archive = os.path.join(d, "cifar-10-python.tar.gz")
        write_cifar_archive(archive, num_train=spec["pipeline_images"], num_test=10)
        section = {"dataset": {"name": "Cifar10", "mode": "train", "data_file": archive, "download": False},
                   "transforms": [{"RandomCrop": {"size": 32, "padding": 4}}, {"RandomHorizontalFlip": {}},
                                  {"NormalizeImage": {"mean": CIFAR_MEAN, "std": CIFAR_STD}}],
                   "batch_size": spec["batch"], "shuffle": True, "drop_last": True,
                   "num_workers": spec["workers"]}
        cfg = validate({"Arch": {"name": "resnet20"}, "DataLoader": {"Train": section}})
        loader, _, _ = build_loader(cfg["DataLoader"]["Train"], "DataLoader.Train", training=True)
        it = iter(loader)
        next(it)  # start-up (worker processes, first decode) is not throughput
        n, t = 0, time.perf_counter()
        for x, _ in it:
            n += int(x.shape[0])
        dt = time.perf_counter() - t
    return {"pipeline_img_s": n / dt if dt > 0 else None, "pipeline_images": n, "workers": spec["workers"]}


WORKERS = {"meta": _worker_meta, "train": _worker_train, "infer": _worker_infer, "pipeline": _worker_pipeline}


def run_worker(spec):
    """Entry of a worker process (``tools/benchmark.py --worker JSON``)."""
    from .runtime import set_cpu_threads

    if spec.get("threads"):
        set_cpu_threads(spec["threads"])
    result = WORKERS[spec["kind"]](spec)
    from .engine import distributed

    if distributed.is_main():
        if spec.get("result_file"):
            with open(spec["result_file"], "w") as f:
                json.dump(result, f)
        print(RESULT_TAG + json.dumps(result), flush=True)
    return result


# ------------------------------------------------------------ orchestration

def _clean_env(setting, extra_env=None):
    env = dict(os.environ)
    if setting != "defaults":
        env.update(extra_env or {})
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    if setting == "defaults":
        for k in ("MKL_DEBUG_CPU_TYPE", "KMP_BLOCKTIME", "OMP_NUM_THREADS"):
            env.pop(k, None)
    return env


def _last_result(text):
    for line in reversed(text.splitlines()):
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG):])
    return None


def spawn(spec, setting="ppresvar", python=None, log=None, timeout=3600, extra_env=None):
    """Run one worker in a fresh process; returns its result dict, or
    ``{"error": ...}``."""
    from .runtime import available_cores

    python = python or sys.executable
    spec = dict(spec)
    args = [TOOL, "--worker", None]
    if setting == "defaults":
        args.append("--paddle-defaults")
        spec["threads"] = None
    elif setting == "dp":
        spec["threads"] = 1
    else:
        spec.setdefault("threads", available_cores())
    env = _clean_env(setting, extra_env)
    with tempfile.TemporaryDirectory() as d:
        spec["result_file"] = os.path.join(d, "result.json")
        args[2] = json.dumps(spec)
        if setting == "dp":
            nproc = spec.get("processes") or available_cores()
            cmd = [python, "-m", "paddle.distributed.launch", "--nproc_per_node", str(nproc),
                   "--log_dir", os.path.join(d, "log")] + args
        else:
            cmd = [python] + args
        t = time.time()
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)
            text = r.stdout + r.stderr
            rc = r.returncode
        except subprocess.TimeoutExpired as e:
            text, rc = str(e), -1
        result = None
        if os.path.isfile(spec["result_file"]):
            with open(spec["result_file"]) as f:
                result = json.load(f)
        if result is None:
            result = _last_result(text)
        if log is not None:
            log("  %s/%s %s: %.0fs%s" % (spec["kind"], setting, model_label(spec.get("model", ""), spec.get("options", {})),
                                         time.time() - t, "" if result is not None else " FAILED"))
        if result is None:
            tail = "\n".join(text.strip().splitlines()[-15:])
            logs = os.path.join(d, "log", "workerlog.0")
            if os.path.isfile(logs):
                tail += "\n" + "\n".join(open(logs).read().strip().splitlines()[-15:])
            return {"error": "exit %s: %s" % (rc, tail)}
        return result


def run_torch(torch_python, models, opts, log=None, timeout=7200):
    """The PyTorch reference figures for ``models`` (dict name -> options)."""
    specs = [model_label(n, o).replace(" ", ":", 1).replace(" ", ",") for n, o in models]
    cmd = [torch_python, TORCH_SCRIPT, "--models", ";".join(specs), "--batch", str(opts["batch"]),
           "--infer-batch", str(opts["infer_batch"]), "--steps", str(opts["steps"]),
           "--warmup", str(opts["warmup"])]
    if opts.get("max_seconds"):
        cmd += ["--max-seconds", str(opts["max_seconds"])]
    if opts.get("no_compile"):
        cmd.append("--no-compile")
    t = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    res = _last_result(r.stdout)
    if log is not None:
        log("  torch reference: %.0fs%s" % (time.time() - t, "" if res else " FAILED"))
    if res is None:
        return {"error": "exit %s: %s" % (r.returncode, "\n".join((r.stdout + r.stderr).strip().splitlines()[-20:]))}
    return res


def machine_info(torch_python=None):
    import platform

    info = {"python": platform.python_version(), "machine": platform.machine(), "cores": None, "cpu": None}
    from .runtime import available_cores

    info["cores"] = available_cores()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import paddle

        info["paddle"] = paddle.__version__
    except ImportError:
        pass
    for mod in ("onnxruntime", "paddle2onnx"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception:
            info[mod] = None
    return info


def benchmark(models, batch=128, infer_batch=128, steps=20, warmup=5, max_seconds=None,
              settings=("defaults", "ppresvar", "dp"), pipeline_workers=(0, 2), pipeline_images=4096,
              torch_python=None, no_compile=False, num_classes=10, log=print, baseline_models=("resnet20",),
              extra_env=None, parts=("train", "infer", "pipeline")):
    """Run everything; returns the results as one JSON-able dict. The
    ``defaults`` setting (paddle as it comes, the slowest) runs only for the
    models in ``baseline_models`` (all when None); ``extra_env`` is added to
    the environment of every other worker (to try a setting)."""
    parsed = [parse_model_spec(m) if isinstance(m, str) else m for m in models]
    baseline = None if baseline_models is None else {model_label(*parse_model_spec(m)) for m in baseline_models}
    common = dict(batch=batch, infer_batch=infer_batch, steps=steps, warmup=warmup, max_seconds=max_seconds,
                  num_classes=num_classes, input_shape=[3, 32, 32])
    out = {"config": dict(common, settings=list(settings), pipeline_workers=list(pipeline_workers),
                          pipeline_images=pipeline_images, torch_python=torch_python,
                          baseline_models=None if baseline_models is None else list(baseline_models),
                          extra_env=dict(extra_env or {})),
           "machine": machine_info(), "models": [], "pipeline": []}
    for name, options in parsed:
        spec = dict(common, model=name, options=options)
        row = {"model": name, "options": options, "label": model_label(name, options)}
        row["meta"] = spawn(dict(spec, kind="meta"), log=log)
        row["train"] = {}
        for s in (settings if "train" in parts else ()):
            if s == "defaults" and baseline is not None and row["label"] not in baseline:
                continue
            row["train"][s] = spawn(dict(spec, kind="train"), setting=s, log=log, extra_env=extra_env)
        row["infer"] = spawn(dict(spec, kind="infer"), log=log, extra_env=extra_env) if "infer" in parts else {}
        out["models"].append(row)
    for w in (pipeline_workers if "pipeline" in parts else ()):
        out["pipeline"].append(spawn(dict(common, kind="pipeline", workers=w, pipeline_images=pipeline_images),
                                     log=log, extra_env=extra_env))
    if torch_python:
        out["torch"] = run_torch(torch_python, parsed, dict(common, no_compile=no_compile), log=log)
    return out


# ----------------------------------------------------------------- report

def _fmt(v, digits=0):
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    if digits == 0:
        return "{:,.0f}".format(v)
    return ("{:,.%df}" % digits).format(v)


def _best(d, keys):
    vals = [(d.get(k), k) for k in keys if isinstance(d.get(k), (int, float))]
    return max(vals) if vals else (None, None)


TRAIN_NAMES = {"defaults": "paddle defaults (1 thread)", "ppresvar": "ppresvar (all cores)",
               "dp": "ppresvar data parallel (1 proc/core)"}
INFER_KEYS = [("eager_img_s", "paddle eager"), ("predictor_onednn_img_s", "Paddle Inference oneDNN"),
              ("predictor_no_onednn_img_s", "Paddle Inference no oneDNN"), ("onnxruntime_img_s", "onnxruntime")]


def summarize(res):
    """Derived figures: best settings and the goal ratios."""
    torch = res.get("torch") or {}
    tmodels = torch.get("models", {}) if isinstance(torch, dict) else {}
    rows = []
    for row in res["models"]:
        t = tmodels.get(row["label"], {})
        train = {s: (r.get("train_img_s") if isinstance(r, dict) else None) for s, r in row["train"].items()}
        best_train, best_setting = _best(train, list(train))
        tt = {k: t.get(k) for k in ("train_img_s", "train_channels_last_img_s")}
        best_torch_train, best_torch_setting = _best(tt, list(tt))
        inf = row["infer"] if isinstance(row["infer"], dict) else {}
        best_inf, best_inf_key = _best(inf, [k for k, _ in INFER_KEYS])
        compiled = t.get("compile_img_s")
        rows.append({
            "label": row["label"], "params": (row["meta"] or {}).get("params_trainable"),
            "torch_params": t.get("params_trainable"), "flops": (row["meta"] or {}).get("flops"),
            "train": train, "best_train": best_train, "best_train_setting": best_setting,
            "torch_train": tt, "best_torch_train": best_torch_train, "best_torch_setting": best_torch_setting,
            "train_ratio": best_train / best_torch_train if best_train and best_torch_train else None,
            "infer": {k: inf.get(k) for k, _ in INFER_KEYS}, "best_infer": best_inf, "best_infer_key": best_inf_key,
            "torch_eager_infer": t.get("eager_img_s"), "torch_compile_infer": compiled,
            "infer_ratio": best_inf / compiled if best_inf and compiled else None,
        })
    by = {r["label"]: r for r in rows}
    goals = []

    def step_ratio(a, b, setting="ppresvar"):
        ra, rb = by.get(a), by.get(b)
        if not ra or not rb or not ra["train"].get(setting) or not rb["train"].get(setting):
            return None
        return rb["train"][setting] / ra["train"][setting]   # time ratio a/b = speed b / speed a

    for r in rows:
        goals.append(("%s training >= 1.0x PyTorch's best" % r["label"], r["train_ratio"], 1.0, ">="))
    for r in rows:
        goals.append(("%s best inference >= torch.compile" % r["label"], r["infer_ratio"], 1.0, ">="))
    pipes = [p.get("pipeline_img_s") for p in res.get("pipeline", []) if isinstance(p, dict)]
    pipes = [p for p in pipes if p]
    r20 = by.get("resnet20")
    if pipes and r20 and r20["best_train"]:
        goals.append(("input pipeline >= 20x resnet20 training", max(pipes) / r20["best_train"], 20.0, ">="))
    if "rir18" in by and "rir18 fused=False" in by:
        goals.append(("fused RiR-18 training >= 1.5x four convolutions",
                      step_ratio("rir18 fused=False", "rir18"), 1.5, ">="))
    if "resnet18_dyrelu_c" in by and "resnet18" in by:
        goals.append(("DyReLU-C ResNet-18 step <= 1.3x ReLU ResNet-18 step",
                      step_ratio("resnet18_dyrelu_c", "resnet18"), 1.3, "<="))
    return rows, goals


def to_markdown(res, command=None):
    rows, goals = summarize(res)
    cfg, m = res["config"], res["machine"]
    lines = ["## Throughput on this machine", ""]
    lines.append("%s, %s cores; Python %s, paddle %s, onnxruntime %s, torch %s." % (
        m.get("cpu") or m.get("machine"), m.get("cores"), m.get("python"), m.get("paddle"),
        m.get("onnxruntime") or "-", (res.get("torch") or {}).get("torch", "-")))
    lines.append("Images/s = batch / median step time over %d timed steps after %d warm-up steps%s; data "
                 "loading excluded (a batch made once). Training batch %d, inference batch %d, %d classes, "
                 "32x32 inputs." % (cfg["steps"], cfg["warmup"],
                                    " (fewer when a model used up %ss)" % cfg["max_seconds"] if cfg.get("max_seconds") else "",
                                    cfg["batch"], cfg["infer_batch"], cfg["num_classes"]))
    if cfg.get("extra_env"):
        lines.append("Extra environment for every ppresvar worker: %s." % ", ".join(
            "`%s=%s`" % kv for kv in sorted(cfg["extra_env"].items())))
    if command:
        lines += ["", "Made by:", "", "```", command, "```"]
    lines += ["", "### Training (forward, loss, backward, Momentum step), images/s", ""]
    settings = cfg["settings"]
    head = ["model", "params", "PyTorch params", "MFLOPs/img"] + [TRAIN_NAMES.get(s, s) for s in settings] + \
           ["PyTorch", "PyTorch channels-last", "best ppresvar / best PyTorch"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        same = "" if r["torch_params"] is None else (" (equal)" if r["torch_params"] == r["params"] else " (DIFFERENT)")
        cells = [r["label"], _fmt(r["params"]), _fmt(r["torch_params"]) + same,
                 _fmt(r["flops"] / 1e6 if r["flops"] else None, 1)]
        cells += [_fmt(r["train"].get(s)) for s in settings]
        cells += [_fmt(r["torch_train"].get("train_img_s")), _fmt(r["torch_train"].get("train_channels_last_img_s")),
                  _fmt(r["train_ratio"], 2) + ("x" if r["train_ratio"] else "")]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "### Inference, images/s", ""]
    head = ["model"] + [n for _, n in INFER_KEYS] + ["PyTorch eager", "torch.compile", "best ppresvar / torch.compile"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["label"]] + [_fmt(r["infer"].get(k)) for k, _ in INFER_KEYS]
        cells += [_fmt(r["torch_eager_infer"]), _fmt(r["torch_compile_infer"]),
                  _fmt(r["infer_ratio"], 2) + ("x" if r["infer_ratio"] else "")]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "### Input pipeline (CIFAR training transforms: RandomCrop 32 pad 4, flip, NormalizeImage; "
              "batch %d)" % cfg["batch"], ""]
    lines += ["| DataLoader workers | images/s |", "|---|---|"]
    for p in res.get("pipeline", []):
        if isinstance(p, dict) and "pipeline_img_s" in p:
            lines.append("| %d | %s |" % (p["workers"], _fmt(p["pipeline_img_s"])))
    lines += ["", "### Goals", "", "| goal | measured | met |", "|---|---|---|"]
    for text, value, target, op in goals:
        met = "-" if value is None else ("yes" if (value >= target if op == ">=" else value <= target) else "no")
        lines.append("| %s | %s | %s |" % (text, "-" if value is None else "%.2fx" % value, met))
    errors = []
    for row in res["models"]:
        for part, val in [("meta", row["meta"]), ("infer", row["infer"])] + list(row["train"].items()):
            if isinstance(val, dict) and val.get("error"):
                errors.append("%s %s: %s" % (row["label"], part, val["error"].splitlines()[-1][:200]))
            if isinstance(val, dict) and val.get("errors"):
                errors += ["%s %s: %s" % (row["label"], k, v) for k, v in val["errors"].items()]
    t = res.get("torch")
    if isinstance(t, dict) and t.get("error"):
        errors.append("torch: " + t["error"].splitlines()[-1][:200])
    if errors:
        lines += ["", "Failures:", ""] + ["- " + e for e in errors]
    return "\n".join(lines) + "\n"


def write_markdown(path, text):
    """Put ``text`` between the BEGIN/END markers of ``path`` (the prose
    around them is kept), or write a new file with the markers."""
    block = "%s\n%s%s\n" % (BEGIN, text, END)
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            old = f.read()
        if BEGIN in old and END in old:
            head, rest = old.split(BEGIN, 1)
            tail = rest.split(END, 1)[1].lstrip("\n")
            new = head + block + tail
        else:
            new = old.rstrip("\n") + "\n\n" + block
    else:
        new = "# Benchmarks\n\n" + block
    with open(path, "w", encoding="utf-8") as f:
        f.write(new)
