"""Pack an image tree (``root/train/<class>/*``, ``root/test/<class>/*``)
into the python-version CIFAR archive that the ``Cifar10``/``Cifar100`` data
sets read, so the images are decoded once instead of every epoch.

Checks, each failing with one message that names the file and the fix:
``train/`` and ``test/`` exist and have the same class folders, no class is
empty, every file is an image that decodes, every image is 32 x 32, and,
when asked, the per-split counts. Hidden files (``.DS_Store``...) are
skipped. Ten classes give the CIFAR-10 layout
(``cifar-10-batches-py/data_batch_1..5``, ``test_batch``, ``batches.meta``),
a hundred the CIFAR-100 one (``cifar-100-python/train``, ``test``, ``meta``);
the labels are the sorted class-folder names' indices, which for the
CIFAR-10 names is the official order. The archive's bytes depend only on the
images, the shuffle seed and the decoder (no time stamp, no file name): with
the same Pillow, numpy and zlib its SHA-256 identifies the data.
"""
import gzip
import hashlib
import io
import os
import pickle
import tarfile

import numpy as np
from PIL import Image

from ..errors import DataError

__all__ = ["scan_tree", "pack_tree", "file_sha256"]


def _listdir(path):
    return sorted(e for e in os.listdir(path) if not e.startswith("."))


def scan_tree(root):
    """``(class_names, {split: [(path, label), ...]})`` of ``root/<split>/<class>/<file>``."""
    if not os.path.isdir(root):
        raise DataError("image tree %s not found: give the folder that holds train/ and test/" % root)
    splits = {}
    classes = None
    for split in ("train", "test"):
        top = os.path.join(root, split)
        if not os.path.isdir(top):
            raise DataError("%s has no %s/ folder: the tree must be %s/train/<class>/<image> and "
                            "%s/test/<class>/<image>" % (root, split, root, root))
        names = [n for n in _listdir(top) if os.path.isdir(os.path.join(top, n))]
        stray = [n for n in _listdir(top) if not os.path.isdir(os.path.join(top, n))]
        if stray:
            raise DataError("%s holds a file outside the class folders (%s): move or remove it"
                            % (top, os.path.join(top, stray[0])))
        if not names:
            raise DataError("%s has no class folders: put each class's images in %s/<class>/" % (top, top))
        if classes is None:
            classes = names
        elif names != classes:
            missing = sorted(set(classes) ^ set(names))
            raise DataError("train/ and test/ have different class folders (%s only in one of them): "
                            "every class needs a folder in both" % ", ".join(missing))
        items = []
        for label, name in enumerate(names):
            folder = os.path.join(top, name)
            files = [f for f in _listdir(folder)]
            sub = [f for f in files if os.path.isdir(os.path.join(folder, f))]
            if sub:
                raise DataError("%s holds a folder (%s): a class folder holds images only"
                                % (folder, sub[0]))
            if not files:
                raise DataError("class folder %s is empty: every class needs images in both splits" % folder)
            items.extend((os.path.join(folder, f), label) for f in files)
        splits[split] = items
    if len(classes) not in (10, 100):
        raise DataError("%s has %d classes: the CIFAR archive layouts hold 10 or 100 "
                        "(train on other trees with the ImageFolder data set)" % (root, len(classes)))
    return classes, splits


def _decode(path, size):
    try:
        with Image.open(path) as im:
            im.load()
            if im.size != (size, size):
                raise DataError("%s is %dx%d, not %dx%d: every image of a CIFAR archive is %dx%d; "
                                "resize the tree first" % (path, im.size[0], im.size[1], size, size, size, size))
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except DataError:
        raise
    except Exception as e:  # PIL raises several types for a non-image or a truncated file
        raise DataError("%s is not a readable image (%s): remove or replace it"
                        % (path, str(e).splitlines()[0] if str(e) else type(e).__name__))


def _batch(items, size, batch_label, label_key):
    data = np.empty((len(items), 3 * size * size), np.uint8)
    for i, (path, _) in enumerate(items):
        data[i] = _decode(path, size).transpose(2, 0, 1).reshape(-1)  # rows are CHW, as CIFAR's
    return {b"batch_label": batch_label.encode(), label_key: [int(label) for _, label in items],
            b"data": data, b"filenames": [os.path.basename(p).encode() for p, _ in items]}


def _add(tar, name, obj):
    blob = pickle.dumps(obj, protocol=2)
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(blob), 0o644
    tar.addfile(info, io.BytesIO(blob))


def pack_tree(root, out, expect_train=None, expect_test=None, seed=0, log=print):
    """Decode ``root``'s tree and write the archive ``out``; returns a summary
    dict (classes, counts per split and class, the archive's SHA-256).
    Training images are shuffled once with ``seed`` (as CIFAR's batches are);
    the test images keep the tree's order."""
    size = 32  # the CIFAR readers reshape every row to 3 x 32 x 32
    classes, splits = scan_tree(root)
    for split, want in (("train", expect_train), ("test", expect_test)):
        if want is not None and len(splits[split]) != want:
            raise DataError("%s/%s holds %d images, expected %d: the tree is incomplete (or pass the "
                            "right --expect-%s)" % (root, split, len(splits[split]), want, split))
    order = np.random.RandomState(seed).permutation(len(splits["train"]))
    train = [splits["train"][i] for i in order]
    test = splits["test"]
    hundred = len(classes) == 100
    tmp = out + ".part"
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    try:
        # gzip's header would hold the time and the file name: without them the
        # same images give the same bytes, so two users can compare SHA-256s.
        with open(tmp, "wb") as raw, gzip.GzipFile("", "wb", 6, raw, mtime=0) as gz, \
                tarfile.open(fileobj=gz, mode="w") as tar:
            if hundred:
                for name, items in (("train", train), ("test", test)):
                    log("decoding %s: %d images" % (name, len(items)))
                    _add(tar, "cifar-100-python/%s" % name, _batch(items, size, name, b"fine_labels"))
                _add(tar, "cifar-100-python/meta", {b"fine_label_names": [c.encode() for c in classes]})
            else:
                parts = np.array_split(np.arange(len(train)), 5)
                for k, idx in enumerate(parts):
                    log("decoding train batch %d/5: %d images" % (k + 1, len(idx)))
                    _add(tar, "cifar-10-batches-py/data_batch_%d" % (k + 1),
                         _batch([train[i] for i in idx], size, "training batch %d of 5" % (k + 1), b"labels"))
                log("decoding test: %d images" % len(test))
                _add(tar, "cifar-10-batches-py/test_batch", _batch(test, size, "testing batch 1 of 1", b"labels"))
                _add(tar, "cifar-10-batches-py/batches.meta",
                     {b"label_names": [c.encode() for c in classes], b"num_cases_per_batch": len(parts[0]),
                      b"num_vis": 3 * size * size})
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    counts = {split: {c: 0 for c in classes} for split in splits}
    for split, items in splits.items():
        for _, label in items:
            counts[split][classes[label]] += 1
    return {"archive": out, "layout": "cifar-100" if hundred else "cifar-10", "classes": classes,
            "images": {s: len(v) for s, v in splits.items()}, "per_class": counts,
            "sha256": file_sha256(out), "shuffle_seed": seed}


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
