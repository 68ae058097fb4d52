"""Data sets: CIFAR archives (paddle.vision), the held-out split, image
folders, digits, synthetic data, and the errors for missing or damaged data."""
import os
import pickle
import tarfile

import numpy as np
import pytest
from PIL import Image

from ppresvar.data import check_loader_section
from ppresvar.data.datasets import (DigitsData, build_dataset, holdout_indices, num_classes_of)
from ppresvar.errors import ConfigError, DataError


def opts(**kw):
    section = {"dataset": kw, "transforms": [{"NormalizeImage": {}}], "batch_transforms": []}
    return check_loader_section(section, "DataLoader.Train")


def test_cifar10_archive_reads_through_paddle(cifar10_archive):
    train = build_dataset(opts(name="Cifar10", data_file=cifar10_archive))
    test = build_dataset(opts(name="Cifar10", mode="test", data_file=cifar10_archive))
    assert (len(train), len(test)) == (60, 20)
    image, label = train.base.load(0)
    assert isinstance(image, Image.Image) and image.size == (32, 32) and image.mode == "RGB"
    # the labels are the archive's, in its order
    with tarfile.open(cifar10_archive) as tar:
        batch = pickle.load(tar.extractfile("cifar-10-batches-py/data_batch_1"), encoding="bytes")
    assert train.labels[:len(batch[b"labels"])] == batch[b"labels"]
    assert np.array_equal(np.asarray(image).transpose(2, 0, 1).reshape(-1), batch[b"data"][0])


def test_cifar100_uses_fine_labels(cifar100_archive):
    ds = build_dataset(opts(name="Cifar100", data_file=cifar100_archive))
    assert len(ds) == 30 and max(ds.labels) < 100 and len(ds.class_names) == 100


def test_holdout_is_disjoint_complete_and_seeded():
    train, val = holdout_indices(100, 20, seed=0)
    assert len(val) == 20 and len(train) == 80
    assert not set(train) & set(val) and set(train) | set(val) == set(range(100))
    again = holdout_indices(100, 20, seed=0)
    assert np.array_equal(again[1], val)
    assert not np.array_equal(holdout_indices(100, 20, seed=1)[1], val)
    assert len(holdout_indices(100, 0.25, seed=0)[1]) == 25  # a fraction


def test_train_and_val_subsets_split_the_same_data(cifar10_archive):
    common = dict(name="Cifar10", data_file=cifar10_archive, val_size=15, split_seed=2)
    cache = {}
    train = build_dataset(opts(subset="train", **common), cache=cache)
    val = build_dataset(opts(subset="val", **common), cache=cache)
    assert train.base is val.base  # the archive is read once
    assert len(train) == 45 and len(val) == 15
    assert not set(train.indices) & set(val.indices)


def test_missing_archive_says_where_to_put_it(tmp_path):
    missing = str(tmp_path / "nowhere" / "cifar-10-python.tar.gz")
    with pytest.raises(DataError) as e:
        build_dataset(opts(name="Cifar10", data_file=missing))
    msg = str(e.value)
    assert missing in msg and "cifar-10-python.tar.gz" in msg and "data_file" in msg and "\n" not in msg


def test_no_archive_offline_without_download(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(DataError) as e:
        build_dataset(opts(name="Cifar10", download=False))
    assert "data/" in str(e.value) and "data_file" in str(e.value)


def test_archive_found_in_ai_studio_mount(tmp_path, monkeypatch, cifar10_archive):
    mount = tmp_path / "data" / "data152754"
    mount.mkdir(parents=True)
    os.symlink(cifar10_archive, str(mount / "cifar-10-python.tar.gz"))
    monkeypatch.chdir(tmp_path)
    ds = build_dataset(opts(name="Cifar10", download=False))
    assert len(ds) == 60


@pytest.mark.parametrize("content", [b"this is not a tar archive", b"\x1f\x8b\x08\x00broken gzip"])
def test_corrupt_archive(tmp_path, content):
    bad = tmp_path / "cifar-10-python.tar.gz"
    bad.write_bytes(content)
    with pytest.raises(DataError) as e:
        build_dataset(opts(name="Cifar10", data_file=str(bad)))
    assert "damaged" in str(e.value) and str(bad) in str(e.value)


def test_truncated_archive(tmp_path, cifar10_archive):
    bad = tmp_path / "cifar-10-python.tar.gz"
    bad.write_bytes(open(cifar10_archive, "rb").read()[:3000])
    with pytest.raises(DataError):
        build_dataset(opts(name="Cifar10", data_file=str(bad)))


def test_image_folder(tmp_path):
    for cls, colour in (("cat", 50), ("dog", 200)):
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.new("RGB", (10 + i, 12), (colour, 0, 0)).save(str(tmp_path / cls / ("%d.png" % i)))
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    ds = build_dataset(opts(name="ImageFolder", root=str(tmp_path)))
    assert ds.class_names == ["cat", "dog"] and ds.labels == [0, 0, 0, 1, 1, 1]
    image, label = ds.base.load(4)
    assert image.mode == "RGB" and label == 1 and image.getpixel((0, 0))[0] == 200
    assert num_classes_of(opts(name="ImageFolder", root=str(tmp_path))) == 2


def test_image_folder_errors(tmp_path):
    with pytest.raises(DataError):
        build_dataset(opts(name="ImageFolder", root=str(tmp_path / "absent")))
    with pytest.raises(DataError):  # no class folders
        build_dataset(opts(name="ImageFolder", root=str(tmp_path)))
    (tmp_path / "a").mkdir()
    with pytest.raises(DataError):  # no images
        build_dataset(opts(name="ImageFolder", root=str(tmp_path)))


def test_synthetic_is_deterministic_and_modes_differ():
    a = build_dataset(opts(name="Synthetic", num_samples=8, image_size=8))
    b = build_dataset(opts(name="Synthetic", num_samples=8, image_size=8))
    t = build_dataset(opts(name="Synthetic", num_samples=8, image_size=8, mode="test"))
    assert np.array_equal(a.base.images, b.base.images) and a.labels == b.labels
    assert not np.array_equal(a.base.images, t.base.images)


def test_digits_splits():
    pytest.importorskip("sklearn")
    train, test = DigitsData("train", 1), DigitsData("test", 3)
    assert (len(train), len(test)) == (1437, 360)
    image, label = train.load(0)
    assert image.size == (8, 8) and image.mode == "L" and 0 <= label < 10
    assert test.load(0)[0].mode == "RGB"
    assert sorted(set(train.labels)) == list(range(10))


def test_unknown_dataset_and_key_suggest():
    with pytest.raises(ConfigError) as e:
        opts(name="Cifar1O")
    assert "Cifar10" in str(e.value)
    with pytest.raises(ConfigError) as e:
        opts(name="Cifar10", data_fle="x")
    assert "DataLoader.Train.dataset.data_fle" in str(e.value) and "data_file" in str(e.value)
    with pytest.raises(ConfigError) as e:
        opts(name="Cifar10", val_size="many")
    assert "val_size" in str(e.value)


def test_subset_needs_val_size():
    with pytest.raises(ConfigError):
        build_dataset(opts(name="Synthetic", subset="val"))
