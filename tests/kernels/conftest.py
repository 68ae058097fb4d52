import os

import pytest

from ppresvar import kernels


@pytest.fixture(scope="module")
def ops():
    """The built kernels' op module; skips where they cannot be built, fails
    instead when PPRESVAR_REQUIRE_ONEDNN is set (CI)."""
    ok, why = kernels.available()
    if not ok and os.environ.get("PPRESVAR_REQUIRE_ONEDNN"):
        pytest.fail("CPU kernels required here but unavailable: %s" % why)
    if not ok:
        pytest.skip("CPU kernels unavailable: %s" % why)
    return kernels.load()
