"""``torch.linalg``'s norms, as composites of the primitives (differentiable)."""

from __future__ import annotations

from . import functional as _fn
from . import ops as _ops

__all__ = ["norm", "vector_norm", "matrix_norm"]


def vector_norm(x, ord: float = 2, dim=None, keepdim: bool = False, dtype=None):  # noqa: A002
    """``(sum |x_i|^ord)^(1/ord)`` over ``dim`` (all entries when None); ``ord=inf``: the largest |x_i|."""
    if ord == float("inf"):
        return _ops.max(_ops.abs(x), axis=dim, keepdims=keepdim)
    return _fn.norm(x, ord, dim, keepdim)


def matrix_norm(A, ord: str = "fro", dim=(-2, -1), keepdim: bool = False, dtype=None):  # noqa: A002
    """The Frobenius norm of the matrices in the last two dims (``ord='fro'`` only)."""
    if ord != "fro":
        raise ValueError(f"linalg.matrix_norm: only ord='fro' is implemented, got {ord!r}")
    return _fn.norm(A, 2, tuple(dim), keepdim)


def norm(A, ord=None, dim=None, keepdim: bool = False, dtype=None):  # noqa: A002
    """torch.linalg.norm: the 2-norm of the flattened tensor by default, a vector norm for an int ``dim``,
    the Frobenius norm for ``ord='fro'`` or a 2-tuple ``dim``."""
    if ord == "fro" or (ord is None and dim is not None and not isinstance(dim, int) and len(dim) == 2):
        return matrix_norm(A, "fro", (-2, -1) if dim is None else dim, keepdim)
    return vector_norm(A, 2 if ord is None else ord, dim, keepdim)
