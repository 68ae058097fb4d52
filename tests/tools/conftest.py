import os

import pytest

from cli_helpers import cifar_args, run_tool
from ppresvar.data import write_cifar_archive


@pytest.fixture(scope="session")
def archive(tmp_path_factory):
    return write_cifar_archive(str(tmp_path_factory.mktemp("cifar") / "cifar-10-python.tar.gz"),
                               num_train=128, num_test=40, seed=5)


@pytest.fixture(scope="session")
def trained_run(archive, tmp_path_factory):
    """A 2-epoch run of tools/train.py in a subprocess: (run_dir, process)."""
    out = str(tmp_path_factory.mktemp("runs"))
    proc = run_tool("train", cifar_args(archive, out, "r20"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return os.path.join(out, "r20"), proc
