"""What convolution and pooling layers cost: the rules of ``Conv1d/2d``, ``MaxPool``, ``AvgPool``,
``AdaptiveAvgPool`` and ``Unflatten``, counted as their primitives run (:mod:`chainrule.ops_conv`).

Notation, for a batch of N examples of C channels and spatial sizes S: a kernel of K = prod(kernel)
positions, L = prod(output sizes) windows per example, ``M = N L`` windows in the batch, G groups, O
output channels. A convolution is im2col then one product (:mod:`chainrule.nn.functional`):

- parameters ``O (C/G) K + O`` (the bias is optional);
- forward ``M O (C/G) K`` multiply-adds (``W (O, C/G K) @ cols (C/G K, M)``) and ``M O`` bias adds;
- backward the same product twice: ``dW = G cols^T`` always, ``dcols = W^T G`` when the input needs a
  gradient, then ``fold`` adds the ``C K M`` columns back (one FLOP each); the bias gradient sums
  ``M O`` numbers;
- it keeps the columns, ``C K M`` numbers (none when they are a view of the input: no padding, and
  windows that do not overlap, ``stride >= dilation (k - 1) + 1``; a reshape of that view may still
  copy), and its input when that needs a gradient. With ``groups > 1`` the product is batched over
  the groups and the bias and the activation do not run in place: it keeps ``M O`` more numbers for
  each of them.

Max pooling keeps its (-inf padded) windows, ``C K M`` numbers, takes their maximum (``C K M``
comparisons) and its gradient is ``5 C K M`` FLOPs (the tie mask, its count, the share of ``g``, and
the fold). Average pooling sums the windows (``C K M``) and divides (``C M``); backward a division
(``C M``) and the fold. Adaptive average pooling multiplies by constant bin-averaging matrices:
``N C O S`` multiply-adds per axis (``x P^T``), the same for its gradient ``G P``.

Shapes: a rule gets and returns the shape of one example, ``(C, *S)``. Convolution and pooling
outputs are ``(C, *L, N)`` arrays in memory (the batch axis last, :mod:`chainrule.ops_conv`); the
shape they return is a :class:`BatchLast` tuple, which tells the next convolution whether a reshape
of a window view copies.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..nn import conv as C
from ..nn import functional as F
from ..nn import pooling as P
from ..ops_conv import _disjoint, out_sizes
from .layers import Context, LayerCost, register


class BatchLast(tuple):
    """The shape of one example whose batch lives in the last axis of memory (convolution and
    pooling outputs: (C, *L, N) arrays seen as (N, C, *L))."""


class Strided(tuple):
    """The shape of one example whose axes cannot merge without a copy: a ``Flatten`` of it copies
    (a 2-d adaptive pooling of a batch-last input: the product keeps the channels outside the batch)."""


def _shape_in(name: str, layer, in_shape, nd: int) -> tuple[int, tuple[int, ...]]:
    if in_shape is None or len(in_shape) != nd + 1:
        raise ValueError(f"estimate: {name} ({type(layer).__name__}) needs examples of shape (C, {', '.join('S' * nd)});"
                         f" got {None if in_shape is None else tuple(in_shape)} (pass input_shape)")
    return int(in_shape[0]), tuple(int(s) for s in in_shape[1:])


def _window_strides(c: int, spatial: tuple, n: int, batch_last: bool, kernel, stride, dilation, out) -> tuple:
    """Element strides of unfold's (C, *K, *L, N) window view of an unpadded input."""
    s = math.prod(spatial)
    if batch_last:  # (C, *S, N) contiguous
        sp = tuple(math.prod(spatial[i + 1:]) * n for i in range(len(spatial)))
        sc, sn = s * n, 1
    else:  # an (N, C, *S) contiguous batch, transposed
        sp = tuple(math.prod(spatial[i + 1:]) for i in range(len(spatial)))
        sc, sn = s, c * s
    return ((sc,) + tuple(d * t for d, t in zip(dilation, sp)) + tuple(st * t for st, t in zip(stride, sp)) + (sn,))


def _reshape_copies(shape: tuple, strides: tuple, new_shape: tuple) -> bool:
    """Whether NumPy's reshape of an array with these element strides copies: asked of NumPy itself on a
    view of one byte (no memory is read)."""
    v = as_strided(np.zeros(1, np.int8), shape, strides)
    try:
        np.reshape(v, new_shape, copy=False)
    except ValueError:
        return True
    return False


def _geometry(layer, in_shape, ctx: Context):
    nd = layer._nd
    c, spatial = _shape_in(ctx.name, layer, in_shape, nd)
    if c != layer.in_channels:
        raise ValueError(f"estimate: {ctx.name} ({type(layer).__name__}) gets {c} channels (examples of shape "
                         f"{tuple(in_shape)}) but in_channels={layer.in_channels}")
    k, st, d = layer.kernel_size, layer.stride, layer.dilation
    pads = F._conv_padding(type(layer).__name__, layer.padding, k, d, st)
    out = out_sizes(spatial, k, st, pads, d)
    if any(o < 1 for o in out):
        raise ValueError(f"estimate: {ctx.name} ({type(layer).__name__}): kernel {k} does not fit examples of "
                         f"shape {tuple(in_shape)} (output {out})")
    return c, spatial, k, st, d, pads, out


@register(C.Conv1d, C.Conv2d)
def _conv(m, in_shape, ctx: Context):
    """Convolution: im2col and one product (see the module docstring for the formulas)."""
    c, spatial, k, st, d, pads, out = _geometry(m, in_shape, ctx)
    N, O, G, K, L = ctx.batch_size, m.out_channels, m.groups, math.prod(k), math.prod(out)  # noqa: E741
    M, ck, bias, dx = N * L, (c // G) * K, m.bias is not None, ctx.needs_input_grad
    gather = m.padding_mode != "zeros" and any(a or b for a, b in pads)  # reflect/replicate/circular: x[idx]
    padded = tuple(s + a + b for s, (a, b) in zip(spatial, pads))
    src = c * math.prod(padded if gather else spatial) * N  # what unfold reads
    cols = c * K * M
    view = (gather or not any(a or b for a, b in pads)) and _disjoint(k, st, d)
    if view:  # the reshape into the product's operand may still copy the strided windows
        shape = (c, *k, *out, N)
        strides = _window_strides(c, padded if gather else spatial, N, isinstance(in_shape, BatchLast) and not gather,
                                  k, st, d, out)
        view = not _reshape_copies(shape, strides, (ck, -1) if G == 1 else (G, ck, -1))
    macs = M * O * ck
    extra = 0 if G == 1 else M * O * (bias + (ctx.activation is not None))  # not in place when grouped
    saved = (src if dx or view else 0) + (0 if view else cols) + (c * math.prod(spatial) * N if gather and dx else 0)
    back = (M * O if bias else 0) + (cols if dx else 0) + (src if gather and dx else 0)
    # backward holds g with the columns' gradient (the product's rule), then that with fold's padded result
    temps = (max(M * O + cols, cols + c * math.prod(padded) * N) if dx else M * O) * ctx.itemsize
    lc = LayerCost(ctx.name, "conv", c * math.prod(spatial), O * L, params=O * ck + (O if bias else 0),
                   forward_macs=macs, forward_flops=2 * macs + (M * O if bias else 0),
                   backward_input_macs=macs if dx else 0, backward_weight_macs=macs, backward_other_flops=back,
                   saved=saved + extra, backward_temp_bytes=temps, keeps_input=dx or (view and not gather),
                   forward_temp=(0 if view else cols) + (src if gather else 0) + (M * O if extra else 0))
    return lc, BatchLast((O, *out))


def _pool_geometry(m, in_shape, ctx: Context, dilation=1):
    nd = m._nd
    c, spatial = _shape_in(ctx.name, m, in_shape, nd)
    dummy = np.broadcast_to(np.zeros((), np.float32), (1, c, *spatial))  # shape only: nothing is read
    k, st, pads, d, out = F._pool_geometry(type(m).__name__, dummy, nd, m.kernel_size, m.stride, m.padding,
                                           dilation, m.ceil_mode)
    view = not any(a or b for a, b in pads) and _disjoint(k, st, d)
    blocks = (tuple(st) == tuple(k) and tuple(d) == (1,) * nd and not any(a or b for a, b in pads)
              and not any(s % ki for s, ki in zip(spatial, k)))  # F.max_pool*'s reshape path (ops_conv.max_pool_blocks)
    return c, spatial, math.prod(k), out, view, blocks


@register(P.MaxPool1d, P.MaxPool2d)
def _max_pool(m, in_shape, ctx: Context):
    """``max`` over the (-inf padded) windows: ``C K M`` comparisons; backward ``5 C K M``. Windows that
    tile the input (stride = kernel) take the blocks path: backward ``3 C S N`` (the share of each input,
    two per input, and one product)."""
    c, spatial, K, out, view, blocks = _pool_geometry(m, in_shape, ctx, m.dilation)
    N, L, dx = ctx.batch_size, math.prod(out), ctx.needs_input_grad
    cols, x, y = c * K * N * L, c * math.prod(spatial) * N, c * N * L
    lc = LayerCost(ctx.name, "maxpool", c * math.prod(spatial), c * L, forward_flops=cols,
                   backward_other_flops=(3 * x if blocks else 5 * cols) if dx else 0,
                   saved=(x + (0 if view else cols)) if dx else 0, keeps_input=dx,
                   backward_temp_bytes=_max_pool_temps(x, y, cols, ctx.itemsize) if dx else 0,
                   forward_temp=0 if view else cols)
    return lc, BatchLast((c, *out))


@register(P.AvgPool1d, P.AvgPool2d)
def _avg_pool(m, in_shape, ctx: Context):
    """A sum over the windows (``C K M``) and a division (``C M``); backward a division and the fold."""
    c, spatial, K, out, view, _ = _pool_geometry(m, in_shape, ctx)
    N, L, dx = ctx.batch_size, math.prod(out), ctx.needs_input_grad
    cols, x, y = c * K * N * L, c * math.prod(spatial) * N, c * N * L
    divisor_array = m.divisor_override is None and (not m.count_include_pad or m.ceil_mode)  # per-window counts
    kept = x + (0 if view else cols) + y + (L if divisor_array else 0)
    lc = LayerCost(ctx.name, "avgpool", c * math.prod(spatial), c * L, forward_flops=cols + y,
                   backward_other_flops=y + cols if dx else 0, saved=kept if dx else 0, keeps_input=dx,
                   backward_temp_bytes=_avg_pool_temps(x, y, cols) * ctx.itemsize if dx else 0,
                   forward_temp=0 if view else cols)
    return lc, BatchLast((c, *out))


def _max_pool_temps(x: int, y: int, cols: int, isz: int) -> int:
    """Bytes at the largest step of max pooling's backward: g, the tie mask (bool), g times it, the
    ties' count (int64) and the share; then the share and fold's result."""
    return max(isz * (y + 2 * cols) + cols + 8 * y, isz * (cols + x))


def _avg_pool_temps(x: int, y: int, cols: int) -> int:
    """The largest of the backward's steps: g and g / count; that and the windows' gradient (sum's
    rule broadcasts: a copy up to 4096 numbers, ops.broadcast_to, a view above); it and the fold's result."""
    spread = cols if cols <= 4096 else 0
    return max(2 * y, y + spread, spread + x)


@register(P.AdaptiveAvgPool1d, P.AdaptiveAvgPool2d)
def _adaptive_avg_pool(m, in_shape, ctx: Context):
    """``x P^T`` (and ``P_h x`` first in 2-d): products with constant (O, S) bin-averaging matrices."""
    nd = m._nd
    c, spatial = _shape_in(ctx.name, m, in_shape, nd)
    size = m.output_size
    if isinstance(size, (tuple, list)) and len(size) == nd:
        size = tuple(s if o is None else o for o, s in zip(size, spatial))
    out = F._ntuple(type(m).__name__, "output_size", size, nd)
    N, dx = ctx.batch_size, ctx.needs_input_grad
    if nd == 1:
        macs, mid, consts = [N * c * out[0] * spatial[0]], [], spatial[0] * out[0]
    else:  # P_h (Oh, H) @ x, then @ P_w^T (W, Ow)
        macs = [N * c * out[0] * spatial[1] * spatial[0], N * c * out[0] * out[1] * spatial[1]]
        mid, consts = [N * c * out[0] * spatial[1]], out[0] * spatial[0] + spatial[1] * out[1]
    x = c * math.prod(spatial) * N
    lc = LayerCost(ctx.name, "adaptiveavgpool", c * math.prod(spatial), c * math.prod(out), forward_macs=sum(macs),
                   forward_flops=2 * sum(macs), backward_input_macs=sum(macs) if dx else 0,
                   saved=x + sum(mid) + consts if dx else 0, keeps_input=dx,
                   backward_temp_bytes=(c * math.prod(out) * N + x + sum(mid)) * ctx.itemsize if dx else 0,
                   forward_temp=sum(mid))
    copies = nd == 2 and isinstance(in_shape, BatchLast) and math.prod(out) > 1
    return lc, (Strided if copies else tuple)((c, *out))


@register(C.Unflatten)
def _unflatten(m, in_shape, ctx: Context):
    """A reshape: a view, no arithmetic, nothing saved."""
    if in_shape is None:
        return None, None
    full = (ctx.batch_size, *in_shape)
    d = m.dim % len(full)
    if d == 0:
        raise ValueError(f"estimate: {ctx.name} (Unflatten) splits the batch axis; the estimate prices one example")
    new = m.unflattened_size
    known = math.prod(s for s in new if s != -1)
    new = tuple(full[d] // known if s == -1 else s for s in new)
    return None, tuple(full[1:d]) + new + tuple(full[d + 1:])
