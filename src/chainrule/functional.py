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
from .modes import branch
from .primitive import ALIASES
from .tensor import Tensor


def _data(x):
    return x._data if isinstance(x, Tensor) else np.asarray(x)


def _torch_names(fn):
    """Let ``fn`` (written with NumPy's ``axis``/``keepdims``) also take torch's ``dim``/``keepdim``."""
    @functools.wraps(fn)
    def wrapper(*args, **kw):
        for torch_name, name in ALIASES.items():  # the primitives' own alias table
            if torch_name in kw:
                kw[name] = kw.pop(torch_name)
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
        m = ops.finite_max(x, axis=axis)
        s = ops.add(ops.log(ops.sum(ops.exp(ops.sub(x, m)), axis=axis, keepdims=True)), m)
    return s if keepdims else ops.reshape(s, shape=np.max(d, axis=axis, initial=-np.inf).shape)


def _shift(x, axis):
    """The constant max along ``axis`` (0 where it is not finite), so that no exp overflows."""
    return ops.finite_max(x, axis=axis)


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


def pad(x, pad_width, value=0.0, mode="constant"):
    """Constant padding. ``pad_width`` is torch's flat ``(left, right, top, bottom, ...)``, pairs from the
    last axis backwards (``F.pad(x, (1, 1))`` pads the last axis only); or, as in ``np.pad``, an int
    or ``((before, after), ...)`` per axis. torch's ``F.pad(x, p, "constant", v)`` order is accepted too."""
    if isinstance(value, str):  # torch's positional order: pad(input, pad, mode, value)
        value, mode = (None if mode == "constant" else mode), value
    if mode != "constant":
        raise ValueError(f"pad: only mode='constant' is implemented, got {mode!r}")
    value = 0.0 if value is None else value
    nd = np.ndim(x)
    if isinstance(pad_width, numbers.Integral):
        pad_width = ((pad_width, pad_width),) * nd
    elif len(pad_width) and all(isinstance(p, numbers.Integral) for p in pad_width):
        if len(pad_width) % 2 or len(pad_width) > 2 * nd:
            raise ValueError(f"pad: torch's flat padding needs an even length of at most 2 x {nd} dims, got {pad_width}")
        pairs = [tuple(pad_width[i:i + 2]) for i in range(0, len(pad_width), 2)][::-1]
        pad_width = [(0, 0)] * (nd - len(pairs)) + pairs
    pw = tuple((int(b), int(a)) for b, a in np.broadcast_to(np.asarray(pad_width), (nd, 2)))
    return ops.pad(x, pad_width=pw, value=value)


def clip(x, min=None, max=None):  # noqa: A002
    """Clamp to [min, max] (either may be None)."""
    if min is None and max is None:
        raise ValueError("clip: at least one of min and max must be given")
    return ops.clip(x, lo=min, hi=max)


clamp = clip


def where(cond, a=None, b=None):
    """``a`` where ``cond`` else ``b``; differentiable in ``a`` and ``b``. ``where(cond)`` alone is torch's
    ``nonzero(cond, as_tuple=True)``: one int64 index tensor per dim."""
    if a is None and b is None:
        return tuple(Tensor(i.astype(np.int64)) for i in np.nonzero(_data(cond)))
    # a primitive for the cast too, so that a compiled step reads this call's mask (not a frozen copy)
    return ops.where(cond if _data(cond).dtype == np.bool_ else ops.astype(cond, dtype=np.dtype(np.bool_)), a, b)


# ----- activations and layers ---------------------------------------------------------------------
relu, sigmoid, tanh, exp, log, sqrt, abs, maximum, minimum = (  # noqa: A001
    ops.relu, ops.sigmoid, ops.tanh, ops.exp, ops.log, ops.sqrt, ops.abs, ops.maximum, ops.minimum)


def leaky_relu(x, negative_slope=0.01):
    """``x`` for x > 0, ``negative_slope * x`` otherwise."""
    return ops.where(ops.greater(x, 0.0), x, ops.mul(x, negative_slope))


def gelu(x, approximate="none"):
    """Gaussian error linear unit ``x * Phi(x)``. ``approximate='tanh'`` uses
    ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``; 'none' uses the exact normal CDF."""
    if approximate == "tanh":
        return 0.5 * x * (1.0 + ops.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)))
    if approximate != "none":
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return x * ops.normal_cdf(x)


def softplus(x, beta: float = 1.0, threshold: float = 20.0):
    """``log(1 + e^x)``, stable for large |x| (equals the logistic loss with target 0); with torch's
    ``beta``: ``log(1 + e^(beta x)) / beta``, and ``x`` itself where ``beta x > threshold``."""
    if beta == 1.0 and threshold >= 20.0:  # beyond 20 the two agree to float64 rounding
        return ops.bce_with_logits(x, np.zeros((), _data(x).dtype))
    bx = ops.mul(x, beta)
    soft = ops.bce_with_logits(bx, np.zeros((), _data(x).dtype)) / beta
    return ops.where(ops.greater(bx, threshold), x, soft)


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
    return x * ops.dropout_mask(_data(x), p, scale, rng)


def _max_is(y: np.ndarray, m: int) -> bool:
    return not y.size or int(y.max()) == m


def _in_range(y: np.ndarray, n: int) -> bool:
    """Every value in ``0..n-1``."""
    return not y.size or bool(y.min() >= 0 and y.max() < n)


def one_hot(labels, num_classes: int = -1, dtype=np.int64):
    """Rows of the identity: ``one_hot(y)[i, k] = 1 if y_i == k``. Not differentiable.
    int64 by default like ``torch.nn.functional.one_hot``; pass ``dtype=float32`` for math."""
    y = _data(labels)
    if y.dtype.kind not in "iu":
        raise ValueError(f"one_hot: labels must be integers, got {y.dtype}")
    if num_classes < 0:  # the width comes from the values: a compiled step re-checks it
        num_classes = int(y.max()) + 1 if y.size else 0
        branch(_max_is, y, num_classes - 1, what="one_hot: the inferred number of classes changed")
    if not branch(_in_range, y, num_classes, what=f"one_hot: a label is out of range for {num_classes} classes"):
        bad = y[(y < 0) | (y >= num_classes)].reshape(-1)[0]
        raise ValueError(f"one_hot: label {bad} is out of range for {num_classes} classes")
    return ops.one_hot_rows(labels, num_classes, dtype)


from .activations import *  # noqa: E402,F401,F403 - and these activations
from .losses import *  # noqa: E402,F401,F403 - torch.nn.functional has the losses too
