"""Fixtures of the export tests: every model with a 32x32 input, exported
once per session."""
import pytest

from export_helpers import Exported, model_id


@pytest.fixture(scope="session")
def export_cache(tmp_path_factory):
    cache = {}

    def get(name, options=None):
        key = model_id(name, options or {})
        if key not in cache:
            cache[key] = Exported(name, options or {}, tmp_path_factory)
        return cache[key]

    return get
