"""Config loading: YAML, -o overrides (YAML values, never evaluated),
defaults, and errors that name the key and the closest valid one."""
import glob
import os

import pytest
import yaml

from ppresvar.engine.config import (SCHEMA, apply_overrides, dump_config, load_config, parse_override,
                                    validate)
from ppresvar.errors import ConfigError

CONFIGS = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "..", "configs", "*.yaml")))
R20 = [c for c in CONFIGS if os.path.basename(c) == "resnet20.yaml"][0]


def test_every_config_file_is_expected():
    names = {os.path.basename(c) for c in CONFIGS}
    expected = {"demo_digits.yaml", "rir18.yaml", "rir_resnet18.yaml", "resnet18_cifar10.yaml",
                "resnet50_cifar100.yaml", "resnet50_nam_cifar100.yaml", "resnetrs50.yaml"}
    expected |= {"resnet%d.yaml" % d for d in (20, 32, 44, 56, 110)}
    expected |= {"resnet18_dyrelu_%s.yaml" % m for m in "abc"}
    assert expected <= names


def test_defaults_filled_and_resolved_config_round_trips():
    cfg = load_config(R20)
    assert cfg["Global"]["iterations"] == 64000 and cfg["EMA"]["decay"] is None
    assert cfg["DataLoader"]["Train"]["dataset"]["download"] is True  # a data set default
    again = validate(yaml.safe_load(dump_config(cfg)))
    assert again == cfg


@pytest.mark.parametrize("text, key, value", [
    ("Global.epochs=3", ["Global", "epochs"], 3),
    ("Optimizer.lr.learning_rate=1e-3", ["Optimizer", "lr", "learning_rate"], "1e-3"),  # PyYAML: a string
    ("Optimizer.lr.milestones=[10, 20]", ["Optimizer", "lr", "milestones"], [10, 20]),
    ("Global.pretrained_model=null", ["Global", "pretrained_model"], None),
    ("Global.use_visualdl=false", ["Global", "use_visualdl"], False),
    ("Global.run_name=__import__('os').system('echo hi')", ["Global", "run_name"],
     "__import__('os').system('echo hi')"),
    ("Global.run_name=a=b", ["Global", "run_name"], "a=b"),
])
def test_override_values_are_yaml_never_code(text, key, value):
    assert parse_override(text) == (key, value)


def test_overrides_apply_and_validate():
    cfg = load_config(R20, ["Global.epochs=3", "Global.iterations=null", "Optimizer.lr.learning_rate=1e-3",
                            "Arch.zero_init_last=true", "DataLoader.Train.transforms.0.RandomCrop.padding=2",
                            "DataLoader.*.dataset.data_file=/x/cifar.tar.gz"])
    assert cfg["Global"]["epochs"] == 3 and cfg["Global"]["iterations"] is None
    assert cfg["Optimizer"]["lr"]["learning_rate"] == pytest.approx(1e-3)
    assert cfg["Arch"]["zero_init_last"] is True  # model options pass through Arch
    assert cfg["DataLoader"]["Train"]["transforms"][0]["RandomCrop"]["padding"] == 2
    assert {cfg["DataLoader"][s]["dataset"]["data_file"] for s in ("Train", "Eval", "Test")} == {"/x/cifar.tar.gz"}


@pytest.mark.parametrize("override, words", [
    ("Optimizer.lr.lerning_rate=0.1", ["Optimizer.lr.lerning_rate", "did you mean Optimizer.lr.learning_rate"]),
    ("Global.epoch=2", ["Global.epoch", "did you mean Global.epochs"]),
    ("Global.momentum=0.8", ["Global.momentum", "did you mean Optimizer.momentum"]),  # wrong section
    ("Optimzer.name=SGD", ["Optimzer", "did you mean Optimizer"]),
    ("DataLoader.Train.batchsize=4", ["DataLoader.Train.batchsize", "batch_size"]),
    ("DataLoader.Train.dataset.data_fil=x", ["data_fil", "data_file"]),
    ("DataLoader.Train.transforms.0.RandomCrop.paddin=2", ["paddin", "padding"]),
])
def test_unknown_keys_name_the_closest(override, words):
    with pytest.raises(ConfigError) as e:
        load_config(R20, [override])
    for w in words:
        assert w in str(e.value)


@pytest.mark.parametrize("override, words", [
    ("Global.epochs=ten", ["Global.epochs", "integer", "'ten'"]),
    ("Global.epochs=2.5", ["Global.epochs", "integer"]),
    ("Global.seed=true", ["Global.seed", "integer"]),
    ("Optimizer.lr.learning_rate=fast", ["Optimizer.lr.learning_rate", "number"]),
    ("Optimizer.nesterov=1", ["Optimizer.nesterov", "true or false"]),
    ("Optimizer.name=Momentun", ["Optimizer.name", "did you mean Momentum"]),
    ("Optimizer.lr.unit=step", ["Optimizer.lr.unit", "iteration"]),
    ("Metric.topk=[5]", ["Metric.topk", "1"]),
    ("Global.epochs=0", ["Global.epochs", "positive"]),
    ("DataLoader.Train.batch_size=[128]", ["DataLoader.Train.batch_size", "integer"]),
    ("DataLoader.Eval.dataset.val_size=4000", ["val_size", "DataLoader.*.dataset.val_size"]),
    ("Optimizer.lr.milestones=[48000, 32000]", ["milestones", "increasing"]),
    ("Global", ["Section.key=value"]),
])
def test_wrong_values(override, words):
    with pytest.raises(ConfigError) as e:
        load_config(R20, [override])
    for w in words:
        assert w in str(e.value)


def test_pyyaml_exponent_strings_are_numbers():
    cfg = validate(apply_overrides({"Arch": {"name": "resnet20"}}, ["Optimizer.weight_decay=5e-4"]))
    assert cfg["Optimizer"]["weight_decay"] == pytest.approx(5e-4)


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config(str(tmp_path / "absent.yaml"))
    assert "not found" in str(e.value)
    bad = tmp_path / "bad.yaml"
    bad.write_text("Global:\n  epochs: [1\n")
    with pytest.raises(ConfigError) as e:
        load_config(str(bad))
    assert "not valid YAML" in str(e.value)
    no_arch = tmp_path / "no_arch.yaml"
    no_arch.write_text("Global: {epochs: 1}\n")
    with pytest.raises(ConfigError) as e:
        load_config(str(no_arch))
    assert "Arch" in str(e.value)


def test_schema_sections_are_paddleclas_like():
    assert {"Global", "Arch", "Loss", "Optimizer", "DataLoader", "Metric"} <= set(SCHEMA)
    assert set(SCHEMA["DataLoader"]) >= {"Train", "Eval", "Test"}
    assert "pretrained_model" in SCHEMA["Global"]


# ------------------------------------------------------------------- _base_

def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_base_merges_sections_and_the_variant_wins(tmp_path):
    _write(tmp_path / "_base_" / "recipe.yaml",
           "Global: {epochs: 7, seed: 3}\nArch: {num_classes: 10}\n"
           "Optimizer: {name: Momentum, lr: {name: Cosine, learning_rate: 0.1}}\n"
           "Metric: {topk: [1, 5]}\n")
    path = _write(tmp_path / "v.yaml", "_base_: _base_/recipe.yaml\nArch: {name: resnet20}\n"
                                       "Optimizer: {lr: {learning_rate: 0.05}}\nMetric: {topk: [1]}\n")
    cfg = load_config(path)
    assert cfg["Arch"]["name"] == "resnet20" and cfg["Arch"]["num_classes"] == 10   # merged key by key
    assert cfg["Global"]["epochs"] == 7 and cfg["Global"]["seed"] == 3
    assert cfg["Optimizer"]["name"] == "Momentum" and cfg["Optimizer"]["lr"]["name"] == "Cosine"
    assert cfg["Optimizer"]["lr"]["learning_rate"] == 0.05                                # the variant wins
    assert cfg["Metric"]["topk"] == [1]                                                   # lists replace
    assert "_base_" not in dump_config(cfg)


def test_bases_chain_and_list_in_order(tmp_path):
    _write(tmp_path / "a.yaml", "Global: {epochs: 1, seed: 1}\n")
    _write(tmp_path / "b.yaml", "_base_: a.yaml\nGlobal: {epochs: 2}\n")
    _write(tmp_path / "c.yaml", "Global: {seed: 9}\n")
    path = _write(tmp_path / "v.yaml", "_base_: [b.yaml, c.yaml]\nArch: {name: resnet20}\n")
    cfg = load_config(path)
    assert (cfg["Global"]["epochs"], cfg["Global"]["seed"]) == (2, 9)


@pytest.mark.parametrize("base, message", [
    ("missing.yaml", "_base_ file not found: missing.yaml"),
    ("v.yaml", "includes the config itself"),
    ("[]", "must be a file name or a list"),
    ("7", "must be a file name or a list"),
])
def test_bad_base_is_one_clear_error(tmp_path, base, message):
    path = _write(tmp_path / "v.yaml", "_base_: %s\nArch: {name: resnet20}\n" % base)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_a_loop_of_two_bases_is_refused(tmp_path):
    _write(tmp_path / "a.yaml", "_base_: b.yaml\n")
    _write(tmp_path / "b.yaml", "_base_: a.yaml\n")
    with pytest.raises(ConfigError, match="loop of bases"):
        load_config(_write(tmp_path / "v.yaml", "_base_: a.yaml\nArch: {name: resnet20}\n"))


@pytest.mark.parametrize("family, base", [
    (["resnet20", "resnet32", "resnet44", "resnet56", "resnet110"], "he2015_cifar10.yaml"),
    (["resnet18_cifar10", "resnet18_dyrelu_a", "resnet18_dyrelu_b", "resnet18_dyrelu_c"], "seed004_cifar10.yaml"),
    (["resnet50_cifar100", "resnet50_nam_cifar100"], "seed003_cifar100.yaml"),
    (["rir18", "rir_resnet18"], "seed000_cifar10.yaml"),
])
def test_recipe_families_share_one_base(family, base):
    """A variant is a few lines: its base and what differs (Arch and little else)."""
    folder = os.path.dirname(R20)
    for name in family:
        with open(os.path.join(folder, name + ".yaml"), encoding="utf-8") as f:
            raw = yaml.safe_load(f)
        assert raw["_base_"] == "_base_/" + base
        assert set(raw) - {"_base_"} <= {"Arch", "Optimizer", "Loss"}


@pytest.mark.parametrize("value", ["[]", "[Cifar10]", "{a: 1}"])
def test_a_data_set_name_that_is_not_a_string_is_one_config_error(value):
    """Found by the fuzz test: a list as the name was a TypeError."""
    cfg = load_config(R20)
    with pytest.raises(ConfigError, match="unknown data set DataLoader.Train.dataset.name"):
        validate(apply_overrides(cfg, ["DataLoader.Train.dataset.name=" + value]))
