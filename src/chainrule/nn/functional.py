"""``import chainrule.nn.functional as F``: the same functions as :mod:`chainrule.functional`
(PyTorch's spelling of the import), plus the convolution, pooling and normalization functions of
``torch.nn.functional``. Anything added to :mod:`chainrule.functional` later is reachable here too.

Everything here is a composite of primitives, so every function is differentiable to any order:

- ``conv1d`` / ``conv2d``: ``unfold`` (im2col, :mod:`chainrule.ops_conv`) and ONE matrix product
  ``y = W (O, C prod K) @ cols (C prod K, prod L * N)``, batched over the G groups when ``groups > 1``,
  plus the bias. Results are (N, C, *L) views of (C, *L, N) arrays (see :mod:`chainrule.ops_conv`).
- ``max_pool*`` / ``avg_pool*``: ``unfold`` and a max or a mean over the kernel axes (max-pooling whose
  windows tile the input is a reshape into blocks instead: ``ops_conv.max_pool_blocks``); ``adaptive_avg_pool*``:
  ``P_h x P_w^T`` with constant averaging matrices P (torch's bins ``[floor(i S/O), ceil((i+1) S/O))``).
- ``batch_norm`` / ``layer_norm``: ``(x - mean) / sqrt(var + eps) * weight + bias`` with the biased variance.
"""

from __future__ import annotations

import builtins
import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import functional as _functional
from .. import ops as _ops
from ..autograd import replayed as _replayed
from ..creation import as_ndarray as _data
from ..functional import *  # noqa: F403
from ..ops_conv import act_in_place as _act_in_place
from ..ops_conv import blocked as _cols_blocked
from ..ops_conv import cols_linear as _cols_linear
from ..ops_conv import fold as _fold
from ..ops_conv import max_pool_blocks as _max_pool_blocks
from ..ops_conv import out_sizes as _out_sizes
from ..ops_conv import unfold as _unfold
from ..ops_conv import window_count as _window_count
from ..tensor import Tensor as _Tensor
from .layers import l2_penalty  # noqa: F401

_IntOrTuple = int | Sequence[int]


def __getattr__(name: str):
    return getattr(_functional, name)
from .embedding import embedding, embedding_bag  # noqa: E402, F401


# ----- argument checking --------------------------------------------------------------------------
def _ntuple(name: str, what: str, v: Any, n: int, low: int = 1) -> tuple[int, ...]:
    """An int or a length-n sequence of ints >= low, as an n-tuple."""
    items = (v,) * n if isinstance(v, numbers.Integral) else tuple(v) if isinstance(v, (tuple, list)) else None
    if items is None or len(items) != n or any(isinstance(i, bool) or not isinstance(i, numbers.Integral)
                                               for i in items):
        raise ValueError(f"{name}: {what} must be an int or a sequence of {n} ints, got {v!r}")
    if any(i < low for i in items):
        raise ValueError(f"{name}: {what} must be >= {low}, got {v!r}")
    return tuple(int(i) for i in items)


def _shape(x) -> tuple[int, ...]:
    return tuple(np.shape(x))


def _batched(name: str, x, nd: int, channels: str = "C"):
    """(x with a batch axis, whether one was added): torch also takes unbatched (C, *S) inputs."""
    if np.ndim(x) == nd + 1:
        return _ops.reshape(x, shape=(1,) + _shape(x)), True
    if np.ndim(x) != nd + 2:
        dims = ", ".join(["N", channels] + ["L"] if nd == 1 else ["N", channels, "H", "W"])
        raise ValueError(f"{name}: expected a ({dims}) input (or one without N), got shape {_shape(x)}")
    return x, False


def _unbatch(y, squeeze: bool):
    return _ops.reshape(y, shape=_shape(y)[1:]) if squeeze else y


def _to_batch_first(y, squeeze: bool):
    """(C, *L, N) -> the (N, C, *L) view (then without N for an unbatched input)."""
    nd = np.ndim(y) - 2
    return _unbatch(_ops.transpose(y, axes=(nd + 1,) + tuple(range(nd + 1))), squeeze)


def _same_dtype(name: str, *xs) -> None:
    dts = {_data(x).dtype for x in xs if x is not None}
    floats = {d for d in dts if d.kind == "f"}
    if len(floats) > 1:
        raise TypeError(f"{name}: input, weight and bias must have the same dtype, got {sorted(map(str, floats))}")


# ----- convolution --------------------------------------------------------------------------------
def _conv_padding(name: str, padding: Any, kernel: tuple, dilation: tuple, stride: tuple) -> tuple:
    """((before, after), ...) from an int, a tuple, 'valid' or 'same' (for an even span torch puts the
    extra element after)."""
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * len(kernel)
        if padding != "same":
            raise ValueError(f"{name}: padding must be an int, a tuple, 'valid' or 'same', got {padding!r}")
        if any(s != 1 for s in stride):
            raise ValueError(f"{name}: padding='same' is not supported for strided convolutions (stride={stride})")
        total = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return tuple((t // 2, t - t // 2) for t in total)
    return tuple((p, p) for p in _ntuple(name, "padding", padding, len(kernel), low=0))


def _convnd(nd: int, input, weight, bias, stride, padding, dilation, groups: int, activation: str | None = None):
    name = f"conv{nd}d"
    x, squeeze = _batched(name, input, nd)
    _same_dtype(name, x, weight, bias)
    ws = _shape(weight)
    if len(ws) != nd + 2:
        raise ValueError(f"{name}: weight must be (out_channels, in_channels/groups, *kernel) with {nd + 2} dims, "
                         f"got shape {ws}")
    if isinstance(groups, bool) or not isinstance(groups, numbers.Integral) or groups < 1:
        raise ValueError(f"{name}: groups must be a positive int, got {groups!r}")
    n, c = _shape(x)[:2]
    o, k = ws[0], ws[2:]
    if c != ws[1] * groups:
        raise ValueError(f"{name}: input {_shape(input)} has {c} channels but weight {ws} expects "
                         f"{ws[1] * groups} (groups={groups})")
    if o % groups:
        raise ValueError(f"{name}: out_channels {o} (weight {ws}) is not divisible by groups={groups}")
    if bias is not None and _shape(bias) != (o,):
        raise ValueError(f"{name}: bias must have shape ({o},) for weight {ws}, got {_shape(bias)}")
    stride = _ntuple(name, "stride", stride, nd)
    dilation = _ntuple(name, "dilation", dilation, nd)
    pad = _conv_padding(name, padding, k, dilation, stride)
    out = _out_sizes(_shape(x)[2:], k, stride, pad, dilation)
    if any(s < 1 for s in out):
        raise ValueError(f"{name}: kernel {k} (dilation {dilation}, padding {pad}) is larger than the padded "
                         f"input {_shape(input)}: the output would be {out}")
    cols = _unfold(x, kernel_size=k, stride=stride, padding=pad, dilation=dilation)  # (C, *K, *L, N)
    ck = (c // groups) * math.prod(k)
    if groups == 1 and _cols_blocked(ck, math.prod(out) * n):  # few rows, very wide: blocked products
        w2 = _ops.reshape(weight, shape=(o, ck))
        y = _cols_linear(_ops.reshape(cols, shape=(ck, -1)), w2, *(() if bias is None else (bias,)))
        if activation is not None:
            y = _act_in_place(y, activation)
    elif groups == 1:
        # One 2-D GEMM, through the fused linear primitive: rows = cols^T (prod L * N, C prod K) is a
        # transposed view, and linear computes (W cols)^T with the bias (and the activation) in place.
        rows = _ops.transpose(_ops.reshape(cols, shape=(ck, -1)))
        y = _ops.linear_act(rows, _ops.reshape(weight, shape=(o, ck)), bias, activation=activation)
        y = _ops.transpose(y)  # (O, prod L * N), contiguous
    else:  # one GEMM batched over the groups: (G, O/G, C/G prod K) @ (G, C/G prod K, prod L * N)
        y = _ops.matmul(_ops.reshape(weight, shape=(groups, o // groups, ck)),
                        _ops.reshape(cols, shape=(groups, ck, -1)))
        if bias is not None:
            y = _ops.add(y, _ops.reshape(bias, shape=(groups, o // groups, 1)))
        if activation is not None:
            y = _ops.REGISTRY[activation](y)
    return _to_batch_first(_ops.reshape(y, shape=(o,) + out + (n,)), squeeze)


def conv1d(input, weight, bias=None, stride: _IntOrTuple = 1, padding: _IntOrTuple | str = 0,  # noqa: A002
           dilation: _IntOrTuple = 1, groups: int = 1):
    """1-d cross-correlation, as ``torch.nn.functional.conv1d``: input (N, C, L), weight (O, C/groups, K),
    ``y[n, o, l] = b[o] + sum_{c, k} W[o, c, k] x[n, g c, l stride + k dilation - pad]``."""
    return _convnd(1, input, weight, bias, stride, padding, dilation, groups)


def conv2d(input, weight, bias=None, stride: _IntOrTuple = 1, padding: _IntOrTuple | str = 0,  # noqa: A002
           dilation: _IntOrTuple = 1, groups: int = 1):
    """2-d cross-correlation, as ``torch.nn.functional.conv2d``: input (N, C, H, W), weight
    (O, C/groups, kH, kW), ``y[n, o, i, j] = b[o] + sum_{c, p, q} W[o, c, p, q] xpad[n, g c, i sH + p dH, j sW + q dW]``."""
    return _convnd(2, input, weight, bias, stride, padding, dilation, groups)


def unfold(input, kernel_size: _IntOrTuple, dilation: _IntOrTuple = 1, padding: _IntOrTuple = 0,  # noqa: A002
           stride: _IntOrTuple = 1):
    """im2col as ``torch.nn.functional.unfold``: (N, C, H, W) -> (N, C kH kW, L) sliding blocks."""
    x = input
    if np.ndim(x) != 4:
        raise ValueError(f"unfold: expected an (N, C, H, W) input, got shape {_shape(x)}")
    k = _ntuple("unfold", "kernel_size", kernel_size, 2)
    pad = tuple((p, p) for p in _ntuple("unfold", "padding", padding, 2, low=0))
    cols = _unfold(x, kernel_size=k, stride=_ntuple("unfold", "stride", stride, 2),
                   padding=pad, dilation=_ntuple("unfold", "dilation", dilation, 2))  # (C, kH, kW, *L, N)
    n, c = _shape(x)[:2]
    return _ops.reshape(_ops.transpose(cols, axes=(5, 0, 1, 2, 3, 4)), shape=(n, c * math.prod(k), -1))


def fold(input, output_size: _IntOrTuple, kernel_size: _IntOrTuple, dilation: _IntOrTuple = 1,  # noqa: A002
         padding: _IntOrTuple = 0, stride: _IntOrTuple = 1):
    """col2im as ``torch.nn.functional.fold``: (N, C kH kW, L) blocks summed into (N, C, *output_size)."""
    size = _ntuple("fold", "output_size", output_size, 2)
    k = _ntuple("fold", "kernel_size", kernel_size, 2)
    st, dil = _ntuple("fold", "stride", stride, 2), _ntuple("fold", "dilation", dilation, 2)
    pad = tuple((p, p) for p in _ntuple("fold", "padding", padding, 2, low=0))
    out = _out_sizes(size, k, st, pad, dil)
    kk = math.prod(k)
    if np.ndim(input) != 3 or _shape(input)[1] % kk or _shape(input)[2] != math.prod(out):
        raise ValueError(f"fold: expected an (N, C * {kk}, {math.prod(out)}) input for kernel {k} and output "
                         f"{size}, got shape {_shape(input)}")
    n, c = _shape(input)[0], _shape(input)[1] // kk
    cols = _ops.transpose(_ops.reshape(input, shape=(n, c) + k + out), axes=(1, 2, 3, 4, 5, 0))
    return _fold(cols, shape=(n, c) + size, kernel_size=k, stride=st, padding=pad, dilation=dil)


# ----- pooling ------------------------------------------------------------------------------------
def _pool_args(name: str, nd: int, kernel_size, stride, padding) -> tuple[tuple[int, ...], ...]:
    """(kernel, stride, padding) as n-tuples; stride defaults to the kernel, padding is at most half of it."""
    k = _ntuple(name, "kernel_size", kernel_size, nd)
    st = k if stride is None or (isinstance(stride, (tuple, list)) and not stride) else _ntuple(name, "stride", stride, nd)
    p = _ntuple(name, "padding", padding, nd, low=0)
    if any(pi > ki // 2 for pi, ki in zip(p, k)):
        raise ValueError(f"{name}: pad should be at most half of kernel size, but got pad={padding} and "
                         f"kernel_size={kernel_size}")
    return k, st, p


def _pool_geometry(name: str, x, nd: int, kernel_size, stride, padding, dilation, ceil_mode: bool):
    """(kernel, stride, ((before, after), ...), dilation, out): torch's output size, with the windows
    that ceil_mode adds at the end served by extra padding after the input."""
    k, st, p = _pool_args(name, nd, kernel_size, stride, padding)
    d = _ntuple(name, "dilation", dilation, nd)
    spatial = _shape(x)[2:]
    out = []
    for s, ki, ti, pi, di in zip(spatial, k, st, p, d):
        span = s + 2 * pi - di * (ki - 1) - 1
        o = (span + (ti - 1 if ceil_mode else 0)) // ti + 1
        if ceil_mode and (o - 1) * ti >= s + pi:  # the last window must start inside the input or left pad
            o -= 1
        if o < 1:
            raise ValueError(f"{name}: kernel {k} (dilation {d}, padding {p}) is larger than the padded input "
                             f"{_shape(x)}: the output would have size {o}")
        out.append(o)
    pads = tuple((pi, builtins.max(pi, (o - 1) * ti + di * (ki - 1) + 1 - s - pi))
                 for s, ki, ti, pi, di, o in zip(spatial, k, st, p, d, out))
    return k, st, pads, d, tuple(out)


def _kernel_axes(nd: int) -> tuple[int, ...]:
    return tuple(range(1, 1 + nd))


def _max_poolnd(nd, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
    name = f"max_pool{nd}d"
    if return_indices:
        raise NotImplementedError(f"{name}: return_indices=True is not supported (the gradient does not need "
                                  "indices: ties share it)")
    x, squeeze = _batched(name, input, nd)
    k, st, pads, d, _ = _pool_geometry(name, x, nd, kernel_size, stride, padding, dilation, ceil_mode)
    if st == k and d == (1,) * nd and not any(a or b for a, b in pads) and not any(
            s % ki for s, ki in zip(_shape(x)[2:], k)):  # windows tile the input: blocks by a reshape
        return _unbatch(_max_pool_blocks(x, kernel_size=k), squeeze)
    cols = _unfold(x, kernel_size=k, stride=st, padding=pads, dilation=d, value=-np.inf)
    return _to_batch_first(_ops.max(cols, axis=_kernel_axes(nd)), squeeze)


def max_pool1d(input, kernel_size: _IntOrTuple, stride: _IntOrTuple | None = None,  # noqa: A002
               padding: _IntOrTuple = 0, dilation: _IntOrTuple = 1, ceil_mode: bool = False,
               return_indices: bool = False):
    """``y[n, c, l] = max_k x[n, c, l stride + k dilation - pad]`` (padding counts as -inf); stride
    defaults to the kernel size. A tie shares the gradient equally (torch gives it all to one element)."""
    return _max_poolnd(1, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool2d(input, kernel_size: _IntOrTuple, stride: _IntOrTuple | None = None,  # noqa: A002
               padding: _IntOrTuple = 0, dilation: _IntOrTuple = 1, ceil_mode: bool = False,
               return_indices: bool = False):
    """The maximum over each kH x kW window (see :func:`max_pool1d`), as ``torch.nn.functional.max_pool2d``."""
    return _max_poolnd(2, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def _avg_poolnd(nd, input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    name = f"avg_pool{nd}d"
    x, squeeze = _batched(name, input, nd)
    k, st, pads, d, out = _pool_geometry(name, x, nd, kernel_size, stride, padding, 1, ceil_mode)
    s = _ops.sum(_unfold(x, kernel_size=k, stride=st, padding=pads, dilation=d), axis=_kernel_axes(nd))
    dtype = s._data.dtype if isinstance(s, _Tensor) else s.dtype
    if divisor_override is not None:
        if isinstance(divisor_override, bool) or not isinstance(divisor_override, numbers.Integral) \
                or divisor_override < 1:
            raise ValueError(f"{name}: divisor_override must be a positive int, got {divisor_override!r}")
        return _to_batch_first(_ops.div(s, float(divisor_override)), squeeze)
    spatial = _shape(x)[2:]
    sym = tuple((a, a) for a, _ in pads)
    if not count_include_pad:  # the real elements of each window
        count = _window_count(spatial, k, st, pads, d, dtype)
    elif pads != sym:  # ceil_mode's extra windows: count what lies within the symmetric padding
        padded = tuple(sp + 2 * a for sp, (a, _) in zip(spatial, pads))
        count = _window_count(padded, k, st, tuple((0, b - a) for a, b in pads), d, dtype)
    else:
        return _to_batch_first(_ops.div(s, float(math.prod(k))), squeeze)
    return _to_batch_first(_ops.div(s, count), squeeze)  # count (*L, 1) against s (C, *L, N)


def avg_pool1d(input, kernel_size: _IntOrTuple, stride: _IntOrTuple | None = None,  # noqa: A002
               padding: _IntOrTuple = 0, ceil_mode: bool = False, count_include_pad: bool = True):
    """``y[n, c, l] = sum_k xpad[n, c, l stride + k] / K``; with ``count_include_pad=False`` the divisor
    is the number of real (unpadded) elements in the window."""
    return _avg_poolnd(1, input, kernel_size, stride, padding, ceil_mode, count_include_pad, None)


def avg_pool2d(input, kernel_size: _IntOrTuple, stride: _IntOrTuple | None = None,  # noqa: A002
               padding: _IntOrTuple = 0, ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: int | None = None):
    """The mean over each kH x kW window (see :func:`avg_pool1d`); ``divisor_override`` replaces kH kW."""
    return _avg_poolnd(2, input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)


def _adaptive_matrix(size: int, out: int, dtype) -> np.ndarray:
    """(out, size) averaging matrix: row i averages torch's bin ``[floor(i size/out), ceil((i+1) size/out))``."""
    P = np.zeros((out, size), dtype)
    for i in range(out):
        a, b = (i * size) // out, -((-(i + 1) * size) // out)
        P[i, a:b] = 1.0 / (b - a)
    return P


def _adaptive_avg_poolnd(nd, input, output_size):
    name = f"adaptive_avg_pool{nd}d"
    x, squeeze = _batched(name, input, nd)
    spatial = _shape(x)[2:]
    if isinstance(output_size, (tuple, list)) and len(output_size) == nd:  # None keeps that axis's size
        output_size = tuple(s if o is None else o for o, s in zip(output_size, spatial))
    out = _ntuple(name, "output_size", output_size, nd)
    dtype = _data(x).dtype
    y = x
    if nd == 2:  # P_h @ x over H, then @ P_w^T over W
        y = _ops.matmul(_adaptive_matrix(spatial[0], out[0], dtype), y)
    y = _ops.matmul(y, _adaptive_matrix(spatial[-1], out[-1], dtype).T)
    return _unbatch(y, squeeze)


def adaptive_avg_pool1d(input, output_size: _IntOrTuple):  # noqa: A002
    """Average over ``output_size`` bins of nearly equal length, as ``torch.nn.functional.adaptive_avg_pool1d``:
    ``y = x P^T``, P the (O, L) matrix of bin averages."""
    return _adaptive_avg_poolnd(1, input, output_size)


def adaptive_avg_pool2d(input, output_size: _IntOrTuple | Sequence[int | None]):  # noqa: A002
    """``y = P_h x P_w^T`` with bin-average matrices (see :func:`adaptive_avg_pool1d`); ``None`` in
    ``output_size`` keeps that axis."""
    return _adaptive_avg_poolnd(2, input, output_size)


# ----- normalization ------------------------------------------------------------------------------
def _normalize(x, axes, eps):
    """``(x - mean) / sqrt(var + eps)`` over ``axes`` with the biased variance; also (mean, var) as ndarrays."""
    n = math.prod(_shape(x)[a] for a in axes)
    mean = _ops.div(_ops.sum(x, axis=axes, keepdims=True), float(n))
    d = _ops.sub(x, mean)
    var = _ops.div(_ops.sum(_ops.mul(d, d), axis=axes, keepdims=True), float(n))
    return _ops.div(d, _ops.sqrt(_ops.add(var, eps))), mean, var, n


def _affine(y, weight, bias, shape):
    if weight is not None:
        y = _ops.mul(y, _ops.reshape(weight, shape=shape))
    if bias is not None:
        y = _ops.add(y, _ops.reshape(bias, shape=shape))
    return y


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training: bool = False,  # noqa: A002
               momentum: float = 0.1, eps: float = 1e-5):
    """Batch normalization over all axes but the channel axis 1, as ``torch.nn.functional.batch_norm``.

    Training: ``y = (x - mu_B) / sqrt(var_B + eps) * weight + bias`` with the batch's mean and biased
    variance, and, when running statistics are given, in place
    ``running = (1 - momentum) running + momentum * batch`` (the variance unbiased, ``var_B n / (n-1)``).
    Evaluation: the running statistics replace the batch's."""
    x = input
    if np.ndim(x) < 2:
        raise ValueError(f"batch_norm: expected an (N, C, ...) input, got shape {_shape(x)}")
    c = _shape(x)[1]
    for what, v in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight),
                    ("bias", bias)):
        if v is not None and _shape(v) != (c,):
            raise ValueError(f"batch_norm: {what} must have shape ({c},) for input {_shape(x)}, got {_shape(v)}")
    shape = (1, c) + (1,) * (np.ndim(x) - 2)
    axes = (0,) + tuple(range(2, np.ndim(x)))
    if training:
        if math.prod(_shape(x)[a] for a in axes) < 2:
            raise ValueError(f"batch_norm: expected more than 1 value per channel when training, got input "
                             f"size {_shape(x)}")
        y, mean, var, n = _normalize(x, axes, eps)
        if running_mean is not None:
            track_running(running_mean, mean, momentum)
        if running_var is not None:
            track_running(running_var, var, momentum, n / (n - 1))
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: evaluation (training=False) needs running_mean and running_var")
        rm, rv = (_ops.reshape(_data(v).astype(_data(x).dtype, copy=False), shape=shape)
                  for v in (running_mean, running_var))
        y = _ops.div(_ops.sub(x, rm), _ops.sqrt(_ops.add(rv, eps)))
    return _affine(y, weight, bias, shape)


@_replayed
def track_running(running, batch, momentum: float, correction: float = 1.0) -> None:
    """``running = (1 - momentum) running + momentum * batch * correction``, in place (BatchNorm's running
    statistics; ``correction = n / (n - 1)`` makes the variance unbiased). A compiled step repeats it."""
    r = _data(running)
    r[...] = (1 - momentum) * r + momentum * _data(batch).reshape(r.shape) * correction


def layer_norm(input, normalized_shape: int | Sequence[int], weight=None, bias=None,  # noqa: A002
               eps: float = 1e-5):
    """``y = (x - mean) / sqrt(var + eps) * weight + bias`` over the last ``len(normalized_shape)`` axes
    (biased variance), as ``torch.nn.functional.layer_norm``."""
    ns = (normalized_shape,) if isinstance(normalized_shape, numbers.Integral) else tuple(normalized_shape)
    xs = _shape(input)
    if len(ns) == 0 or xs[len(xs) - len(ns):] != ns or len(ns) > len(xs):
        raise ValueError(f"layer_norm: input {xs} does not end with normalized_shape {ns}")
    for what, v in (("weight", weight), ("bias", bias)):
        if v is not None and _shape(v) != ns:
            raise ValueError(f"layer_norm: {what} must have shape {ns}, got {_shape(v)}")
    y, _, _, _ = _normalize(input, tuple(range(len(xs) - len(ns), len(xs))), eps)
    return _affine(y, weight, bias, ns)
