"""oneDNN's headers for the kernels: pinned by version and SHA-256, fetched
once into the cache, a mismatch one line (then paddle's kernels), and the
command that builds the kernels ahead of a run."""
import os
import subprocess
import sys
import zipfile

import pytest

from ppresvar import kernels

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _fake_wheel(path):
    """A wheel of the right layout (include/oneapi/dnnl/dnnl.hpp) but not the pinned bytes."""
    with zipfile.ZipFile(str(path), "w") as z:
        z.writestr("onednn_devel_cpu_iomp-2023.2.0.data/data/include/oneapi/dnnl/dnnl.hpp", "// not oneDNN\n")
    return str(path)


def test_a_wheel_with_another_hash_is_not_used(tmp_path):
    dest = str(tmp_path / "headers")
    with pytest.raises(kernels.KernelsUnavailable) as e:
        kernels.unpack_headers(_fake_wheel(tmp_path / "x.whl"), dest)
    text = str(e.value)
    assert "SHA-256" in text and "not the pinned" in text and "\n" not in text
    assert not os.path.exists(dest) and os.listdir(str(tmp_path)) == ["x.whl"]


def test_a_download_with_another_hash_is_not_used(tmp_path, monkeypatch):
    """What pip downloads is checked too: a tampered index gives one line, no headers."""
    def fake_download(cmd, **kw):
        _fake_wheel(os.path.join(cmd[cmd.index("-d") + 1], "onednn_devel_cpu_iomp-2023.2.0-py2.py3-none-any.whl"))

    monkeypatch.setattr(kernels.subprocess, "run", fake_download)
    with pytest.raises(kernels.KernelsUnavailable, match="not the pinned"):
        kernels._fetch_headers(str(tmp_path / "headers"))
    assert not os.path.exists(str(tmp_path / "headers"))


def test_the_build_command_names_the_problem_in_one_line(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT, PPRESVAR_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("PPRESVAR_ONEDNN_INCLUDE", None)
    out = subprocess.run([sys.executable, "-m", "ppresvar.kernels", "--headers-wheel", _fake_wheel(tmp_path / "x.whl")],
                         env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                         timeout=300)
    assert out.returncode == 2
    errors = [l for l in out.stderr.splitlines() if l.startswith("error:")]
    assert len(errors) == 1 and "not the pinned" in errors[0] and "Traceback" not in out.stderr


def test_the_build_command_builds_and_loads(ops):
    """Where the kernels build (CI requires it), ``python -m ppresvar.kernels`` says so."""
    out = subprocess.run([sys.executable, "-m", "ppresvar.kernels"], env=dict(os.environ, PYTHONPATH=ROOT), cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "the oneDNN CPU kernels are built and load" in out.stdout
