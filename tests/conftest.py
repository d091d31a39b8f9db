"""Shared test set-up: one CPU thread per test process, a private cache dir, fixed seeds."""

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Each test session gets its own analogmed cache (demo checkpoints etc.)."""
    cache = tmp_path_factory.getbasetemp() / "analogmed-cache"
    monkeypatch.setenv("ANALOGMED_CACHE", str(cache))
    yield
