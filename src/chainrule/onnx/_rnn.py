"""Converters for the recurrent layers RNN, GRU and LSTM and their cells, from torch's parameter names and layout.

torch stores layer ``k``'s weights as ``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}``,
``bias_hh_l{k}`` (``_reverse`` for the backward direction), the gates stacked in the order
LSTM (i, f, g, o), GRU (r, z, n). ONNX wants LSTM (i, o, f, c) and GRU (z, r, h), one node per
layer with both directions stacked. torch's GRU applies the reset gate after the recurrent product,
``n = tanh(W_in x + b_in + r (W_hn h + b_hn))``: ONNX's ``linear_before_reset=1``.

The exported graph starts from zero initial states (forward called as ``layer(x)``) and returns
what torch returns: ``(output, h_n)``, for the LSTM ``(output, (h_n, c_n))``. A cell (``weight_ih``...,
no suffix) is the same node on a sequence of one step, returning ``h'`` (the LSTMCell ``(h', c')``).
"""

from __future__ import annotations

import numpy as np

from . import ExportError, Graph, _np, register
from ._builtin import _at, _shape

_GATES = {"RNN": (1, [0]), "GRU": (3, [1, 0, 2]), "LSTM": (4, [0, 3, 1, 2])}


def _reorder(a: np.ndarray, kind: str) -> np.ndarray:
    n_gates, order = _GATES[kind]
    return np.concatenate([np.split(a, n_gates, axis=0)[i] for i in order], axis=0)


def _layer_weights(m, kind: str, suffixes: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """ONNX's W, R, B of one layer: torch's ``weight_ih{sfx}``... for each direction's suffix, stacked."""
    W, R, B = [], [], []
    for sfx in suffixes:
        W.append(_reorder(_np(getattr(m, f"weight_ih{sfx}")), kind))
        R.append(_reorder(_np(getattr(m, f"weight_hh{sfx}")), kind))
        if getattr(m, "bias", True) and getattr(m, f"bias_ih{sfx}", None) is not None:
            B.append(np.concatenate([_reorder(_np(getattr(m, f"bias_ih{sfx}")), kind),
                                     _reorder(_np(getattr(m, f"bias_hh{sfx}")), kind)]))
    return np.stack(W), np.stack(R), (np.stack(B) if B else None)


def _attrs(m, kind: str, dirs: int) -> dict:
    attrs = {"hidden_size": int(m.hidden_size), "direction": "bidirectional" if dirs == 2 else "forward"}
    if kind == "GRU":
        attrs["linear_before_reset"] = 1
    if kind == "RNN":
        act = getattr(m, "nonlinearity", "tanh")
        if act not in ("tanh", "relu"):
            raise ExportError(f"nonlinearity={act!r} must be 'tanh' or 'relu'")
        attrs["activations"] = ["Tanh" if act == "tanh" else "Relu"] * dirs
    return attrs


def _kind(m) -> str:
    """RNN, GRU or LSTM: the class's name (a cell's without ``Cell``), or its nearest base's."""
    names = [c.__name__.removesuffix("Cell") for c in type(m).__mro__]
    return next(n for n in names if n in _GATES)


def _node(g: Graph, m, kind: str, seq: str, suffixes: list[str], name: str, node: str) -> list[str]:
    """One ONNX RNN/GRU/LSTM node over ``seq`` (T, N, F) with torch's weights of these suffixes:
    its outputs Y (T, D, N, H), Y_h (D, N, H) and, for the LSTM, Y_c."""
    W, R, B = _layer_weights(m, kind, suffixes)
    tag = suffixes[0]  # "_l0" for a layer, "" for a cell
    ins = [seq, g.const(_at(name, f"W{tag}"), W), g.const(_at(name, f"R{tag}"), R)]
    if B is not None:
        ins.append(g.const(_at(name, f"B{tag}"), B))
    return g.node(kind, ins, node, outputs=3 if kind == "LSTM" else 2, **_attrs(m, kind, len(suffixes)))


@register("RNNCell", "GRUCell", "LSTMCell")
def cell(g: Graph, m, name: str, inp: str, x):
    """One step from zero states (forward called as ``cell(x)``): a sequence of length 1 through the
    layer's ONNX node, ``h'`` (N, H) its Y_h without the direction axis (for the LSTM ``(h', c')``)."""
    kind = _kind(m)
    if len(_shape(x)) != 2:
        raise ExportError(f"input of shape {_shape(x)}: export needs a batched 2-D input (N, {m.input_size})")
    node = name or type(m).__name__
    seq = g.node("Unsqueeze", [inp, g.ints(_at(name, "axes"), [0])], node)  # (1, N, F)
    outs = _node(g, m, kind, seq, [""], name, node)
    squeeze = lambda v: g.node("Squeeze", [v, g.ints(_at(name, "dir_axis"), [0])], node)
    return (squeeze(outs[1]), squeeze(outs[2])) if kind == "LSTM" else squeeze(outs[1])


@register("RNN", "GRU", "LSTM")
def recurrent(g: Graph, m, name: str, inp: str, x):
    kind = _kind(m)
    if len(_shape(x)) != 3:
        raise ExportError(f"input of shape {_shape(x)}: export needs a batched 3-D input "
                          "((N, T, F) with batch_first, else (T, N, F))")
    if getattr(m, "proj_size", 0):
        raise ExportError(f"proj_size={m.proj_size}: ONNX LSTM has no output projection")
    dirs = 2 if getattr(m, "bidirectional", False) else 1
    node = name or kind
    batch_first = bool(getattr(m, "batch_first", False))
    seq = g.node("Transpose", [inp], node, perm=[1, 0, 2]) if batch_first else inp  # ONNX: (T, N, F)
    h_n, c_n = [], []
    for layer in range(int(getattr(m, "num_layers", 1))):
        suffixes = [f"_l{layer}", f"_l{layer}_reverse"][:dirs]
        outs = _node(g, m, kind, seq, suffixes, name, f"{node}.l{layer}")
        h_n.append(outs[1])
        if kind == "LSTM":
            c_n.append(outs[2])
        # Y is (T, D, N, H); the next layer (and torch's output) wants (T, N, D*H), forward direction first
        y = g.node("Transpose", [outs[0]], f"{node}.l{layer}", perm=[0, 2, 1, 3])
        seq = g.node("Reshape", [y, g.ints(_at(name, f"shape_l{layer}"), [0, 0, -1])], f"{node}.l{layer}")
    out = g.node("Transpose", [seq], node, perm=[1, 0, 2]) if batch_first else seq
    h = h_n[0] if len(h_n) == 1 else g.node("Concat", h_n, node, axis=0)
    if kind != "LSTM":
        return out, h
    return out, (h, c_n[0] if len(c_n) == 1 else g.node("Concat", c_n, node, axis=0))
