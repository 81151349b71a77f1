"""``torch.nn.utils``: gradient clipping and flattening parameters to one vector.

``clip_grad_norm_`` scales every gradient by ``min(1, max_norm / (||g||_p + 1e-6))``, where ``||g||_p``
is the norm of all gradients together (torch's formula, so clipped runs follow torch's trajectory).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_", "parameters_to_vector", "vector_to_parameters"]


def _list(parameters) -> list[Tensor]:
    return [parameters] if isinstance(parameters, Tensor) else list(parameters)


def clip_grad_norm_(parameters: Iterable[Tensor] | Tensor, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False, foreach=None) -> Tensor:
    """Scale the gradients in place so that their joint ``norm_type``-norm is at most ``max_norm``;
    returns that norm before clipping."""
    grads = [p.grad._data for p in _list(parameters) if p.grad is not None]
    if not grads:
        return Tensor(np.zeros((), np.float32))
    if norm_type == float("inf"):
        total = max(float(np.abs(g).max()) for g in grads)
    else:
        total = float(sum(float(np.sum(np.abs(g.astype(np.float64)) ** norm_type)) for g in grads)) ** (1.0 / norm_type)
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is {total}")
    coef = max_norm / (total + 1e-6)
    if coef < 1.0:
        for g in grads:
            g *= g.dtype.type(coef)
    return Tensor(np.asarray(total, grads[0].dtype))


def clip_grad_value_(parameters: Iterable[Tensor] | Tensor, clip_value: float, foreach=None) -> None:
    """Clamp every gradient entry into ``[-clip_value, clip_value]`` in place."""
    for p in _list(parameters):
        if p.grad is not None:
            np.clip(p.grad._data, -clip_value, clip_value, out=p.grad._data)


def parameters_to_vector(parameters: Iterable[Tensor]) -> Tensor:
    """All parameters flattened and concatenated (a new tensor, not recorded)."""
    return Tensor(np.concatenate([p._data.ravel() for p in parameters]))


def vector_to_parameters(vec: Tensor, parameters: Iterable[Tensor]) -> None:
    """Copy consecutive slices of ``vec`` into the parameters, in place."""
    v, i = vec._data if isinstance(vec, Tensor) else np.asarray(vec), 0
    for p in parameters:
        p._data[...] = v[i:i + p.numel()].reshape(p.shape)
        i += p.numel()
