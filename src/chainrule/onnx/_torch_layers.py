"""Converters for convolution, pooling, normalisation and embedding layers, keyed by torch's class names
and reading torch's attribute names (``kernel_size``, ``stride``, ``padding``, ``running_mean``...), so
any chainrule layer that keeps PyTorch's names exports without changes here."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import ExportError, Graph, _np, register
from ._builtin import _at, _shape


def _tuple(v: Any, n: int, what: str) -> list[int]:
    """An int or a length-n sequence of ints, as torch accepts for kernel_size, stride, ..."""
    vals = [v] * n if isinstance(v, (int, np.integer)) else list(v)
    if len(vals) != n or not all(isinstance(u, (int, np.integer)) for u in vals):
        raise ExportError(f"{what}={v!r} must be an int or {n} ints")
    return [int(u) for u in vals]


def _pads(padding: Any, kernel: list[int], dilation: list[int], stride: list[int]) -> list[int]:
    """ONNX ``pads`` (all begins, then all ends) of torch's ``padding``: ints, 'valid' or 'same'
    (total ``d (k - 1)``, the extra one at the end, as torch)."""
    n = len(kernel)
    if padding == "valid":
        return [0] * (2 * n)
    if padding == "same":
        if any(s != 1 for s in stride):
            raise ExportError(f"padding='same' needs stride 1, got stride={stride}")
        total = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return [t // 2 for t in total] + [t - t // 2 for t in total]
    p = _tuple(padding, n, "padding")
    return p + p


_PAD_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


# ----- convolution --------------------------------------------------------------------------------
@register("Conv1d", "Conv2d", "Conv3d")
def conv(g: Graph, m, name: str, inp: str, x) -> str:
    """Conv with ``kernel_shape, strides, pads, dilations, group``; a padding_mode other than 'zeros'
    is a Pad node (reflect / edge / wrap) before an unpadded Conv."""
    w = _np(m.weight)
    n = w.ndim - 2
    kernel = list(w.shape[2:])
    stride, dilation = _tuple(m.stride, n, "stride"), _tuple(getattr(m, "dilation", 1), n, "dilation")
    pads = _pads(m.padding, kernel, dilation, stride)
    mode = getattr(m, "padding_mode", "zeros")
    node = name or type(m).__name__
    if mode != "zeros" and any(pads):
        if mode not in _PAD_MODES or (mode == "circular" and g.opset < 19):
            raise ExportError(f"padding_mode={mode!r} has no ONNX Pad mode at opset {g.opset} "
                              "('circular' needs opset >= 19)")
        full = [0, 0] + pads[:n] + [0, 0] + pads[n:]
        inp = g.node("Pad", [inp, g.ints(_at(name, "pads"), full)], node, mode=_PAD_MODES[mode])
        pads = [0] * (2 * n)
    ins = [inp, g.const(_at(name, "weight"), w)]
    if getattr(m, "bias", None) is not None:
        ins.append(g.const(_at(name, "bias"), _np(m.bias)))
    return g.node("Conv", ins, node, kernel_shape=kernel, strides=stride, pads=pads, dilations=dilation,
                  group=int(getattr(m, "groups", 1)))


# ----- pooling ------------------------------------------------------------------------------------
def _pool_geometry(m, x) -> tuple[int, list[int], list[int], list[int]]:
    n = len(_shape(x)) - 2
    kernel = _tuple(m.kernel_size, n, "kernel_size")
    stride = kernel if m.stride is None or m.stride == [] else _tuple(m.stride, n, "stride")
    return n, kernel, stride, _tuple(m.padding, n, "padding") * 2


def _check_ceil_mode(g: Graph, m, x, kernel: list[int], stride: list[int], pads: list[int], dilation: list[int]) -> None:
    """With ceil_mode, torch drops a last window that would start in the right padding; ONNX's shape
    rule (MaxPool, AveragePool) does the same only from opset 22."""
    if not getattr(m, "ceil_mode", False) or g.opset >= 22:
        return
    n = len(kernel)
    for axis, (size, k, s, d) in enumerate(zip(_shape(x)[2:], kernel, stride, dilation)):
        out = -(-(size + pads[axis] + pads[n + axis] - d * (k - 1) - 1) // s) + 1
        if (out - 1) * s >= size + pads[axis]:
            raise ExportError(f"ceil_mode=True on spatial axis {axis} (size {size}, kernel {k}, stride {s}, padding "
                              f"{pads[axis]}): torch drops the last window, which would start in the padding, and "
                              f"ONNX keeps it before opset 22; export with opset=22")


@register("MaxPool1d", "MaxPool2d", "MaxPool3d")
def max_pool(g: Graph, m, name: str, inp: str, x) -> str:
    if getattr(m, "return_indices", False):
        raise ExportError("return_indices=True: the indices are torch's flat positions, which ONNX MaxPool "
                          "does not return in the same form; export the layer with return_indices=False")
    n, kernel, stride, pads = _pool_geometry(m, x)
    dilation = _tuple(getattr(m, "dilation", 1), n, "dilation")
    _check_ceil_mode(g, m, x, kernel, stride, pads, dilation)
    return g.node("MaxPool", [inp], name or type(m).__name__, kernel_shape=kernel, strides=stride, pads=pads,
                  dilations=dilation, ceil_mode=int(bool(getattr(m, "ceil_mode", False))))


@register("AvgPool1d", "AvgPool2d", "AvgPool3d")
def avg_pool(g: Graph, m, name: str, inp: str, x) -> str:
    if getattr(m, "divisor_override", None) is not None:
        raise ExportError(f"divisor_override={m.divisor_override} has no ONNX AveragePool equivalent")
    n, kernel, stride, pads = _pool_geometry(m, x)
    _check_ceil_mode(g, m, x, kernel, stride, pads, [1] * n)
    return g.node("AveragePool", [inp], name or type(m).__name__, kernel_shape=kernel, strides=stride, pads=pads,
                  ceil_mode=int(bool(getattr(m, "ceil_mode", False))),
                  count_include_pad=int(bool(getattr(m, "count_include_pad", True))))


def adaptive_bins(n_in: int, n_out: int) -> np.ndarray:
    """The (n_out, n_in) averaging matrix of adaptive average pooling along one axis: output i
    averages inputs ``floor(i n_in / n_out) .. ceil((i + 1) n_in / n_out) - 1`` (torch's bins)."""
    P = np.zeros((n_out, n_in))
    for i in range(n_out):
        lo, hi = (i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)
        P[i, lo:hi] = 1.0 / (hi - lo)
    return P


@register("AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d")
def adaptive_avg_pool(g: Graph, m, name: str, inp: str, x) -> str:
    """GlobalAveragePool for output size 1; otherwise pooling is linear along each spatial axis, so
    it is a MatMul by each axis's averaging matrix (exact for any sizes, overlapping bins included)."""
    spatial = _shape(x)[2:]
    out = m.output_size
    out = [out] * len(spatial) if isinstance(out, (int, np.integer)) or out is None else list(out)
    out = [s if o is None else int(o) for o, s in zip(out, spatial)]
    node = name or type(m).__name__
    if all(o == 1 for o in out):
        return g.node("GlobalAveragePool", [inp], node)
    y, nd = inp, len(spatial)
    for k, (n_in, n_out) in enumerate(zip(spatial, out)):
        if n_in == n_out:
            continue
        P = adaptive_bins(n_in, n_out)
        if k == nd - 1:  # last axis: y @ P^T
            y = g.node("MatMul", [y, g.const(_at(name, f"bins{k}"), P.T)], node)
        else:  # axis k: move it last, multiply, move it back
            perm = list(range(nd + 2))
            perm[2 + k], perm[-1] = perm[-1], perm[2 + k]
            t = g.node("Transpose", [y], node, perm=perm)
            t = g.node("MatMul", [t, g.const(_at(name, f"bins{k}"), P.T)], node)
            y = g.node("Transpose", [t], node, perm=perm)
    return y if y != inp else g.node("Identity", [inp], node)


# ----- normalisation ------------------------------------------------------------------------------
@register("BatchNorm1d", "BatchNorm2d", "BatchNorm3d")
def batch_norm(g: Graph, m, name: str, inp: str, x) -> str:
    """Inference form: ``(x - running_mean) / sqrt(running_var + eps) * weight + bias`` per channel (axis 1)."""
    mean, var = getattr(m, "running_mean", None), getattr(m, "running_var", None)
    if mean is None or var is None:
        raise ExportError("track_running_stats=False: it normalises with each batch's own statistics even "
                          "in eval mode, which an inference graph cannot do")
    c = _np(mean).shape[0]
    w = getattr(m, "weight", None)
    b = getattr(m, "bias", None)
    ins = [inp, g.const(_at(name, "weight"), np.ones(c) if w is None else _np(w)),
           g.const(_at(name, "bias"), np.zeros(c) if b is None else _np(b)),
           g.const(_at(name, "running_mean"), _np(mean)), g.const(_at(name, "running_var"), _np(var))]
    return g.node("BatchNormalization", ins, name or type(m).__name__, epsilon=float(m.eps))


@register("LayerNorm")
def layer_norm(g: Graph, m, name: str, inp: str, x) -> str:
    """``(x - mean) / sqrt(var + eps) * weight + bias`` over the last ``len(normalized_shape)`` axes."""
    shape = _tuple(m.normalized_shape, len(m.normalized_shape) if not isinstance(m.normalized_shape, int) else 1,
                   "normalized_shape")
    w, b = getattr(m, "weight", None), getattr(m, "bias", None)
    ins = [inp, g.const(_at(name, "weight"), np.ones(shape) if w is None else _np(w))]
    if b is not None:
        ins.append(g.const(_at(name, "bias"), _np(b)))
    return g.node("LayerNormalization", ins, name or "LayerNorm", axis=-len(shape), epsilon=float(m.eps))


# ----- embedding ----------------------------------------------------------------------------------
def _no_max_norm(m) -> None:
    if getattr(m, "max_norm", None) is not None:
        raise ExportError(f"max_norm={m.max_norm} renormalises the looked-up rows of the weight in place at every "
                          "call; export with max_norm=None (renormalise the weight once first)")


@register("Embedding")
def embedding(g: Graph, m, name: str, inp: str, x) -> str:
    """Rows of the weight: ``Gather(weight, indices, axis=0)``."""
    _no_max_norm(m)
    return g.node("Gather", [g.const(_at(name, "weight"), _np(m.weight)), inp], name or "Embedding", axis=0)


@register("EmbeddingBag")
def embedding_bag(g: Graph, m, name: str, inp: str, x) -> str:
    """Bags of equal length, a 2-D input (N, L): the rows ``Gather(weight, indices)`` (N, L, D), reduced over
    the bag axis by the ``mode`` (ReduceSum, ReduceMean, ReduceMax)."""
    if len(_shape(x)) != 2:
        raise ExportError(f"input of shape {_shape(x)}: export needs 2-D input (N, bag length); 1-D input with "
                          "offsets would be a second graph input")
    if getattr(m, "padding_idx", None) is not None:
        raise ExportError(f"padding_idx={m.padding_idx} leaves those entries out of each bag's {m.mode}; export "
                          "with padding_idx=None")
    _no_max_norm(m)
    node = name or "EmbeddingBag"
    rows = g.node("Gather", [g.const(_at(name, "weight"), _np(m.weight)), inp], node, axis=0)
    if m.mode == "sum":  # ReduceSum takes its axes as an input from opset 13 on
        return g.node("ReduceSum", [rows, g.ints(_at(name, "axes"), [1])], node, keepdims=0)
    return g.reduce({"mean": "ReduceMean", "max": "ReduceMax"}[m.mode], rows, [1], node, keepdims=0)
