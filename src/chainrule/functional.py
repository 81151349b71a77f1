"""Composite functions built from primitives. Nothing here defines a gradient: every function is
differentiable (to any order) because the primitives it calls are.

Like the primitives, these accept ndarrays (plain NumPy result) or Tensors (recorded result).
"""

from __future__ import annotations

import builtins
import functools
import numbers
from typing import NamedTuple

import numpy as np

from . import ops
from .creation import get_rng
from .tensor import Tensor

_REDUCTIONS = ("mean", "sum", "none")


def _data(x):
    return x._data if isinstance(x, Tensor) else np.asarray(x)


def _torch_names(fn):
    """Let ``fn`` (written with NumPy's ``axis``/``keepdims``) also take torch's ``dim``/``keepdim``."""
    @functools.wraps(fn)
    def wrapper(*args, **kw):
        if "dim" in kw:
            kw["axis"] = kw.pop("dim")
        if "keepdim" in kw:
            kw["keepdims"] = kw.pop("keepdim")
        return fn(*args, **kw)
    return wrapper


def _wide(fn):
    """Run ``fn`` on float16 input in float32 and cast the result back, as torch accumulates half
    precision (a float16 sum of a few thousand terms overflows or loses whole digits)."""
    @functools.wraps(fn)
    def wrapper(x, *args, **kw):
        if _data(x).dtype == np.float16:
            return ops.astype(fn(ops.astype(x, dtype=np.float32), *args, **kw), dtype=np.float16)
        return fn(x, *args, **kw)
    return wrapper


def _count(x, axis) -> int:
    shape = np.shape(x)
    if axis is None:
        return int(np.prod(shape))
    axes = (axis,) if isinstance(axis, numbers.Integral) else axis
    return int(np.prod([shape[a] for a in axes]))


# ----- reductions ---------------------------------------------------------------------------------
@_torch_names
@_wide
def mean(x, axis=None, keepdims=False):
    """Arithmetic mean: sum / count."""
    return ops.sum(x, axis=axis, keepdims=keepdims) / _count(x, axis)


@_torch_names
@_wide
def var(x, axis=None, keepdims=False, correction=1, unbiased=None):
    """Variance ``sum (x - mean)^2 / (n - correction)``. ``correction=1`` (unbiased) is PyTorch's
    default; pass ``correction=0`` for NumPy's ``np.var`` default."""
    if unbiased is not None:  # torch's older spelling
        correction = int(unbiased)
    d = x - mean(x, axis, keepdims=True)
    return ops.sum(d * d, axis=axis, keepdims=keepdims) / builtins.max(_count(x, axis) - correction, 0)


@_torch_names
def std(x, axis=None, keepdims=False, correction=1, unbiased=None):
    """Standard deviation, the square root of :func:`var`."""
    return ops.sqrt(var(x, axis, keepdims, correction, unbiased))


@_torch_names
def amin(x, axis=None, keepdims=False):
    """Minimum over ``axis``, as ``-max(-x)`` (ties share the gradient, like torch.amin)."""
    return ops.neg(ops.max(ops.neg(x), axis=axis, keepdims=keepdims))


class MaxMin(NamedTuple):
    """What ``max(x, dim)`` / ``min(x, dim)`` return: the values and their indices, as torch's named tuple."""

    values: object
    indices: object


def _max_min(name, amax_or_amin, arg, x, dim, keepdim, axis, keepdims, other):
    if other is not None or isinstance(dim, Tensor):  # torch.max(a, b): elementwise
        return (ops.maximum if name == "max" else ops.minimum)(x, dim if other is None else other)
    if axis is not None or keepdims is not None:  # NumPy's spelling: the values alone
        return amax_or_amin(x, axis=axis, keepdims=bool(keepdims))
    if dim is None:
        return amax_or_amin(x)
    idx = arg(x, axis=dim, keepdims=keepdim)
    values = amax_or_amin(x, axis=dim, keepdims=keepdim)
    return MaxMin(values, Tensor(idx._data if isinstance(idx, Tensor) else idx))


def max(x, dim=None, keepdim=False, *, axis=None, keepdims=None, other=None):  # noqa: A001
    """torch.max: the maximum of all elements; with ``dim``, the named tuple ``(values, indices)``
    along it; with a tensor second argument, the elementwise maximum. NumPy's ``axis=`` gives the
    values alone. The gradient is shared equally among tied maxima."""
    return _max_min("max", ops.max, ops.argmax, x, dim, keepdim, axis, keepdims, other)


def min(x, dim=None, keepdim=False, *, axis=None, keepdims=None, other=None):  # noqa: A001
    """torch.min: as :func:`max`, for the minimum."""
    return _max_min("min", amin, ops.argmin, x, dim, keepdim, axis, keepdims, other)


@_torch_names
@_wide
def logsumexp(x, axis=None, keepdims=False):
    """``log sum_j exp(x_j)``, shifted by the (constant) maximum so no exp overflows. Over an empty
    axis the sum is 0 and the result ``-inf``, as in PyTorch."""
    d = _data(x)
    if d.size == 0:  # log of a sum over nothing: -inf, still connected to x for its (empty) gradient
        s = ops.add(ops.sum(ops.mul(x, 0.0), axis=axis, keepdims=True), -np.inf)
    else:
        m = np.max(d, axis=axis, keepdims=True)
        m = np.where(np.isfinite(m), m, 0)
        s = ops.add(ops.log(ops.sum(ops.exp(ops.sub(x, m)), axis=axis, keepdims=True)), m)
    return s if keepdims else ops.reshape(s, shape=np.max(d, axis=axis, initial=-np.inf).shape)


def _shift(x, axis):
    """The constant max along ``axis`` (0 where it is not finite), so that no exp overflows."""
    m = np.max(_data(x), axis=axis, keepdims=True, initial=-np.inf)
    return np.where(np.isfinite(m), m, 0).astype(_data(x).dtype)


@_torch_names
@_wide
def softmax(x, axis=-1, dtype=None):
    """Exponentiate and normalize: ``softmax(z)_k = e^{z_k} / sum_j e^{z_j}`` along ``axis``."""
    x = x if dtype is None else ops.astype(x, dtype=np.dtype(dtype))
    e = ops.exp(ops.sub(x, _shift(x, axis)))
    return ops.div(e, ops.sum(e, axis=axis, keepdims=True))


@_torch_names
@_wide
def log_softmax(x, axis=-1, dtype=None):
    """``log softmax(z)_k = (z_k - m) - log sum_j e^{z_j - m}`` with ``m = max z``: subtracting the
    shift first keeps full precision for large logits (``z - logsumexp(z)`` would round ``m`` twice)."""
    x = x if dtype is None else ops.astype(x, dtype=np.dtype(dtype))
    z = ops.sub(x, _shift(x, axis))
    return ops.sub(z, ops.log(ops.sum(ops.exp(z), axis=axis, keepdims=True)))


# ----- shapes -------------------------------------------------------------------------------------
swapaxes = ops.swapaxes


def transpose(x, *dims, axes=None):
    """torch.transpose(x, dim0, dim1) swaps two axes (also for 2-D: ``transpose(x, 0, 1)`` is the
    matrix transpose); a single tuple, ``axes=``, or nothing is a NumPy permutation of all axes."""
    if axes is not None:
        return ops.transpose(x, axes=tuple(axes))
    if len(dims) == 2 and all(isinstance(d, numbers.Integral) for d in dims):
        return ops.swapaxes(x, *dims)
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = tuple(dims[0])
    return ops.transpose(x, axes=tuple(dims) or None)


def permute(x, *dims):
    """Reorder the axes: ``permute(x, (2, 0, 1))`` or ``permute(x, 2, 0, 1)``."""
    return ops.transpose(x, axes=tuple(dims[0]) if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims)


def t(x):
    """The transpose of a matrix; 0-d and 1-d tensors are returned as they are (torch.t)."""
    return ops.transpose(x, axes=None) if np.ndim(x) == 2 else x


def mm(a, b):
    """The product of two matrices (2-D only, unlike :func:`matmul`)."""
    if np.ndim(a) != 2 or np.ndim(b) != 2:
        raise ValueError(f"mm: both operands must be matrices, got shapes {np.shape(a)} and {np.shape(b)}; use matmul")
    return ops.matmul(a, b)


def dot(a, b):
    """The inner product of two 1-D tensors."""
    if np.ndim(a) != 1 or np.ndim(b) != 1:
        raise ValueError(f"dot: both operands must be 1-D, got shapes {np.shape(a)} and {np.shape(b)}")
    return ops.matmul(a, b)


def norm(x, p=2, dim=None, keepdim=False):
    """The p-norm ``(sum |x|^p)^(1/p)`` (2 and 'fro': Euclidean) over ``dim`` (all elements by default)."""
    if p in (2, "fro"):
        return ops.sqrt(ops.sum(ops.mul(x, x), axis=dim, keepdims=keepdim))
    if p == 1:
        return ops.sum(ops.abs(x), axis=dim, keepdims=keepdim)
    return ops.pow(ops.sum(ops.pow(ops.abs(x), float(p)), axis=dim, keepdims=keepdim), 1.0 / p)


def repeat(x, reps):
    """Tile ``x``: ``repeat(x, (2, 3))`` repeats it twice along axis 0 and three times along axis 1."""
    reps = tuple(reps)
    shape = (1,) * (len(reps) - np.ndim(x)) + tuple(np.shape(x))
    x = ops.reshape(x, shape=sum(((1, s) for s in shape), ()))
    x = ops.broadcast_to(x, shape=sum(((r, s) for r, s in zip(reps, shape)), ()))
    return ops.reshape(x, shape=tuple(r * s for r, s in zip(reps, shape)))


def flatten(x, start_dim=0, end_dim=-1):
    """Merge axes ``start_dim..end_dim`` into one."""
    shape = np.shape(x)
    if not shape:
        return ops.reshape(x, shape=(1,))
    s, e = start_dim % len(shape), end_dim % len(shape)
    return ops.reshape(x, shape=shape[:s] + (-1,) + shape[e + 1:])


@_torch_names
def squeeze(x, axis=None):
    """Drop size-1 axes (only ``axis`` when given)."""
    shape = np.shape(x)
    if axis is None:
        new = tuple(s for s in shape if s != 1)
    else:
        axes = {a % len(shape) for a in ((axis,) if isinstance(axis, numbers.Integral) else axis)}
        new = tuple(s for i, s in enumerate(shape) if not (i in axes and s == 1))
    return ops.reshape(x, shape=new)


@_torch_names
def unsqueeze(x, axis):
    """Insert a size-1 axis at ``axis``."""
    shape = list(np.shape(x))
    shape.insert(axis % (len(shape) + 1), 1)
    return ops.reshape(x, shape=tuple(shape))


def expand(x, shape):
    """Broadcast to ``shape``; -1 keeps an axis as it is (``torch.Tensor.expand``)."""
    own = np.shape(x)
    lead = len(shape) - len(own)
    full = tuple(own[i - lead] if s == -1 else s for i, s in enumerate(shape))
    return ops.broadcast_to(x, shape=full)


@_torch_names
def concatenate(xs, axis=0):
    """Join a sequence of tensors along ``axis``."""
    return ops.concatenate(*xs, axis=axis)


cat = concatenate


@_torch_names
def stack(xs, axis=0):
    """Stack tensors of equal shape along a new axis."""
    shapes = {np.shape(x) for x in xs}
    if len(shapes) > 1:
        raise ValueError(f"stack: all tensors need the same shape, got {sorted(shapes)}")
    return ops.concatenate(*[unsqueeze(x, axis) for x in xs], axis=axis)


def pad(x, pad_width, value=0.0):
    """Constant padding; ``pad_width`` is an int, or (before, after) per axis as in ``np.pad``."""
    nd = np.ndim(x)
    if isinstance(pad_width, numbers.Integral):
        pad_width = ((pad_width, pad_width),) * nd
    pw = tuple((int(b), int(a)) for b, a in np.broadcast_to(np.asarray(pad_width), (nd, 2)))
    return ops.pad(x, pad_width=pw, value=value)


def clip(x, min=None, max=None):  # noqa: A002
    """Clamp to [min, max] (either may be None)."""
    if min is None and max is None:
        raise ValueError("clip: at least one of min and max must be given")
    return ops.clip(x, lo=min, hi=max)


clamp = clip


def where(cond, a, b):
    """``a`` where ``cond`` else ``b``; differentiable in ``a`` and ``b``."""
    return ops.where(_data(cond).astype(bool), a, b)


# ----- activations and layers ---------------------------------------------------------------------
relu, sigmoid, tanh, exp, log, sqrt, abs, maximum, minimum = (  # noqa: A001
    ops.relu, ops.sigmoid, ops.tanh, ops.exp, ops.log, ops.sqrt, ops.abs, ops.maximum, ops.minimum)


def leaky_relu(x, negative_slope=0.01):
    """``x`` for x > 0, ``negative_slope * x`` otherwise."""
    return ops.where(_data(x) > 0, x, x * negative_slope)


def gelu(x, approximate="none"):
    """Gaussian error linear unit ``x * Phi(x)``. ``approximate='tanh'`` uses
    ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``; 'none' uses the exact normal CDF."""
    if approximate == "tanh":
        return 0.5 * x * (1.0 + ops.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)))
    if approximate != "none":
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return x * ops.normal_cdf(x)


def softplus(x):
    """``log(1 + e^x)``, stable for large |x| (equals the logistic loss with target 0)."""
    return ops.bce_with_logits(x, np.zeros((), _data(x).dtype))


def linear(x, weight, bias=None):
    """``x W^T + b`` (weight of shape (out, in)); one fused primitive."""
    return ops.linear(x, weight) if bias is None else ops.linear(x, weight, bias)


def dropout(x, p: float = 0.5, training: bool = True, scale: bool = True, rng=None):
    """Zero each element with probability ``p`` during training.

    ``p`` is the *drop* probability (PyTorch's convention; the lecture's p is the keep probability
    ``1 - p``). With ``scale=True`` (inverted dropout, the default) survivors are multiplied by
    ``1/(1-p)`` in training so evaluation is the identity. With ``scale=False`` (the lecture's
    original form) training does not rescale and evaluation multiplies by the keep probability.
    Both give the same expected activation.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not training:
        return x if scale or p == 0 else x * (1.0 - p)
    if p == 0:
        return x
    keep = (rng or get_rng()).random(np.shape(x)) >= p
    dtype = _data(x).dtype
    mask = keep.astype(dtype) / dtype.type(1.0 - p) if scale and p < 1 else keep.astype(dtype)
    return x * mask


def one_hot(labels, num_classes: int = -1, dtype=np.int64):
    """Rows of the identity: ``one_hot(y)[i, k] = 1 if y_i == k``. Not differentiable.
    int64 by default like ``torch.nn.functional.one_hot``; pass ``dtype=float32`` for math."""
    y = _data(labels)
    if y.dtype.kind not in "iu":
        raise ValueError(f"one_hot: labels must be integers, got {y.dtype}")
    if num_classes < 0:
        num_classes = int(y.max()) + 1 if y.size else 0
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        bad = y[(y < 0) | (y >= num_classes)].reshape(-1)[0]
        raise ValueError(f"one_hot: label {bad} is out of range for {num_classes} classes")
    out = _one_hot_rows(y, num_classes, dtype)
    return Tensor(out) if isinstance(labels, Tensor) else out


def _one_hot_rows(y: np.ndarray, num_classes: int, dtype) -> np.ndarray:
    """The one-hot rows of labels already known to lie in ``0..num_classes-1`` (no checks: for
    gradient rules whose forward validated the labels)."""
    return (y[..., None] == np.arange(num_classes)).astype(dtype)


# ----- losses -------------------------------------------------------------------------------------
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
            and not label_smoothing and reduction in ("mean", "sum")):
        # The training loop's case, kept lean: one max validates every label and rules out
        # ignore_index (a negative label), read as unsigned (negative labels become huge); the
        # general path below handles the rest.
        u = _UNSIGNED.get(td.dtype)
        if u is not None and np.maximum.reduce(td.view(u)) < zd.shape[1]:  # the ufunc: no Python wrapper
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
    t = t.reshape(-1).astype(np.int64)
    valid = t != ignore_index
    if (t[valid] < 0).any() or (t[valid] >= C).any():
        bad = t[valid & ((t < 0) | (t >= C))][0]
        raise ValueError(f"cross_entropy: target class {bad} is out of range for {C} classes "
                         f"(valid: 0..{C - 1})")
    tv = np.where(valid, t, 0)
    wy = (np.ones(t.shape, dtype) if w is None else w[tv]) * valid
    if label_smoothing or w is not None or not valid.all():
        # class indices -> (weighted, smoothed) probability rows; l_i = -sum_j t_ij w_j log p_ij
        probs = one_hot(tv, C, dtype=dtype) * (1 - label_smoothing) + label_smoothing / C
        probs = probs * (1 if w is None else w) * valid[:, None]
        loss = ops.softmax_cross_entropy(z, probs)
    else:
        loss = ops.softmax_cross_entropy(z, tv)
    if len(shape) != 2:
        loss = ops.reshape(loss, shape=shape[:1] + shape[2:] if len(shape) > 1 else ())
    return _reduce(loss, reduction, denom=dtype.type(wy.sum()))


def nll_loss(input, target, weight=None, reduction: str = "mean", ignore_index: int = -100):  # noqa: A002
    """Negative log-likelihood of log-probabilities: ``l_i = -w_{y_i} log p_i[y_i]``."""
    _check_targets("nll_loss", input, target)
    t = _data(target)
    if t.dtype.kind not in "iu":
        raise ValueError(f"nll_loss: targets must be integer class indices, got {t.dtype}")
    shape = np.shape(input)
    C = shape[1] if len(shape) > 1 else shape[0]
    z = _to_rows(input)
    t = t.reshape(-1)
    valid = t != ignore_index
    if (t[valid] < 0).any() or (t[valid] >= C).any():
        raise ValueError(f"nll_loss: target class {t[valid & ((t < 0) | (t >= C))][0]} is out of "
                         f"range for {C} classes")
    tv = np.where(valid, t, 0)
    dtype = _data(z).dtype
    wy = (np.ones(t.shape, dtype) if weight is None else _data(weight).astype(dtype)[tv]) * valid
    loss = -ops.getitem(z, idx=(np.arange(t.shape[0]), tv)) * wy
    if len(shape) != 2:
        loss = ops.reshape(loss, shape=shape[:1] + shape[2:] if len(shape) > 1 else ())
    return _reduce(loss, reduction, denom=dtype.type(wy.sum()))


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
    if p.size and (p.min() < 0 or p.max() > 1):
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
