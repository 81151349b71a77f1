"""More activation modules and the similarity modules, each the twin of the ``torch.nn`` class of the
same name (formulas in :mod:`chainrule.activations`)."""

from __future__ import annotations

import numpy as np

from .. import functional as F
from ..tensor import DEFAULT_DTYPE, Tensor
from ._checks import param
from .module import Module

__all__ = ["SiLU", "Mish", "LogSigmoid", "ELU", "CELU", "SELU", "Hardtanh", "ReLU6", "Hardsigmoid", "Hardswish",
           "Softsign", "Softplus", "Softmin", "Threshold", "GLU", "PReLU", "CosineSimilarity", "PairwiseDistance"]


def _simple(name: str, fn, doc: str):
    """A module without hyperparameters: ``forward(x) = fn(x)`` (``inplace`` accepted, as torch's)."""
    def __init__(self, inplace: bool = False):
        Module.__init__(self)
        self.inplace = inplace

    def forward(self, x: Tensor) -> Tensor:
        return fn(x)
    return type(name, (Module,), {"__init__": __init__, "forward": forward, "__doc__": doc, "__module__": __name__})


SiLU = _simple("SiLU", F.silu, "``g(z) = z sigma(z)``.")
Mish = _simple("Mish", F.mish, "``g(z) = z tanh(softplus(z))``.")
LogSigmoid = _simple("LogSigmoid", F.logsigmoid, "``g(z) = log sigma(z)``.")
SELU = _simple("SELU", F.selu, "``g(z) = scale elu(z, alpha)`` with torch's constants.")
ReLU6 = _simple("ReLU6", F.relu6, "``g(z) = min(max(0, z), 6)``.")
Hardsigmoid = _simple("Hardsigmoid", F.hardsigmoid, "``g(z) = relu6(z + 3) / 6``.")
Hardswish = _simple("Hardswish", F.hardswish, "``g(z) = z relu6(z + 3) / 6``.")
Softsign = _simple("Softsign", F.softsign, "``g(z) = z / (1 + |z|)``.")


class ELU(Module):
    """``g(z) = z`` for z > 0, ``alpha (e^z - 1)`` otherwise."""

    def __init__(self, alpha: float = 1.0, inplace: bool = False):
        super().__init__()
        self.alpha, self.inplace = alpha, inplace

    def forward(self, x: Tensor) -> Tensor:
        return F.elu(x, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class CELU(ELU):
    """``g(z) = z`` for z > 0, ``alpha (e^(z/alpha) - 1)`` otherwise."""

    def forward(self, x: Tensor) -> Tensor:
        return F.celu(x, self.alpha)


class Hardtanh(Module):
    """``g(z) = clamp(z, min_val, max_val)``."""

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False):
        super().__init__()
        if max_val <= min_val:
            raise ValueError(f"Hardtanh: max_val must be > min_val, got min_val={min_val}, max_val={max_val}")
        self.min_val, self.max_val, self.inplace = min_val, max_val, inplace

    def forward(self, x: Tensor) -> Tensor:
        return F.hardtanh(x, self.min_val, self.max_val)

    def extra_repr(self) -> str:
        return f"min_val={self.min_val}, max_val={self.max_val}"


class Softplus(Module):
    """``g(z) = log(1 + e^(beta z)) / beta`` (``z`` itself where ``beta z > threshold``)."""

    def __init__(self, beta: float = 1.0, threshold: float = 20.0):
        super().__init__()
        self.beta, self.threshold = beta, threshold

    def forward(self, x: Tensor) -> Tensor:
        return F.softplus(x, self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


class Softmin(Module):
    """``softmin(z) = softmax(-z)`` along ``dim``."""

    def __init__(self, dim: int | None = None):
        super().__init__()
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        return F.softmin(x, -1 if self.dim is None else self.dim)


class Threshold(Module):
    """``z`` where ``z > threshold``, else ``value``."""

    def __init__(self, threshold: float, value: float, inplace: bool = False):
        super().__init__()
        self.threshold, self.value, self.inplace = threshold, value, inplace

    def forward(self, x: Tensor) -> Tensor:
        return F.threshold(x, self.threshold, self.value)


class GLU(Module):
    """``a sigma(b)`` for the halves ``a``, ``b`` of the input along ``dim``."""

    def __init__(self, dim: int = -1):
        super().__init__()
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        return F.glu(x, self.dim)


class PReLU(Module):
    """``g(z) = z`` for z > 0, ``a z`` otherwise, with ``a`` learned (one per channel, or shared)."""

    def __init__(self, num_parameters: int = 1, init: float = 0.25, device=None, dtype=None):
        super().__init__()
        self.num_parameters = num_parameters
        self.weight = param(np.full(num_parameters, init, dtype=DEFAULT_DTYPE if dtype is None else dtype))

    def forward(self, x: Tensor) -> Tensor:
        a = self.weight if self.num_parameters == 1 or x.ndim < 2 else self.weight.reshape(
            -1, *([1] * (x.ndim - 2)))
        return F.where(x.numpy() > 0, x, a * x)  # the slope's gradient is the sum of z over z <= 0

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"


class CosineSimilarity(Module):
    """``x1.x2 / (||x1|| ||x2||)`` along ``dim``."""

    def __init__(self, dim: int = 1, eps: float = 1e-8):
        super().__init__()
        self.dim, self.eps = dim, eps

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        return F.cosine_similarity(x1, x2, self.dim, self.eps)


class PairwiseDistance(Module):
    """``||x1 - x2 + eps||_p`` along the last dim."""

    def __init__(self, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False):
        super().__init__()
        self.norm, self.eps, self.keepdim = p, eps, keepdim

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        return F.pairwise_distance(x1, x2, self.norm, self.eps, self.keepdim)
