import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# ppresvar first: it loads zlib before paddle does. The tests run with the CPU
# settings the tools apply (ppresvar.runtime), set before paddle loads.
import ppresvar  # noqa: E402,F401
from ppresvar import runtime  # noqa: E402

runtime.apply_cpu_settings()
import numpy as np  # noqa: E402
import paddle  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    paddle.seed(0)
    np.random.seed(0)
    yield


@pytest.fixture(scope="session")
def archive(tmp_path_factory):
    """A tiny generated CIFAR-10 archive (128 training, 40 test images)."""
    from ppresvar.data import write_cifar_archive

    return write_cifar_archive(str(tmp_path_factory.mktemp("cifar") / "cifar-10-python.tar.gz"),
                               num_train=128, num_test=40, seed=5)
