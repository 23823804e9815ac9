"""Shared test setup: a private cache directory, a headless matplotlib backend, no real-data env."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")
sys.path.insert(0, str(Path(__file__).parent))  # tests/support.py


@pytest.fixture(autouse=True, scope="session")
def _private_cache_dir(tmp_path_factory):
    """Tests never read or write the repository's cache, and never see a developer's real-data dir."""
    saved = {k: os.environ.get(k) for k in ("UQXAI_CACHE_DIR", "UQXAI_DATA_DIR")}
    os.environ["UQXAI_CACHE_DIR"] = str(tmp_path_factory.mktemp("uqxai_cache"))
    os.environ.pop("UQXAI_DATA_DIR", None)
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def pytest_collection_modifyitems(config, items):
    """Run the browser test last: it reuses the ``_build/html`` that the notebook test builds.

    (Added by the book/widgets helper; a stable sort, so every other test keeps its order.)
    """
    items.sort(key=lambda item: item.path.name == "test_book_browser.py")
