import os

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


def pytest_collection_modifyitems(items):
    # paddle warns on every BatchNorm forward in training mode; it says nothing here
    mark = pytest.mark.filterwarnings("ignore:When training, we now always track")
    for item in items:
        if str(item.fspath).startswith(HERE):
            item.add_marker(mark)
