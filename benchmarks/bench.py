"""Honest CPU/GPU throughput figures for ``benchmarks/benchmark.py``.

Every figure is ``batch / median step time`` over ``steps`` timed steps after
``warmup`` untimed ones, on a batch made once (data loading excluded), except
the input pipeline's, which is the data package's training loader alone.
Each Paddle setting runs in its own process, because the settings are
environment variables that count only before paddle loads:

``defaults``   what ``import paddle`` gives: one OpenMP thread, MKL's own CPU
               detection (the worker loads paddle and runs a GEMM and a conv
               with none of ppresvar's CPU settings).
``ppresvar``   what tools/train.py and the trainer set: every core as
               intra-op threads, ``MKL_DEBUG_CPU_TYPE=5``, ``KMP_BLOCKTIME=1``;
               paddle's own CPU kernels.
``onednn``     ``ppresvar`` with the convolutions on ppresvar's oneDNN
               kernels (``ppresvar.kernels.use(True)``, what the trainer does
               with ``Global.cpu_kernels`` auto/onednn): ``tools/train.py``'s
               CPU default, one process using every core (plain ResNets
               channels-last inside, ``Global.cpu_channels_last``).
``onednn_nchw`` ``onednn`` with ``Global.cpu_channels_last: false`` (NCHW
               activations, reordered to oneDNN's blocked layout per call).
``onednn_1t``  ``onednn`` on one thread (how the step scales with threads).
``dp``         ``paddle.distributed.launch`` with one process per core, one
               thread each, the global batch split between them (gloo).
``dp_onednn``  ``dp`` with the oneDNN kernels (what ``tools/train.py`` runs
               with ``Global.cpu_processes`` set to the core count).

Every child process, Paddle's and PyTorch's, gets the thread count its
setting names explicitly (``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` in its
environment, see :func:`child_env`): ``import paddle`` in this process sets
``OMP_NUM_THREADS=1``, which a child would otherwise inherit. Each worker
reports the threads it set and what the OpenMP/MKL runtimes loaded in it
report (:func:`runtime_threads`), and the tables print them next to each figure.

The PyTorch reference (``reference/torch_reference.py``) runs in another
interpreter (a venv with torch; torch is never a dependency of ppresvar).

:func:`end_to_end` (``benchmarks/benchmark.py --end-to-end``) times one real epoch
of ``tools/train.py`` against the reference's own plain PyTorch training loop.
There ``tools/train.py`` runs as a user types it, in the environment of the
shell that started the benchmark (:func:`user_shell_env`), and picks its
processes and threads itself (read back from its train.log); PyTorch gets
every core, told as above.
"""
import contextlib
import glob
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

import numpy as np

RESULT_TAG = "BENCH_RESULT "
BEGIN, END = "<!-- benchmark:begin -->", "<!-- benchmark:end -->"
E2E_BEGIN, E2E_END = "<!-- benchmark-e2e:begin -->", "<!-- benchmark-e2e:end -->"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(ROOT, "benchmarks", "benchmark.py")
TORCH_SCRIPT = os.path.join(ROOT, "reference", "torch_reference.py")
DEFAULT_MODELS = ["resnet20", "resnet56", "resnet18", "rir18", "rir18:fused=false",
                  "resnet18_dyrelu_c", "resnet50_nam"]
CIFAR_MEAN, CIFAR_STD = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]
TORCH_VENV = "<venv with torch>"

# What each Paddle setting names: threads per process ("cores": every core
# this process may run on), processes ("cores": one per core) and kernels.
SETTINGS = {
    "defaults": {"threads": 1, "processes": 1, "kernels": "paddle"},
    "ppresvar": {"threads": "cores", "processes": 1, "kernels": "paddle"},
    "onednn": {"threads": "cores", "processes": 1, "kernels": "onednn"},
    "onednn_1t": {"threads": 1, "processes": 1, "kernels": "onednn"},
    "onednn_nchw": {"threads": "cores", "processes": 1, "kernels": "onednn", "channels_last": False},
    "dp": {"threads": 1, "processes": "cores", "kernels": "paddle"},
    "dp_onednn": {"threads": 1, "processes": "cores", "kernels": "onednn"},
}
DEFAULT_SETTINGS = ("defaults", "ppresvar", "onednn", "dp", "dp_onednn")
DEFAULT_TRAIN_SETTING = "onednn"   # what tools/train.py runs on a CPU: one process, every core, the kernels

# The environment of the user's shell, recorded by benchmarks/benchmark.py before
# ppresvar's CPU settings and ``import paddle`` changed this process's (None: use
# os.environ as it is).
USER_ENV = None


# ------------------------------------------------------------ environments

def child_env(threads, base=None, extra_env=None, paddle_defaults=False, pythonpath=True):
    """The environment of a child process that is to run ``threads`` threads
    (per process): ``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS`` are set to it
    whatever this process has (``import paddle`` sets OMP_NUM_THREADS=1 here,
    and a child would inherit it). ``base``: the environment to start from
    (default :data:`USER_ENV`, else ``os.environ``); ``extra_env`` is added;
    ``paddle_defaults`` drops ppresvar's CPU defaults (paddle as it comes)."""
    if base is None:
        base = USER_ENV if USER_ENV is not None else os.environ
    env = dict(base)
    if not paddle_defaults:
        env.update(extra_env or {})
    else:
        from ppresvar.runtime import ENV_DEFAULTS

        for k in ENV_DEFAULTS:
            env.pop(k, None)
        env["PPRESVAR_NO_MALLOPT"] = "1"  # and glibc's malloc as it comes (runtime.tune_malloc)
    n = str(max(1, int(threads)))
    env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = n
    if pythonpath:
        env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def user_shell_env():
    """The environment ``tools/train.py`` gets when a user types it: the
    user's (:data:`USER_ENV`), or, when not recorded, this process's without
    the OMP_NUM_THREADS that ``import paddle`` set and ppresvar's CPU
    defaults. The trainer then sets its own threads, as for a user."""
    if USER_ENV is not None:
        return dict(USER_ENV)
    from ppresvar.runtime import ENV_DEFAULTS

    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)
    for k, v in ENV_DEFAULTS.items():
        if env.get(k) == v:
            env.pop(k)
    return env


def setting_plan(setting, cores=None):
    """``(processes, threads per process, kernels)`` that ``setting`` names."""
    from ppresvar.runtime import available_cores

    if setting not in SETTINGS:
        from ppresvar.errors import ConfigError
        raise ConfigError("unknown benchmark setting %r: one of %s" % (setting, ", ".join(SETTINGS)))
    cores = cores or available_cores()
    plan = SETTINGS[setting]
    procs = cores if plan["processes"] == "cores" else int(plan["processes"])
    threads = cores if plan["threads"] == "cores" else int(plan["threads"])
    return procs, threads, plan["kernels"]


_RUNTIMES = (("iomp", "libiomp5", "omp_get_max_threads"),      # paddle's kernels (and MKL)
             ("mkl", "libmklml", "mkl_get_max_threads"),
             ("gomp", "libgomp", "omp_get_max_threads"))       # the oneDNN library paddle ships


def runtime_threads():
    """``{runtime: threads}`` of the OpenMP and MKL runtimes loaded in this
    process, each asked through its own C call (the threads its next parallel
    region gets): ``iomp`` (paddle's kernels), ``mkl``, ``gomp`` (paddle's
    libdnnl, so the oneDNN kernels). Empty where it cannot tell."""
    import ctypes

    out = {}
    try:
        with open("/proc/self/maps") as f:
            paths = sorted({line.split()[-1] for line in f if line.rstrip().endswith(".so") or ".so." in line})
    except OSError:
        return out
    for key, prefix, fn in _RUNTIMES:
        for path in paths:
            if os.path.basename(path).startswith(prefix) and os.path.isfile(path):
                try:
                    out[key] = int(getattr(ctypes.CDLL(path), fn)())
                    break
                except (OSError, AttributeError):
                    continue
    return out


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
            from ppresvar.errors import ConfigError
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

    from ppresvar import nam_sparsity_penalty
    from ppresvar.engine.losses import soft_cross_entropy

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
    from ppresvar import create_model
    from ppresvar.flops import count_flops, count_params

    model = create_model(spec["model"], num_classes=spec["num_classes"], **spec["options"])
    total, trainable = count_params(model)
    return {"params_total": total, "params_trainable": trainable,
            "flops": count_flops(model, [1] + list(spec["input_shape"]))}


def _kernels_context(spec):
    """``kernels.use(True)`` for the oneDNN settings, else nothing."""
    if spec.get("kernels") != "onednn":
        return contextlib.nullcontext()
    from ppresvar import kernels

    return kernels.use(True, channels_last=spec.get("channels_last", True))


def _count_onednn_calls(step):
    """oneDNN convolution calls in one ``step()`` (None when it cannot tell):
    proof that the kernels, not paddle's, ran."""
    try:
        from ppresvar import kernels

        state = kernels._STATE
        module = state.get("module")
        if module is None or not state.get("active"):
            return 0 if module is None else None
    except Exception:
        return None
    calls = [0]

    class Counting(object):
        def __getattr__(self, name):
            fn = getattr(module, name)
            if not callable(fn) or not name.startswith("ppresvar_conv2d"):
                return fn

            def counted(*a, **k):
                calls[0] += 1
                return fn(*a, **k)
            return counted

    state["module"] = Counting()
    try:
        step()
    finally:
        state["module"] = module
    return calls[0]


def _worker_train(spec):
    import paddle

    from ppresvar import create_model
    from ppresvar.engine import distributed

    rank, world = distributed.init()
    paddle.seed(0)
    model = create_model(spec["model"], num_classes=spec["num_classes"], **spec["options"])
    if world > 1:
        model = paddle.DataParallel(model)
    batch = [spec["batch"] // world] + list(spec["input_shape"])
    step = _train_step_fn(model, batch, spec["num_classes"], seed=rank)
    with _kernels_context(spec):
        med, n = time_steps(step, spec["warmup"], spec["steps"], spec.get("max_seconds"))
        onednn_calls = _count_onednn_calls(step) if spec.get("kernels") == "onednn" else 0
    if world > 1:  # the slowest rank sets the pace
        t = paddle.to_tensor([med], dtype="float64")
        paddle.distributed.all_reduce(t, op=paddle.distributed.ReduceOp.MAX)
        med = float(t.numpy()[0])
    return {"train_step_s": med, "train_img_s": spec["batch"] / med, "train_steps": n, "processes": world,
            "kernels": spec.get("kernels") or "paddle", "onednn_convs_per_step": onednn_calls}


def _worker_infer(spec):
    """Eager inference, then the exported model on every predictor here."""
    import paddle

    from ppresvar import create_model
    from ppresvar import export as E

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
    from ppresvar.data import build_loader, write_cifar_archive
    from ppresvar.engine.config import validate

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
    """Entry of a worker process (``benchmarks/benchmark.py --worker JSON``).
    The result says how many threads the worker set (``threads``; None: left
    to paddle) and what the runtimes report after the work
    (``threads_effective``), and the environment's OMP_NUM_THREADS."""
    from ppresvar.runtime import set_cpu_threads

    threads = set_cpu_threads(spec["threads"]) if spec.get("threads") else None
    env_threads = os.environ.get("OMP_NUM_THREADS")
    result = WORKERS[spec["kind"]](spec)
    result.update(threads=threads, threads_effective=runtime_threads(), omp_num_threads_env=env_threads)
    from ppresvar.engine import distributed

    if distributed.is_main():
        if spec.get("result_file"):
            with open(spec["result_file"], "w") as f:
                json.dump(result, f)
        print(RESULT_TAG + json.dumps(result), flush=True)
    return result


# ------------------------------------------------------------ orchestration

def _last_result(text):
    for line in reversed(text.splitlines()):
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG):])
    return None


def spawn(spec, setting="ppresvar", python=None, log=None, timeout=3600, extra_env=None):
    """Run one worker in a fresh process with what ``setting`` names
    (:data:`SETTINGS`); returns its result dict (with ``setting``,
    ``processes`` and ``threads_named``), or ``{"error": ...}``."""
    python = python or sys.executable
    spec = dict(spec)
    nproc, threads, kernels = setting_plan(setting, spec.get("cores"))
    if spec.get("processes") and nproc > 1:
        nproc = int(spec["processes"])
    args = [TOOL, "--worker", None]
    if setting == "defaults":
        args.append("--paddle-defaults")
    # defaults: paddle sets its own (1, from OMP_NUM_THREADS=1), the worker nothing
    spec["threads"] = None if setting == "defaults" else threads
    spec["kernels"] = kernels
    spec["channels_last"] = SETTINGS[setting].get("channels_last", True)
    env = child_env(threads, extra_env=extra_env, paddle_defaults=setting == "defaults")
    with tempfile.TemporaryDirectory() as d:
        spec["result_file"] = os.path.join(d, "result.json")
        args[2] = json.dumps(spec)
        if nproc > 1:
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
            result = {"error": "exit %s: %s" % (rc, tail)}
        result.update(setting=setting, threads_named=threads, processes=nproc)
        return result


def run_torch(torch_python, models, opts, log=None, timeout=7200, threads=None):
    """The PyTorch reference figures for ``models`` (list of (name,
    options)), on ``threads`` threads (default: every core), told through
    the environment and ``--threads``."""
    from ppresvar.runtime import available_cores

    threads = threads or available_cores()
    specs = [model_label(n, o).replace(" ", ":", 1).replace(" ", ",") for n, o in models]
    cmd = [torch_python, TORCH_SCRIPT, "--models", ";".join(specs), "--batch", str(opts["batch"]),
           "--infer-batch", str(opts["infer_batch"]), "--steps", str(opts["steps"]),
           "--warmup", str(opts["warmup"]), "--threads", str(threads)]
    if opts.get("max_seconds"):
        cmd += ["--max-seconds", str(opts["max_seconds"])]
    if opts.get("no_compile"):
        cmd.append("--no-compile")
    t = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                       env=child_env(threads, pythonpath=False, base=torch_base_env()))
    res = _last_result(r.stdout)
    if log is not None:
        log("  torch reference: %.0fs%s" % (time.time() - t, "" if res else " FAILED"))
    if res is None:
        return {"error": "exit %s: %s" % (r.returncode, "\n".join((r.stdout + r.stderr).strip().splitlines()[-20:]))}
    res["threads_named"] = threads
    return res


def torch_base_env():
    """The user's environment without the CPU defaults benchmarks/benchmark.py
    applied here (they are paddle's business, not torch's)."""
    from ppresvar.runtime import ENV_DEFAULTS

    base = dict(USER_ENV if USER_ENV is not None else os.environ)
    for k, v in ENV_DEFAULTS.items():
        if USER_ENV is None and base.get(k) == v:
            base.pop(k)
    return base


def machine_info(torch_python=None):
    import platform

    info = {"python": platform.python_version(), "machine": platform.machine(), "cores": None, "cpu": None}
    from ppresvar.runtime import available_cores

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
              settings=DEFAULT_SETTINGS, pipeline_workers=(0, 2), pipeline_images=4096,
              torch_python=None, no_compile=False, num_classes=10, log=print, baseline_models=("resnet20",),
              extra_env=None, parts=("train", "infer", "pipeline")):
    """Run everything; returns the results as one JSON-able dict. The
    ``defaults`` setting (paddle as it comes, the slowest) runs only for the
    models in ``baseline_models`` (all when None); ``extra_env`` is added to
    the environment of every other worker (to try a setting)."""
    parsed = [parse_model_spec(m) if isinstance(m, str) else m for m in models]
    baseline = None if baseline_models is None else {model_label(*parse_model_spec(m)) for m in baseline_models}
    plans = {s: setting_plan(s) for s in settings}  # an unknown setting fails here, before any work
    common = dict(batch=batch, infer_batch=infer_batch, steps=steps, warmup=warmup, max_seconds=max_seconds,
                  num_classes=num_classes, input_shape=[3, 32, 32])
    out = {"config": dict(common, settings=list(settings), pipeline_workers=list(pipeline_workers),
                          pipeline_images=pipeline_images, torch_python=torch_python and TORCH_VENV + "/bin/python",
                          setting_plans={s: {"processes": p, "threads_per_process": t, "kernels": k}
                                         for s, (p, t, k) in plans.items()},
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


# -------------------------------------------------------------- end to end

E2E_CONFIG = "configs/resnet20.yaml"
CIFAR10_TRAIN_IMAGES = 50000
# The variants of ``tools/train.py -c configs/resnet20.yaml`` timed by
# --end-to-end: extra -o overrides, and whether paddle.distributed.launch
# runs it with ``nproc`` processes (the global batch split between them).
E2E_SETTINGS = {
    "ppresvar": {"overrides": [], "launch": False,
                 "title": "ppresvar `tools/train.py` (Global.cpu_kernels: auto)"},
    "paddle_kernels": {"overrides": ["Global.cpu_kernels=paddle"], "launch": False,
                       "title": "ppresvar `-o Global.cpu_kernels=paddle`"},
    "dp": {"overrides": [], "launch": True,
           "title": "ppresvar `paddle.distributed.launch` data parallel"},
    "nchw": {"overrides": ["Global.cpu_channels_last=false"], "launch": False,
             "title": "ppresvar `-o Global.cpu_channels_last=false` (NCHW activations)"},
    "one_process": {"overrides": ["Global.cpu_processes=1"], "launch": False,
                    "title": "ppresvar `-o Global.cpu_processes=1`"},
    # the data-parallel processes tools/train.py starts itself (the CPU default before one process was)
    "cpu_processes": {"overrides": ["Global.cpu_processes={nproc}"], "launch": False,
                      "title": "ppresvar `-o Global.cpu_processes=N` (data parallel, started by tools/train.py)"},
}


def _default_e2e_settings():
    from ppresvar.engine.config import SCHEMA

    extra = ("cpu_processes",) if "cpu_processes" in SCHEMA.get("Global", {}) else ()
    return ("ppresvar", "paddle_kernels", "dp") + extra


DEFAULT_E2E_SETTINGS = _default_e2e_settings()


def count_cifar_train(path):
    """Training images in a CIFAR python-version archive (the members
    paddle.vision.datasets reads in ``train`` mode)."""
    import pickle

    n = 0
    with tarfile.open(path, "r") as tar:
        for m in tar:
            if m.isfile() and ("data_batch" in m.name or m.name.endswith("/train")):
                batch = pickle.load(tar.extractfile(m), encoding="bytes")
                n += len(batch.get(b"labels", batch.get(b"fine_labels")) or ())
    return n


def e2e_recipe(cfg, train_images):
    """What both sides of --end-to-end take from the config: the split, the
    batches, the optimizer, the normalisation. ``val_size_override`` is set
    when the archive is not CIFAR-10's 50,000 training images: then the
    config's held-out count becomes the same proportion (5000 -> 0.1)."""
    from ppresvar.errors import ConfigError

    train, ev = cfg["DataLoader"]["Train"], cfg["DataLoader"]["Eval"]
    val = train["dataset"].get("val_size") or 0
    override = None
    if not 0 < val < 1 and train_images != CIFAR10_TRAIN_IMAGES:
        override = val = round(float(val) / CIFAR10_TRAIN_IMAGES, 6)
    norm = [t["NormalizeImage"] for t in train["transforms"] if "NormalizeImage" in t]
    names = [list(t)[0] for t in train["transforms"]]
    if names != ["RandomCrop", "RandomHorizontalFlip", "NormalizeImage"]:
        raise ConfigError("--end-to-end expects the CIFAR augmentation (RandomCrop, RandomHorizontalFlip, "
                          "NormalizeImage) in %s, found %s" % (E2E_CONFIG, names))
    opt = cfg["Optimizer"]
    return {"val_size": val, "val_size_override": override, "split_seed": train["dataset"].get("split_seed", 0),
            "batch": train["batch_size"], "eval_batch": ev["batch_size"], "lr": opt["lr"]["learning_rate"],
            "momentum": opt.get("momentum", 0.9), "weight_decay": opt.get("weight_decay") or 0.0,
            "mean": norm[0]["mean"], "std": norm[0]["std"], "seed": cfg["Global"]["seed"],
            "train_transforms": names, "optimizer": opt["name"]}


def e2e_train_command(setting, archive, out_dir, recipe, python="python", nproc=2, batch=None,
                      log_dir="log"):
    """``(argv, processes, per-process batch)`` of the ppresvar side: the
    command a user types plus only what points it at the data and makes it
    one epoch (and, for data parallel, the per-process batch that keeps the
    global batch: ``DataLoader.*.batch_size`` is per process)."""
    from ppresvar.errors import ConfigError

    if setting not in E2E_SETTINGS:
        raise ConfigError("unknown --e2e-settings entry %r: one of %s" % (setting, ", ".join(E2E_SETTINGS)))
    plan = E2E_SETTINGS[setting]
    procs = int(nproc) if plan["launch"] else 1
    global_batch = int(batch or recipe["batch"])
    if global_batch % procs:
        raise ConfigError("the batch %d does not split between %d processes" % (global_batch, procs))
    over = ["DataLoader.Train.dataset.data_file=%s" % archive, "DataLoader.Eval.dataset.data_file=%s" % archive,
            "Global.iterations=null", "Global.epochs=1", "Global.output_dir=%s" % out_dir]
    if recipe.get("val_size_override") is not None:
        over += ["DataLoader.Train.dataset.val_size=%s" % recipe["val_size_override"],
                 "DataLoader.Eval.dataset.val_size=%s" % recipe["val_size_override"]]
    if global_batch // procs != recipe["batch"]:
        over.append("DataLoader.Train.batch_size=%d" % (global_batch // procs))
    over += [o.format(nproc=int(nproc)) for o in plan["overrides"]]
    args = ["tools/train.py", "-c", E2E_CONFIG]
    for o in over:
        args += ["-o", o]
    if procs > 1:
        return ([python, "-m", "paddle.distributed.launch", "--nproc_per_node=%d" % procs, "--log_dir", log_dir]
                + args, procs, global_batch // procs)
    return [python] + args, procs, global_batch


_LOG_DATA = re.compile(r"data: (\d+) training images, (\d+) validation images[^\n]*?(?:on each of (\d+) ranks)?$",
                       re.M)
_RELAUNCH = re.compile(r"training as (\d+) data-parallel processes")
_LOG_DEVICE = re.compile(r"device (\w+) \((\d+) threads(?:, ([^)]*?) kernels)?\)")


def read_train_run(out_dir):
    """The figures of a finished ``tools/train.py`` run under ``out_dir``:
    the last record of metrics.jsonl and what train.log's banner says."""
    found = sorted(glob.glob(os.path.join(out_dir, "*", "metrics.jsonl")))
    if not found:
        return None
    with open(found[-1], encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    if not records:
        return None
    rec = records[-1]
    out = {"epoch_time_s": rec.get("epoch_time_s"), "compute_img_s": rec.get("images_per_s"),
           "train_loss": rec.get("train_loss"), "train_top1": rec.get("train_top1"), "val_top1": rec.get("val_top1"),
           "epochs": len(records)}
    log = os.path.join(os.path.dirname(found[-1]), "train.log")
    text = open(log, encoding="utf-8", errors="replace").read() if os.path.isfile(log) else ""
    m = _LOG_DATA.search(text)
    if m:
        out["train_images"], out["val_images"] = int(m.group(1)), int(m.group(2))
        out["processes"] = int(m.group(3) or 1)
    m = _LOG_DEVICE.search(text)
    if m:
        out["device"], out["threads"] = m.group(1), int(m.group(2))
        kern = (m.group(3) or "").lower()
        out["kernels"] = "oneDNN" if "onednn" in kern else ("paddle" if "paddle" in kern else None)
    out["notes"] = [line.split("] ", 1)[-1].strip() for line in text.splitlines()
                    if "kernel" in line.lower() and "device" not in line][:3]
    if out.get("train_images") and out["epoch_time_s"]:
        out["train_img_s"] = out["train_images"] / out["epoch_time_s"]
    return out


def run_train_e2e(setting, archive, recipe, nproc=2, batch=None, python=None, timeout=7200, cores=None):
    """One ppresvar run of ``setting``: whole-process wall time and the run's figures."""
    from ppresvar.runtime import available_cores

    cores = cores or available_cores()
    with tempfile.TemporaryDirectory() as d:
        out_dir = os.path.join(d, "output")
        cmd, procs, per_batch = e2e_train_command(setting, archive, out_dir, recipe, python or sys.executable,
                                                  nproc, batch, log_dir=os.path.join(d, "log"))
        env = user_shell_env()
        t = time.perf_counter()
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout)
            text, rc = r.stdout + r.stderr, r.returncode
        except subprocess.TimeoutExpired as e:
            text, rc = "timed out after %ss: %s" % (timeout, e), -1
        wall = time.perf_counter() - t
        res = read_train_run(out_dir) if rc == 0 else None
        if res is None:
            tail = "\n".join(text.strip().splitlines()[-15:])
            wlog = os.path.join(d, "log", "workerlog.0")
            if os.path.isfile(wlog):
                tail += "\n" + "\n".join(open(wlog, errors="replace").read().strip().splitlines()[-15:])
            return {"error": "exit %s: %s" % (rc, tail), "processes": procs}
    m = _RELAUNCH.search(text)
    if m and res.get("processes", 1) == 1:
        res["processes"] = int(m.group(1))
    res.setdefault("processes", procs)
    res.setdefault("threads", None)
    # what the trainer names (Global.cpu_threads null): the cores divided among its processes
    res.update(process_s=wall, threads_named=max(1, cores // res["processes"]),
               batch_per_process=per_batch if procs > 1 or res["processes"] == 1 else per_batch // res["processes"],
               env_threads={k: env.get(k) for k in THREAD_VARS})
    return res


def run_torch_e2e(torch_python, archive, recipe, batch=None, threads=None, timeout=7200):
    """One run of the PyTorch loop (reference/torch_reference.py --end-to-end)."""
    from ppresvar.runtime import available_cores

    threads = threads or available_cores()
    cmd = [torch_python, TORCH_SCRIPT, "--end-to-end", "--data", archive, "--val-size", str(recipe["val_size"]),
           "--split-seed", str(recipe["split_seed"]), "--batch", str(batch or recipe["batch"]),
           "--eval-batch", str(recipe["eval_batch"]), "--lr", str(recipe["lr"]), "--momentum", str(recipe["momentum"]),
           "--weight-decay", str(recipe["weight_decay"]), "--seed", str(recipe["seed"]), "--threads", str(threads),
           "--mean"] + [str(v) for v in recipe["mean"]] + ["--std"] + [str(v) for v in recipe["std"]]
    t = time.perf_counter()
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=timeout,
                           env=child_env(threads, pythonpath=False, base=torch_base_env()))
        text, rc = r.stdout + r.stderr, r.returncode
        res = _last_result(r.stdout)
    except subprocess.TimeoutExpired as e:
        text, rc, res = "timed out after %ss: %s" % (timeout, e), -1, None
    wall = time.perf_counter() - t
    if res is None:
        return {"error": "exit %s: %s" % (rc, "\n".join(text.strip().splitlines()[-15:]))}
    res.pop("epochs", None)
    res.update(process_s=wall, processes=1, threads_named=threads)
    return res


def spread(values):
    """``{"median", "min", "max", "runs"}`` of the numbers in ``values``."""
    vals = [v for v in values if isinstance(v, (int, float))]
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "runs": len(vals)}


_E2E_FIGURES = ("epoch_time_s", "train_img_s", "compute_img_s", "process_s")


def _collect(runs):
    ok = [r for r in runs if isinstance(r, dict) and not r.get("error")]
    out = {"runs": runs}
    for key in _E2E_FIGURES:
        out[key] = spread(r.get(key) for r in ok)
    first = ok[0] if ok else (runs[0] if runs else {})
    for key in ("processes", "threads", "threads_named", "kernels", "batch_per_process", "train_images",
                "val_images", "notes", "env_threads"):
        if key in first:
            out[key] = first[key]
    errors = [r["error"] for r in runs if isinstance(r, dict) and r.get("error")]
    if errors:
        out["errors"] = errors
    return out


def end_to_end(data=None, images=10000, torch_python=None, runs=1, settings=DEFAULT_E2E_SETTINGS, nproc=2,
               batch=None, log=print, timeout=7200):
    """One real epoch of ``tools/train.py -c configs/resnet20.yaml`` per
    setting (:data:`E2E_SETTINGS`) and of the PyTorch loop, ``runs`` times
    each (interleaved), on the CIFAR archive ``data`` or on one of
    ``images`` training images made by ``write_cifar_archive``. Returns a
    JSON-able dict; every figure as median/min/max over the runs."""
    from ppresvar.engine.config import load_config
    from ppresvar.errors import ConfigError, DataError
    from ppresvar.runtime import available_cores

    cores = available_cores()
    cfg = load_config(os.path.join(ROOT, E2E_CONFIG))
    unknown = [s for s in settings if s not in E2E_SETTINGS]
    if unknown:
        raise ConfigError("unknown --e2e-settings entry %s: one of %s" % (", ".join(unknown), ", ".join(E2E_SETTINGS)))
    with tempfile.TemporaryDirectory() as d:
        if data:
            archive, source = os.path.abspath(data), "given"
            if not os.path.isfile(archive):
                raise DataError("--data %s: no such file (a CIFAR-10 python-version archive, "
                                "cifar-10-python.tar.gz)" % data)
        else:
            from ppresvar.data.datasets import write_cifar_archive

            archive, source = os.path.join(d, "cifar-10-python.tar.gz"), "generated"
            write_cifar_archive(archive, num_train=int(images), num_test=10)
        n = count_cifar_train(archive)
        recipe = e2e_recipe(cfg, n)
        global_batch = int(batch or recipe["batch"])
        for s in settings:  # a batch that does not split fails here, before any run
            e2e_train_command(s, "ARCHIVE", "TMP", recipe, nproc=nproc, batch=batch)
        shown = source if source == "generated" else os.path.basename(archive)
        out = {"config": {"config_file": E2E_CONFIG, "archive": shown,
                          "archive_train_images": n, "runs": int(runs), "settings": list(settings), "nproc": int(nproc),
                          "batch": global_batch, "cores": cores, "recipe": recipe,
                          "torch_python": torch_python and TORCH_VENV + "/bin/python"},
               "machine": machine_info(), "settings": {}, "torch": None}
        results = {s: [] for s in settings}
        torch_runs = []
        for k in range(int(runs)):
            for s in settings:
                r = run_train_e2e(s, archive, recipe, nproc=nproc, batch=batch, timeout=timeout, cores=cores)
                results[s].append(r)
                if log:
                    log("  end-to-end %s run %d/%d: %s" % (s, k + 1, runs, _e2e_line(r)))
            if torch_python:
                r = run_torch_e2e(torch_python, archive, recipe, batch=batch, threads=cores, timeout=timeout)
                torch_runs.append(r)
                if log:
                    log("  end-to-end PyTorch run %d/%d: %s" % (k + 1, runs, _e2e_line(r)))
    for s in settings:
        cmd, procs, _ = e2e_train_command(s, "ARCHIVE", "TMP", recipe, "python", nproc, batch, log_dir="TMP/log")
        row = _collect(results[s])
        row.update(title=E2E_SETTINGS[s]["title"], command=" ".join(shlex.quote(c) for c in cmd))
        out["settings"][s] = row
    if torch_python:
        t = _collect(torch_runs)
        ok = [r for r in torch_runs if not r.get("error")]
        if ok:
            t["torch"] = ok[0].get("torch")
        t["command"] = ("%s/bin/python reference/torch_reference.py --end-to-end --data ARCHIVE --val-size %s "
                        "--batch %d --threads %d" % (TORCH_VENV, recipe["val_size"], global_batch, cores))
        t["title"] = "PyTorch loop (reference/torch_reference.py --end-to-end, channels-last)"
        out["torch"] = t
        base = (t.get("train_img_s") or {}).get("median")
        for row in out["settings"].values():
            mine = (row.get("train_img_s") or {}).get("median")
            row["ratio_to_torch"] = mine / base if mine and base else None
    return out


def _e2e_line(r):
    if r.get("error"):
        return "FAILED (%s)" % r["error"].strip().splitlines()[-1][:160]
    return "epoch %.1fs, %.0f img/s, process %.1fs" % (r.get("epoch_time_s") or float("nan"),
                                                      r.get("train_img_s") or float("nan"), r.get("process_s"))


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


TRAIN_NAMES = {"defaults": "paddle defaults (1 thread)", "ppresvar": "ppresvar, paddle kernels (all cores)",
               "onednn": "ppresvar, oneDNN kernels (all cores)",
               "onednn_1t": "ppresvar, oneDNN kernels (1 thread)",
               "onednn_nchw": "ppresvar, oneDNN kernels, NCHW (all cores)",
               "dp": "ppresvar data parallel, paddle kernels (1 proc/core)",
               "dp_onednn": "ppresvar data parallel, oneDNN kernels (1 proc/core)"}


def threads_label(res):
    """``'2'`` (threads) or ``'2x1'`` (processes x threads per process) of a
    worker's result: the threads its setting named; when a runtime that
    does the setting's work reports another count, that is added
    (``'2; iomp 1!'``). None for a failed worker."""
    if not isinstance(res, dict) or res.get("error"):
        return None
    named = res.get("threads_named") or res.get("threads")
    if named is None:
        return None
    procs = res.get("processes") or 1
    text = ("%dx%d" % (procs, named)) if procs > 1 else "%d" % named
    eff = res.get("threads_effective") or {}
    relevant = ["iomp", "mkl"] + (["gomp"] if res.get("kernels") == "onednn" else [])
    odd = ["%s %d" % (k, eff[k]) for k in relevant if k in eff and eff[k] != named]
    return text + ("; %s!" % ", ".join(odd) if odd else "")


def torch_threads_label(torch_res, model_res=None):
    """Threads the PyTorch reference ran with (``torch.get_num_threads()``),
    flagged when not what it was told."""
    t = (model_res or {}).get("threads") or (torch_res or {}).get("threads")
    if t is None:
        return None
    named = (torch_res or {}).get("threads_named")
    return "%d" % t + ("; told %d!" % named if named and named != t else "")


def _with_threads(value, threads):
    return _fmt(value) + (" (%s)" % threads if value is not None and threads else "")
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
        train_threads = {s: threads_label(r) for s, r in row["train"].items()}
        best_train, best_setting = _best(train, list(train))
        tt = {k: t.get(k) for k in ("train_img_s", "train_channels_last_img_s")}
        best_torch_train, best_torch_setting = _best(tt, list(tt))
        inf = row["infer"] if isinstance(row["infer"], dict) else {}
        best_inf, best_inf_key = _best(inf, [k for k, _ in INFER_KEYS])
        compiled = t.get("compile_img_s")
        rows.append({
            "label": row["label"], "params": (row["meta"] or {}).get("params_trainable"),
            "torch_params": t.get("params_trainable"), "flops": (row["meta"] or {}).get("flops"),
            "train": train, "train_threads": train_threads, "best_train": best_train,
            "best_train_setting": best_setting, "torch_train": tt, "torch_threads": torch_threads_label(torch, t),
            "best_torch_train": best_torch_train, "best_torch_setting": best_torch_setting,
            "train_ratio": best_train / best_torch_train if best_train and best_torch_train else None,
            "infer": {k: inf.get(k) for k, _ in INFER_KEYS}, "infer_threads": threads_label(inf),
            "best_infer": best_inf, "best_infer_key": best_inf_key,
            "torch_eager_infer": t.get("eager_img_s"), "torch_compile_infer": compiled,
            "infer_ratio": best_inf / compiled if best_inf and compiled else None,
        })
    by = {r["label"]: r for r in rows}
    goals = []

    def step_ratio(a, b, setting=DEFAULT_TRAIN_SETTING):
        ra, rb = by.get(a), by.get(b)
        if not ra or not rb or not ra["train"].get(setting) or not rb["train"].get(setting):
            return None
        return rb["train"][setting] / ra["train"][setting]   # time ratio a/b = speed b / speed a

    for r in rows:
        goals.append(("%s training >= 1.0x PyTorch's best" % r["label"], r["train_ratio"], 1.0, ">="))
    for r in rows:  # the default (one process, every core) against the data parallel it replaced
        one, dp = r["train"].get(DEFAULT_TRAIN_SETTING), r["train"].get("dp_onednn")
        goals.append(("%s one process >= data parallel" % r["label"], one / dp if one and dp else None, 1.0, ">="))
    for r in rows:
        one, single = r["train"].get(DEFAULT_TRAIN_SETTING), r["train"].get("onednn_1t")
        goals.append(("%s %s threads >= 1.8x one thread" % (r["label"], (res.get("machine") or {}).get("cores", "all")),
                      one / single if one and single else None, 1.8, ">="))
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
    lines += ["", "### Training (forward, loss, backward, Momentum step), images/s", "",
              "In brackets: the threads each figure ran with (processes x threads per process for data "
              "parallel), as each worker set them and its OpenMP/MKL runtimes reported them (a runtime "
              "reporting another count is named with a `!`); PyTorch's is `torch.get_num_threads()`.", ""]
    settings = cfg["settings"]
    head = ["model", "params", "PyTorch params", "MFLOPs/img"] + [TRAIN_NAMES.get(s, s) for s in settings] + \
           ["PyTorch", "PyTorch channels-last", "best ppresvar / best PyTorch"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        same = "" if r["torch_params"] is None else (" (equal)" if r["torch_params"] == r["params"] else " (DIFFERENT)")
        cells = [r["label"], _fmt(r["params"]), _fmt(r["torch_params"]) + same,
                 _fmt(r["flops"] / 1e6 if r["flops"] else None, 1)]
        cells += [_with_threads(r["train"].get(s), r["train_threads"].get(s)) for s in settings]
        cells += [_with_threads(r["torch_train"].get("train_img_s"), r["torch_threads"]),
                  _with_threads(r["torch_train"].get("train_channels_last_img_s"), r["torch_threads"]),
                  _fmt(r["train_ratio"], 2) + ("x" if r["train_ratio"] else "")]
        lines.append("| " + " | ".join(cells) + " |")
    # a part that was not measured (--parts) gets no table: no empty tables, no rows of "-"
    if any(r["infer"].get(k) for r in rows for k, _ in INFER_KEYS):
        lines += ["", "### Inference, images/s (threads in brackets)", ""]
        head = (["model"] + [n for _, n in INFER_KEYS]
                + ["PyTorch eager", "torch.compile", "best ppresvar / torch.compile"])
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in rows:
            cells = [r["label"]] + [_with_threads(r["infer"].get(k), r["infer_threads"]) for k, _ in INFER_KEYS]
            cells += [_with_threads(r["torch_eager_infer"], r["torch_threads"]),
                      _with_threads(r["torch_compile_infer"], r["torch_threads"]),
                      _fmt(r["infer_ratio"], 2) + ("x" if r["infer_ratio"] else "")]
            lines.append("| " + " | ".join(cells) + " |")
    pipeline = [p for p in res.get("pipeline", []) if isinstance(p, dict) and "pipeline_img_s" in p]
    if pipeline:
        lines += ["", "### Input pipeline (CIFAR training transforms: RandomCrop 32 pad 4, flip, NormalizeImage; "
                  "batch %d)" % cfg["batch"], ""]
        lines += ["| DataLoader workers | images/s |", "|---|---|"]
        lines += ["| %d | %s |" % (p["workers"], _fmt(p["pipeline_img_s"])) for p in pipeline]
    measured = [g for g in goals if g[1] is not None]
    if measured:
        lines += ["", "### Goals", "", "| goal | measured | met |", "|---|---|---|"]
        for text, value, target, op in measured:
            met = "yes" if (value >= target if op == ">=" else value <= target) else "no"
            lines.append("| %s | %.2fx | %s |" % (text, value, met))
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


def _spread_cell(sp, digits=0):
    if not sp:
        return "-"
    if sp["runs"] == 1 or sp["min"] == sp["max"]:
        return _fmt(sp["median"], digits)
    return "%s (%s-%s)" % (_fmt(sp["median"], digits), _fmt(sp["min"], digits), _fmt(sp["max"], digits))


def _e2e_threads(row):
    threads = row.get("threads") or row.get("threads_named")
    if threads is None:
        return "-"
    text = "%dx%d" % (row.get("processes") or 1, threads)
    named = row.get("threads_named")
    return text + ("; named %d!" % named if named and row.get("threads") and named != row["threads"] else "")


def _env_note(res):
    envs = [r.get("env_threads") or {} for r in res["settings"].values()]
    seen = sorted({"%s=%s" % (k, v) for e in envs for k, v in e.items() if v is not None})
    return ("with " + ", ".join("`%s`" % x for x in seen)) if seen else "`OMP_NUM_THREADS` and `MKL_NUM_THREADS` unset"


def to_markdown_e2e(res, command=None):
    """The --end-to-end section."""
    cfg, m, rec = res["config"], res["machine"], res["config"]["recipe"]
    t = res.get("torch") or {}
    lines = ["## End to end: one epoch of `tools/train.py` against a PyTorch loop", ""]
    lines.append("%s, %s cores; Python %s, paddle %s, torch %s." % (
        m.get("cpu") or m.get("machine"), m.get("cores"), m.get("python"), m.get("paddle"), t.get("torch", "-")))
    first = next((r for r in res["settings"].values() if r.get("train_images")), t)
    data = ("a generated archive in the CIFAR-10 format (`ppresvar.data.datasets.write_cifar_archive`)"
            if cfg["archive"] == "generated" else "`%s`" % cfg["archive"])
    nproc = cfg.get("nproc") or 2
    lines.append("Data: %s with %s training images, split by `val_size` %s (%s) into %s training and %s "
                 "validation images (split seed %s). Training batch %d (data parallel: %d processes x %d), "
                 "validation batch %d. %d run%s of each; a figure is the median (min-max) over the runs." % (
                     data, _fmt(cfg["archive_train_images"]), rec["val_size"],
                     "the config's" if rec.get("val_size_override") is None else
                     "the config's 5,000 of 50,000 as a fraction", _fmt(first.get("train_images")),
                     _fmt(first.get("val_images")), rec["split_seed"], cfg["batch"], nproc, cfg["batch"] // nproc,
                     rec["eval_batch"], cfg["runs"], "" if cfg["runs"] == 1 else "s"))
    lines += ["", "**epoch s**: the trainer's `epoch_time_s` (metrics.jsonl; the PyTorch loop times the same "
              "span): wall time of one pass over the training images (data loading, augmentation, forward, "
              "backward, update) plus validation on the held-out images. Outside it, and inside **process s** "
              "(the whole process's wall time; for data parallel the launcher's): interpreter start, imports, "
              "reading the archive, building the model, writing checkpoints and curves. **img/s** = training "
              "images / epoch s. **compute img/s**: training images per second of forward, backward and update "
              "alone (the trainer's `images_per_s`). **/ PyTorch**: img/s over PyTorch's img/s (medians). "
              "**processes x threads**: what each run's train.log reports (PyTorch: `torch.get_num_threads()`).",
              "", "The ppresvar runs get the environment of the shell that started the benchmark (%s), as if "
              "typed there, and choose their processes and threads themselves; PyTorch gets "
              "`OMP_NUM_THREADS`, `MKL_NUM_THREADS` and `torch.set_num_threads` set to every core."
              % _env_note(res),
              "", "PyTorch: `reference/torch_reference.py --end-to-end`: the same archive and split, ResNet-20 with "
              "option-A shortcuts in channels-last, SGD lr %g, momentum %g, weight decay %g, batch %d, one epoch "
              "then validation (batch %d, `inference_mode`); augmentation (pad 4 + random 32x32 crop + flip, "
              "normalise) with numpy on whole batches in the training process, all cores."
              % (rec["lr"], rec["momentum"], rec["weight_decay"], cfg["batch"], rec["eval_batch"])]
    if command:
        lines += ["", "Made by:", "", "```", command, "```"]
    head = ["setting", "processes x threads", "kernels", "epoch s", "img/s", "compute img/s", "process s",
            "img/s / PyTorch"]
    lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    rows = [(r["title"], r) for r in res["settings"].values()]
    if t:
        rows.append((t.get("title", "PyTorch"), dict(t, kernels="PyTorch's",
                                                     ratio_to_torch=1.0 if t.get("train_img_s") else None)))
    for title, r in rows:
        ratio = r.get("ratio_to_torch")
        cells = [title, _e2e_threads(r), r.get("kernels") or "-", _spread_cell(r.get("epoch_time_s"), 1),
                 _spread_cell(r.get("train_img_s")), _spread_cell(r.get("compute_img_s")),
                 _spread_cell(r.get("process_s"), 1), ("%.2fx" % ratio) if ratio else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Commands (ARCHIVE: the archive, TMP: a fresh directory per run):", ""]
    for title, r in rows:
        if r.get("command"):
            lines.append("- %s: `%s`" % (title, r["command"]))
    errors = ["%s: %s" % (title, e.strip().splitlines()[-1][:200]) for title, r in rows for e in r.get("errors", [])]
    if errors:
        lines += ["", "Failures:", ""] + ["- " + e for e in errors]
    return "\n".join(lines) + "\n"


def public_paths():
    """``(prefix, placeholder)`` pairs, longest first: no path of this
    machine goes into a file of the project."""
    pairs = [(ROOT, "."), (sys.prefix, "<venv>"), (tempfile.gettempdir(), "<tmp>"),
             (os.path.expanduser("~"), "~")]
    return sorted([(a, b) for a, b in pairs if a and a not in ("/", ".")], key=lambda p: -len(p[0]))


def public(obj, torch_python=None):
    """``obj`` (JSON-able) with this machine's paths replaced by placeholders."""
    pairs = public_paths()
    if torch_python:
        venv = os.path.dirname(os.path.dirname(os.path.abspath(torch_python)))
        pairs = sorted(pairs + [(venv, TORCH_VENV)], key=lambda p: -len(p[0]))

    def fix(v):
        if isinstance(v, str):
            for a, b in pairs:
                v = v.replace(a, b)
            return v
        if isinstance(v, dict):
            return {k: fix(x) for k, x in v.items()}
        if isinstance(v, list):
            return [fix(x) for x in v]
        return v

    return fix(obj)


PLACEHOLDER_ARGS = {"--torch-python": TORCH_VENV + "/bin/python", "--data": "ARCHIVE"}


def public_command(argv, prog="python benchmarks/benchmark.py"):
    """The command line to print in a report, with ``--torch-python`` and
    ``--data`` shown as placeholders and other paths of this machine too."""
    out, skip = [], None
    for a in argv:
        if skip:
            out.append(PLACEHOLDER_ARGS[skip])
            skip = None
            continue
        key = a.split("=", 1)[0]
        if key in PLACEHOLDER_ARGS:
            if "=" in a:
                out.append("%s=%s" % (key, PLACEHOLDER_ARGS[key]))
            else:
                out.append(a)
                skip = key
            continue
        out.append(public(a))
    return prog + "".join(" " + shlex.quote(a) for a in out)


def write_json(path, res, section=None):
    """Write ``res`` to ``path``; ``section`` (e.g. ``"end_to_end"``) puts it
    under that key of the file's object, keeping the rest; without it the
    sections already in the file are kept."""
    old = {}
    if os.path.isfile(path):
        try:
            with open(path, encoding="utf-8") as f:
                old = json.load(f)
        except ValueError:
            old = {}
        if not isinstance(old, dict):
            old = {}
    if section:
        new = dict(old)
        new[section] = res
    else:
        new = dict(res)
        if "end_to_end" in old and "end_to_end" not in new:
            new["end_to_end"] = old["end_to_end"]
    with open(path, "w", encoding="utf-8") as f:
        json.dump(new, f, indent=1, sort_keys=True)


def write_markdown(path, text, begin=BEGIN, end=END):
    """Put ``text`` between the ``begin``/``end`` markers of ``path`` (the
    prose around them is kept), or append the markers with it, or write a
    new file with them."""
    block = "%s\n%s%s\n" % (begin, text, end)
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            old = f.read()
        if begin in old and end in old:
            head, rest = old.split(begin, 1)
            tail = rest.split(end, 1)[1].lstrip("\n")
            new = head + block + tail
        else:
            new = old.rstrip("\n") + "\n\n" + block
    else:
        new = "# Benchmarks\n\n" + block
    with open(path, "w", encoding="utf-8") as f:
        f.write(new)
