"""Shared test helpers. The PyTorch oracle is optional locally but required in CI."""

import os

import numpy as np
import pytest

from chainrule import _blas

# The suite pins chainrule's BLAS (MKL when the test extra installed it, else NumPy; subprocesses inherit
# it): the default measured choice would time both libraries and write the user's cache directory, and
# its outcome depends on the machine's load. tests/test_blas.py exercises that choice explicitly.
if "CHAINRULE_BLAS" not in os.environ:
    os.environ["CHAINRULE_BLAS"] = "mkl" if _blas._load() else "numpy"
    _blas._from_environment()


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
