"""The package as a library: importing it changes nothing in the process, no
import cycle inside it (function-level imports included), and nothing in it
reads a path of the checkout."""
import ast
import json
import os
import re
import subprocess
import sys

import pytest

from ppresvar import runtime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "ppresvar")


# ------------------------------------------------------------ no side effects

_PROBE = r"""
import ctypes, importlib, json, os, pkgutil, sys
calls = []

Base = ctypes.CDLL

class Spy(Base):
    def __getattr__(self, name):
        if name in ("mallopt", "omp_set_num_threads", "mkl_set_num_threads"):
            calls.append(name)
        return Base.__getattr__(self, name)

ctypes.CDLL = Spy
ctypes.cdll._dlltype = Spy
import paddle  # the baseline: what paddle itself does on import (OMP_NUM_THREADS=1)
core = getattr(getattr(paddle, "base", None), "core", None) or paddle.fluid.core
real_set = core.set_num_threads
core.set_num_threads = lambda n: (calls.append("paddle.set_num_threads"), real_set(n))
env = dict(os.environ)
import ppresvar
model = ppresvar.create_model("resnet20")
names = [m.name for m in pkgutil.walk_packages(ppresvar.__path__, "ppresvar.")]
for name in names:
    importlib.import_module(name)
changed = sorted(k for k in set(env) | set(os.environ) if env.get(k) != os.environ.get(k))
print(json.dumps({"changed": changed, "calls": calls, "modules": len(names)}))
"""


def _clean_env():
    env = dict(os.environ, PYTHONPATH=ROOT)
    for key in list(runtime.ENV_DEFAULTS) + ["PPRESVAR_NO_MALLOPT", "MALLOC_MMAP_THRESHOLD_",
                                             "MALLOC_TRIM_THRESHOLD_", "OMP_NUM_THREADS"]:
        env.pop(key, None)
    return env


def test_importing_every_module_changes_no_setting_of_the_process():
    """Environment, glibc's malloc (mallopt) and thread counts are as paddle
    leaves them after importing the package and every module in it and
    building a model: the tools and the trainer apply ppresvar's CPU
    settings themselves (ppresvar.runtime)."""
    out = subprocess.run([sys.executable, "-c", _PROBE], env=_clean_env(), cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, universal_newlines=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["modules"] > 20
    assert result["changed"] == [], "importing ppresvar changed the environment: %s" % result["changed"]
    assert result["calls"] == [], "importing ppresvar called %s" % result["calls"]


def test_the_probe_sees_the_settings_the_tools_apply():
    """The same probe, with runtime.apply_cpu_settings() run by the package
    (as a tool runs it), reports what it did: the check above can fail."""
    probe = _PROBE.replace("import ppresvar\n", "import ppresvar\nfrom ppresvar import runtime\n"
                                               "runtime.apply_cpu_settings(); runtime.set_cpu_threads(1)\n")
    out = subprocess.run([sys.executable, "-c", probe], env=_clean_env(), cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, universal_newlines=True, timeout=300)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(runtime.ENV_DEFAULTS) <= set(result["changed"])
    if sys.platform.startswith("linux"):
        assert "mallopt" in result["calls"] and "paddle.set_num_threads" in result["calls"]


def test_import_does_not_load_paddle():
    code = "import sys, ppresvar; print('paddle' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], env=_clean_env(), cwd=ROOT, stdout=subprocess.PIPE,
                         universal_newlines=True, timeout=120)
    assert out.stdout.strip() == "False"


# ----------------------------------------------------------------- no cycles

def module_files(package_dir):
    """``{dotted name: path}`` of every module under ``package_dir``."""
    base = os.path.dirname(package_dir)
    out = {}
    for dirpath, _, files in os.walk(package_dir):
        for f in files:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(dirpath, f), base)[:-3].split(os.sep)
                if rel[-1] == "__init__":
                    rel = rel[:-1]
                out[".".join(rel)] = os.path.join(dirpath, f)
    return out


def import_graph(package_dir):
    """``{module: set of modules it imports}`` inside the package, counting
    imports anywhere in a file (in functions too), an enclosing package it
    imports a name from (``from .. import x``), and the package ``__init__``
    files an import runs on the way (but those enclosing the importer, which
    Python has already run)."""
    files = module_files(package_dir)
    graph = {}
    for name, path in files.items():
        is_pkg = path.endswith("__init__.py")
        here = name.split(".") if is_pkg else name.split(".")[:-1]
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        targets = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = here[:len(here) - node.level + 1] + (node.module.split(".") if node.module else [])
                else:
                    parts = node.module.split(".")
                mod = ".".join(parts)
                subs = [mod + "." + a.name for a in node.names if mod + "." + a.name in files]
                targets.update(subs)
                if len(subs) < len(node.names):  # a name defined in the module itself
                    targets.add(mod)
        edges = set(t for t in targets if t in files and t != name)  # what it names, an enclosing package too
        ancestors = {".".join(name.split(".")[:i]) for i in range(1, len(name.split(".")) + 1)}
        for t in targets:  # and the package __init__ files on the way, but those enclosing it
            parts = t.split(".")
            edges.update(m for m in (".".join(parts[:i]) for i in range(1, len(parts)))
                         if m in files and m not in ancestors)
        graph[name] = edges
    return graph


def cycles(graph):
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle_in_the_package():
    found = cycles(import_graph(PACKAGE))
    assert found == [], "import cycles: %s" % "; ".join(" <-> ".join(c) for c in found)


def test_the_cycle_finder_finds_a_cycle_hidden_in_a_function(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .sub import b\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("def f():\n    from ..a import x\n")
    (pkg / "c.py").write_text("from . import a\n")
    assert cycles(import_graph(str(pkg))) == [["pkg.a", "pkg.sub.b"]]
    (pkg / "sub" / "b.py").write_text("def f():\n    from .. import VALUE\n")
    (pkg / "__init__.py").write_text("VALUE = 1\nfrom .sub.b import f\n")  # the root imports b, b a name of the root
    assert cycles(import_graph(str(pkg))) == [["pkg", "pkg.sub.b"]]


# ------------------------------------------------------ no path of the checkout

def test_no_module_reads_a_path_of_the_checkout():
    """The package is what a wheel installs: nothing in it finds the
    repository root or reads tools/, scripts/, results/, docs/ or configs/
    beside itself (its own files, like the kernels' sources, are package
    data)."""
    bad = re.compile(r"dirname\(os\.path\.dirname\(os\.path\.abspath\(__file__\)\)\)|"
                     r"[\"'](tools|scripts|results|docs|configs|notebooks|benchmarks|reproduction)[\"'],")
    offenders = []
    for name, path in module_files(PACKAGE).items():
        with open(path, encoding="utf-8") as f:
            for i, line in enumerate(f, 1):
                if bad.search(line):
                    offenders.append("%s:%d: %s" % (os.path.relpath(path, ROOT), i, line.strip()))
    assert offenders == []


@pytest.mark.parametrize("name", ["bench", "reproduce", "ledger", "notebook"])
def test_repository_tooling_lives_outside_the_package(name):
    assert not os.path.exists(os.path.join(PACKAGE, name + ".py"))
