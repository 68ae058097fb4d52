"""The committed model table matches the code (the cheap rows; the script's
--check mode compares all of them)."""
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import model_table  # noqa: E402


@pytest.mark.parametrize("name", ["resnet20", "resnet56", "resnet18", "resnet18_dyrelu_c",
                                  "resnet50_nam", "rir18", "rir_resnet18"])
def test_committed_row_is_current(name):
    with open(os.path.join(ROOT, "docs", "models.md"), encoding="utf-8") as f:
        committed = f.read().splitlines()
    assert model_table.row(name) in committed
