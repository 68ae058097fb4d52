"""The batched input path: crop, flip and normalise whole uint8 batches in
NumPy, seeded per (seed, epoch, rank, batch), chosen by ``batched``."""
import os

import numpy as np
import paddle.vision.transforms.functional as F
import pytest
from PIL import Image

from ppresvar.data.batched import BatchedDataset, plan_batched
from ppresvar.data.datasets import DigitsData, SplitDataset, SyntheticData, build_dataset
from ppresvar.data.loader import ShardedBatchSampler, WholeBatchSampler, build_loader
from ppresvar.data.transforms import build_transforms
from ppresvar.engine.config import load_config, validate
from ppresvar.engine.logger import read_metrics
from ppresvar.engine.trainer import Trainer
from ppresvar.errors import ConfigError

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
MEAN, STD = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]
NORM = {"NormalizeImage": {"mean": MEAN, "std": STD}}
GREY = {"NormalizeImage": {"mean": [0.0], "std": [1.0]}}  # x / 255
CROP_FLIP = [{"RandomCrop": {"size": 32, "padding": 4}}, {"RandomHorizontalFlip": {}}, NORM]


def _pipeline(ops, dataset="Cifar10"):
    batch, reason = plan_batched(build_transforms(ops), dataset)
    assert batch is not None, reason
    return batch


def _reference(images, oy, ox, flips, pad, size, mean=MEAN, std=STD):
    """Pad, crop at (oy, ox), flip, normalise: one image at a time, plainly.
    ``pad`` is (top, bottom, left, right); the result is float32 NCHW."""
    top, bottom, left, right = pad
    th, tw = size
    out = []
    for img, y, x, f in zip(images, oy, ox, flips):
        h, w, c = img.shape
        padded = np.zeros((h + top + bottom, w + left + right, c), dtype="uint8")
        padded[top:top + h, left:left + w] = img
        crop = padded[y:y + th, x:x + tw]
        if f:
            crop = crop[:, ::-1]
        x32 = crop.astype("float32")
        norm = (x32 * np.float32(1 / 255.0) - np.asarray(mean, "float32")) / np.asarray(std, "float32")
        out.append(norm.transpose(2, 0, 1))
    return np.stack(out)


def _images(n=8, h=32, w=32, c=3, seed=0):
    return np.random.RandomState(seed).randint(0, 256, (n, h, w, c)).astype("uint8")


def test_crop_flip_normalise_equal_a_numpy_reference():
    images = _images()
    pipe = _pipeline(CROP_FLIP)
    crop, flip = pipe.ops
    # given offsets (the corners and the centre) and flips, through each op
    oy, ox = np.array([0, 8, 0, 8, 4, 1, 7, 3]), np.array([0, 0, 8, 8, 4, 6, 2, 5])
    flips = np.array([0, 1, 0, 1, 1, 0, 0, 1], dtype=bool)
    x = images.transpose(0, 3, 1, 2)
    got = flip.apply(crop.apply(x, oy, ox), flips)
    expected = _reference(images, oy, ox, flips, (4, 4, 4, 4), (32, 32))
    np.testing.assert_array_equal(_pipeline([NORM])(got.transpose(0, 2, 3, 1)), expected)
    # the whole pipeline with a generator: the draws in order (crop rows, crop columns, flips)
    rng = np.random.default_rng(5)
    oy, ox = rng.integers(0, 9, 8), rng.integers(0, 9, 8)
    flips = rng.random(8) < 0.5
    got = pipe(images, np.random.default_rng(5))
    assert got.dtype == np.float32 and got.shape == (8, 3, 32, 32) and got.flags.c_contiguous
    np.testing.assert_array_equal(got, _reference(images, oy, ox, flips, (4, 4, 4, 4), (32, 32)))


def test_asymmetric_padding_and_crop_follow_paddle():
    # paddle's padding (left, top, right, bottom); a (h, w) crop of a grey image
    images = _images(4, 20, 24, 1)
    paddle_padded = np.asarray(F.pad(Image.fromarray(images[0, :, :, 0]), [1, 2, 3, 4]))
    np.testing.assert_array_equal(paddle_padded, np.pad(images[0, :, :, 0], ((2, 4), (1, 3))))
    pipe = _pipeline([{"RandomCrop": {"size": [18, 26], "padding": [1, 2, 3, 4]}},
                      {"NormalizeImage": {"mean": [0.5], "std": [0.5]}}], "Synthetic")
    oy, ox = np.array([0, 6, 3, 1]), np.array([2, 0, 0, 2])
    got = _pipeline([{"NormalizeImage": {"mean": [0.5], "std": [0.5]}}])(
        pipe.ops[0].apply(images.transpose(0, 3, 1, 2), oy, ox).transpose(0, 2, 3, 1))
    expected = _reference(images, oy, ox, [False] * 4, (2, 4, 1, 3), (18, 26), [0.5], [0.5])
    np.testing.assert_array_equal(got, expected)
    rng = np.random.default_rng(0)
    assert pipe.ops[0].draw(rng, 1000, 20, 24)[0].max() == 20 + 2 + 4 - 18  # every row offset


class _ArrayBase(object):
    """A base data set of given images (what image_array gives)."""

    def __init__(self, images):
        self.images = images
        self.labels = list(range(len(images)))
        self.class_names = []

    def __len__(self):
        return len(self.images)

    def image_array(self):
        return self.images


def test_every_offset_is_reachable_and_half_are_flipped():
    # constant bright images: the zero rows/columns of a crop tell its offsets,
    # a left-to-right ramp (no crop) tells the flips
    n, batch = 4000, 200
    bright = BatchedDataset(SplitDataset(_ArrayBase(np.full((n, 32, 32, 1), 255, "uint8")), None),
                            _pipeline([{"RandomCrop": {"size": 32, "padding": 4}}, GREY], "Synthetic"), "T")
    sampler = WholeBatchSampler(n, batch, shuffle=True, seed=3)
    sampler.set_epoch(1)
    counts = np.zeros((9, 9), dtype=int)
    for (key,) in sampler:
        x, labels = bright[key]
        assert sorted(labels.tolist()) == sorted(key[1].tolist())
        rows, cols = x[:, 0, :, 16] > 0.5, x[:, 0, 16, :] > 0.5  # inside the image
        oy = np.where(rows[:, 0], 4 + (32 - rows.sum(1)), 4 - rows.argmax(1))
        ox = np.where(cols[:, 0], 4 + (32 - cols.sum(1)), 4 - cols.argmax(1))
        np.add.at(counts, (oy, ox), 1)
    assert (counts > 0).all()  # all 81 offsets
    assert counts.sum() == n and counts.max() < 3 * n / 81

    ramp = np.tile(np.arange(0, 256, 8, dtype="uint8")[None, None, :, None], (n, 32, 1, 1))
    flipper = BatchedDataset(SplitDataset(_ArrayBase(ramp), None),
                             _pipeline([{"RandomHorizontalFlip": {}}, GREY], "Synthetic"), "T")
    flipped = np.concatenate([flipper[key][0][:, 0, 0, 0] > flipper[key][0][:, 0, 0, -1] for (key,) in sampler])
    assert flipped.size == n and abs(flipped.mean() - 0.5) < 0.03
    # prob is honoured
    never = _pipeline([{"RandomHorizontalFlip": {"prob": 0.0}}, GREY], "Synthetic")
    out = never(ramp[:100], np.random.default_rng(0))
    assert (out[:, 0, 0, 0] < out[:, 0, 0, -1]).all()


def _section(archive, workers, batched="auto", transforms=CROP_FLIP, **kw):
    section = {"dataset": {"name": "Cifar10", "data_file": archive, "download": False},
               "transforms": transforms, "batch_size": 16, "shuffle": True, "num_workers": workers,
               "batched": batched}
    section.update(kw)
    return validate({"Arch": {"name": "resnet20"}, "DataLoader": {"Train": section}})["DataLoader"]["Train"]


def _epoch(section, epoch, seed=7):
    loader, sampler, dataset = build_loader(section, "DataLoader.Train", seed=seed, training=True)
    sampler.set_epoch(epoch)
    return [(x.numpy(), y.numpy()) for x, y in loader], dataset


def test_same_batches_with_0_and_2_workers_and_after_a_restart(cifar10_archive):
    zero, dataset = _epoch(_section(cifar10_archive, 0), 2)
    assert isinstance(dataset, BatchedDataset)
    two, _ = _epoch(_section(cifar10_archive, 2), 2)
    assert len(zero) == len(two) == 4 and zero[0][0].shape == (16, 3, 32, 32) and zero[0][1].dtype == np.int64
    for (xa, ya), (xb, yb) in zip(zero, two):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    # a long-lived loader's epoch 2 is a fresh one's (an epoch-boundary resume)
    loader, sampler, _ = build_loader(_section(cifar10_archive, 0), "DataLoader.Train", seed=7, training=True)
    for epoch in (1, 2):
        sampler.set_epoch(epoch)
        batches = [x.numpy() for x, _ in loader]
    assert all(np.array_equal(a, b[0]) for a, b in zip(batches, zero))
    other, _ = _epoch(_section(cifar10_archive, 0, shuffle=False), 3)
    again, _ = _epoch(_section(cifar10_archive, 0, shuffle=False), 4)
    assert not np.array_equal(other[0][0], again[0][0])  # the same images, new draws each epoch


def test_normalise_only_equals_the_per_image_path(cifar10_archive):
    batched, ds = _epoch(_section(cifar10_archive, 0, transforms=[NORM], shuffle=False), 1)
    per_image, ds2 = _epoch(_section(cifar10_archive, 0, False, transforms=[NORM], shuffle=False), 1)
    assert isinstance(ds, BatchedDataset) and not isinstance(ds2, BatchedDataset)
    for (xa, ya), (xb, yb) in zip(batched, per_image):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


@pytest.mark.parametrize("name, channels", [("Synthetic", 1), ("Synthetic", 3), ("Digits", 1), ("Digits", 3)])
def test_image_array_holds_the_images_load_gives(name, channels):
    if name == "Digits":
        pytest.importorskip("sklearn")
        base = DigitsData("train", channels)
    else:
        base = SyntheticData("train", 5, 3, 12, channels, 0)
    array = base.image_array()
    assert array.dtype == np.uint8 and array.ndim == 4 and len(array) == len(base)
    for i in (0, len(base) - 1):
        image = np.asarray(base.load(i)[0])
        np.testing.assert_array_equal(array[i], image.reshape(array.shape[1:]))


def test_cifar_image_array(cifar10_archive):
    base = build_dataset(_section(cifar10_archive, 0)["dataset"]).base
    assert base.image_array().shape == (60, 32, 32, 3)
    np.testing.assert_array_equal(base.image_array()[5], np.asarray(base.load(5)[0]))


@pytest.mark.parametrize("transforms", [
    [{"RandomRotation": {"degrees": 10}}, NORM],
    [{"RandomCrop": {"size": 32, "padding": 4}},
     {"RandomApply": {"p": 0.5, "transforms": [{"BrightnessTransform": {"value": 0.1}}]}}, NORM],
    [{"RandomCrop": {"size": 32, "padding": 4, "padding_mode": "reflect"}}, NORM],
])
def test_auto_falls_back_to_the_per_image_path(cifar10_archive, transforms):
    loader, sampler, dataset = build_loader(_section(cifar10_archive, 0, transforms=transforms),
                                            "DataLoader.Train", training=True)
    assert isinstance(dataset, SplitDataset) and type(sampler) is ShardedBatchSampler
    x, y = next(iter(loader))
    assert list(x.shape) == [16, 3, 32, 32] and list(y.shape) == [16]
    _, reason = plan_batched(build_transforms(CROP_FLIP), "ImageFolder")
    assert "ImageFolder" in reason


@pytest.mark.parametrize("transforms, dataset, word", [
    ([{"RandomCrop": {"size": 32, "padding": 4}},
      {"RandomApply": {"p": 0.5, "transforms": [{"BrightnessTransform": {"value": 0.1}}]}}, NORM],
     None, "transforms[1] RandomApply"),
    ([{"RandomCrop": {"size": 32, "pad_if_needed": True}}, NORM], None, "pad_if_needed"),
    ([{"RandomCrop": {"size": 32, "padding": 4, "fill": 128}}, NORM], None, "RandomCrop"),
    (CROP_FLIP, {"name": "ImageFolder", "root": "images"}, "ImageFolder"),
])
def test_batched_true_names_what_prevents_it(transforms, dataset, word):
    train = {"dataset": dataset or {"name": "Cifar10"}, "transforms": transforms, "batched": True}
    with pytest.raises(ConfigError) as e:
        validate({"Arch": {"name": "resnet20"}, "DataLoader": {"Train": train}})
    assert "DataLoader.Train.batched" in str(e.value) and word in str(e.value)


def test_the_cifar_config_trains_an_epoch_on_the_batched_path(cifar10_archive, tmp_path):
    overrides = ["DataLoader.*.dataset.data_file=%s" % cifar10_archive, "DataLoader.*.dataset.val_size=20",
                 "DataLoader.*.batch_size=20", "DataLoader.Train.batched=true", "DataLoader.Eval.batched=true",
                 "Global.iterations=null", "Global.epochs=1", "Optimizer.lr.milestones=[6, 9]",
                 "Global.output_dir=%s" % tmp_path, "Global.run_name=batched", "Global.use_visualdl=false",
                 "Global.plot_curves=false"]
    cfg = load_config(os.path.join(ROOT, "configs", "resnet20.yaml"), overrides)
    assert cfg["DataLoader"]["Train"]["num_workers"] == 0
    trainer = Trainer(cfg, run_name="batched")
    assert isinstance(trainer.train_set, BatchedDataset) and isinstance(trainer.val_set, BatchedDataset)
    summary = trainer.fit()
    records = read_metrics(os.path.join(summary["run_dir"], "metrics.jsonl"))
    assert summary["iterations"] == 2 and [r["epoch"] for r in records] == [1]
    assert np.isfinite(records[0]["train_loss"]) and np.isfinite(records[0]["val_loss"])
