"""Losses, composed from primitives like everything in :mod:`chainrule.functional` (which
re-exports them, as ``torch.nn.functional`` does): cross-entropy and NLL, binary cross-entropy,
MSE, L1, Huber and smooth L1, each with torch's ``reduction`` and defaults."""

from __future__ import annotations

import numpy as np

from . import ops
from .creation import _probabilities
from .creation import as_ndarray as _data
from .functional import mean, one_hot, softplus
from .modes import branch
from .tensor import Tensor

_REDUCTIONS = ("mean", "sum", "none")


def _reduce(loss, reduction, denom=None):
    if reduction == "none":
        return loss
    if reduction == "sum":
        return ops.sum(loss)
    if reduction == "mean":
        return ops.sum(loss) / denom if denom is not None else mean(loss)
    raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _check_targets(name, logits, target):
    ld, td = _data(logits), _data(target)
    if ld.ndim < 1:
        raise ValueError(f"{name}: input must have a class axis, got shape {ld.shape}")
    if td.dtype.kind == "f":
        if td.shape != ld.shape:
            raise ValueError(f"{name}: probability targets must have the input's shape {ld.shape}, "
                             f"got {td.shape}")
        return
    if td.dtype.kind not in "iu":
        raise ValueError(f"{name}: targets must be integer class indices or float probabilities, got {td.dtype}")
    expect = ld.shape[:1] + ld.shape[2:] if ld.ndim > 1 else ()
    if td.shape != expect:
        raise ValueError(f"{name}: input of shape {ld.shape} needs targets of shape {expect} "
                         f"(batch sizes must match), got {td.shape}")


def _to_rows(x):
    """(N, C, d1, ...) -> (N*d1*..., C); (C,) -> (1, C)."""
    shape = np.shape(x)
    if len(shape) == 1:
        return ops.reshape(x, shape=(1, shape[0]))
    if len(shape) == 2:
        return x
    perm = (0,) + tuple(range(2, len(shape))) + (1,)
    return ops.reshape(ops.transpose(x, axes=perm), shape=(-1, shape[1]))


#: Integer label dtypes -> the unsigned dtype of the same size (for cross_entropy's label check).
_UNSIGNED = {np.dtype(t): np.dtype(u) for s, u in ((np.int8, np.uint8), (np.int16, np.uint16), (np.int32, np.uint32),
                                                     (np.int64, np.uint64)) for t in (s, u)}


def _labels_below(t: np.ndarray, n: int) -> bool:
    """Every label in ``0..n-1``: one max of the labels read as unsigned (a negative one becomes huge)."""
    return bool(np.maximum.reduce(t.view(_UNSIGNED[t.dtype])) < n)  # the ufunc: no Python wrapper


def _labels_in_range(t: np.ndarray, valid: np.ndarray, n: int) -> bool:
    """Every label not ignored is in ``0..n-1``."""
    return not ((t[valid] < 0).any() or (t[valid] >= n).any())


def cross_entropy(input, target, weight=None, reduction: str = "mean",  # noqa: A002
                  label_smoothing: float = 0.0, ignore_index: int = -100):
    """Softmax cross-entropy on logits, as ``torch.nn.functional.cross_entropy``.

    For a class index y: ``l = -z_y + log sum_j e^{z_j}`` (the lecture's multi-class logistic
    loss). For probability targets t: ``l = -sum_j t_j log softmax(z)_j``. ``label_smoothing`` eps
    mixes the target with the uniform distribution, ``(1-eps) t + eps/C``; ``weight`` scales each
    class. With class indices, 'mean' divides by the summed weight of the targets (PyTorch).
    """
    zd = input._data if isinstance(input, Tensor) else np.asarray(input)
    td = target._data if isinstance(target, Tensor) else np.asarray(target)
    if (zd.ndim == 2 and td.ndim == 1 and td.shape[0] == zd.shape[0] and td.size and weight is None
            and not label_smoothing and reduction in ("mean", "sum") and not 0 <= ignore_index < zd.shape[1]):
        # The training loop's case, kept lean: one max validates every label and rules out
        # ignore_index (not a class), read as unsigned (negative labels become huge); the
        # general path below handles the rest.
        # A compiled step re-checks this branch on every replay (modes.branch).
        if td.dtype in _UNSIGNED and branch(_labels_below, td, zd.shape[1],
                                            what="cross_entropy: a label is ignore_index or out of range"):
            return ops.softmax_cross_entropy(input, td, reduction=reduction)
    _check_targets("cross_entropy", input, target)
    if reduction not in _REDUCTIONS:
        raise ValueError(f"cross_entropy: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    shape = np.shape(input)
    C = shape[1] if len(shape) > 1 else shape[0]
    z = _to_rows(input)
    dtype = _data(z).dtype
    t = _data(target)
    w = None if weight is None else _data(weight).astype(dtype)
    if w is not None and w.shape != (C,):
        raise ValueError(f"cross_entropy: weight must have shape ({C},), got {w.shape}")
    if t.dtype.kind == "f":
        t = _data(_to_rows(t)).astype(dtype)
        if label_smoothing:
            t = t * (1 - label_smoothing) + label_smoothing / C
        if w is not None:
            t = t * w
        loss = ops.softmax_cross_entropy(z, t)
        if len(shape) != 2:  # (N, C, d...) -> (N, d...); a single (C,) row -> ()
            loss = ops.reshape(loss, shape=shape[:1] + shape[2:] if len(shape) > 1 else ())
        return _reduce(loss, reduction)
    t = ops.astype(ops.reshape(t, shape=(-1,)), dtype=np.dtype(np.int64))
    valid, tv, wy = _class_targets("cross_entropy", t, C, ignore_index, w, dtype)
    if label_smoothing or w is not None:
        # class indices -> (weighted, smoothed) probability rows; l_i = -sum_j t_ij w_j log p_ij
        probs = ops.add(ops.mul(one_hot(tv, C, dtype=dtype), dtype.type(1 - label_smoothing)), dtype.type(label_smoothing / C))
        probs = ops.mul(ops.mul(probs, 1 if w is None else w), ops.reshape(valid, shape=(-1, 1)))
        loss = ops.softmax_cross_entropy(z, probs)
    else:  # an ignored row's loss is multiplied by 0
        loss = ops.mul(ops.softmax_cross_entropy(z, tv), wy)
    if len(shape) != 2:
        loss = ops.reshape(loss, shape=shape[:1] + shape[2:] if len(shape) > 1 else ())
    return _reduce(loss, reduction, denom=ops.sum(wy) if reduction == "mean" else None)


def _class_targets(name: str, t: np.ndarray, n_classes: int, ignore_index: int, weight, dtype):
    """Class-index targets ``t`` as ``(valid, tv, wy)``: which rows count (``t != ignore_index``), the
    labels with ignored rows sent to class 0, and each row's weight ``w[t] * valid`` (``valid`` without
    ``weight``). Computed with primitives on arrays (not differentiated), so that a compiled step
    computes them anew for every batch; out-of-range labels raise, naming the first."""
    valid = ops.not_equal(t, ignore_index)
    if not branch(_labels_in_range, t, valid, n_classes, what=f"{name}: a target class is out of range"):
        bad = t[valid & ((t < 0) | (t >= n_classes))][0]
        raise ValueError(f"{name}: target class {bad} is out of range for {n_classes} classes "
                         f"(valid: 0..{n_classes - 1})")
    tv = ops.where(valid, t, 0)
    wy = ops.astype(valid, dtype=dtype) if weight is None else ops.mul(ops.getitem(weight, idx=tv), valid)
    return valid, tv, wy


def nll_loss(input, target, weight=None, reduction: str = "mean", ignore_index: int = -100):  # noqa: A002
    """Negative log-likelihood of log-probabilities: ``l_i = -w_{y_i} log p_i[y_i]``."""
    _check_targets("nll_loss", input, target)
    t = _data(target)
    if t.dtype.kind not in "iu":
        raise ValueError(f"nll_loss: targets must be integer class indices, got {t.dtype}")
    shape = np.shape(input)
    C = shape[1] if len(shape) > 1 else shape[0]
    z = _to_rows(input)
    dtype = _data(z).dtype
    _, tv, wy = _class_targets("nll_loss", ops.reshape(t, shape=(-1,)), C, ignore_index,
                               None if weight is None else _data(weight).astype(dtype), dtype)
    loss = -ops.getitem(z, idx=(np.arange(tv.shape[0]), tv)) * wy
    if len(shape) != 2:
        loss = ops.reshape(loss, shape=shape[:1] + shape[2:] if len(shape) > 1 else ())
    return _reduce(loss, reduction, denom=ops.sum(wy) if reduction == "mean" else None)


def _same_shape(name, a, b):
    if np.shape(a) != np.shape(b):
        raise ValueError(f"{name}: input shape {np.shape(a)} and target shape {np.shape(b)} differ; "
                         "reshape one of them (broadcasting here is almost always a bug)")
    # A float64 NumPy target (labels from sklearn) must not upcast a float32 loss and its backward.
    bd = _data(b)
    if not isinstance(b, Tensor) and bd.dtype.kind == "f" and _data(a).dtype.kind == "f":
        return bd.astype(_data(a).dtype, copy=False)
    return b


def binary_cross_entropy_with_logits(input, target, weight=None, reduction: str = "mean",  # noqa: A002
                                     pos_weight=None):
    """Logistic loss on logits ``-y log s(x) - (1-y) log(1 - s(x))``, stable for |x| = 1e4.

    ``pos_weight`` p scales the positive term: ``(1-y) x + (1 + (p-1) y) softplus(-x)``.
    """
    target = _same_shape("binary_cross_entropy_with_logits", input, target)
    if pos_weight is None:
        loss = ops.bce_with_logits(input, target)
    else:
        pw = _data(pos_weight).astype(_data(input).dtype)
        loss = (1.0 - target) * input + (1.0 + (pw - 1.0) * target) * softplus(-input)
    if weight is not None:
        loss = loss * (weight if isinstance(weight, Tensor) else _data(weight).astype(_data(loss).dtype))
    return _reduce(loss, reduction)


def _log_clamped(p):
    """``max(log p, -100)`` whose gradient is finite at p = 0 (clip(log 0) gave 0 * inf = NaN)."""
    safe = _data(p) > np.exp(-100.0)
    return ops.where(safe, ops.log(ops.where(safe, p, 1.0)), -100.0)


def binary_cross_entropy(input, target, weight=None, reduction: str = "mean"):  # noqa: A002
    """``-y log p - (1-y) log(1-p)`` on probabilities, with each log clamped at -100 (PyTorch).
    Prefer :func:`binary_cross_entropy_with_logits`, which is stable."""
    target = _same_shape("binary_cross_entropy", input, target)
    p = _data(input)
    if not branch(_probabilities, p, what="binary_cross_entropy: an input is not a probability"):
        raise ValueError("binary_cross_entropy: input must be probabilities in [0, 1]; for logits use "
                         "binary_cross_entropy_with_logits")
    loss = -(target * _log_clamped(input) + (1.0 - target) * _log_clamped(1.0 - input))
    if weight is not None:
        loss = loss * (weight if isinstance(weight, Tensor) else _data(weight).astype(_data(loss).dtype))
    return _reduce(loss, reduction)


def mse_loss(input, target, reduction: str = "mean"):  # noqa: A002
    """Squared error ``(x - y)^2``."""
    target = _same_shape("mse_loss", input, target)
    d = input - target
    return _reduce(d * d, reduction)


def l1_loss(input, target, reduction: str = "mean"):  # noqa: A002
    """Absolute error ``|x - y|``."""
    target = _same_shape("l1_loss", input, target)
    return _reduce(ops.abs(input - target), reduction)


def huber_loss(input, target, reduction: str = "mean", delta: float = 1.0):  # noqa: A002
    """``0.5 d^2`` for |d| < delta, ``delta (|d| - delta/2)`` beyond: quadratic near 0, linear far."""
    target = _same_shape("huber_loss", input, target)
    if delta <= 0:
        raise ValueError(f"huber_loss: delta must be > 0, got {delta}")
    d = input - target
    ad = ops.abs(d)
    return _reduce(ops.where(_data(ad) < delta, 0.5 * d * d, delta * (ad - 0.5 * delta)), reduction)


def smooth_l1_loss(input, target, reduction: str = "mean", beta: float = 1.0):  # noqa: A002
    """Huber loss divided by ``beta`` (PyTorch's smooth L1)."""
    if beta == 0:
        return l1_loss(input, target, reduction)
    return huber_loss(input, target, reduction, delta=beta) / beta


def kl_div(input, target, size_average=None, reduce=None, reduction: str = "mean", log_target: bool = False):  # noqa: A002
    """``target (log target - input)`` on log-probabilities ``input`` (0 where target = 0);
    ``reduction='batchmean'`` divides the sum by the batch size (the KL divergence; 'mean' divides by the count)."""
    target = _same_shape("kl_div", input, target)
    if log_target:
        loss = ops.exp(target) * (target - input)
    else:
        t = _data(target)
        loss = ops.where(t > 0, target * (ops.log(ops.where(t > 0, target, np.ones((), t.dtype))) - input),
                         np.zeros((), t.dtype))
    if reduction == "batchmean":
        return ops.sum(loss) / (np.shape(_data(input))[0] if np.ndim(_data(input)) else 1)
    return _reduce(loss, reduction)
