"""Primitives without a gradient: values a step computes that are constants for differentiation.

Random draws, dropout's mask, a log-sum-exp's shift and one-hot rows are computed from tensors (or
from nothing) but not differentiated. They are primitives all the same, so that ``cr.compile`` records
them and computes them again on every replay (a new draw, this batch's shift) instead of freezing
the values of the recorded calls, and so that ``cost.measure`` sees them.
"""

from __future__ import annotations

import numpy as np

from .primitive import primitive


def _rng(generator):
    from .creation import get_rng  # not at the top: creation imports the engine, which imports this module

    return generator if generator is not None else get_rng()


@primitive("dropout_mask", reads="nothing")
def dropout_mask(x, p, scale=True, rng=None):
    """Dropout's random mask for ``x``: 1 (or ``1/(1-p)`` when ``scale``) where ``u >= p`` for
    ``u ~ U[0, 1)`` drawn from chainrule's seeded generator (or ``rng``); ``x`` gives only shape and dtype.
    A primitive with no gradient, so that a compiled step draws it again on every replay."""
    keep = _rng(rng).random(np.shape(x)) >= p
    dtype = x.dtype
    return keep.astype(dtype) / dtype.type(1.0 - p) if scale and p < 1 else keep.astype(dtype)


@primitive("random_draw", inputs=(), reads="nothing")
def random_draw(method: str, args: tuple = (), dtype=None, cast=None, generator=None):
    """``generator.<method>(*args)`` (NumPy's ``Generator``: ``standard_normal``, ``random``,
    ``integers``, ``normal``, ``permutation``), with ``dtype=`` when given and cast to ``cast``; from
    chainrule's seeded generator (:func:`~chainrule.manual_seed`) unless ``generator``. No inputs: the
    random creation functions (``randn``, ``rand_like``, ``normal_`` ...) draw through it."""
    out = getattr(_rng(generator), method)(*args, **({} if dtype is None else {"dtype": dtype}))
    return np.asarray(out if cast is None else out.astype(cast))


@primitive("multinomial_draw", reads="nothing")
def multinomial_draw(w, num_samples: int, replacement: bool = False, generator=None):
    """``num_samples`` int64 category indices per row of the (unnormalised) weights ``w``, drawn with
    ``Generator.choice`` from chainrule's seeded generator (or ``generator``): ``torch.multinomial``."""
    rows = np.asarray(w, np.float64).reshape(-1, np.shape(w)[-1])
    if (rows < 0).any() or (rows.sum(1) <= 0).any():
        raise ValueError("multinomial: weights must be >= 0 with a positive sum in every row")
    if not replacement and num_samples > (rows > 0).sum(1).min():
        raise ValueError(f"multinomial: cannot draw {num_samples} samples without replacement from "
                         f"{int((rows > 0).sum(1).min())} categories of nonzero weight")
    rng = _rng(generator)
    out = np.stack([rng.choice(len(r), num_samples, replace=replacement, p=r / r.sum()) for r in rows])
    return out.reshape(np.shape(w)[:-1] + (num_samples,)).astype(np.int64)


@primitive("finite_max", reads="nothing")
def finite_max(x, axis=None):
    """``max x`` along ``axis`` (kept as a size-1 axis; ``-inf`` over an empty axis), replaced by 0 where
    it is not finite: the shift ``m`` of ``log sum e^{x - m} + m``. Without a gradient, because the
    shifted forms (logsumexp, softmax, log-softmax) do not depend on ``m``."""
    m = np.max(x, axis=axis, keepdims=True, initial=-np.inf)
    return np.where(np.isfinite(m), m, 0).astype(x.dtype)


@primitive("one_hot_rows", reads="nothing")
def one_hot_rows(y, num_classes: int, dtype=np.int64):
    """``onehot[..., k] = 1 if y == k`` for labels already known to lie in ``0..num_classes-1``."""
    return (y[..., None] == np.arange(num_classes)).astype(dtype)
