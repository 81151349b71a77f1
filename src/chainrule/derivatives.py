"""Higher derivatives built on :func:`chainrule.autograd.grad`: Hessian-vector products, Jacobians, Hessians
(``torch.autograd.functional``'s ``hvp``, ``jacobian``, ``hessian``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from . import ops as _ops
from .autograd import grad
from .tensor import Tensor


def hvp(f: Callable[[], Tensor], params: Sequence[Tensor], v: Sequence) -> list[Tensor]:
    """Hessian-vector product ``H v`` of the scalar ``f()`` w.r.t. ``params``, by double backward:

    .. math:: H v = \\nabla_\\theta \\left( \\nabla_\\theta f(\\theta) \\cdot v \\right)

    costing about two backward passes and never forming H (P^2 memory)."""
    if isinstance(params, Tensor):  # one tensor: H v has its shape, returned as a one-element list
        params, v = [params], [v]
    params, v = list(params), list(v)
    if len(v) != len(params) or any(np.shape(vi) != p.shape for vi, p in zip(v, params)):
        raise ValueError(f"hvp: v must match params one to one in shape; got params {[p.shape for p in params]} "
                         f"and v {[np.shape(vi) for vi in v]}")
    gs = grad(f(), params, create_graph=True, allow_unused=True)
    dot = None
    for g, p, vi in zip(gs, params, v):
        if g is not None:
            term = _ops.sum(g * (vi._data if isinstance(vi, Tensor) else np.asarray(vi, p.dtype)))
            dot = term if dot is None else dot + term
    if dot is None or not dot.requires_grad:
        return [Tensor(np.zeros_like(p._data)) for p in params]
    hv = grad(dot, params, allow_unused=True)
    return [Tensor(np.zeros_like(p._data)) if h is None else h for p, h in zip(params, hv)]


def _as_leaf(x) -> Tensor:
    x = x if isinstance(x, Tensor) else Tensor(np.asarray(x, dtype=np.float64))
    return Tensor(x._data, requires_grad=True)


def _rows(y: Tensor, x: Tensor) -> Tensor:
    """d y / d x, shape ``y.shape + x.shape``: one backward pass per element of ``y`` (zeros where
    ``y`` does not depend on ``x``, as torch's non-strict jacobian)."""
    J = np.zeros((y._data.size, x._data.size), dtype=y.dtype)
    for i in range(y._data.size if y.requires_grad else 0):
        e = np.zeros(y._data.size, y.dtype)
        e[i] = 1
        (gi,) = grad(y, x, grad_outputs=Tensor(e.reshape(y.shape)), retain_graph=True, allow_unused=True)
        if gi is not None:
            J[i] = gi._data.reshape(-1)
    return Tensor(J.reshape(y.shape + x.shape))


def jacobian(f: Callable[[Tensor], Tensor], x) -> Tensor:
    """The Jacobian d f(x) / d x, shape ``f(x).shape + x.shape``, one backward pass per output."""
    x = _as_leaf(x)
    return _rows(f(x), x)


def hessian(f: Callable[[Tensor], Tensor], x) -> Tensor:
    """The Hessian of scalar ``f`` at ``x``, shape ``x.shape + x.shape``: the Jacobian of the
    gradient, computed by double backward (one Hessian-vector product per row)."""
    x = _as_leaf(x)
    (g,) = grad(f(x), x, create_graph=True)
    return _rows(g, x)
