"""Writes into a tensor's memory, one function per kind, on the ndarray itself (tensor.py's in-place
methods and ``.grad`` assignment call them).

Each stamps the memory as updated (backward's in-place check) and is ``replayed``: a step compiled
by ``cr.compile`` repeats it on replay, so a step that updates tensors in place (``w -= lr * w.grad``,
``w.grad.zero_()``, ``x[mask] = 0``, ``p.grad = None``) is still replayed, on the same arrays in the
same order, with operands read on every call.
"""

from __future__ import annotations

import numpy as np

from . import autograd as _autograd  # a module reference: autograd is still loading when tensor.py imports this
from .modes import replayed
from .tensor import Tensor, _leaf


@replayed
def _ufunc_into(out: np.ndarray, ufunc, other, alpha=1) -> None:
    _autograd._stamp_storage(out)
    ufunc(out, other if alpha == 1 else other * alpha, out=out, casting="same_kind")


@replayed
def _clip_into(out: np.ndarray, lo, hi) -> None:
    _autograd._stamp_storage(out)
    np.clip(out, lo, hi, out=out)


@replayed
def _copy_into(out: np.ndarray, src) -> None:
    _autograd._stamp_storage(out)
    np.copyto(out, src, casting="same_kind")


@replayed
def _fill(out: np.ndarray, value) -> None:
    _autograd._stamp_storage(out)
    out.fill(value)


@replayed
def _set_items(out: np.ndarray, value, *idx) -> None:
    _autograd._stamp_storage(out)
    out[idx] = value


@replayed
def _set_grad(t: Tensor, value) -> None:
    """``t.grad = value``, checked at once as in torch (a wrong gradient would otherwise surface in
    the next backward)."""
    if value is None:
        t._grad = None
        return
    if isinstance(value, np.ndarray):
        value = _leaf(value)
    if not isinstance(value, Tensor):
        raise TypeError(f"assigned grad must be a Tensor or None, got {type(value).__name__}")
    if value._data.shape != t._data.shape:
        raise ValueError(f"assigned grad has shape {value.shape} but the tensor has shape {t.shape}")
    if value.dtype != t._data.dtype:
        raise TypeError(f"assigned grad has dtype {value.dtype} but the tensor has dtype {t.dtype}")
    t._grad = value
