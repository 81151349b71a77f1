"""The primitives: each NumPy forward with its gradient rule and FLOP rule right under it.

The protocol (declared inputs and attributes, rules, FLOP rules, what a rule reads) is described in
:mod:`chainrule.primitive`. Rules call primitives by name (``mul(g, b)``, not ``g * b``), so on the
ndarray fast path every backward FLOP passes through a primitive and is counted by the profiler
(:mod:`chainrule.cost`), and with Tensors the backward is itself recorded (second derivatives).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from . import _blas
from .primitive import REGISTRY, Primitive, primitive
from .tensor import Tensor

_prod = math.prod
_BIN = ("input", "other")


def _ew(out, *inputs, **attrs):  # elementwise: one FLOP per output element
    return out.size


def _reduce(out, x, **attrs):  # reduction: one FLOP per input element
    return x.size


def _zero(out, *inputs, **attrs):
    return 0


def _check_broadcast(name, a, b):
    sa, sb = np.shape(a), np.shape(b)
    if sa == sb:
        return
    for x, y in zip(reversed(sa), reversed(sb)):
        if x != y and x != 1 and y != 1:
            raise ValueError(f"{name}: shapes {sa} and {sb} cannot be broadcast together "
                             f"({x} != {y} and neither is 1)")


def _binary(name, fn, reads="inputs"):
    def forward(a, b):
        try:
            return fn(a, b)
        except ValueError:
            _check_broadcast(name, a, b)
            raise
    forward.__doc__ = f"Elementwise {name} with NumPy broadcasting."
    forward.ufunc = fn  # what the forward computes: a compiled step's replay calls it directly (replay.py)
    return Primitive(name, forward, _BIN, _ew, reads=reads)


def _unary(name, ufunc, reads="inputs"):
    def forward(x):
        return ufunc(x)
    forward.__doc__ = f"Elementwise {ufunc.__name__}."
    forward.ufunc = ufunc
    return Primitive(name, forward, "input", _ew, reads=reads)


# ----- elementwise arithmetic ---------------------------------------------------------------------
add = _binary("add", np.add, "nothing").defgrad(lambda g, out, a, b, needs: (g, g))
sub = _binary("sub", np.subtract, "nothing").defgrad(lambda g, out, a, b, needs: (g, neg(g) if needs[1] else None))
mul = _binary("mul", np.multiply).defgrad(
    lambda g, out, a, b, needs: (mul(g, b) if needs[0] else None, mul(g, a) if needs[1] else None))
# d(a/b)/db = -a/b^2 = -out/b
div = _binary("div", np.true_divide, "both").defgrad(
    lambda g, out, a, b, needs: (div(g, b) if needs[0] else None, neg(div(mul(g, out), b)) if needs[1] else None))


@_binary("pow", np.power, "both").defgrad
def pow(g, out, a, b, needs):  # noqa: A001 - mirrors torch.pow
    # d(a^b)/da = b a^(b-1);  d(a^b)/db = a^b log a  (only when the exponent wants a gradient)
    # (b = 0 gives 0, also at a = 0 where a^(b-1) is inf: the exponent is kept at 0 there, no 0 * inf)
    ga = mul(mul(g, b), pow(a, where(not_equal(b, 0), sub(b, 1.0), 0.0))) if needs[0] else None
    gb = mul(mul(g, out), log(where(greater(a, 0), a, 1.0))) if needs[1] else None
    return ga, gb


maximum = _binary("maximum", np.maximum).defgrad(  # ties split the gradient, as in PyTorch
    lambda g, out, a, b, needs: (where(greater(a, b), g, where(equal(a, b), mul(g, 0.5), 0.0)) if needs[0] else None,
                                 where(greater(b, a), g, where(equal(a, b), mul(g, 0.5), 0.0)) if needs[1] else None))
minimum = _binary("minimum", np.minimum).defgrad(
    lambda g, out, a, b, needs: (where(less(a, b), g, where(equal(a, b), mul(g, 0.5), 0.0)) if needs[0] else None,
                                 where(less(b, a), g, where(equal(a, b), mul(g, 0.5), 0.0)) if needs[1] else None))

neg = _unary("neg", np.negative, "nothing").defgrad(lambda g, out, a: (neg(g),))
exp = _unary("exp", np.exp, "output").defgrad(lambda g, out, a: (mul(g, out),))
log = _unary("log", np.log).defgrad(lambda g, out, a: (div(g, a),))
log1p = _unary("log1p", np.log1p).defgrad(lambda g, out, a: (div(g, add(a, 1.0)),))
sqrt = _unary("sqrt", np.sqrt, "output").defgrad(lambda g, out, a: (div(g, mul(out, 2.0)),))


@primitive("tanh", flops=_ew, reads="output")
def tanh(x, inplace=False):
    """Hyperbolic tangent; ``inplace=True`` overwrites ``x`` (see :func:`linear_act`)."""
    return np.tanh(x, out=x) if inplace else np.tanh(x)


tanh.defgrad(lambda g, out, a, inplace=False: (mul(g, sub(1.0, mul(out, out))),))
abs = _unary("abs", np.abs).defgrad(lambda g, out, a: (mul(g, sign(a)),))  # noqa: A001
sin = _unary("sin", np.sin).defgrad(lambda g, out, a: (mul(g, cos(a)),))
cos = _unary("cos", np.cos).defgrad(lambda g, out, a: (neg(mul(g, sin(a))),))


@primitive("sigmoid", flops=_ew, reads="output")
def sigmoid(x, inplace=False):
    """sigma(x) = 1 / (1 + e^-x), evaluated without overflow for large |x|; ``inplace=True``
    writes the result into ``x`` (see :func:`linear_act`)."""
    e = np.exp(-np.abs(x))
    return np.divide(np.where(x >= 0, 1.0, e), 1.0 + e, out=x if inplace else None)


sigmoid.defgrad(lambda g, out, a, inplace=False: (mul(mul(g, out), sub(1.0, out)),))


#: A read-only 0-d zero per float dtype: a ufunc takes it ~0.3 us faster than the Python ``0``, which
#: it must resolve against the array's dtype on every call, and computes the same numbers with it.
_ZEROS = {np.dtype(t): np.zeros((), t) for t in (np.float16, np.float32, np.float64)}
for _z in _ZEROS.values():
    _z.flags.writeable = False


_LINES: dict = {}  # (dtype, shape) -> a read-only zero line (see _zero_for)


def _zero_for(x: np.ndarray):
    """The zero to compare ``x`` with: a read-only line of zeros along ``x``'s contiguous axis when that
    axis is long, else :data:`_ZEROS`' 0-d zero. NumPy's maximum and comparisons run their SIMD loop
    only when both operands step through memory; a broadcast 0-d operand takes a loop ~2.5x slower
    on a (1024, 512) activation. Same numbers either way (tests/test_nn.py)."""
    z = _ZEROS.get(x.dtype, 0)
    if x.size < 4096 or not isinstance(z, np.ndarray):
        return z
    if x.flags.c_contiguous:
        shape = (x.shape[-1],)
    elif x.flags.f_contiguous:
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    else:
        return z
    if not 64 <= shape[0] <= 65536:
        return z
    line = _LINES.get((x.dtype, shape))
    if line is None:
        if len(_LINES) > 64:
            _LINES.clear()
        line = _LINES[x.dtype, shape] = np.zeros(shape, x.dtype)
        line.flags.writeable = False
    return line


@primitive("relu", flops=_ew, reads="output")
def relu(x, inplace=False):
    """max(0, x); its derivative at 0 is taken as 0, as in PyTorch. ``inplace=True`` overwrites
    ``x`` (see :func:`linear_act`)."""
    return np.maximum(x, _zero_for(x), out=x if inplace else None)


@primitive("relu_backward", inputs=("grad", "output"), flops=lambda out, g, y: 2 * out.size)
def _relu_backward(g, y):
    """``g * 1[y > 0]``, the same numbers as ``mul(g, greater(y, 0))``, into one new float array:
    the comparison lands in the output buffer (bool -> float) and the product follows in place, so
    no boolean mask is allocated. Internal: relu's rule on ndarrays."""
    # empty_like keeps g's memory order: Linear's gradients are F-ordered, and a C-ordered buffer
    # would make both passes stride across rows (much slower at large batches; docs/performance.md).
    if g.size < 4096 and g.dtype == y.dtype:  # small: the bool -> float cast inside a ufunc costs more than a mask
        m = np.greater(y, _ZEROS.get(y.dtype, 0))  # the same numbers (g * 1 or g * 0), in g's memory order
        return np.multiply(g, m) if g.flags.f_contiguous == y.flags.f_contiguous else np.multiply(g, m, out=np.empty_like(g))
    d = np.greater(y, _ZEROS.get(y.dtype, 0), out=np.empty_like(g, dtype=np.result_type(g.dtype, y.dtype)))
    return np.multiply(d, g, out=d)


relu.defgrad(lambda g, out, a, inplace=False: (
    _relu_backward(g, out) if type(g) is np.ndarray and g.shape == out.shape else mul(g, greater(out, 0.0)),))


#: Activations whose gradient rule reads only their output, so :func:`linear_act` can run them in
#: place on the pre-activation (nn.Sequential does so for Linear + ReLU / Tanh / Sigmoid).
LINEAR_ACTIVATIONS = ("relu", "tanh", "sigmoid")


def linear_act(x, w, b=None, activation: str | None = None):
    """``g(x W^T + b)`` with ``g`` one of :data:`LINEAR_ACTIVATIONS` (or None for the affine map),
    without keeping the pre-activation ``z`` alive for backward.

    The graph is the usual two nodes, ``linear`` then the activation, but the activation runs in
    place on the fresh product ``z``: neither rule reads ``z`` (``linear``'s needs ``x`` and ``W``; the
    activation's derivative is computed from its output: ``1[y > 0]``, ``1 - y^2``, ``y (1 - y)``),
    so once ``z`` is overwritten the graph holds one batch x width array per layer instead of two,
    as PyTorch's ReLU (which saves only its output). The internal tensor ``z`` then holds a
    zero-stride placeholder of the right shape and dtype; it is never returned, and calling the
    modules one by one gives the ordinary graph with the same numbers.
    """
    z = linear(x, w, b) if b is not None else linear(x, w)
    if activation is None:
        return z
    if activation not in LINEAR_ACTIVATIONS:
        raise ValueError(f"linear_act: activation must be None or one of {LINEAR_ACTIVATIONS}, got {activation!r}")
    act = REGISTRY[activation]
    if not isinstance(z, Tensor):
        return act(z, inplace=True)
    y = act(z, inplace=True)
    z._data = np.broadcast_to(_overwritten(z._data.dtype), z._data.shape)  # y owns the buffer now
    return y


_OVERWRITTEN: dict = {}


def _overwritten(dtype) -> np.ndarray:
    """The one zero of ``dtype`` that placeholders of overwritten buffers broadcast."""
    return _OVERWRITTEN.setdefault(np.dtype(dtype), np.zeros((), dtype))


def is_overwritten(a) -> bool:
    """True for the placeholder :func:`linear_act` leaves in its internal pre-activation tensor."""
    return isinstance(a, np.ndarray) and a.base is not None and a.base is _OVERWRITTEN.get(a.dtype)


@primitive("where", inputs=("condition", "input", "other"), flops=_ew)
def where(cond, a, b):
    """``a`` where ``cond`` holds, else ``b`` (broadcast)."""
    return np.where(cond, a, b)


where.defgrad(lambda g, out, c, a, b, needs: (
    None, where(c, g, 0.0) if needs[1] else None, where(c, 0.0, g) if needs[2] else None))


@primitive("clip", flops=_ew)
def clip(x, lo=None, hi=None):
    """Clamp into [lo, hi]; the gradient passes where lo <= x <= hi (PyTorch's convention)."""
    return np.clip(x, lo, hi)


@clip.defgrad
def _clip_grad(g, out, x, lo=None, hi=None):
    inside = logical_and(greater_equal(x, -np.inf if lo is None else lo), less_equal(x, np.inf if hi is None else hi))
    return (mul(g, inside),)


_erf = np.frompyfunc(__import__("math").erf, 1, 1)


@primitive("normal_cdf", flops=lambda out, x: 10 * out.size)
def normal_cdf(x):
    """Standard normal CDF ``Phi(x) = (1 + erf(x / sqrt 2)) / 2`` (exact, via math.erf; NumPy has
    no vectorised erf, so this is slower than the other activations)."""
    e = np.asarray(_erf(np.asarray(x, np.float64) * 0.7071067811865476), np.float64)  # 0-d: frompyfunc gives a float
    return (0.5 * (1.0 + e)).astype(x.dtype)


normal_cdf.defgrad(lambda g, out, x: (mul(mul(g, exp(mul(mul(x, x), -0.5))), 0.3989422804014327),))

# Non-differentiable elementwise ops: results never require grad.
sign, logical_not, isfinite, floor, round = (_unary(n, u) for n, u in (  # noqa: A001 - mirrors torch.round
    ("sign", np.sign), ("logical_not", np.logical_not), ("isfinite", np.isfinite), ("floor", np.floor), ("round", np.round)))
less, less_equal, greater, greater_equal, equal, not_equal, logical_and, logical_or = (_binary(n, u) for n, u in (
    ("less", np.less), ("less_equal", np.less_equal), ("greater", np.greater), ("greater_equal", np.greater_equal),
    ("equal", np.equal), ("not_equal", np.not_equal), ("logical_and", np.logical_and), ("logical_or", np.logical_or)))


# ----- reductions ---------------------------------------------------------------------------------
def _kept_shape(shape, axis):
    """The shape of a reduction with keepdims=True."""
    if axis is None:
        return (1,) * len(shape)
    axes = {a % len(shape) for a in ((axis,) if isinstance(axis, numbers.Integral) else axis)}
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


def _reduction(name, ufunc):
    """A NumPy reduction as ``ufunc.reduce`` (what ndarray.sum/.max call through a Python wrapper),
    with an error naming the op and the shape when the axis is out of range."""
    def forward(x, axis=None, keepdims=False):
        try:
            return ufunc.reduce(x, axis=axis, keepdims=keepdims)
        except np.exceptions.AxisError:
            raise ValueError(f"{name}: axis {axis} is out of range for a tensor of shape {np.shape(x)}") from None
    forward.reduce = ufunc.reduce  # reduce(x, axis, dtype, out, keepdims): what replay.py calls
    return forward


sum = Primitive("sum", _reduction("sum", np.add), flops=_reduce, reads="nothing",  # noqa: A001
                doc="Sum over ``axis`` (all axes when None).")


@sum.defgrad
def _sum_grad(g, out, x, axis=None, keepdims=False):
    # The gradient of a sum copies g back along the reduced axes.
    if axis is None and isinstance(g, np.ndarray):  # fast path: fill with the one value
        full = np.empty(x.shape, g.dtype)
        full.fill(g.item())  # axis=None: g holds one value (with or without keepdims)
        return (full,)
    return (broadcast_to(reshape(g, shape=_kept_shape(x.shape, axis)), shape=x.shape),)


max = Primitive("max", _reduction("max", np.maximum), flops=_reduce, reads="both",  # noqa: A001
                doc="Maximum over ``axis``; the gradient is shared equally among tied maxima (like torch.amax).")


@max.defgrad
def _max_grad(g, out, x, axis=None, keepdims=False):
    k = _kept_shape(x.shape, axis)
    mask = equal(x, reshape(out, shape=k))
    return (div(mul(reshape(g, shape=k), mask), sum(mask, axis=axis, keepdims=True)),)


prod = Primitive("prod", _reduction("prod", np.multiply), flops=_reduce, reads="both",
                 doc="Product over ``axis``. Its gradient prod_{j != i} x_j is exact also with zero entries "
                     "(its second derivative only in slices without zeros).")


@prod.defgrad
def _prod_grad(g, out, x, axis=None, keepdims=False):
    # prod_{j != i} x_j = (product of the non-zeros) / x_i with no zero in the slice; with one zero,
    # that product at the zero and 0 elsewhere; with two or more, 0. (out / x would be 0 / 0 = NaN.)
    z = equal(x, 0)
    nz = where(z, 1.0, x)
    p, n = prod(nz, axis=axis, keepdims=True), sum(z, axis=axis, keepdims=True)
    dprod = where(equal(n, 0), div(p, nz), where(logical_and(z, equal(n, 1)), p, 0.0))
    return (mul(reshape(g, shape=_kept_shape(x.shape, axis)), dprod),)

argmax = Primitive("argmax", lambda x, axis=None, keepdims=False: np.argmax(x, axis, keepdims=keepdims), flops=_reduce,
                   doc="Index of the maximum along ``axis`` (of the flattened tensor when None). Not differentiable.")
argmin = Primitive("argmin", lambda x, axis=None, keepdims=False: np.argmin(x, axis, keepdims=keepdims), flops=_reduce,
                   doc="Index of the minimum along ``axis`` (of the flattened tensor when None). Not differentiable.")


# ----- shape and indexing -------------------------------------------------------------------------
@primitive("reshape", flops=_zero, reads="nothing")
def reshape(x, shape):
    """Same data, new shape (one entry may be -1)."""
    try:
        return x.reshape(shape) if isinstance(x, np.ndarray) else np.reshape(x, shape)
    except ValueError:
        raise ValueError(f"reshape: cannot reshape a tensor of shape {np.shape(x)} "
                         f"({np.size(x)} elements) into {tuple(shape)}") from None


reshape.defgrad(lambda g, out, x, shape: (reshape(g, shape=x.shape),))


@primitive("transpose", flops=_zero, reads="nothing")
def transpose(x, axes=None):
    """Permute axes (reverse them when ``axes`` is None); a view, no copy."""
    if axes is None and isinstance(x, np.ndarray):
        return x.T  # the same view as np.transpose(x), without its Python wrapper
    if axes is not None and sorted(a % np.ndim(x) for a in axes) != list(range(np.ndim(x))):
        raise ValueError(f"transpose: axes {tuple(axes)} are not a permutation of the "
                         f"{np.ndim(x)} axes of shape {np.shape(x)}")
    return np.transpose(x, axes)


transpose.defgrad(lambda g, out, x, axes=None: (
    transpose(g, axes=None if axes is None else tuple(np.argsort([a % x.ndim for a in axes]))),))


@primitive("broadcast_to", flops=_zero, reads="nothing")
def broadcast_to(x, shape):
    """Repeat size-1 axes (and prepend axes) to reach ``shape``; a read-only view."""
    try:
        if _prod(shape) <= 4096 and isinstance(x, np.ndarray) and x.ndim <= len(shape):
            out = np.empty(shape, x.dtype)  # small: one C-level copy beats np.broadcast_to's Python
            out[...] = x
            return out
        return np.broadcast_to(x, shape)
    except ValueError:
        raise ValueError(f"broadcast_to: cannot broadcast shape {np.shape(x)} to {tuple(shape)}") from None


broadcast_to.defgrad(lambda g, out, x, shape: (g,))  # the engine sums g back to x's shape


def _is_basic(idx) -> bool:
    """True for indexes made only of ints, slices, None and Ellipsis (no repeated elements)."""
    items = idx if isinstance(idx, tuple) else (idx,)
    return all(i is None or i is Ellipsis or isinstance(i, (slice, numbers.Integral)) for i in items)


@primitive("getitem", flops=_zero, reads="nothing")
def getitem(x, idx):
    """``x[idx]`` with NumPy semantics: slices, integer arrays, boolean masks."""
    try:
        return x[idx]
    except IndexError as e:
        raise IndexError(f"getitem: {e} (tensor shape {np.shape(x)})") from None


getitem.defgrad(lambda g, out, x, idx: (scatter_add(g, idx=idx, shape=x.shape),))


def _scatter_flops(out, g, idx, shape):  # one addition per element of g; the zero fill is no arithmetic
    return g.size


@primitive("scatter_add", inputs="grad", flops=_scatter_flops, reads="nothing")
def scatter_add(g, idx, shape):
    """A zero array of ``shape`` with ``g`` added at ``idx``; repeated indices accumulate."""
    z = np.zeros(shape, dtype=g.dtype)
    if _is_basic(idx) or (isinstance(idx, np.ndarray) and idx.dtype == np.bool_):
        z[idx] = g
    else:
        np.add.at(z, idx, g)
    return z


scatter_add.defgrad(lambda g, out, x, idx, shape: (getitem(g, idx=idx),))


def _concat(*xs, axis=0):
    try:
        return np.concatenate(xs, axis=axis)
    except ValueError:
        raise ValueError(f"concatenate: shapes {[np.shape(x) for x in xs]} differ outside "
                         f"axis {axis}") from None


concatenate = Primitive("concatenate", _concat, "*tensors", flops=_zero, reads="nothing",
                        doc="Join tensors along an existing axis.")


@concatenate.defgrad
def _concat_grad(g, out, *xs, axis=0):
    ends = np.cumsum([x.shape[axis] for x in xs])
    lead = (slice(None),) * (axis % g.ndim)
    return tuple(getitem(g, idx=lead + (slice(e - x.shape[axis], e),)) for x, e in zip(xs, ends))


@primitive("pad", flops=_zero, reads="nothing")
def pad(x, pad_width, value=0.0):
    """Constant padding, ``pad_width`` as in ``np.pad``: ((before, after), ...) per axis."""
    return np.pad(x, pad_width, mode="constant", constant_values=value)


pad.defgrad(lambda g, out, x, pad_width, value=0.0: (
    getitem(g, idx=tuple(slice(b, b + n) for (b, _), n in zip(pad_width, x.shape))),))


@primitive("astype", flops=_zero, reads="nothing")
def astype(x, dtype, copy=False):
    """Cast to ``dtype``; the gradient is cast back to the input's dtype."""
    return x.astype(dtype, copy=copy)


astype.defgrad(lambda g, out, x, dtype, copy=False: (astype(g, dtype=x.dtype),))


# ----- products -----------------------------------------------------------------------------------
def _matmul_macs(out, a, b):
    return out.size * a.shape[-1]


@primitive("matmul", inputs=_BIN, flops=lambda out, a, b: 2 * _matmul_macs(out, a, b), macs=_matmul_macs)
def matmul(a, b):
    """Matrix product with NumPy's rules: 1-D, 2-D and batched (broadcast) operands."""
    try:
        return _blas.matmul(a, b)
    except ValueError:  # checked only on failure: the checks cost as much as a small product
        if np.ndim(a) == 0 or np.ndim(b) == 0:
            raise ValueError(f"matmul: both operands need at least 1 dimension, got shapes "
                             f"{np.shape(a)} and {np.shape(b)}") from None
        ka, kb = a.shape[-1], b.shape[-2] if b.ndim > 1 else b.shape[0]
        if ka != kb:
            raise ValueError(f"matmul: {tuple(a.shape)} @ {tuple(b.shape)}: {ka} != {kb}") from None
        raise


@matmul.defgrad
def _matmul_grad(g, out, a, b, needs):
    # For 2-D: dA = G B^T, dB = A^T G. 1-D operands are lifted to matrices and dropped again.
    if a.ndim == 1 and b.ndim == 1:
        return (mul(g, b) if needs[0] else None, mul(g, a) if needs[1] else None)
    a2 = a if a.ndim > 1 else reshape(a, shape=(1, a.shape[0]))
    b2 = b if b.ndim > 1 else reshape(b, shape=(b.shape[0], 1))
    if a.ndim == 1:  # out lost the row axis of the lifted a
        g2 = reshape(g, shape=g.shape[:-1] + (1, g.shape[-1]))
    elif b.ndim == 1:  # out lost the column axis of the lifted b
        g2 = reshape(g, shape=g.shape + (1,))
    else:
        g2 = g
    ga = gb = None
    if needs[0]:
        ga = matmul(g2, swapaxes(b2, -1, -2))
        if a.ndim == 1:
            ga = sum(reshape(ga, shape=(-1, a.shape[0])), axis=0)
    if needs[1]:
        gb = matmul(swapaxes(a2, -1, -2), g2)
        if b.ndim == 1:
            gb = sum(reshape(gb, shape=(-1, b.shape[0])), axis=0)
    return ga, gb


def swapaxes(x, a, b):
    """Exchange two axes (a transpose)."""
    perm = list(range(np.ndim(x)))
    perm[a], perm[b] = perm[b], perm[a]
    return transpose(x, axes=tuple(perm))


def _linear_macs(out, x, w, b=None):
    return out.size * x.shape[-1]


@primitive("linear", inputs=("input", "weight", "bias"), macs=_linear_macs,
           flops=lambda out, x, w, b=None: 2 * _linear_macs(out, x, w) + (out.size if b is not None else 0))
def linear(x, w, b=None):
    """Fused affine map ``y = x W^T + b`` with W of shape (out, in), as ``torch.nn.functional.linear``.

    Fused for speed: one node instead of three, and the bias is added in place. The product is
    written in the orientation OpenBLAS runs fastest (the same numbers either way): for a C-ordered
    ``x`` with at least as many rows as outputs as ``x W^T``, C-ordered (5% faster than the other
    on the big layers at batch 1024, 1.6x on a 10-wide output layer); otherwise (small batches, an
    F-ordered ``x`` such as a convolution's columns) as ``(W x^T)^T``, the long dimension first, an
    F-ordered view (2x faster at batch 16). NumPy's elementwise ops keep either order, and the
    backward writes ``dL/dx`` in the order of ``x``. See :func:`linear_act` for ``g(x W^T + b)``
    without keeping the pre-activation.
    """
    if x.shape[-1] != w.shape[-1]:
        raise ValueError(f"linear: input {tuple(x.shape)} @ weight.T {tuple(w.shape[::-1])}: "
                         f"{x.shape[-1]} != {w.shape[-1]} (weight is (out, in) = {tuple(w.shape)})")
    if x.ndim == 2:
        y = _blas.matmul(x, w.T) if x.flags.c_contiguous and x.shape[0] >= w.shape[0] else _blas.matmul(w, x.T).T
    else:
        y = np.matmul(x, w.T)
    if b is not None:
        y += b
    return y


@linear.defgrad
def _linear_grad(g, out, x, w, b=None, needs=(True, True, True)):
    # dx = G W, dW = G^T X, db = sum_rows G  (leading axes of x flattened into rows). Each product
    # is written in the orientation BLAS runs fastest, transposes being free views.
    g2 = g if g.ndim == 2 else reshape(g, shape=(-1, g.shape[-1]))
    x2 = x if x.ndim == 2 else reshape(x, shape=(-1, x.shape[-1]))
    gx = gw = gb = None
    if needs[0]:  # in x's memory order, so that the activation's backward before it reads both alike
        x_f = not isinstance(x2, Tensor) and x2.flags.f_contiguous and not x2.flags.c_contiguous
        gx = transpose(matmul(transpose(w), transpose(g2))) if x_f else matmul(g2, w)
        if x.ndim != 2:
            gx = reshape(gx, shape=x.shape)
    if needs[1]:
        # Match the weight's memory order, so the optimizer's elementwise update stays contiguous.
        f_ordered = not isinstance(w, Tensor) and w.flags.f_contiguous and not w.flags.c_contiguous
        gw = transpose(matmul(transpose(x2), g2)) if f_ordered else matmul(transpose(g2), x2)
    if len(needs) > 2 and needs[2]:
        gb = sum(g2, axis=0)
    return gx, gw, gb


def _array(x):
    return x._data if isinstance(x, Tensor) else x


from .ops_const import dropout_mask, finite_max, one_hot_rows, random_draw  # noqa: E402,F401
from .ops_loss import _softmax_minus_onehot, bce_with_logits, softmax_cross_entropy  # noqa: E402,F401
