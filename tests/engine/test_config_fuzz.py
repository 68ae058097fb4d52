"""Configs, fuzzed (hypothesis): generated config files and -o overrides
(random keys, types and nesting, YAML tags such as !!python/object/apply)
thrown at the config loader and at tools/train.py's command line. Each is
either valid or refused with a ConfigError (one line, exit 2); nothing runs
code (the tags would create a marker file), nothing else is raised."""
import copy
import os

import pytest
import yaml

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from ppresvar.engine.config import load_config, read_yaml  # noqa: E402
from ppresvar.errors import UserError  # noqa: E402
from ppresvar.models import UnknownModelError  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BASE = read_yaml(os.path.join(ROOT, "configs", "resnet20.yaml"))
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


def _marker():
    return os.path.join(os.environ.get("TMPDIR", "/tmp"), "ppresvar-fuzz-ran-code")


def _tags():
    marker = _marker()
    return [
        "!!python/object/apply:os.system ['touch %s']" % marker,
        "!!python/object/apply:builtins.exec ['open(\"%s\", \"w\")']" % marker,
        "!!python/name:os.system", "!!python/object:collections.OrderedDict {}", "!!binary aGVsbG8=",
        "!!set {a, b}", "!!timestamp 2001-12-14", "&a [*a]", "*undefined", "{a: [", "- - -", "? : :",
        "!!str 3", "!!int x", "!!float nan", ".inf", "-.inf", "0x1F", "1e400", "~", "'unterminated",
    ]


KEYS = st.sampled_from(["Global", "Arch", "DataLoader", "Optimizer", "lr", "name", "epochs", "seed", "Train", "Eval",
                        "Test", "dataset", "transforms", "batch_size", "num_workers", "learning_rate", "weight_decay",
                        "milestones", "momentum", "num_classes", "Metric", "topk", "best", "EMA", "AMP", "Loss",
                        "output_dir", "cpu_processes", "*", "0", "1", "-1", "", " ", "é", "a.b", "__class__"])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True),
                    st.text(max_size=12), st.sampled_from(_tags()), KEYS)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(KEYS, inner, max_size=4)), max_leaves=12)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


@st.composite
def mutated_configs(draw):
    """The shipped ResNet-20 config with a few values replaced, keys added
    or removed, anywhere in its tree."""
    cfg = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 4))):
        paths = [p for p in _paths(cfg) if p]
        path = draw(st.sampled_from(paths))
        parent = cfg
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "add", "delete"]))
        if action == "replace":
            parent[path[-1]] = draw(VALUES)
        elif action == "add" and isinstance(parent, dict):
            parent[draw(KEYS)] = draw(VALUES)
        elif action == "delete":
            del parent[path[-1]]
    return cfg


def _accepted_or_refused(call):
    try:
        call()
        hypothesis.event("valid")
    except (UserError, UnknownModelError) as e:
        hypothesis.event("refused")
        assert str(e).strip() and "\n" not in str(e), "not one line: %r" % str(e)
    assert not os.path.exists(_marker()), "a YAML tag ran code"


@pytest.fixture(autouse=True)
def _no_marker():
    if os.path.exists(_marker()):
        os.remove(_marker())
    yield
    assert not os.path.exists(_marker())


def _write(tmp_path_factory, text):
    path = os.path.join(str(tmp_path_factory.mktemp("fuzz")), "c.yaml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


@SETTINGS
@given(cfg=mutated_configs())
def test_generated_config_files(tmp_path_factory, cfg):
    path = _write(tmp_path_factory, yaml.safe_dump(cfg, allow_unicode=True))
    _accepted_or_refused(lambda: load_config(path))


@SETTINGS
@given(text=st.one_of(st.text(max_size=200), st.sampled_from(_tags()),
                      st.builds(lambda k, t: "%s: %s\n" % (k or "x", t), KEYS, st.sampled_from(_tags())),
                      st.builds(lambda t: "Global:\n  seed: %s\nArch: {name: resnet20}\n" % t,
                                st.sampled_from(_tags()))))
def test_raw_yaml_text_and_tags(tmp_path_factory, text):
    path = _write(tmp_path_factory, text)
    _accepted_or_refused(lambda: load_config(path))


OVERRIDE_KEYS = st.lists(KEYS, min_size=0, max_size=5).map(".".join)
OVERRIDE_VALUES = st.one_of(st.text(max_size=30), st.sampled_from(_tags()),
                            VALUES.map(lambda v: yaml.safe_dump(v, default_flow_style=True).strip()))


@SETTINGS
@given(overrides=st.lists(st.one_of(st.builds("{}={}".format, OVERRIDE_KEYS, OVERRIDE_VALUES), st.text(max_size=20)),
                          min_size=1, max_size=4))
def test_generated_overrides(overrides):
    path = os.path.join(ROOT, "configs", "resnet20.yaml")
    _accepted_or_refused(lambda: load_config(path, overrides))


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(cfg=mutated_configs(), overrides=st.lists(st.builds("{}={}".format, OVERRIDE_KEYS, OVERRIDE_VALUES),
                                                 max_size=2))
def test_the_command_line_validates_or_exits_2_with_one_line(tmp_path_factory, capsys, monkeypatch, cfg, overrides):
    """tools/train.py as a user runs it, up to the point where training
    would start (the trainer is replaced by a stub that records the config)."""
    import sys

    sys.path.insert(0, os.path.join(ROOT, "tests", "tools"))
    from cli_helpers import tool
    from ppresvar.engine import launch, trainer

    started = []
    monkeypatch.setattr(trainer, "train", lambda cfg, **kw: started.append(cfg) or {})
    monkeypatch.setattr(launch, "processes_for", lambda cfg, device, say=None: 1)
    path = _write(tmp_path_factory, yaml.safe_dump(cfg, allow_unicode=True))
    args = ["-c", path]
    for o in overrides:
        args += ["-o", o]
    capsys.readouterr()
    try:
        tool("train").main(args)
        assert len(started) == 1
    except SystemExit as e:
        err = capsys.readouterr().err.strip().splitlines()
        assert e.code == 2 and len(err) == 1 and err[0].startswith("error: "), (e.code, err)
    assert not os.path.exists(_marker())
