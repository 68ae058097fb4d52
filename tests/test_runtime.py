"""CPU runtime settings applied on ``import ppresvar`` (ppresvar/runtime.py)."""
import os
import subprocess
import sys

import pytest

from ppresvar import runtime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tuned(env_extra, drop=()):
    env = dict(os.environ, PYTHONPATH=ROOT, **env_extra)
    for k in drop:
        env.pop(k, None)
    code = "import ppresvar.runtime as r; print(r.tune_malloc())"
    out = subprocess.run([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, universal_newlines=True,
                         timeout=120)
    return out.stdout.strip().splitlines()[-1]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_malloc_tuning_applies_and_can_be_turned_off():
    drop = ("PPRESVAR_NO_MALLOPT", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
    assert _tuned({}, drop) == "True"
    assert _tuned({"PPRESVAR_NO_MALLOPT": "1"}, drop[1:]) == "False"
    assert _tuned({"MALLOC_TRIM_THRESHOLD_": "0"}, ("PPRESVAR_NO_MALLOPT", "MALLOC_MMAP_THRESHOLD_")) == "False"


def test_threads_reach_gnu_openmp():
    """oneDNN (the kernels) runs on GNU OpenMP, which paddle's setter misses."""
    if runtime.gomp_threads() is None:
        pytest.skip("no GNU OpenMP here")
    before = runtime.gomp_threads()
    try:
        runtime.set_cpu_threads(1)
        assert runtime.gomp_threads() == 1
        runtime.set_cpu_threads(2)
        assert runtime.gomp_threads() == 2
    finally:
        runtime.set_cpu_threads(before)
