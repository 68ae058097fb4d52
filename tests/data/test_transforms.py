"""Transforms from config and the evaluation preprocessing."""
import os
import random

import numpy as np
import pytest
from PIL import Image

from ppresvar.data.transforms import NormalizeImage, build_transforms, eval_preprocess, eval_transform
from ppresvar.engine.config import load_config
from ppresvar.errors import ConfigError

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "configs")


def _image(size=32, seed=0):
    return Image.fromarray(np.random.RandomState(seed).randint(0, 256, (size, size, 3)).astype("uint8"))


def test_normalize_image_math():
    img = np.arange(2 * 3 * 3, dtype="uint8").reshape(2, 3, 3)
    out = NormalizeImage(mean=[0.1, 0.2, 0.3], std=[0.5, 0.5, 0.25])(img)
    assert out.shape == (3, 2, 3) and out.dtype == np.float32
    expected = (img.astype("float32") / 255 - [0.1, 0.2, 0.3]) / [0.5, 0.5, 0.25]
    np.testing.assert_allclose(out, expected.transpose(2, 0, 1), rtol=1e-6)
    grey = NormalizeImage(mean=[0.5], std=[0.5])(Image.new("L", (4, 5), 255))
    assert grey.shape == (1, 5, 4) and np.allclose(grey, 1.0)


def test_pipeline_from_config_is_seeded():
    ops = [{"RandomCrop": {"size": 32, "padding": 4}}, {"RandomHorizontalFlip": {}},
           {"RandomApply": {"p": 0.5, "transforms": [{"BrightnessTransform": {"value": 0.4}}]}},
           {"RandomRotation": {"degrees": 15}}, {"NormalizeImage": {"mean": [0.5] * 3, "std": [0.25] * 3}}]
    pipe = build_transforms(ops)
    outs = []
    for _ in range(2):
        random.seed(5)
        np.random.seed(5)
        outs.append(np.stack([pipe(_image(seed=i)) for i in range(4)]))
    assert outs[0].shape == (4, 3, 32, 32) and outs[0].dtype == np.float32
    np.testing.assert_array_equal(outs[0], outs[1])


def test_random_apply_probability():
    ops = [{"RandomApply": {"p": 1.0, "transforms": [{"Grayscale": {"num_output_channels": 3}}]}},
           {"NormalizeImage": {}}]
    out = build_transforms(ops)(_image())
    assert np.allclose(out[0], out[1]) and np.allclose(out[1], out[2])
    ops[0]["RandomApply"]["p"] = 0.0
    out = build_transforms(ops)(_image())
    assert not np.allclose(out[0], out[1])


@pytest.mark.parametrize("ops, words", [
    ([{"RandomCorp": {"size": 32}}, {"NormalizeImage": {}}], ["RandomCorp", "RandomCrop"]),
    ([{"RandomCrop": {"size": 32, "paddng": 4}}, {"NormalizeImage": {}}], ["paddng", "padding"]),
    ([{"RandomCrop": {"size": 32}}], ["NormalizeImage"]),
    ([{"NormalizeImage": {}}, {"RandomCrop": {"size": 32}}], ["NormalizeImage"]),
    ([{"NormalizeImage": {"mean": [0.5, 0.5], "std": [1.0]}}], ["NormalizeImage"]),
    # the RiR seed put mixup in a per-image pipeline, where it cannot mix anything
    ([{"Mixup": {"alpha": 1.0}}, {"NormalizeImage": {}}], ["batch_transforms"]),
    ("RandomCrop", ["list"]),
])
def test_bad_pipelines(ops, words):
    with pytest.raises(ConfigError) as e:
        build_transforms(ops, "DataLoader.Train.transforms")
    for w in words:
        assert w in str(e.value)


def test_eval_preprocess_of_configs():
    r20 = eval_preprocess(load_config(os.path.join(CONFIGS, "resnet20.yaml")))
    assert r20["size"] == [32, 32] and r20["crop"] is None and r20["channels"] == 3
    assert r20["mean"] == pytest.approx([0.4914, 0.4822, 0.4465]) and len(r20["class_names"]) == 10
    rs = eval_preprocess(load_config(os.path.join(CONFIGS, "resnetrs50.yaml")))
    assert rs["size"] == [160, 160] and rs["resize"] == 183 and rs["crop"] == 160
    demo = eval_preprocess(load_config(os.path.join(CONFIGS, "demo_digits.yaml")))
    assert demo["size"] == [16, 16] and demo["channels"] == 1 and demo["color"] == "L"
    assert demo["class_names"] == [str(i) for i in range(10)]
    nam = eval_preprocess(load_config(os.path.join(CONFIGS, "resnet50_nam_cifar100.yaml")))
    assert len(nam["class_names"]) == 100 and nam["num_classes"] == 100


def test_eval_transform_matches_the_eval_loader():
    cfg = load_config(os.path.join(CONFIGS, "rir18.yaml"))
    out = eval_transform(cfg)(_image())
    assert out.shape == (3, 32, 32)
