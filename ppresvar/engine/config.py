"""YAML configs: load, override from the command line, fill defaults, validate.

The schema follows PaddleClas's layout so its users find their way:

``Global``      run-wide settings (output directory, seed, epochs or iterations, device)
``Arch``        ``name`` of a registered model, ``num_classes``; any other key is passed
                to the model's factory (``stem``, ``drop_path_rate``, ``in_chans``...)
``Loss``        cross entropy with label smoothing and the NAM sparsity penalty
``Optimizer``   optimizer, weight decay, gradient clipping and the ``lr`` schedule
``DataLoader``  ``Train`` / ``Eval`` (held-out validation) / ``Test``: dataset,
                transforms, batch transforms (mixup, cutmix), batch size, workers
``Metric``      top-k and the metric that picks the best epoch
``AMP``, ``EMA`` mixed precision (GPU) and an exponential moving average of the weights

``load_config(path, overrides)`` returns plain dicts and lists with every default
filled in; docs/training.md lists every key. Values given with ``-o a.b=value``
are parsed with ``yaml.safe_load`` (so ``0.1``, ``true``, ``[1, 5]`` and
``null`` work) and are never evaluated as code. An unknown key or a value of
the wrong type raises :class:`ppresvar.errors.ConfigError` naming the key and
the closest valid key.
"""
import copy
import os

import yaml

from ..data import check_loader_section  # data pipeline options live with the data code
from ..errors import ConfigError
from ..models import create_model, list_models
from ..schema import REQUIRED, describe_value, check_value, unknown_key_error

__all__ = ["load_config", "apply_overrides", "validate", "parse_override", "dump_config",
           "save_config", "SCHEMA"]

def _loader(shuffle):
    return {
        "__nullable__": True,
        # name + the dataset's own options, checked against data.datasets.DATASETS
        "dataset": ("dict", REQUIRED),
        # [{Name: {arg: value}}, ...], checked by data.transforms.build_transforms
        "transforms": ("list", []),
        # [{Mixup: {alpha: 1.0}}, {Cutmix: {...}}]: one of them per batch
        "batch_transforms": ("list", []),
        "batch_size": ("int", 128),
        "shuffle": ("bool", shuffle),
        "drop_last": ("bool", False),
        "num_workers": ("int", 0),
        # crop/flip/normalise whole uint8 batches in NumPy (data.batched): auto where the
        # transforms and data set allow it; true: required (else an error); false: per image
        "batched": (("auto", True, False), "auto"),
        # null: shared memory unless /dev/shm is small (AI Studio)
        "use_shared_memory": ("bool?", None),
    }


# Leaves are (kind, default). Kinds: int, float, num (int or float), bool, str, list, dict, list[int],
# a trailing '?' allows null; a tuple of values is a choice.
SCHEMA = {
    "Global": {
        "output_dir": ("str", "output"),
        "run_name": ("str?", None),          # default: the config file's name
        "device": (("auto", "cpu", "gpu"), "auto"),
        "seed": ("int", 42),
        "epochs": ("int", 1),
        "iterations": ("int?", None),         # when set, training stops after this many steps
        "print_batch_step": ("int", 20),
        "cpu_threads": ("int?", None),        # default: every core (divided among processes)
        # tools/train.py on a CPU: null or 1 = one process using every core; N > 1 = N
        # data-parallel processes, batch_size split among them (engine/launch.py)
        "cpu_processes": ("int?", None),
        # convolutions on CPU: oneDNN kernels (ppresvar.kernels) or paddle's own;
        # auto: oneDNN when it builds here, else paddle's with one warning line
        "cpu_kernels": (("auto", "onednn", "paddle"), "auto"),
        # with the oneDNN kernels, networks whose layers allow it (ResNets, RiR, NAM, DyReLU)
        # train channels-last (NHWC) inside, oneDNN's fast layout; false keeps NCHW
        # (same math up to rounding, same checkpoints)
        "cpu_channels_last": ("bool", True),
        "use_visualdl": ("bool", True),       # when visualdl is installed
        "plot_curves": ("bool", True),        # curves.png when matplotlib is installed
        "pretrained_model": ("str?", None),   # weights for eval/export; initial weights for training
    },
    "Arch": {
        "__open__": True,
        "name": ("str", REQUIRED),
        "num_classes": ("int?", None),        # default: the training data set's class count
    },
    "Loss": {
        "name": (("CELoss",), "CELoss"),
        "label_smoothing": ("float", 0.0),
        "nam_sparsity": ("float", 0.0),       # lambda of NAM eq. 4 (NAM models only)
    },
    "Optimizer": {
        "name": (("Momentum", "SGD", "Adam", "AdamW"), "Momentum"),
        "momentum": ("float", 0.9),
        "nesterov": ("bool", False),
        "beta1": ("float", 0.9),
        "beta2": ("float", 0.999),
        "epsilon": ("float", 1e-8),
        "weight_decay": ("float", 0.0),
        "no_weight_decay_bn_bias": ("bool", False),
        "grad_clip": ("float?", None),        # clip the global gradient norm to this
        "lr": {
            "name": (("Cosine", "MultiStep", "Constant"), "Cosine"),
            "learning_rate": ("float", 0.1),
            "unit": (("iteration", "epoch"), "iteration"),   # of warmup, milestones, steps
            "warmup": ("int", 0),
            "warmup_epochs": ("float?", None),   # alternative to warmup: epochs, made iterations
            "warmup_start_lr": ("float", 0.0),
            "milestones": ("list[int]", []),
            "gamma": ("float", 0.1),
            "eta_min": ("float", 0.0),
        },
    },
    "DataLoader": {
        "Train": _loader(True),
        "Eval": _loader(False),
        "Test": _loader(False),
    },
    "Metric": {
        "topk": ("list[int]", [1, 5]),
        "best": (("val_top1", "val_top5", "val_loss"), "val_top1"),
    },
    "AMP": {
        "enable": ("bool", False),
        "level": (("O1", "O2"), "O1"),
        "init_loss_scaling": ("float", 65536.0),
    },
    "EMA": {
        "decay": ("float?", None),           # e.g. 0.9999; null: no EMA
        "eval_ema": ("bool", True),          # validate (and pick best) with the EMA weights
    },
}


# ------------------------------------------------------------------ loading

def load_config(path, overrides=()):
    """Read the YAML file ``path``, apply ``overrides`` (``"a.b=value"``
    strings), fill defaults and validate. Returns a dict."""
    raw = read_yaml(path)
    raw = apply_overrides(raw, overrides)
    return validate(raw)


BASE_KEY = "_base_"


def read_yaml(path, _chain=()):
    """The mapping of a YAML config file, with the files it names in
    ``_base_`` (a path relative to it, or a list of them) merged under it:
    sections merge key by key, a value given here (a list too) replaces the
    base's. A recipe family shares one base (``configs/_base_/``) and each
    variant gives only what differs."""
    raw = _read_one(path)
    bases = raw.pop(BASE_KEY, None)
    if bases is None:
        return raw
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not bases or not all(isinstance(b, str) and b for b in bases):
        raise ConfigError("%s: %s must be a file name or a list of file names (relative to the config)"
                          % (path, BASE_KEY))
    chain = tuple(_chain) + (os.path.realpath(path),)
    merged = {}
    for base in bases:
        base_path = base if os.path.isabs(base) else os.path.join(os.path.dirname(path), base)
        if os.path.realpath(base_path) in chain:
            raise ConfigError("%s: %s %s includes the config itself (a loop of bases)" % (path, BASE_KEY, base))
        if not os.path.isfile(base_path):
            raise ConfigError("%s: %s file not found: %s (looked at %s)" % (path, BASE_KEY, base, base_path))
        merged = _merge(merged, read_yaml(base_path, chain))
    return _merge(merged, raw)


def _merge(base, over):
    """``base`` updated by ``over``, mappings merged key by key."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _read_one(path):
    if not os.path.isfile(path):
        raise ConfigError("config file not found: %s (see configs/ for the shipped ones)" % path)
    try:
        with open(path, encoding="utf-8") as f:
            raw = yaml.safe_load(f)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = " line %d" % (mark.line + 1) if mark is not None else ""
        raise ConfigError("%s%s is not valid YAML: %s" % (path, where, getattr(e, "problem", e)))
    except UnicodeDecodeError as e:
        raise ConfigError("%s is not UTF-8 text (%s)" % (path, e.reason))
    except (ValueError, TypeError, IndexError, OverflowError) as e:  # PyYAML's own constructors fail so
        raise ConfigError("%s is not valid YAML: %s (%s)" % (path, " ".join(str(e).split())[:200], type(e).__name__))
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError("%s must hold a mapping of sections (Global, Arch, ...)" % path)
    return raw


def parse_override(text):
    """``'a.b=value'`` -> (['a', 'b'], value parsed as YAML, never evaluated)."""
    if "=" not in text:
        raise ConfigError("override %r must look like Section.key=value (e.g. Global.epochs=2)" % text)
    key, value = text.split("=", 1)
    key = key.strip()
    if not key or any(not p for p in key.split(".")):
        raise ConfigError("override %r has an empty key" % text)
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except (yaml.YAMLError, ValueError, TypeError, IndexError, OverflowError):
        parsed = value  # not YAML (or a tag PyYAML refuses): keep the text as a string, never evaluated
    return key.split("."), parsed


def apply_overrides(raw, overrides):
    """Apply ``"a.b=value"`` overrides to a copy of ``raw``. A ``*`` part
    stands for every entry present at that level, e.g.
    ``DataLoader.*.dataset.data_file=PATH`` sets it in Train, Eval and Test."""
    cfg = copy.deepcopy(raw)
    for text in overrides or ():
        parts, value = parse_override(text)
        targets = [cfg]
        for i, part in enumerate(parts[:-1]):
            if part == "*":
                targets = [c for node in targets for c in (node.values() if isinstance(node, dict) else node)
                           if isinstance(c, dict)]
                if not targets:
                    raise ConfigError("override %s: nothing matches %s" % (text, ".".join(parts[:i + 1])))
            else:
                targets = [_child(node, part, parts[:i + 1], create=True) for node in targets]
        last = parts[-1]
        for node in targets:
            if isinstance(node, list):
                node[_index(node, last, parts)] = copy.deepcopy(value)
            else:
                node[last] = copy.deepcopy(value)
    return cfg


def _index(node, part, parts):
    try:
        i = int(part)
        node[i]
        return i
    except (ValueError, IndexError):
        raise ConfigError("override key %s: %r is not an index of a list of %d items"
                          % (".".join(parts), part, len(node)))


def _child(node, part, parts, create):
    if isinstance(node, list):
        return node[_index(node, part, parts)]
    if not isinstance(node, dict):
        raise ConfigError("override key %s: %s is not a mapping" % (".".join(parts), ".".join(parts[:-1])))
    if node.get(part) is None and create:
        node[part] = {}
    return node[part]


# --------------------------------------------------------------- validation

def validate(raw):
    """Fill defaults into ``raw`` and check every key and type; returns a new dict."""
    if not isinstance(raw, dict):
        raise ConfigError("a config must be a mapping of sections (Global, Arch, ...)")
    if "Arch" not in raw or raw.get("Arch") is None:
        raise ConfigError("the config has no Arch section: add Arch: {name: resnet20} "
                          "(ppresvar.list_models() lists the names)")
    cfg = _check_section(raw, SCHEMA, "")
    _check_model_name(cfg["Arch"]["name"])
    _cross_checks(cfg)
    return cfg


def _check_model_name(name):
    """An unknown model fails at load time (UnknownModelError names the closest)."""
    if name not in list_models():
        create_model(name)


def _all_paths(spec, prefix=""):
    for key, sub in spec.items():
        if key.startswith("__"):
            continue
        path = prefix + key
        yield path
        if isinstance(sub, dict):
            for p in _all_paths(sub, path + "."):
                yield p


def _check_section(node, spec, path):
    where = path.rstrip(".") or "the config"
    if not isinstance(node, dict):
        raise ConfigError("%s must be a mapping, got %s" % (where, describe_value(node)))
    valid = [k for k in spec if not k.startswith("__")]
    if not spec.get("__open__"):
        for key in node:
            if key not in spec or str(key).startswith("__"):
                raise unknown_key_error(path, str(key), valid, list(_all_paths(SCHEMA)))
    out = {}
    for key in valid:
        sub = spec[key]
        if isinstance(sub, dict):
            value = node.get(key)
            if value is None and sub.get("__nullable__"):
                out[key] = None
                continue
            out[key] = _check_section({} if value is None else value, sub, path + key + ".")
        else:
            out[key] = check_value(node.get(key, REQUIRED), sub, path + key)
    if spec.get("__open__"):
        for key in node:
            if key not in out:
                out[key] = copy.deepcopy(node[key])
    return out


def _positive(cfg, key):
    section, name = key.split(".", 1)
    node = cfg[section]
    for part in name.split(".")[:-1]:
        node = node[part]
    value = node[name.split(".")[-1]]
    if value is not None and value <= 0:
        raise ConfigError("%s must be positive, got %r" % (key, value))


def _cross_checks(cfg):
    for key in ("Global.epochs", "Global.iterations", "Global.print_batch_step",
                "Global.cpu_threads", "Optimizer.lr.learning_rate", "Optimizer.grad_clip"):
        _positive(cfg, key)
    lr = cfg["Optimizer"]["lr"]
    if lr["warmup"] < 0:
        raise ConfigError("Optimizer.lr.warmup must be >= 0, got %r" % lr["warmup"])
    if lr["warmup_epochs"] is not None:
        if lr["warmup"]:
            raise ConfigError("set Optimizer.lr.warmup or Optimizer.lr.warmup_epochs, not both")
        if lr["warmup_epochs"] < 0:
            raise ConfigError("Optimizer.lr.warmup_epochs must be >= 0, got %r" % lr["warmup_epochs"])
    if lr["name"] == "MultiStep":
        m = lr["milestones"]
        if not m or any(b <= a for a, b in zip(m, m[1:])) or m[0] <= 0:
            raise ConfigError("Optimizer.lr.milestones must be a non-empty increasing list of positive "
                              "integers for MultiStep, got %r" % (m,))
    if not cfg["Metric"]["topk"] or 1 not in cfg["Metric"]["topk"]:
        raise ConfigError("Metric.topk must include 1, got %r" % (cfg["Metric"]["topk"],))
    decay = cfg["EMA"]["decay"]
    if decay is not None and not 0.0 < decay < 1.0:
        raise ConfigError("EMA.decay must be between 0 and 1, got %r" % decay)


    for split in ("Train", "Eval", "Test"):
        section = cfg["DataLoader"][split]
        if section is not None:
            if section["batch_size"] <= 0:
                raise ConfigError("DataLoader.%s.batch_size must be positive" % split)
            if section["num_workers"] < 0:
                raise ConfigError("DataLoader.%s.num_workers must be >= 0" % split)
            section["dataset"] = check_loader_section(section, "DataLoader.%s" % split)
    _check_holdout(cfg["DataLoader"])


def _check_holdout(loaders):
    """A ``subset: val`` loader must split the same data the same way as the
    ``subset: train`` one, or validation images leak into training."""
    train, val = loaders.get("Train"), loaders.get("Eval")
    if not train or not val:
        return
    t, v = dict(train["dataset"]), dict(val["dataset"])
    if t.get("subset") == "train" and v.get("subset") == "val":
        t.pop("subset"), v.pop("subset")
        diff = sorted(k for k in set(t) | set(v) if t.get(k) != v.get(k))
        if diff:
            raise ConfigError("DataLoader.Eval.dataset (subset: val) must hold out the same split as "
                              "DataLoader.Train.dataset (subset: train); they differ in %s (set both, e.g. "
                              "-o 'DataLoader.*.dataset.%s=...')" % (", ".join(diff), diff[0]))


# ------------------------------------------------------------------ writing

def dump_config(cfg):
    return yaml.safe_dump(cfg, sort_keys=False, default_flow_style=None, allow_unicode=True)


def save_config(cfg, path):
    """Write ``cfg`` as YAML atomically (temporary file, then rename)."""
    tmp = "%s.tmp-%d" % (path, os.getpid())
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("# resolved ppresvar config: every default filled in\n")
        f.write(dump_config(cfg))
    os.replace(tmp, path)
