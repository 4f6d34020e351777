"""Shared test settings.

The test machines have 2 shared cores; OpenMP threads spinning on tiny tensors make small
ops up to 100x slower when the cores are busy, so every test runs torch on one thread.
"""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
