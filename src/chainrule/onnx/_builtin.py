"""Converters for the layers of :mod:`chainrule.nn.layers` and the lecture's models (:mod:`chainrule.models`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import ExportError, Graph, _np, register


def _shape(x: Any) -> tuple[int, ...]:
    return tuple(np.shape(_np(x)))


def _at(name: str, child: str) -> str:
    return f"{name}.{child}" if name else child


# ----- the affine layer ---------------------------------------------------------------------------
@register("Linear")
def linear(g: Graph, m, name: str, inp: str, x) -> str:
    """``y = x W^T + b``: Gemm (transB) on a matrix; MatMul by ``W^T`` then Add on more dims."""
    w = g.const(_at(name, "weight"), _np(m.weight))
    b = None if m.bias is None else g.const(_at(name, "bias"), _np(m.bias))
    if len(_shape(x)) == 2:
        return g.node("Gemm", [inp, w] + ([b] if b else []), name or "Linear", transB=1)
    wt = g.const(_at(name, "weight_T"), _np(m.weight).T)
    y = g.node("MatMul", [inp, wt], name or "Linear")
    return y if b is None else g.node("Add", [y, b], name or "Linear")


@register("Identity")
def identity(g: Graph, m, name: str, inp: str, x) -> str:
    return inp


@register("Flatten")
def flatten(g: Graph, m, name: str, inp: str, x) -> str:
    """Reshape merging ``start_dim..end_dim``: the batch axis is copied (0), the merged axis inferred
    (-1), the others are the example's (static) sizes."""
    shape = _shape(x)
    if not shape:
        return g.node("Reshape", [inp, g.ints(_at(name, "shape"), [1])], name or "Flatten")
    s, e = m.start_dim % len(shape), m.end_dim % len(shape)
    target = [0 if s > 0 else -1] + list(shape[1:s]) + ([-1] if s > 0 else []) + list(shape[e + 1:])
    return g.node("Reshape", [inp, g.ints(_at(name, "shape"), target)], name or "Flatten")


@register("Unflatten")
def unflatten(g: Graph, m, name: str, inp: str, x) -> str:
    """Reshape splitting axis ``dim`` into ``unflattened_size``: the batch axis is copied (0) unless
    it is the one split, the other axes are the example's sizes."""
    shape = _shape(x)
    d = m.dim % len(shape)
    target = list(shape[:d]) + list(m.unflattened_size) + list(shape[d + 1:])
    if d > 0:
        target[0] = 0
    elif -1 in m.unflattened_size:
        raise ExportError(f"unflattened_size={m.unflattened_size} with -1 on the batch axis (dim {m.dim}): "
                          "the other sizes could not follow the batch; give all sizes")
    return g.node("Reshape", [inp, g.ints(_at(name, "shape"), target)], name or "Unflatten")


# ----- activations --------------------------------------------------------------------------------
def _unary(op: str):
    def convert(g: Graph, m, name: str, inp: str, x) -> str:
        return g.node(op, [inp], name or op)
    convert.__name__ = op.lower()
    return convert


register("ReLU")(_unary("Relu"))
register("Sigmoid")(_unary("Sigmoid"))
register("Tanh")(_unary("Tanh"))


@register("LeakyReLU")
def leaky_relu(g: Graph, m, name: str, inp: str, x) -> str:
    return g.node("LeakyRelu", [inp], name or "LeakyReLU", alpha=float(m.negative_slope))


@register("GELU")
def gelu(g: Graph, m, name: str, inp: str, x) -> str:
    """The Gelu op from opset 20; before it ``x Phi(x) = 0.5 x (1 + erf(x / sqrt 2))`` or, for
    ``approximate='tanh'``, ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``."""
    n = name or "GELU"
    if g.opset >= 20:
        return g.node("Gelu", [inp], n, approximate=m.approximate)
    half_x = g.node("Mul", [inp, g.const(f"{n}.half", 0.5)], n)
    if m.approximate == "tanh":
        x3 = g.node("Mul", [g.node("Mul", [inp, inp], n), inp], n)
        inner = g.node("Add", [inp, g.node("Mul", [x3, g.const(f"{n}.c3", 0.044715)], n)], n)
        t = g.node("Tanh", [g.node("Mul", [inner, g.const(f"{n}.sqrt_2_over_pi", math.sqrt(2 / math.pi))], n)], n)
    else:
        t = g.node("Erf", [g.node("Mul", [inp, g.const(f"{n}.inv_sqrt2", 1 / math.sqrt(2))], n)], n)
    return g.node("Mul", [half_x, g.node("Add", [t, g.const(f"{n}.one", 1.0)], n)], n)


@register("Softmax")
def softmax(g: Graph, m, name: str, inp: str, x) -> str:
    return g.node("Softmax", [inp], name or "Softmax", axis=int(m.dim))


@register("LogSoftmax")
def log_softmax(g: Graph, m, name: str, inp: str, x) -> str:
    return g.node("LogSoftmax", [inp], name or "LogSoftmax", axis=int(m.dim))


@register("Dropout")
def dropout(g: Graph, m, name: str, inp: str, x) -> str:
    """Inference form: the identity (inverted dropout), or ``x (1 - p)`` for ``scale=False``."""
    if getattr(m, "scale", True) or m.p == 0:
        return inp
    return g.node("Mul", [inp, g.const(_at(name, "keep"), 1.0 - m.p)], name or "Dropout")


# ----- containers ---------------------------------------------------------------------------------
@register("Sequential")
def sequential(g: Graph, m, name: str, inp: str, x) -> Any:
    for key, child in m._mods.items():
        inp, x = g.convert(child, _at(name, key), inp, x)
    return inp


@register("CrossEntropyLoss", "NLLLoss", "BCELoss", "BCEWithLogitsLoss", "MSELoss", "L1Loss", "HuberLoss")
def loss(g: Graph, m, name: str, inp: str, x) -> str:
    raise ExportError("a loss takes (input, target) and is not part of an inference graph; export the model "
                      "that computes the input (its logits), without the loss")


@register("ModuleList", "ModuleDict")
def container(g: Graph, m, name: str, inp: str, x) -> str:
    raise ExportError(f"a {type(m).__name__} has no forward of its own (the model's forward decides how its "
                      f"modules are used); export Sequential(*modules) to chain them")


# ----- the lecture's models -----------------------------------------------------------------------
@register("PolynomialFeatures")
def polynomial_features(g: Graph, f, name: str, inp: str, x) -> str:
    """Column c of the output is the product of the input columns in ``f.combinations(d)[c]``: pad
    the input with a column of ones, Gather the columns of each product (short products padded with
    that ones column) and ReduceProd over them."""
    d = _shape(x)[1]
    combos = f.combinations(d)
    width = max(1, max(len(c) for c in combos))
    idx = np.array([list(c) + [d] * (width - len(c)) for c in combos], np.int64)
    ones = g.node("Pad", [inp, g.ints(f"{name}.pads", [0, 0, 0, 1]), g.const(f"{name}.one", 1.0)], name)
    cols = g.node("Gather", [ones, g.ints(f"{name}.columns", idx)], name, axis=1)
    return g.reduce("ReduceProd", cols, [2], name, keepdims=0)


def _features(g: Graph, m, name: str, inp: str, x) -> tuple[str, Any]:
    f = getattr(m, "feature_fn", None)
    if f is None:
        return inp, x
    if type(f).__name__ != "PolynomialFeatures":
        raise ExportError(f"feature_fn {f!r} is Python code; only PolynomialFeatures (or none) can be exported")
    return polynomial_features(g, f, _at(name, "feature_fn"), inp, x), f(x)


@register("SoftmaxRegression")
def softmax_regression(g: Graph, m, name: str, inp: str, x) -> str:
    """Logits ``W phi(x) + b``, as the model's forward (predict_proba's softmax is not part of it)."""
    inp, x = _features(g, m, name, inp, x)
    return g.convert(m.linear, _at(name, "linear"), inp, x)[0]


@register("LogisticRegression")
def logistic_regression(g: Graph, m, name: str, inp: str, x) -> str:
    """Logits ``w^T phi(x) + b`` of shape (N,): the Linear layer's (N, 1) squeezed."""
    inp, x = _features(g, m, name, inp, x)
    z, _ = g.convert(m.linear, _at(name, "linear"), inp, x)
    return g.node("Squeeze", [z, g.ints(_at(name, "axes"), [-1])], name or "LogisticRegression")


@register("MLP")
def mlp(g: Graph, m, name: str, inp: str, x) -> str:
    inp, x = _features(g, m, name, inp, x)
    return g.convert(m.layers, _at(name, "layers"), inp, x)[0]


@register("CNN1d")
def cnn1d(g: Graph, m, name: str, inp: str, x) -> str:
    """Its ``layers`` (Unflatten, Conv1d, [BatchNorm1d,] ReLU ..., Flatten, [Dropout,] Linear), as its forward."""
    return g.convert(m.layers, _at(name, "layers"), inp, x)[0]


@register("GRUClassifier")
def gru_classifier(g: Graph, m, name: str, inp: str, x) -> str:
    """As its forward: (N, n_features) reshaped to (N, T, input_size), the GRU's output (N, T, H), then
    the head on all states flattened (``readout='all'``, (N, T H)) or on the last one (N, H)."""
    n = name or "GRUClassifier"
    seq = g.node("Reshape", [inp, g.ints(_at(name, "steps"), [0, m.steps, m.input_size])], n)
    xs = _np(x).reshape(_shape(x)[0], m.steps, m.input_size)
    (out, _), (y, _) = g.convert(m.rnn, _at(name, "rnn"), seq, type(x)(xs))
    if m.readout == "last":  # (N, 1, H): the last step, flattened below
        out, y = g.node("Gather", [out, g.ints(_at(name, "last"), [-1])], n, axis=1), _np(y)[:, -1:]
    feats = g.node("Reshape", [out, g.ints(_at(name, "flat"), [0, -1])], n)
    fx = _np(y).reshape(len(xs), -1)
    return g.convert(m.head, _at(name, "head"), feats, type(x)(fx))[0]
