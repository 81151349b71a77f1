"""The primitives behind convolution and pooling: ``unfold`` (im2col) and its adjoint ``fold`` (col2im),
plus two fast paths: ``max_pool_blocks`` (max-pooling whose windows tile the input, by a reshape) and
``cols_linear`` (a convolution's product in column blocks, for few-row columns such as a first layer's).

For an input x of shape (N, C, *S) (S the spatial sizes: one or two of them, or more) and a kernel of
size K, ``unfold`` gathers every kernel window into columns::

    cols[c, *k, *l, n] = xpad[n, c, *(l * stride + k * dilation)]        shape (C, *K, *L, N)

where ``xpad`` is x padded with ``value`` (0 for convolution, -inf for max-pooling) and
``L_i = (S_i + before_i + after_i - dilation_i (K_i - 1) - 1) // stride_i + 1`` are the output sizes.
A convolution is then ONE matrix product ``W (O, C prod K) @ cols (C prod K, prod L * N)``, and its
result (O, *L, N) is the output (N, O, *L) as a transposed view (:mod:`chainrule.nn.functional`).

Why the batch axis last: it makes every product one 2-D GEMM (no per-sample loop: the backward
products ``G cols^T`` and ``W^T G`` are single GEMMs too), and it makes the contiguous runs of the
copies long (``Wout * N`` elements instead of ``Wout``), which is what NumPy's strided copies and
adds cost per run. The layers keep activations in this (C, *S, N) memory order between layers;
their logical shape is torch's (N, C, *S) throughout.

Both maps are linear, and each is the other's adjoint: ``<unfold(x), c> = <x, fold(c)>``. So the
gradient of ``unfold`` is ``fold`` and the gradient of ``fold`` is ``unfold`` (the padding value is a
constant and drops out): second derivatives (``gradgradcheck``, ``hessian``, Newton) need nothing more.

The forward of ``unfold`` is one strided view of the padded input (``as_strided``: the kernel axes
stepping by ``dilation``, the output axes by ``stride``) and one copy into contiguous columns;
``fold`` adds the columns back with one strided ``+=`` per kernel offset (prod K of them, never a
loop over pixels), or one strided assignment when windows do not overlap
(``stride >= dilation (K - 1) + 1`` on every axis: non-overlapping pooling).

Scratch memory: the columns are the largest arrays of a convolutional step (25 times the input for a
5 x 5 kernel), and a fresh multi-MB array is a fresh mmap that the kernel zero-fills page by page on
first touch, every step. So the two results (unfold's columns, fold's sum) come from a small pool of
buffers kept per (shape, dtype) and handed out again only when nothing else refers to them: the pool's
own reference is the only one left (``sys.getrefcount``), so no tensor the user can still see, no
view of one and no tensor saved by a live graph can alias a reused buffer. :data:`SCRATCH_BYTES`
bounds what the pool keeps (0 turns it off).
"""

from __future__ import annotations

import contextlib
import itertools
import sys
import threading
from collections import OrderedDict

import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import _blas, ops
from .primitive import primitive
from .tensor import Tensor

__all__ = ["unfold", "fold", "max_pool_blocks", "block_max_share", "cols_linear", "wide_matmul", "long_matmul", "out_sizes",
           "window_count"]

#: The most bytes of idle buffers the scratch pool keeps (least recently used shapes go first); 0 disables it.
SCRATCH_BYTES = 64 << 20
_PER_SHAPE = 4  # buffers kept per shape: a few graphs alive at once (micro-batches) still reuse memory
_pool: OrderedDict = OrderedDict()  # (shape, dtype) -> [ndarray, ...]
_pool_lock = threading.Lock()


def _idle_refcount() -> int:
    """The reference count :func:`_scratch` sees for a buffer held by nothing but its pool list."""
    for b in [np.empty(0)]:  # the same references as in _scratch: the list, the loop variable, the argument
        return sys.getrefcount(b)
    raise AssertionError  # unreachable


_FREE = _idle_refcount()


def _scratch(shape: tuple, dtype) -> np.ndarray:
    """An uninitialised array of ``shape``: a pooled buffer no one else refers to, or a new one (pooled
    if the pool has room). The caller overwrites every element."""
    key = (tuple(shape), np.dtype(dtype))
    if SCRATCH_BYTES <= 0:
        return np.empty(key[0], key[1])
    with _pool_lock:
        bufs = _pool.get(key)
        if bufs is not None:
            _pool.move_to_end(key)
            for b in bufs:
                if sys.getrefcount(b) <= _FREE:
                    return b
        b = np.empty(key[0], key[1])
        if SCRATCH_BYTES <= 0 or b.nbytes > SCRATCH_BYTES:
            return b
        if bufs is None:
            bufs = _pool[key] = []
        if len(bufs) < _PER_SHAPE:
            bufs.append(b)
        _trim()
        return b


@contextlib.contextmanager
def scratch_off():
    """No pooled buffers inside the block: ``cost.measure`` counts the arrays in use, and a buffer the
    pool keeps for the next step is a cache (as torch's ``memory_allocated`` leaves out the blocks its
    caching allocator keeps)."""
    global SCRATCH_BYTES
    prev, SCRATCH_BYTES = SCRATCH_BYTES, 0
    try:
        yield
    finally:
        SCRATCH_BYTES = prev


def _trim() -> None:
    """Drop the least recently used shapes' buffers until the pool is within :data:`SCRATCH_BYTES`
    (a dropped buffer still in use simply becomes an ordinary array)."""
    total = sum(b.nbytes for bufs in _pool.values() for b in bufs)
    while total > SCRATCH_BYTES and len(_pool) > 1:
        _, bufs = _pool.popitem(last=False)
        total -= sum(b.nbytes for b in bufs)


def out_sizes(spatial, kernel_size, stride, padding, dilation) -> tuple[int, ...]:
    """Output sizes ``(S + before + after - dilation (K - 1) - 1) // stride + 1`` per spatial axis."""
    return tuple((s + a + b - d * (k - 1) - 1) // st + 1
                 for s, k, st, (a, b), d in zip(spatial, kernel_size, stride, padding, dilation))


def _window_view(xp: np.ndarray, kernel_size, stride, dilation, out, writeable=False) -> np.ndarray:
    """The (C, *K, *L, N) strided view of the padded (C, *S, N) array ``xp``: no copy."""
    st = xp.strides
    sp = st[1:-1]
    return as_strided(xp, xp.shape[:1] + tuple(kernel_size) + tuple(out) + xp.shape[-1:],
                      st[:1] + tuple(d * s for d, s in zip(dilation, sp)) + tuple(t * s for t, s in zip(stride, sp))
                      + st[-1:], writeable=writeable)


def _interior(spatial, padding) -> tuple:
    """The index of the unpadded input inside a padded (C, *S, N) array."""
    return (slice(None),) + tuple(slice(a, a + s) for s, (a, _) in zip(spatial, padding)) + (slice(None),)


def _disjoint(kernel_size, stride, dilation) -> bool:
    """True when no two windows share an element: ``stride >= dilation (K - 1) + 1`` on every axis."""
    return all(t >= d * (k - 1) + 1 for t, d, k in zip(stride, dilation, kernel_size))


def _check(name, x, kernel_size, out):
    if np.ndim(x) != 2 + len(kernel_size):
        raise ValueError(f"{name}: expected a ({', '.join(['N', 'C'] + ['S'] * len(kernel_size))}) input for a "
                         f"{len(kernel_size)}-d kernel {tuple(kernel_size)}, got shape {np.shape(x)}")
    if any(o < 1 for o in out):
        raise ValueError(f"{name}: kernel {tuple(kernel_size)} (with dilation and padding) does not fit in the "
                         f"input of shape {np.shape(x)}: output size would be {tuple(out)}")


def _unfold_flops(out, x, **attrs):  # a gather: no arithmetic
    return 0


@primitive("unfold", flops=_unfold_flops, reads="nothing")
def unfold(x, kernel_size, stride, padding, dilation, value=0.0):
    """im2col: (N, C, *S) -> (C, *K, *L, N) windows of x padded with ``value``.

    Without padding and with disjoint windows (non-overlapping pooling) the result is a read-only
    strided view of x, not a copy. ``padding`` is ((before, after), ...) per spatial axis; ``kernel_size``, ``stride`` and
    ``dilation`` one int per spatial axis. See the module docstring for the formula."""
    out = out_sizes(np.shape(x)[2:], kernel_size, stride, padding, dilation)
    _check("unfold", x, kernel_size, out)
    nd = len(kernel_size)
    xt = x.transpose(tuple(range(1, nd + 2)) + (0,))  # (C, *S, N): a view
    if not any(a or b for a, b in padding) and _disjoint(kernel_size, stride, dilation):
        return _window_view(xt, kernel_size, stride, dilation, out)  # each element once: a read-only view suffices
    if any(a or b for a, b in padding):
        padded = tuple(s + a + b for s, (a, b) in zip(x.shape[2:], padding))
        xp = np.full(x.shape[1:2] + padded + x.shape[:1], value, x.dtype)
        xp[_interior(x.shape[2:], padding)] = xt
    else:
        xp = xt
    cols = _scratch(x.shape[1:2] + tuple(kernel_size) + out + x.shape[:1], x.dtype)
    np.copyto(cols, _window_view(xp, kernel_size, stride, dilation, out))
    return cols


def _fold_flops(out, cols, **attrs):  # one addition per column element
    return cols.size


@primitive("fold", inputs="columns", flops=_fold_flops, reads="nothing")
def fold(cols, shape, kernel_size, stride, padding, dilation):
    """col2im, the adjoint of :func:`unfold`: (C, *K, *L, N) columns summed back into an input of
    ``shape`` (N, C, *S), returned as a view of a (C, *S, N) array.

    ``x[n, c, *p] = sum over (k, l) with l * stride + k * dilation - before = p of cols[c, *k, *l, n]``
    (what lands in the padding is dropped)."""
    nd = len(kernel_size)
    out = cols.shape[1 + nd:-1]
    padded = tuple(s + a + b for s, (a, b) in zip(shape[2:], padding))
    xp = _scratch(tuple(shape[1:2]) + padded + tuple(shape[:1]), cols.dtype)
    xp.fill(0)
    if _disjoint(kernel_size, stride, dilation):
        _window_view(xp, kernel_size, stride, dilation, out, writeable=True)[...] = cols
    else:
        for k in itertools.product(*(range(n) for n in kernel_size)):
            dst = tuple(slice(ki * d, ki * d + t * (o - 1) + 1, t) for ki, d, t, o in zip(k, dilation, stride, out))
            xp[(slice(None),) + dst + (slice(None),)] += cols[(slice(None),) + k]
    if any(a or b for a, b in padding):
        xp = xp[_interior(shape[2:], padding)]
    return xp.transpose((nd + 1,) + tuple(range(nd + 1)))


# Each is the other's adjoint (the padding value of unfold is a constant: it has no gradient).
unfold.defgrad(lambda g, out, x, kernel_size, stride, padding, dilation, value=0.0: (
    fold(g, shape=x.shape, kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation),))
fold.defgrad(lambda g, out, cols, shape, kernel_size, stride, padding, dilation: (
    unfold(g, kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation),))


def window_count(spatial, kernel_size, stride, padding, dilation, dtype) -> np.ndarray:
    """How many real (unpadded) input elements each window covers, shape (*L, 1): ``unfold`` of ones,
    summed over the kernel axes. The divisor of average pooling with ``count_include_pad=False``."""
    ones = np.ones((1, 1) + tuple(spatial), dtype)
    cols = unfold.forward(ones, kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation)
    return cols.sum(axis=tuple(range(1, 1 + len(kernel_size))))[0]


def _blocks(x: np.ndarray, kernel_size) -> np.ndarray:
    """The (C, S_1/K_1, K_1, ..., N) view of an (N, C, *S) array whose sizes the kernel divides: the
    channel-first, batch-last memory order of the layers, split into blocks by a reshape (no copy
    when x has that order, as the layers' activations do)."""
    nd = len(kernel_size)
    xt = x.transpose(tuple(range(1, nd + 2)) + (0,))
    split = tuple(n for s, k in zip(xt.shape[1:-1], kernel_size) for n in (s // k, k))
    return xt.reshape(xt.shape[:1] + split + xt.shape[-1:])


def _block_axes(nd: int) -> tuple[int, ...]:
    return tuple(range(2, 2 + 2 * nd, 2))


def _max_pool_blocks_flops(out, x, **attrs):  # a reduction: one comparison per input element
    return x.size


@primitive("max_pool_blocks", flops=_max_pool_blocks_flops, reads="both")
def max_pool_blocks(x, kernel_size):
    """Max-pooling with disjoint windows that tile the input: stride = kernel, no padding, dilation 1,
    every spatial size a multiple of the kernel's (the LeNet case). ``(N, C, *S) -> (N, C, *S/K)``,
    ``y[n, c, *l] = max_k x[n, c, *(l K + k)]``, as :func:`unfold` + max would give, but by a reshape:
    no window view and, in the backward, no :func:`fold` (the gradient is one product written in the
    input's layout). The result is an (N, C, *L) view of a (C, *L, N) array. Ties share the gradient."""
    nd = len(kernel_size)
    if np.ndim(x) != nd + 2 or any(s % k for s, k in zip(np.shape(x)[2:], kernel_size)):
        raise ValueError(f"max_pool_blocks: kernel {tuple(kernel_size)} must tile the spatial sizes of an "
                         f"(N, C, {', '.join(['S'] * nd)}) input, got shape {np.shape(x)}")
    m = _blocks(x, kernel_size)
    for ax in reversed(_block_axes(nd)):  # elementwise maxima of the K slices, one kernel axis at a time
        at = (slice(None),) * ax
        r = np.array(m[at + (0,)]) if m.shape[ax] == 1 else np.maximum(m[at + (0,)], m[at + (1,)])
        for j in range(2, m.shape[ax]):
            np.maximum(r, m[at + (j,)], out=r)
        m = r  # (C, *L, N) once every kernel axis is gone
    return m.transpose((nd + 1,) + tuple(range(nd + 1)))


@max_pool_blocks.defgrad
def _max_pool_blocks_grad(g, out, x, kernel_size):
    # dx = g (broadcast over each block) * w, w = 1[x = block max] / (ties in the block): w is piecewise
    # constant, so the rule is linear in g (a product and views) and differentiates again as such.
    nd = len(kernel_size)
    xd = x._data if isinstance(x, Tensor) else x
    od = out._data if isinstance(out, Tensor) else out
    w = block_max_share(xd, od, kernel_size=kernel_size)
    expand = xd.shape[1:2] + tuple(n for s in od.shape[2:] for n in (s, 1)) + xd.shape[:1]  # g per block
    to_last = tuple(range(1, nd + 2)) + (0,)
    gb = ops.reshape(ops.transpose(g, axes=to_last), shape=expand)
    dx = ops.reshape(ops.mul(gb, w), shape=(xd.shape[1],) + xd.shape[2:] + xd.shape[:1])  # (C, *S, N)
    return (ops.transpose(dx, axes=(nd + 1,) + tuple(range(nd + 1))),)


@primitive("block_max_share", inputs=("input", "output"), flops=lambda w, x, out, kernel_size: 2 * x.size,
           reads="nothing")
def block_max_share(x, out, kernel_size):
    """The share of the gradient each input of :func:`max_pool_blocks` gets: ``1[x = its block's max] /
    (ties in the block)``, in the blocks' (C, L1, K1, ..., N) layout; a bool mask when no block ties.
    A primitive (no gradient: the share is piecewise constant) so that the measurement counts its
    comparisons and count (2 per input; ties add a division) and a compiled step recomputes it."""
    nd = len(kernel_size)
    b = _blocks(x, kernel_size)
    expand = b.shape[:1] + tuple(n for s in out.shape[2:] for n in (s, 1)) + b.shape[-1:]
    mask = b == out.transpose(tuple(range(1, nd + 2)) + (0,)).reshape(expand)
    if np.count_nonzero(mask) == out.size and not np.isnan(out).any():
        return mask  # one maximum per block (a NaN block has none): no ties to share
    return np.divide(mask, np.count_nonzero(mask, axis=_block_axes(nd), keepdims=True), dtype=x.dtype)


#: Products of a convolution whose columns have at most this many rows (C/groups * prod K: 25 for a
#: 5 x 5 kernel on one channel) run in column blocks of :data:`BLOCK`; see :func:`cols_linear`.
SMALL_ROWS = 32
#: The block width (columns of ``cols``) of those products.
BLOCK = 4096


def blocked(rows: int, cols: int) -> bool:
    """True when the product ``W (O, rows) @ cols (rows, cols)`` of a convolution takes the blocked
    path: few rows and at least two blocks of columns."""
    return rows <= SMALL_ROWS and cols >= 2 * BLOCK


def _spans(m: int):
    return [slice(i, min(m, i + BLOCK)) for i in range(0, m, BLOCK)]


def _wide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a (p, q) @ b (q, M)`` one block of M at a time, into one (p, M) result."""
    out = np.empty((a.shape[0], b.shape[1]), np.result_type(a, b))
    for sp in _spans(b.shape[1]):
        out[:, sp] = _blas.matmul(a, b[:, sp])
    return out


def _long(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a (p, M) @ b (M, q)`` as the sum of its blocks of M (a short, very long product)."""
    spans = _spans(a.shape[1])
    out = _blas.matmul(a[:, spans[0]], b[spans[0]])
    for sp in spans[1:]:
        out += _blas.matmul(a[:, sp], b[sp])
    return out


def _product_macs(out, a, b):
    return a.shape[0] * a.shape[1] * b.shape[1]


@primitive("wide_matmul", inputs=("input", "other"), macs=_product_macs,
           flops=lambda out, a, b: 2 * _product_macs(out, a, b), reads="nothing")
def wide_matmul(a, b):
    """``a @ b`` for ``a (p, q)``, ``b (q, M)``, one block of :data:`BLOCK` columns of ``b`` at a time (a
    short and very wide product; :func:`cols_linear`'s forward and input gradient). No gradient rule:
    only :func:`cols_linear`'s rule calls it, on arrays."""
    return _wide(a, b)


@primitive("long_matmul", inputs=("input", "other"), macs=_product_macs,
           flops=lambda out, a, b: 2 * _product_macs(out, a, b), reads="nothing")
def long_matmul(a, b):
    """``a @ b`` for ``a (p, M)``, ``b (M, q)``, as the sum of its blocks of :data:`BLOCK` along M (a
    short and very long product: :func:`cols_linear`'s weight gradient). No gradient rule (see above)."""
    return _long(a, b)


def _cols_linear_macs(out, cols, w, b=None):
    return out.size * cols.shape[0]


@primitive("cols_linear", inputs=("columns", "weight", "bias"), macs=_cols_linear_macs,
           flops=lambda out, cols, w, b=None: 2 * _cols_linear_macs(out, cols, w) + (out.size if b is not None else 0))
def cols_linear(cols, w, b=None):
    """A convolution's product ``y = W cols + b`` (``y[o, m] = b[o] + sum_r W[o, r] cols[r, m]``):
    W (O, R), cols (R, M) (R = C prod K rows of unfolded windows, M = prod L * N), y (O, M); the
    numbers of :func:`chainrule.ops.linear` on ``cols^T``. For few rows and many columns (the first
    layer of an image network: R = 25, M = 50176 for LeNet at batch 64) one GEMM is a poor BLAS case,
    short and very wide (its weight gradient ``G cols^T`` very long), so every product of the forward
    and backward runs in blocks of ``ops_conv.BLOCK`` columns that stay in cache."""
    if cols.ndim != 2 or w.ndim != 2 or w.shape[1] != cols.shape[0]:
        raise ValueError(f"cols_linear: weight {np.shape(w)} @ columns {np.shape(cols)}: expected (O, R) @ (R, M)")
    y = _wide(w, cols)
    if b is not None:
        y += b[:, None]
    return y


@cols_linear.defgrad
def _cols_linear_grad(g, out, cols, w, b=None, needs=(True, True, True)):
    # dcols = W^T G, dW = G cols^T, db = G summed over columns; blocked on ndarrays, and as ordinary
    # (differentiable) products when the backward is being recorded.
    recording = any(isinstance(a, Tensor) for a in (g, cols, w))
    gc = gw = gb = None
    if needs[0]:
        gc = ops.matmul(ops.transpose(w), g) if recording else wide_matmul(w.T, g)
    if needs[1]:
        gw = ops.matmul(g, ops.transpose(cols)) if recording else long_matmul(g, cols.T)
    if len(needs) > 2 and needs[2]:
        gb = ops.sum(g, axis=1)
    return gc, gw, gb


def act_in_place(z, activation: str):
    """``activation(z)`` written over ``z``, as :func:`chainrule.ops.linear_act` does after its
    product: the activation's rule reads only its output, and the product's does not read ``z``."""
    if activation not in ops.LINEAR_ACTIVATIONS:
        raise ValueError(f"activation must be None or one of {ops.LINEAR_ACTIVATIONS}, got {activation!r}")
    y = ops.REGISTRY[activation](z, inplace=True)
    if isinstance(z, Tensor):
        z._data = np.broadcast_to(ops._overwritten(z._data.dtype), z._data.shape)  # y owns the buffer now
    return y
