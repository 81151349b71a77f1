"""Numerical checks of derivatives: analytic gradients and Hessian-vector products against central
differences in float64 (``torch.autograd.gradcheck`` / ``gradgradcheck``)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import ops as _ops
from .autograd import _as_leaf, grad, no_grad
from .creation import as_ndarray
from .tensor import Tensor


class GradcheckError(AssertionError):
    """Raised when analytic and numerical derivatives disagree."""


def _flat_grads(fn, inputs, u, create_graph=False):
    out = fn(*inputs)
    s = _ops.sum(out * u)
    gs = grad(s, inputs, create_graph=create_graph, allow_unused=True)
    return [np.zeros_like(x._data) if g is None else g for x, g in zip(inputs, gs)]


def _numeric(fn_scalar, inputs, eps):
    """Central differences (f(x + eps e_i) - f(x - eps e_i)) / 2 eps for every input element."""
    result = []
    for x in inputs:
        num = np.zeros_like(x._data)
        flat, nflat = x._data.reshape(-1), num.reshape(-1)
        for i in range(flat.size):
            orig = flat[i]
            flat[i] = orig + eps
            fp = fn_scalar()
            flat[i] = orig - eps
            fm = fn_scalar()
            flat[i] = orig
            nflat[i] = (fp - fm) / (2 * eps)
        result.append(num)
    return result


def _compare(what, analytic, numeric, atol, rtol, raise_exception):
    for k, (a, n) in enumerate(zip(analytic, numeric)):
        if not np.allclose(a, n, atol=atol, rtol=rtol):
            err = np.max(np.abs(a - n))
            if raise_exception:
                raise GradcheckError(f"{what} of input {k} disagree (max abs error {err:.3g}):\n"
                                     f"analytic:\n{a}\nnumerical:\n{n}")
            return False
    return True


def gradcheck(fn: Callable[..., Tensor], inputs, eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-3, raise_exception: bool = True, seed: int = 0) -> bool:
    """Check the analytic gradient of ``fn`` against central differences, in float64.

    The output is projected on a random direction u, so one backward pass checks the whole
    vector-Jacobian product: ``d(u . fn(x))/dx`` must match its finite-difference estimate.
    """
    inputs = [_as_leaf(x) if not (isinstance(x, Tensor) and x.requires_grad) else x for x in inputs]
    for x in inputs:
        if x.dtype != np.float64:
            raise ValueError(f"gradcheck needs float64 inputs (float32 finite differences are noise); got {x.dtype}")
    with no_grad():
        out0 = fn(*inputs)
    u = np.random.default_rng(seed).standard_normal(out0.shape)
    analytic = [g._data for g in _flat_grads(fn, inputs, u)]

    def f():
        with no_grad():
            return float(np.sum(fn(*inputs)._data * u))
    return _compare("gradients", analytic, _numeric(f, inputs, eps), atol, rtol, raise_exception)


def gradgradcheck(fn: Callable[..., Tensor], inputs, eps: float = 1e-6, atol: float = 1e-5,
                  rtol: float = 1e-3, raise_exception: bool = True, seed: int = 0) -> bool:
    """Second-order check: the Hessian-vector product of ``s(x) = u . fn(x)`` by double backward
    against central differences of the analytic gradient, ``(g(x + eps w) - g(x - eps w)) / 2 eps``."""
    inputs = [_as_leaf(x) if not (isinstance(x, Tensor) and x.requires_grad) else x for x in inputs]
    rng = np.random.default_rng(seed)
    with no_grad():
        out0 = fn(*inputs)
    u = rng.standard_normal(out0.shape)
    w = [rng.standard_normal(x.shape) for x in inputs]
    gs = _flat_grads(fn, inputs, u, create_graph=True)
    dot = None
    for g, wi in zip(gs, w):
        if isinstance(g, Tensor) and g.requires_grad:
            term = _ops.sum(g * wi)
            dot = term if dot is None else dot + term
    if dot is None:
        analytic = [np.zeros_like(x._data) for x in inputs]
    else:
        hv = grad(dot, inputs, allow_unused=True)
        analytic = [np.zeros_like(x._data) if h is None else h._data for x, h in zip(inputs, hv)]
    originals = [x._data.copy() for x in inputs]

    def g_at(sign):
        for x, o, wi in zip(inputs, originals, w):
            x._data[...] = o + sign * eps * wi
        r = [as_ndarray(g) for g in _flat_grads(fn, inputs, u)]
        for x, o in zip(inputs, originals):
            x._data[...] = o
        return r
    numeric = [(p - m) / (2 * eps) for p, m in zip(g_at(+1), g_at(-1))]
    return _compare("Hessian-vector products", analytic, numeric, atol, rtol, raise_exception)
