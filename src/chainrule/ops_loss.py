"""The fused loss kernels: softmax cross-entropy on logits and the logistic loss on logits.

Each is one primitive (one node), because it is on every training step and because the composite
would be less exact: the log-sum-exp trick, and the logistic loss's gradient at exactly ``x = 0``.
Re-exported by :mod:`chainrule.ops`, where the rest of the engine's primitives live.
"""

from __future__ import annotations

import numpy as np

from .ops import _array, div, exp, mul, neg, reshape, sigmoid, sub, sum
from .ops_const import one_hot_rows
from .primitive import primitive


@primitive("bce_with_logits", inputs=("input", "target"), flops=lambda out, *a: 6 * out.size)
def bce_with_logits(x, y):
    """Fused elementwise logistic loss ``-y log s(x) - (1-y) log(1-s(x))`` on logits, computed as
    ``max(x,0) - x y + log(1 + e^-|x|)``: finite for |x| = 1e4. Fused because the composite's
    gradient is wrong at exactly x = 0 (where a zero-initialised model starts)."""
    return np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x)))


bce_with_logits.defgrad(lambda g, out, x, y, needs: (
    mul(g, sub(sigmoid(x), y)) if needs[0] else None, neg(mul(g, x)) if needs[1] else None))


def _xent_flops(out, logits, target, reduction="none"):
    return 5 * logits.size + (logits.shape[0] if reduction != "none" else 0) + (reduction == "mean")


@primitive("softmax_cross_entropy", inputs=("input", "target"), flops=_xent_flops, saves=True)
def softmax_cross_entropy(logits, target, reduction="none"):
    """Per-row cross-entropy ``-log softmax(z)[y] = -z_y + log sum_j e^{z_j}`` of (N, C) logits.

    ``target`` is either N integer classes or an (N, C) array of probabilities (then the loss is
    ``-sum_j t_j log softmax(z)_j``). ``reduction``: 'none' (the N losses), 'sum' or 'mean' (over
    rows). Fused, because it is on every training step: the forward uses the log-sum-exp trick and
    keeps ``softmax(z)``, and the gradient is the lecture's ``softmax(z) - onehot(y)`` (times the
    incoming gradient, divided by N for the mean), all in one node.
    """
    # ufunc.reduce directly: ndarray.max/.sum add a Python wrapper that costs as much as the
    # reduction itself on the small batches of the lecture's models.
    z = np.subtract(logits, np.maximum.reduce(logits, axis=-1, keepdims=True))
    if target.dtype.kind in "iu":
        zy = z[_rows(z.shape[0]), target]
        e = np.exp(z, out=z)
        s = np.add.reduce(e, axis=-1, keepdims=True)
        loss = np.log(s[:, 0]) - zy  # = -(z_y - log s), bit for bit
    else:
        e = np.exp(z)
        s = np.add.reduce(e, axis=-1, keepdims=True)
        loss = -np.add.reduce(target * (z - np.log(s)), axis=-1)
    if reduction == "sum":
        loss = np.add.reduce(loss)
    elif reduction == "mean":
        loss = np.add.reduce(loss) / loss.dtype.type(loss.shape[0])
    elif reduction != "none":
        raise ValueError(f"softmax_cross_entropy: reduction must be 'none', 'sum' or 'mean', got {reduction!r}")
    return loss, np.divide(e, s, out=e)  # softmax(z), kept for the rule


@primitive("softmax_minus_onehot", inputs=("probs", "target", "scale"),
           flops=lambda out, p, target, scale: out.size + target.size)
def _softmax_minus_onehot(p, target, scale):
    """``(p - onehot(target)) * scale`` for class-index targets, from a kept softmax ``p``: a copy,
    N subtractions and one product in place (no one-hot matrix). Internal: the cross-entropy rule's fast path."""
    d = p.copy(order="K")  # keep the logits' memory order (C or F from linear)
    n, c = d.shape
    # (p - onehot) first, then the scale: PyTorch's rounding. One flat index into the contiguous copy
    # (row i's class in memory order) reads and writes the N entries; rows are distinct, so no clashes.
    t = target.astype(np.intp, copy=False)  # uint64 + intp would be float64 under NumPy's promotion
    if d.flags.c_contiguous:
        flat, i = d.reshape(-1), _rows(n) * c + t
    elif d.flags.f_contiguous:
        flat, i = d.T.reshape(-1), _rows(n) + t * n
    else:
        flat, i = d, (_rows(n), target)
    flat[i] -= 1
    return np.multiply(d, scale, out=d)


_ROWS: dict[int, np.ndarray] = {}


def _rows(n: int) -> np.ndarray:
    """``np.arange(n)``, made once per ``n`` and read-only (every cross-entropy step indexes its rows)."""
    r = _ROWS.get(n)
    if r is None:
        if len(_ROWS) > 64:
            _ROWS.clear()
        r = _ROWS[n] = np.arange(n)
        r.flags.writeable = False
    return r


@softmax_cross_entropy.defgrad
def _xent_grad(g, out, logits, target, needs, saved=None, reduction="none"):
    if saved is not None and target.dtype.kind in "iu" and reduction != "none":  # the training loop's case
        return _softmax_minus_onehot(saved, target, g if reduction == "sum" else div(g, logits.shape[0])), None
    if saved is None:  # recomputed when the backward is recorded (the shift is a constant)
        e = exp(sub(logits, np.maximum.reduce(_array(logits), axis=-1, keepdims=True)))
        saved = div(e, sum(e, axis=-1, keepdims=True))
    p = saved
    if target.dtype.kind in "iu":  # labels validated in the forward
        d = sub(p, one_hot_rows(_array(target), logits.shape[-1], logits.dtype))  # a primitive: replayed
    else:
        d = sub(mul(p, sum(target, axis=-1, keepdims=True)), target)
    if reduction == "none":
        return mul(d, reshape(g, shape=g.shape + (1,))), None
    return mul(d, g if reduction == "sum" else div(g, logits.shape[0])), None
