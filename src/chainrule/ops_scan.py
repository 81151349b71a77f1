"""Scans: the cumulative sum, a primitive because its gradient is a scan too.

``y_i = sum_{j <= i} x_j`` along ``axis``, so ``dL/dx_j = sum_{i >= j} g_i``: the cumulative sum of
``g`` taken from the far end (reverse, cumsum, reverse).
"""

from __future__ import annotations

import numpy as np

from .ops import getitem
from .primitive import primitive

__all__ = ["cumsum"]


def _reversed(x, axis: int):
    return getitem(x, idx=(slice(None),) * (axis % np.ndim(x)) + (slice(None, None, -1),))


@primitive("cumsum", flops=lambda out, x, axis=0, dtype=None: out.size, reads="nothing")
def cumsum(x, axis: int = 0, dtype=None):
    """Cumulative sum along ``axis`` (torch's ``dim``); integer and bool input sum in int64, as torch."""
    if dtype is None and (np.issubdtype(np.asarray(x).dtype, np.integer) or np.asarray(x).dtype == np.bool_):
        dtype = np.int64
    try:
        return np.cumsum(x, axis=axis, dtype=dtype)
    except np.exceptions.AxisError:
        raise ValueError(f"cumsum: dim {axis} is out of range for a tensor of shape {np.shape(x)}") from None


cumsum.defgrad(lambda g, out, x, axis=0, dtype=None: (_reversed(cumsum(_reversed(g, axis), axis=axis), axis),))
