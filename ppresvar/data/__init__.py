"""Data: data sets, per-image transforms, the batched input path, batch
mixing, samplers and loaders."""
from ..errors import ConfigError, suggest
from ..schema import REQUIRED, check_value, unknown_key_error
from .batched import batched_pipeline
from .datasets import DATASETS, build_dataset, write_cifar_archive
from .loader import ShardedBatchSampler, build_loader, derive_seed
from .mixing import build_batch_transforms
from .transforms import build_transforms, eval_preprocess, eval_transform

__all__ = ["DATASETS", "build_dataset", "build_loader", "build_transforms", "build_batch_transforms",
           "batched_pipeline", "eval_preprocess", "eval_transform", "check_loader_section",
           "write_cifar_archive", "ShardedBatchSampler", "derive_seed"]


def check_dataset(opts, where):
    """Validate a ``dataset`` mapping; returns it with defaults filled in."""
    if not isinstance(opts, dict) or "name" not in opts:
        raise ConfigError("%s must be a mapping with a name (one of %s)" % (where, ", ".join(DATASETS)))
    name = opts["name"]
    if not isinstance(name, str) or name not in DATASETS:
        close = suggest(str(name), DATASETS, n=1)
        raise ConfigError("unknown data set %s.name=%r: %s" % (
            where, name, "did you mean %s?" % close[0] if close else "choose from %s" % ", ".join(DATASETS)))
    spec = DATASETS[name]
    for key in opts:
        if key != "name" and key not in spec:
            raise unknown_key_error(where + ".", str(key), ["name"] + list(spec))
    out = {"name": name}
    for key, field in spec.items():
        out[key] = check_value(opts.get(key, REQUIRED), field, "%s.%s" % (where, key))
    return out


def check_loader_section(section, where):
    """Validate the dataset, transforms and batch transforms of one loader
    section (config load time, before any data is read), and that a
    ``batched: true`` section can be batched; returns the dataset options
    with defaults filled in."""
    opts = check_dataset(section["dataset"], where + ".dataset")
    pipeline = build_transforms(section["transforms"], where + ".transforms")
    _dry_run(pipeline, where + ".transforms")
    build_batch_transforms(section["batch_transforms"], where + ".batch_transforms")
    try:
        batched_pipeline(dict(section, dataset=opts), where, pipeline)
    except (TypeError, ValueError) as e:
        raise ConfigError("%s.transforms: bad arguments for the batched path (%s)" % (where, e))
    return opts


def _dry_run(pipeline, where):
    """Run the pipeline once on a 512x512 RGB image, so that arguments that
    paddle's transforms take without a check (a size of None, a padding of
    text...) are refused now, not in a loader worker in the middle of an
    epoch."""
    import random

    import numpy as np
    from PIL import Image

    state = random.getstate(), np.random.get_state()
    try:
        pipeline(Image.new("RGB", (512, 512), (128, 128, 128)))
    except Exception as e:
        raise ConfigError("%s cannot transform an image: %s: %s; check the transforms' arguments"
                          % (where, type(e).__name__, " ".join(str(e).split())[:200]))
    finally:
        random.setstate(state[0])
        np.random.set_state(state[1])
