"""The notebooks in notebooks/ run top to bottom at smoke size.

No Jupyter needed: each .ipynb is read as JSON and its code cells, in order,
become one script that a fresh Python runs in a temporary working folder, with
``PPRESVAR_SMOKE=1`` (tiny generated CIFAR archive, two epochs of one
iteration per run) and matplotlib's Agg backend. IPython-only lines
(``%magic``, ``!shell``) are skipped. The committed notebooks must carry no
outputs and no Chinese text (the seeds are a specification, not a source).
"""
import glob
import json
import os
import re
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, "notebooks", "*.ipynb")))
EXPECTED = ["dyrelu.ipynb", "nam.ipynb", "resnet_cifar.ipynb", "resnet_rs.ipynb", "rir.ipynb"]
# the experiments of results/experiments.yaml each notebook shows before it trains anything
RESULTS = {"dyrelu.ipynb": ["dyrelu", "dyrelu_start"], "nam.ipynb": ["nam"], "rir.ipynb": ["rir"],
           "resnet_cifar.ipynb": ["parity", "he2015"], "resnet_rs.ipynb": []}
CJK = re.compile(u"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef]")


def _load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _code_cells(notebook):
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            yield "".join(cell["source"])


def _python_only(source):
    """Blank out IPython-only lines: magics and shell escapes at the start of a
    line (an indented ``% (...)`` is Python's formatting operator)."""
    return "\n".join("" if line.startswith(("%", "!")) else line for line in source.split("\n"))


def test_every_seed_has_a_notebook():
    assert sorted(os.path.basename(p) for p in NOTEBOOKS) == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_is_clean(path):
    notebook = _load(path)
    assert notebook["nbformat"] == 4
    for cell in notebook["cells"]:
        source = "".join(cell["source"])
        assert not CJK.search(source), "non-English text in %s: %r" % (path, source[:80])
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [] and cell.get("execution_count") is None, \
                "%s has outputs committed: clear them" % os.path.basename(path)
            compile(_python_only(source), path, "exec")  # syntax, without running


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_shows_the_committed_results_before_training(path):
    from reproduction.runner import load_manifest

    sources = list(_code_cells(_load(path)))
    first_training = min([i for i, src in enumerate(sources) if "nb.train(" in src] or [len(sources)])
    manifest = load_manifest()
    for experiment in RESULTS[os.path.basename(path)]:
        assert experiment in manifest
        shown = [i for i, src in enumerate(sources) if 'nb.show_experiment("%s")' % experiment in src]
        assert shown and shown[0] < first_training, "%s does not show %s first" % (path, experiment)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_runs_at_smoke_size(path, tmp_path):
    name = os.path.basename(path)
    cells = ["# --- cell %d\n%s" % (i + 1, _python_only(src)) for i, src in enumerate(_code_cells(_load(path)))]
    script = tmp_path / (name.replace(".ipynb", "") + "_script.py")
    script.write_text("\n\n".join(cells) + "\n", encoding="utf-8")
    env = dict(os.environ, PPRESVAR_SMOKE="1", PPRESVAR_ROOT=ROOT, MPLBACKEND="Agg")
    for var in ("PPRESVAR_OUTPUT", "CIFAR10_ARCHIVE", "CIFAR100_ARCHIVE"):
        env.pop(var, None)
    start = time.time()
    proc = subprocess.run([sys.executable, str(script)], cwd=str(tmp_path), env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    assert proc.returncode == 0, "%s failed:\n%s" % (name, proc.stdout[-6000:])
    from reproduction.runner import load_manifest

    for experiment in RESULTS[name]:  # the committed results were shown (printed outside Jupyter)
        assert load_manifest()[experiment]["title"] in proc.stdout
    # every training run left its run directory with per-epoch metrics
    run_dirs = [os.path.dirname(p) for p in glob.glob(str(tmp_path / "smoke_output" / "*" / "metrics.jsonl"))]
    assert run_dirs, "the notebook trained nothing"
    print("%s: %.1fs, %d runs" % (name, time.time() - start, len(run_dirs)))
