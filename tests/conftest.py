import os
import sys

# Settings the launcher applies (DESIGN.md sec. 6): paddle's bundled MKL takes
# a slow path on AMD without this; results are unchanged.
os.environ.setdefault("MKL_DEBUG_CPU_TYPE", "5")
os.environ.setdefault("KMP_BLOCKTIME", "1")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import paddle  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    paddle.seed(0)
    np.random.seed(0)
    yield
