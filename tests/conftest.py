"""Shared test helpers. The PyTorch oracle is optional locally but required in CI."""

import os

import numpy as np
import pytest


def require_torch():
    """Import torch for an oracle test: skip when absent, except in CI where absence fails."""
    try:
        import torch
    except ImportError:
        if os.environ.get("CHAINRULE_REQUIRE_ORACLE"):
            pytest.fail("the PyTorch oracle (torch==2.13.0) is required here but not installed")
        pytest.skip("torch not installed (pip install -e '.[test]')")
    torch.set_num_threads(1)
    return torch


@pytest.fixture
def torch():
    return require_torch()


@pytest.fixture
def rng():
    return np.random.default_rng(0)
