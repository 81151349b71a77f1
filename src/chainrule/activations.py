"""More of ``torch.nn.functional``'s activations and similarity functions, composed from primitives
(re-exported by :mod:`chainrule.functional`, so ``F.silu`` works). Each follows torch's formula:

- ``silu(x) = x sigma(x)``; ``mish(x) = x tanh(softplus(x))``; ``logsigmoid(x) = -softplus(-x)``
- ``elu(x) = x`` for x > 0, ``alpha (e^x - 1)`` otherwise; ``celu`` the same with ``e^(x/alpha)``;
  ``selu(x) = scale elu(x, alpha)`` with torch's constants
- ``hardtanh(x) = clamp(x, min_val, max_val)``; ``relu6 = hardtanh(x, 0, 6)``;
  ``hardsigmoid(x) = relu6(x + 3) / 6``; ``hardswish(x) = x hardsigmoid(x)``; ``softsign(x) = x / (1 + |x|)``
- ``softmin(x) = softmax(-x)``; ``normalize(x) = x / max(||x||_p, eps)``;
  ``cosine_similarity(a, b) = a.b / max(||a|| ||b||, eps)`` along ``dim``
"""

from __future__ import annotations

import numpy as np

from . import ops
from .creation import as_ndarray as _data
from .functional import clip, norm, softmax, softplus

__all__ = ["silu", "mish", "logsigmoid", "elu", "celu", "selu", "hardtanh", "relu6", "hardsigmoid", "hardswish",
           "softsign", "softmin", "normalize", "cosine_similarity", "pairwise_distance", "threshold", "glu"]

_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


def silu(input, inplace: bool = False):  # noqa: A002
    """``x sigma(x)``."""
    return input * ops.sigmoid(input)


def mish(input, inplace: bool = False):  # noqa: A002
    """``x tanh(softplus(x))``."""
    return input * ops.tanh(softplus(input))


def logsigmoid(input):  # noqa: A002
    """``log sigma(x) = -softplus(-x)``, stable for large |x|."""
    return -softplus(-input)


def elu(input, alpha: float = 1.0, inplace: bool = False):  # noqa: A002
    """``x`` for x > 0, ``alpha (e^x - 1)`` otherwise."""
    neg = alpha * (ops.exp(ops.minimum(input, np.zeros((), _data(input).dtype))) - 1.0)
    return ops.where(_data(input) > 0, input, neg)


def celu(input, alpha: float = 1.0, inplace: bool = False):  # noqa: A002
    """``x`` for x > 0, ``alpha (e^(x/alpha) - 1)`` otherwise."""
    neg = alpha * (ops.exp(ops.minimum(input, np.zeros((), _data(input).dtype)) / alpha) - 1.0)
    return ops.where(_data(input) > 0, input, neg)


def selu(input, inplace: bool = False):  # noqa: A002
    """``scale elu(x, alpha)`` with torch's ``alpha = 1.6733``, ``scale = 1.0507``."""
    return _SELU_SCALE * elu(input, _SELU_ALPHA)


def hardtanh(input, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False):  # noqa: A002
    """``clamp(x, min_val, max_val)``."""
    return clip(input, min_val, max_val)


def relu6(input, inplace: bool = False):  # noqa: A002
    """``min(max(0, x), 6)``."""
    return clip(input, 0.0, 6.0)


def hardsigmoid(input, inplace: bool = False):  # noqa: A002
    """``relu6(x + 3) / 6``."""
    return clip(input + 3.0, 0.0, 6.0) / 6.0


def hardswish(input, inplace: bool = False):  # noqa: A002
    """``x relu6(x + 3) / 6``."""
    return input * hardsigmoid(input)


def softsign(input):  # noqa: A002
    """``x / (1 + |x|)``."""
    return input / (1.0 + ops.abs(input))


def threshold(input, threshold: float, value: float, inplace: bool = False):  # noqa: A002
    """``x`` where ``x > threshold``, else ``value``."""
    return ops.where(_data(input) > threshold, input, np.asarray(value, _data(input).dtype))


def glu(input, dim: int = -1):  # noqa: A002
    """``a sigma(b)`` for the two halves ``a``, ``b`` of ``input`` along ``dim``."""
    n, lead = np.shape(_data(input))[dim], (slice(None),) * (dim % np.ndim(_data(input)))
    a, b = ops.getitem(input, idx=lead + (slice(0, n // 2),)), ops.getitem(input, idx=lead + (slice(n // 2, n),))
    return a * ops.sigmoid(b)


def softmin(input, dim: int = -1, dtype=None):  # noqa: A002
    """``softmax(-x)`` along ``dim``."""
    return softmax(-input, dim)


def normalize(input, p: float = 2.0, dim: int = 1, eps: float = 1e-12):  # noqa: A002
    """``x / max(||x||_p, eps)`` along ``dim``."""
    return input / clip(norm(input, p, dim, True), eps, None)


def cosine_similarity(x1, x2, dim: int = 1, eps: float = 1e-8):
    """``x1.x2 / (max(||x1||, eps) max(||x2||, eps))`` along ``dim`` (torch's form: each norm clamped)."""
    n1, n2 = clip(norm(x1, 2, dim), eps, None), clip(norm(x2, 2, dim), eps, None)
    return ops.sum(x1 * x2, axis=dim) / (n1 * n2)


def pairwise_distance(x1, x2, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False):
    """``||x1 - x2 + eps||_p`` along the last dim."""
    return norm(x1 - x2 + eps, p, -1, keepdim)
