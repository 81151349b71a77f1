"""The two primitives behind convolution and pooling: ``unfold`` (im2col) and its adjoint ``fold`` (col2im).

For an input x of shape (N, C, *S) (S the spatial sizes, one or two of them, or more) and a kernel of
size K, ``unfold`` gathers every kernel window into columns::

    cols[n, c, *k, *l] = xpad[n, c, *(l * stride + k * dilation)]        shape (N, C, *K, *L)

where ``xpad`` is x padded with ``value`` (0 for convolution, -inf for max-pooling) and
``L_i = (S_i + before_i + after_i - dilation_i (K_i - 1) - 1) // stride_i + 1`` are the output sizes.
Reshaped to (N, C prod K, prod L) this is ``torch.nn.functional.unfold``'s layout, and a convolution
is one batched matrix product ``W (O, C prod K) @ cols (N, C prod K, prod L)`` (:mod:`chainrule.nn.functional`).

Both maps are linear, and each is the other's adjoint: ``<unfold(x), c> = <x, fold(c)>``. So the
gradient of ``unfold`` is ``fold`` and the gradient of ``fold`` is ``unfold`` (the padding value is a
constant and drops out): second derivatives (``gradgradcheck``, ``hessian``, Newton) need nothing more.

The forward of ``unfold`` is one strided view of the padded input (``as_strided``: shape
(N, C, *K, *L), the kernel axes stepping by ``dilation``, the output axes by ``stride``) and one copy
into contiguous columns; ``fold`` adds the columns back with one strided ``+=`` per kernel offset
(prod K of them, never a loop over pixels), or one strided assignment when windows do not overlap
(``stride >= dilation (K - 1) + 1`` on every axis: non-overlapping pooling).
"""

from __future__ import annotations

import itertools

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .ops import _reads, primitive

__all__ = ["unfold", "fold", "out_sizes", "window_count"]


def out_sizes(spatial, kernel_size, stride, padding, dilation) -> tuple[int, ...]:
    """Output sizes ``(S + before + after - dilation (K - 1) - 1) // stride + 1`` per spatial axis."""
    return tuple((s + a + b - d * (k - 1) - 1) // st + 1
                 for s, k, st, (a, b), d in zip(spatial, kernel_size, stride, padding, dilation))


def _window_view(xp: np.ndarray, kernel_size, stride, dilation, out, writeable=False) -> np.ndarray:
    """The (N, C, *K, *L) strided view of the padded input ``xp``: no copy."""
    st = xp.strides
    sp = st[2:]
    return as_strided(xp, xp.shape[:2] + tuple(kernel_size) + tuple(out),
                      st[:2] + tuple(d * s for d, s in zip(dilation, sp)) + tuple(t * s for t, s in zip(stride, sp)),
                      writeable=writeable)


def _check(name, x, kernel_size, out):
    if np.ndim(x) != 2 + len(kernel_size):
        raise ValueError(f"{name}: expected a ({', '.join(['N', 'C'] + ['S'] * len(kernel_size))}) input for a "
                         f"{len(kernel_size)}-d kernel {tuple(kernel_size)}, got shape {np.shape(x)}")
    if any(o < 1 for o in out):
        raise ValueError(f"{name}: kernel {tuple(kernel_size)} (with dilation and padding) does not fit in the "
                         f"input of shape {np.shape(x)}: output size would be {tuple(out)}")


def _unfold_flops(out, x, **attrs):  # a gather: no arithmetic
    return 0


@primitive("unfold", _unfold_flops)
def unfold(x, kernel_size, stride, padding, dilation, value=0.0):
    """im2col: (N, C, *S) -> (N, C, *K, *L) windows of x padded with ``value``.

    ``padding`` is ((before, after), ...) per spatial axis; ``kernel_size``, ``stride`` and
    ``dilation`` one int per spatial axis. See the module docstring for the formula."""
    out = out_sizes(np.shape(x)[2:], kernel_size, stride, padding, dilation)
    _check("unfold", x, kernel_size, out)
    if any(a or b for a, b in padding):
        xp = np.full(x.shape[:2] + tuple(s + a + b for s, (a, b) in zip(x.shape[2:], padding)), value, x.dtype)
        xp[(slice(None), slice(None)) + tuple(slice(a, a + s) for s, (a, _) in zip(x.shape[2:], padding))] = x
    else:
        xp = x
    cols = np.empty(x.shape[:2] + tuple(kernel_size) + out, x.dtype)
    np.copyto(cols, _window_view(xp, kernel_size, stride, dilation, out))
    return cols


def _fold_flops(out, cols, **attrs):  # one addition per column element
    return cols.size


@primitive("fold", _fold_flops)
def fold(cols, shape, kernel_size, stride, padding, dilation):
    """col2im, the adjoint of :func:`unfold`: (N, C, *K, *L) columns summed back into an input of ``shape``.

    ``x[n, c, *p] = sum over (k, l) with l * stride + k * dilation - before = p of cols[n, c, *k, *l]``
    (what lands in the padding is dropped)."""
    nd = len(kernel_size)
    out = cols.shape[2 + nd:]
    padded = tuple(shape[:2]) + tuple(s + a + b for s, (a, b) in zip(shape[2:], padding))
    xp = np.zeros(padded, cols.dtype)
    if all(t >= d * (k - 1) + 1 for t, d, k in zip(stride, dilation, kernel_size)):  # windows do not overlap
        _window_view(xp, kernel_size, stride, dilation, out, writeable=True)[...] = cols
    else:
        whole = (slice(None), slice(None))
        for k in itertools.product(*(range(n) for n in kernel_size)):
            dst = tuple(slice(ki * d, ki * d + t * (o - 1) + 1, t) for ki, d, t, o in zip(k, dilation, stride, out))
            xp[whole + dst] += cols[whole + k]
    if any(a or b for a, b in padding):
        xp = np.ascontiguousarray(xp[(slice(None), slice(None)) +
                                     tuple(slice(a, a + s) for s, (a, _) in zip(shape[2:], padding))])
    return xp


# Each is the other's adjoint (the padding value of unfold is a constant: it has no gradient).
unfold.defgrad(lambda g, out, x, kernel_size, stride, padding, dilation, value=0.0: (
    fold(g, shape=x.shape, kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation),))
fold.defgrad(lambda g, out, cols, shape, kernel_size, stride, padding, dilation: (
    unfold(g, kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation),))
_reads(False, False, unfold, fold)  # the rules use only g and the attributes


def window_count(spatial, kernel_size, stride, padding, dilation, dtype) -> np.ndarray:
    """How many real (unpadded) input elements each window covers, shape (*L): ``unfold`` of ones, summed
    over the kernel axes. The divisor of average pooling with ``count_include_pad=False``."""
    ones = np.ones((1, 1) + tuple(spatial), dtype)
    cols = unfold.forward(ones, kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation)
    return cols.sum(axis=tuple(range(2, 2 + len(kernel_size))))[0, 0]
