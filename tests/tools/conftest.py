import os

import pytest

from cli_helpers import cifar_args, run_tool


@pytest.fixture(scope="session")
def trained_run(archive, tmp_path_factory):
    """A 2-epoch run of tools/train.py in a subprocess: (run_dir, process)."""
    out = str(tmp_path_factory.mktemp("runs"))
    proc = run_tool("train", cifar_args(archive, out, "r20"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return os.path.join(out, "r20"), proc
