"""Converters for the recurrent layers RNN, GRU and LSTM, from torch's parameter names and layout.

torch stores layer ``k``'s weights as ``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}``,
``bias_hh_l{k}`` (``_reverse`` for the backward direction), the gates stacked in the order
LSTM (i, f, g, o), GRU (r, z, n). ONNX wants LSTM (i, o, f, c) and GRU (z, r, h), one node per
layer with both directions stacked. torch's GRU applies the reset gate after the recurrent product,
``n = tanh(W_in x + b_in + r (W_hn h + b_hn))``: ONNX's ``linear_before_reset=1``.

The exported graph starts from zero initial states (forward called as ``layer(x)``) and returns
what torch returns: ``(output, h_n)``, for the LSTM ``(output, (h_n, c_n))``.
"""

from __future__ import annotations

import numpy as np

from . import ExportError, Graph, _np, register
from ._builtin import _at, _shape

_GATES = {"RNN": (1, [0]), "GRU": (3, [1, 0, 2]), "LSTM": (4, [0, 3, 1, 2])}


def _reorder(a: np.ndarray, kind: str) -> np.ndarray:
    n_gates, order = _GATES[kind]
    return np.concatenate([np.split(a, n_gates, axis=0)[i] for i in order], axis=0)


def _layer_weights(m, kind: str, layer: int, dirs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    W, R, B = [], [], []
    for d in range(dirs):
        sfx = f"_l{layer}" + ("_reverse" if d else "")
        W.append(_reorder(_np(getattr(m, f"weight_ih{sfx}")), kind))
        R.append(_reorder(_np(getattr(m, f"weight_hh{sfx}")), kind))
        if getattr(m, "bias", True):
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


@register("RNN", "GRU", "LSTM")
def recurrent(g: Graph, m, name: str, inp: str, x):
    kind = type(m).__name__ if type(m).__name__ in _GATES else next(
        c.__name__ for c in type(m).__mro__ if c.__name__ in _GATES)
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
        W, R, B = _layer_weights(m, kind, layer, dirs)
        ins = [seq, g.const(_at(name, f"W_l{layer}"), W), g.const(_at(name, f"R_l{layer}"), R)]
        if B is not None:
            ins.append(g.const(_at(name, f"B_l{layer}"), B))
        outs = g.node(kind, ins, f"{node}.l{layer}", outputs=3 if kind == "LSTM" else 2, **_attrs(m, kind, dirs))
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
