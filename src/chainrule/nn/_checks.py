"""What the layers share when they are built and called: one check (and one message) per mistake in
a size, a device or an input's dtype, and parameters that keep the dtype they are made with."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..tensor import Tensor
from .module import Parameter


def positive_int(cls: str, name: str, v: Any) -> int:
    """A size argument (``in_features``, ``hidden_size``, ...): an integer >= 1, not a bool."""
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{cls}: {name} must be a positive integer, got {v!r}")
    return int(v)


def param(a: np.ndarray) -> Parameter:
    """A Parameter of ``a``'s dtype, through a Tensor (``Parameter(ndarray)`` makes float64 float32)."""
    return Parameter(Tensor(a))


def check_device(cls: str, device: Any) -> None:
    """torch's ``device=`` argument: chainrule computes with NumPy, on the CPU only."""
    if device is not None and str(device) != "cpu":
        raise ValueError(f"{cls}: device must be None or 'cpu' (chainrule runs on NumPy), got {device!r}")


def match_dtype(cls: str, x: Any, dtype: np.dtype) -> Any:
    """An input in the weights' ``dtype``: ndarrays and lists are cast (data from NumPy/sklearn is
    float64; the model must stay float32), integer Tensors too; a Tensor of another float dtype is
    an error, as in torch."""
    if not isinstance(x, Tensor):
        return np.asarray(x, dtype=dtype)
    if x.dtype != dtype:
        if x.dtype.kind != "f":
            return x.astype(dtype)
        raise TypeError(f"{cls}: input is {x.dtype} but the weights are {dtype}; cast one of them "
                        f"(x.astype(cr.{dtype}) or model.to(cr.{x.dtype}))")
    return x
