"""Predict image files with an export: read them as the data sets do, apply
the export's eval transform, and report the top classes."""
import os

import numpy as np

from ..data.datasets import IMAGE_EXTENSIONS
from ..errors import UserError
from .layout import load_meta
from .predictors import create_predictor
from .preprocess import eval_transform

__all__ = ["list_images", "load_image", "softmax", "topk", "predict_files"]


def list_images(paths):
    """Image files among ``paths`` (files, or folders searched recursively),
    sorted within each folder."""
    files = []
    for p in paths:
        if os.path.isdir(p):
            for root, dirs, names in os.walk(p):
                dirs.sort()
                files += [os.path.join(root, n) for n in sorted(names) if n.lower().endswith(IMAGE_EXTENSIONS)]
        elif os.path.isfile(p):
            files.append(p)
        else:
            raise UserError("no such file or folder: %s" % p)
    if not files:
        raise UserError("no images found in %s (extensions: %s)" % (", ".join(paths), " ".join(IMAGE_EXTENSIONS)))
    return files


def load_image(path, color="RGB"):
    """A PIL image in ``color`` mode ('RGB', or 'L' for grey models), as the
    data sets hand images to the eval transform."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.convert(color or "RGB")
    except OSError as e:
        raise UserError("cannot read image %s: %s" % (path, e))


def softmax(logits):
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def topk(probs, k, class_names=None):
    """Per row, ``[(class_index, label, probability)]`` of the ``k`` largest."""
    k = min(int(k), probs.shape[-1])
    idx = np.argsort(-probs, axis=-1, kind="stable")[:, :k]
    out = []
    for row, ids in zip(probs, idx):
        out.append([(int(i), class_names[i] if class_names and i < len(class_names) else str(int(i)),
                     float(row[i])) for i in ids])
    return out


def predict_files(model_dir, paths, backend="auto", k=5, batch_size=32, predictor=None, **predictor_kw):
    """Top-``k`` predictions for image files/folders: a list of
    ``{"file", "top": [(index, label, prob), ...]}``."""
    meta = load_meta(model_dir)
    transform = eval_transform(meta)
    if predictor is None:
        predictor = create_predictor(model_dir, backend=backend, **predictor_kw)
    files = list_images(paths)
    color = meta.get("color") or ("L" if meta.get("channels") == 1 else "RGB")
    results = []
    for i in range(0, len(files), int(batch_size)):
        chunk = files[i:i + int(batch_size)]
        batch = np.stack([np.asarray(transform(load_image(f, color)), dtype="float32") for f in chunk])
        for f, top in zip(chunk, topk(softmax(predictor(batch)), k, meta.get("class_names"))):
            results.append({"file": f, "top": top})
    return results
