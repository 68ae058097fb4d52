"""Data sets: CIFAR-10/100 (through ``paddle.vision.datasets``), an image
folder (one sub-folder per class), scikit-learn's digits (real, offline) and a
synthetic set for tests; plus the held-out validation split.

Every data set here yields ``(PIL image, int label)`` from ``load(i)`` and
knows its ``labels`` (for the split) and ``class_names``; those holding
equally sized uint8 images in memory (CIFAR, digits, synthetic) also give
them all as one array (``image_array()``) for the batched input path. The
``subset`` option (``all``, ``train``, ``val``) with ``val_size`` and
``split_seed`` carves a validation set out of the training data, so the best
epoch is never chosen on the test set.
"""
import glob
import os
import pickle
import socket
import tarfile
import zlib

import numpy as np
import paddle
from PIL import Image

from ..errors import ConfigError, DataError

__all__ = ["DATASETS", "IN_MEMORY", "build_dataset", "holdout_indices", "num_classes_of", "class_names_of",
           "native_size_of", "write_cifar_archive", "check_same_classes", "CIFAR10_CLASSES", "CIFAR100_CLASSES"]

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR100_CLASSES = [
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
    "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
    "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
    "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard",
    "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain",
    "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket",
    "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
    "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger",
    "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm"]

_SPLIT = {
    "subset": (("all", "train", "val"), "all"),
    "val_size": ("num", 0),         # images held out for validation: a count, or a fraction < 1
    "split_seed": ("int", 0),
}
# Options of each data set, checked by the config loader: (kind, default) as in engine.config.
DATASETS = {
    "Cifar10": dict(_SPLIT, mode=(("train", "test"), "train"), data_file=("str?", None),
                    download=("bool", True)),
    "Cifar100": dict(_SPLIT, mode=(("train", "test"), "train"), data_file=("str?", None),
                     download=("bool", True)),
    "ImageFolder": dict(_SPLIT, root=("str", None)),
    "Digits": dict(_SPLIT, mode=(("train", "test"), "train"), channels=((1, 3), 1)),
    "Synthetic": dict(_SPLIT, mode=(("train", "test"), "train"), num_samples=("int", 64),
                      num_classes=("int", 10), image_size=("int", 32), channels=((1, 3), 3),
                      seed=("int", 0)),
}
# Data sets holding equally sized uint8 images in memory (``image_array()``): the
# batched input path (data.batched) can take them.
IN_MEMORY = ("Cifar10", "Cifar100", "Digits", "Synthetic")


# ------------------------------------------------------------------ data sets

class _Base(object):
    """``load(i) -> (PIL.Image, int)``; ``labels``; ``class_names``."""
    labels = ()
    class_names = ()

    def __len__(self):
        return len(self.labels)

    def image_array(self):
        """Every image as one uint8 ``(N, H, W, C)`` array, the pixels
        ``load`` gives; None when the images are not held in memory."""
        return None


class CifarData(_Base):
    """CIFAR-10/100 read by ``paddle.vision.datasets`` from the python-version
    archive (``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz``)."""

    def __init__(self, hundred, mode, data_file, download, where):
        import paddle.vision.datasets as pvd

        self.hundred = hundred
        self.archive = "cifar-100-python.tar.gz" if hundred else "cifar-10-python.tar.gz"
        title = "CIFAR-100" if hundred else "CIFAR-10"
        path = locate_cifar_archive(self.archive, data_file, download, title, where)
        cls = pvd.Cifar100 if hundred else pvd.Cifar10
        try:
            ds = cls(data_file=path, mode=mode, transform=None, download=False, backend="pil")
        except (tarfile.TarError, EOFError, OSError, zlib.error, pickle.UnpicklingError, KeyError,
                ValueError, AssertionError, TypeError, IndexError) as e:
            raise DataError("cannot read the %s archive %s (%s: %s): it is damaged or not the python "
                            "version; download %s again" % (title, path, type(e).__name__, e, self.archive))
        if len(ds) == 0:
            raise DataError("the %s archive %s holds no %s images: is it the %s archive?"
                            % (title, path, mode, "CIFAR-10" if hundred else "CIFAR-100"))
        self.path = path
        self.labels = [int(label) for _, label in ds.data]
        # the rows are CHW; paddle's own __getitem__ makes the same HWC image of each
        rows = np.stack([np.asarray(row, dtype="uint8") for row, _ in ds.data])
        if rows.ndim != 2 or rows.shape[1] != 3 * 32 * 32:
            raise DataError("the %s archive %s holds rows of %s values, not 3x32x32 images: it is not a "
                            "CIFAR archive; download %s again, or pack image folders with tools/pack_cifar.py"
                            % (title, path, rows.shape[1:] or "scalar", self.archive))
        self.images = np.ascontiguousarray(rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        self.class_names = CIFAR100_CLASSES if hundred else CIFAR10_CLASSES

    def load(self, i):
        return Image.fromarray(self.images[i]), self.labels[i]

    def image_array(self):
        return self.images


def _cifar_candidates(archive):
    dirs = ["data", os.path.join("data", "data*"), os.path.expanduser(os.path.join("~", "data", "data*")),
            os.path.expanduser(os.path.join("~", ".cache", "paddle", "dataset", "cifar"))]
    for d in dirs:
        for path in sorted(glob.glob(os.path.join(d, archive))):
            yield path


def locate_cifar_archive(archive, data_file, download, title, where):
    """The archive's path: ``data_file`` when given; else one found under
    ``data/``, ``data/dataNNNNN/`` (AI Studio's mounts) or paddle's cache;
    else paddle's own download when ``download`` is true."""
    key = "%s.dataset.data_file" % where
    if data_file:
        if not os.path.isfile(data_file):
            raise DataError("%s archive not found at %s: put %s (the python version) there or set %s=PATH"
                            % (title, data_file, archive, key))
        return data_file
    for path in _cifar_candidates(archive):
        return path
    hint = ("put %s (the python version) under data/ (AI Studio mounts data sets as data/dataNNNNN/) "
            "or set %s=PATH" % (archive, key))
    if not download:
        raise DataError("%s archive %s not found in data/, data/data*/ or ~/.cache/paddle/dataset/cifar: %s"
                        % (title, archive, hint))
    from paddle.dataset.common import download as paddle_download
    import paddle.vision.datasets.cifar as pcifar

    url, md5 = ((pcifar.CIFAR100_URL, pcifar.CIFAR100_MD5) if "100" in archive
                else (pcifar.CIFAR10_URL, pcifar.CIFAR10_MD5))
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(20)  # offline, fail in seconds rather than hang
    try:
        return paddle_download(url, "cifar", md5)
    except Exception as e:  # any network failure ends in the same advice
        raise DataError("%s archive not found locally and the download failed (%s): %s"
                        % (title, str(e).splitlines()[0][:120] if str(e) else type(e).__name__, hint))
    finally:
        socket.setdefaulttimeout(old)


IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


class ImageFolderData(_Base):
    """``root/<class name>/<image>``: classes are the sorted sub-folder names."""

    def __init__(self, root, where):
        if not root or not os.path.isdir(root):
            raise DataError("image folder %r not found: set %s.dataset.root to a folder with one "
                            "sub-folder of images per class" % (root, where))
        self.class_names = sorted(e.name for e in os.scandir(root) if e.is_dir())
        if not self.class_names:
            raise DataError("image folder %s has no class sub-folders: put each class's images in "
                            "%s/<class name>/" % (root, root))
        self.files, labels = [], []
        for label, name in enumerate(self.class_names):
            for dirpath, _, files in sorted(os.walk(os.path.join(root, name))):
                for fname in sorted(files):
                    if fname.lower().endswith(IMAGE_EXTENSIONS):
                        self.files.append(os.path.join(dirpath, fname))
                        labels.append(label)
        if not self.files:
            raise DataError("image folder %s has no images (%s)" % (root, ", ".join(IMAGE_EXTENSIONS)))
        self.labels = labels

    def load(self, i):
        path = self.files[i]
        try:
            with Image.open(path) as im:
                return im.convert("RGB"), self.labels[i]
        except (OSError, ValueError) as e:
            raise DataError("cannot read image %s: %s" % (path, e))


class DigitsData(_Base):
    """scikit-learn's 1,797 handwritten digits (8x8, 17 grey levels; UCI
    optdigits test set), shipped inside the scikit-learn wheel, so it needs
    no network. A fixed 20% (360 images) is the test split."""
    TEST_SIZE = 360

    def __init__(self, mode, channels):
        try:
            from sklearn.datasets import load_digits
        except ImportError:
            raise DataError("the Digits data set needs scikit-learn: pip install scikit-learn "
                            "(or pip install -e .[demo])")
        digits = load_digits()
        images = np.round(digits.images * (255.0 / 16.0)).astype("uint8")
        order = np.random.RandomState(0).permutation(len(images))
        idx = np.sort(order[:self.TEST_SIZE] if mode == "test" else order[self.TEST_SIZE:])
        self.images = images[idx]
        self.labels = [int(t) for t in digits.target[idx]]
        self.channels = channels
        self.class_names = [str(i) for i in range(10)]

    def load(self, i):
        im = Image.fromarray(self.images[i], mode="L")
        return (im.convert("RGB") if self.channels == 3 else im), self.labels[i]

    def image_array(self):
        return np.repeat(self.images[:, :, :, None], self.channels, axis=3)


class SyntheticData(_Base):
    """Deterministic, learnable images for tests: each class has its own
    colour pattern, each image adds noise. ``mode='test'`` draws other images."""

    def __init__(self, mode, num_samples, num_classes, image_size, channels, seed):
        rng = np.random.RandomState(seed * 2 + (mode == "test"))
        self.labels = [int(t) for t in rng.randint(0, num_classes, size=num_samples)]
        pattern_rng = np.random.RandomState(seed + 7919)
        coarse = pattern_rng.uniform(40, 215, size=(num_classes, 4, 4, channels))
        reps = int(np.ceil(image_size / 4.0))
        patterns = np.repeat(np.repeat(coarse, reps, axis=1), reps, axis=2)[:, :image_size, :image_size]
        noise = rng.normal(0, 30, size=(num_samples, image_size, image_size, channels))
        self.images = np.clip(patterns[self.labels] + noise, 0, 255).astype("uint8")
        self.class_names = ["class_%d" % i for i in range(num_classes)]

    def load(self, i):
        im = self.images[i]
        return Image.fromarray(im[:, :, 0] if im.shape[2] == 1 else im), self.labels[i]

    def image_array(self):
        return self.images


def _make_base(opts, where):
    name = opts["name"]
    if name in ("Cifar10", "Cifar100"):
        return CifarData(name == "Cifar100", opts["mode"], opts["data_file"], opts["download"], where)
    if name == "ImageFolder":
        return ImageFolderData(opts["root"], where)
    if name == "Digits":
        return DigitsData(opts["mode"], opts["channels"])
    if name == "Synthetic":
        return SyntheticData(opts["mode"], opts["num_samples"], opts["num_classes"], opts["image_size"],
                             opts["channels"], opts["seed"])
    raise ConfigError("unknown data set %r" % name)


# ------------------------------------------------------------------ splits

def holdout_indices(n, val_size, seed):
    """``(train_indices, val_indices)``: ``val_size`` images (a count, or a
    fraction when < 1) drawn at random with ``seed``; both sorted."""
    k = int(round(val_size * n)) if 0 < val_size < 1 else int(val_size)
    if not 0 < k < n:
        raise DataError("val_size %r leaves no %s images (the data set has %d)"
                        % (val_size, "validation" if k <= 0 else "training", n))
    order = np.random.RandomState(seed).permutation(n)
    return np.sort(order[k:]), np.sort(order[:k])


class SplitDataset(paddle.io.Dataset):
    """A subset of a base data set with a transform applied: yields
    ``(transformed image, int64 label)``."""

    def __init__(self, base, indices, transform=None):
        self.base = base
        self.indices = np.arange(len(base)) if indices is None else np.asarray(indices)
        self.transform = transform
        self.class_names = list(base.class_names)

    @property
    def labels(self):
        return [self.base.labels[i] for i in self.indices]

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        image, label = self.base.load(int(self.indices[i]))
        if self.transform is not None:
            image = self.transform(image)
        return image, np.array(label, dtype="int64")


def build_dataset(opts, transform=None, where="DataLoader.Train", cache=None):
    """A :class:`SplitDataset` from a validated ``dataset`` section.
    ``cache`` (a dict) shares one loaded base data set between loaders."""
    base_key = tuple(sorted((k, repr(v)) for k, v in opts.items() if k not in _SPLIT))
    base = cache.get(base_key) if cache is not None else None
    if base is None:
        base = _make_base(opts, where)
        if cache is not None:
            cache[base_key] = base
    indices = None
    if opts["subset"] != "all":
        if not opts["val_size"]:
            raise ConfigError("%s.dataset.subset is %r but val_size is 0: set val_size (e.g. 5000)"
                              % (where, opts["subset"]))
        train_idx, val_idx = holdout_indices(len(base), opts["val_size"], opts["split_seed"])
        indices = train_idx if opts["subset"] == "train" else val_idx
    return SplitDataset(base, indices, transform)


def check_same_classes(names, other, where, other_where):
    """Labels are class indices, so two splits must list the same classes in
    the same order (two image folders where one lacks a class would shift
    every label after it)."""
    if names is None or other is None or list(names) == list(other):
        return
    only = sorted(set(names) ^ set(other))
    raise DataError("%s and %s have different classes (%s): give both the same class folders"
                    % (where, other_where, ", ".join(only[:5]) if only else "same names, another order"))


# --------------------------------------------------------- cheap metadata

def num_classes_of(opts):
    """Class count of a data set without loading its images (image folders are listed)."""
    name = opts["name"]
    if name in ("Cifar10", "Digits"):
        return 10
    if name == "Cifar100":
        return 100
    if name == "Synthetic":
        return opts["num_classes"]
    return len(ImageFolderData(opts["root"], "DataLoader").class_names)


def class_names_of(opts):
    name = opts["name"]
    if name == "Cifar10":
        return list(CIFAR10_CLASSES)
    if name == "Cifar100":
        return list(CIFAR100_CLASSES)
    if name == "Digits":
        return [str(i) for i in range(10)]
    if name == "Synthetic":
        return ["class_%d" % i for i in range(opts["num_classes"])]
    if opts.get("root") and os.path.isdir(opts["root"]):
        return sorted(e.name for e in os.scandir(opts["root"]) if e.is_dir())
    return None


def native_size_of(opts):
    """Side of the images the data set yields, where all share one (else None)."""
    return {"Cifar10": 32, "Cifar100": 32, "Digits": 8}.get(opts["name"], opts.get("image_size"))


def channels_of(opts):
    return opts.get("channels", 3)


# ------------------------------------------------------------ test archives

def write_cifar_archive(path, num_train=100, num_test=50, hundred=False, seed=0):
    """Write a small archive in the CIFAR python format (same layout, members
    and pickles as the real one; images are noise around a per-class colour),
    for tests and smoke runs without the real data."""
    rng = np.random.RandomState(seed)
    classes = 100 if hundred else 10
    colours = rng.randint(30, 225, size=(classes, 3))

    def batch(n):
        labels = rng.randint(0, classes, size=n)
        img = colours[labels][:, :, None, None] + rng.normal(0, 25, size=(n, 3, 32, 32))
        data = np.clip(img, 0, 255).astype("uint8").reshape(n, 3072)
        key = b"fine_labels" if hundred else b"labels"
        return {b"data": data, key: [int(t) for t in labels], b"batch_label": b"synthetic"}

    if hundred:
        top, members = "cifar-100-python", [("train", num_train), ("test", num_test)]
    else:
        per = [num_train // 5 + (1 if i < num_train % 5 else 0) for i in range(5)]
        top = "cifar-10-batches-py"
        members = [("data_batch_%d" % (i + 1), n) for i, n in enumerate(per)] + [("test_batch", num_test)]
    import io

    with tarfile.open(path, "w:gz") as tar:
        for name, n in members:
            blob = pickle.dumps(batch(n), protocol=2)
            info = tarfile.TarInfo("%s/%s" % (top, name))
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return path
