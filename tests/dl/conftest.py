"""Fixtures of the deep-learning tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny nets run fastest on one thread, and far faster than on two when other processes share
    the cores (OpenMP threads then wait for each other): ``pytestmark = usefixtures(...)``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
