"""``torch.testing.assert_close``: compare tensors (or nested sequences and mappings of them) with
torch's default tolerances for their dtype."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .tensor import Tensor

__all__ = ["assert_close"]

# torch's defaults (torch.testing._comparison): (rtol, atol) by dtype; integers and bools compare exactly.
_TOLERANCES = {np.dtype(np.float16): (1e-3, 1e-5), np.dtype(np.float32): (1.3e-6, 1e-5),
               np.dtype(np.float64): (1e-7, 1e-7)}


def assert_close(actual, expected, *, rtol: float | None = None, atol: float | None = None, equal_nan: bool = False,
                 check_dtype: bool = True, msg: str | None = None) -> None:
    """Raise AssertionError unless ``|actual - expected| <= atol + rtol |expected|`` everywhere, with equal
    shapes (and dtypes unless ``check_dtype=False``). ``rtol`` and ``atol`` go together, as in torch."""
    if (rtol is None) != (atol is None):
        raise ValueError(f"assert_close: give both rtol and atol or neither, got rtol={rtol}, atol={atol}")
    if isinstance(actual, Mapping):
        if set(actual) != set(expected):
            raise AssertionError(msg or f"keys differ: {sorted(actual)} != {sorted(expected)}")
        for k in actual:
            assert_close(actual[k], expected[k], rtol=rtol, atol=atol, equal_nan=equal_nan, check_dtype=check_dtype,
                         msg=msg)
        return
    if isinstance(actual, Sequence) and not isinstance(actual, str) and not isinstance(actual, Tensor):
        if len(actual) != len(expected):
            raise AssertionError(msg or f"lengths differ: {len(actual)} != {len(expected)}")
        for a, e in zip(actual, expected):
            assert_close(a, e, rtol=rtol, atol=atol, equal_nan=equal_nan, check_dtype=check_dtype, msg=msg)
        return
    a, e = np.asarray(actual), np.asarray(expected)
    if a.shape != e.shape:
        raise AssertionError(msg or f"The values for attribute 'shape' do not match: {a.shape} != {e.shape}.")
    if check_dtype and isinstance(actual, Tensor) and isinstance(expected, Tensor) and a.dtype != e.dtype:
        raise AssertionError(msg or f"The values for attribute 'dtype' do not match: {a.dtype} != {e.dtype}.")
    if rtol is None:
        rtol, atol = _TOLERANCES.get(a.dtype, (0.0, 0.0)) if a.dtype == e.dtype or not check_dtype else (0.0, 0.0)
        rtol, atol = max(rtol, _TOLERANCES.get(e.dtype, (0.0, 0.0))[0]), max(atol, _TOLERANCES.get(e.dtype, (0, 0))[1])
    bad = ~np.isclose(a, e, rtol=rtol, atol=atol, equal_nan=equal_nan)
    if bad.any():
        diff = np.abs(a.astype(np.float64) - e.astype(np.float64))[bad]
        raise AssertionError(msg or f"Tensor-likes are not close!\n\nMismatched elements: {int(bad.sum())} / {a.size}"
                             f"\nGreatest absolute difference: {diff.max()} (up to {atol} allowed)"
                             f"\nrtol={rtol}, atol={atol}")
