"""``torch.nn.utils``: gradient clipping and parameters as one vector.

Each function is written with the primitives, under ``no_grad()``, and without Python branches on
values (as torch's own), so a training step that clips its gradients is still replayed by
``cr.compile``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from .. import functional as _fn
from .. import ops
from ..autograd import no_grad
from ..tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_", "get_total_norm", "parameters_to_vector", "vector_to_parameters"]


def _tensors(parameters) -> list[Tensor]:
    return [parameters] if isinstance(parameters, Tensor) else list(parameters)


def get_total_norm(tensors: Tensor | Iterable[Tensor], norm_type: float = 2.0,
                   error_if_nonfinite: bool = False) -> Tensor:
    r"""The ``norm_type``-norm of all ``tensors`` together, as if concatenated:
    ``(sum_i ||t_i||_p^p)^(1/p)``, computed as ``||(||t_1||_p, ..., ||t_n||_p)||_p`` (torch's order);
    ``inf`` gives ``max_i max |t_i|``. 0 for no tensors."""
    ts = _tensors(tensors)
    p = float(norm_type)
    if not ts:
        return Tensor(0.0)
    with no_grad():
        if p == math.inf:
            norms = [ops.max(ops.abs(t)) for t in ts]
            total = ops.max(_fn.stack(norms))
        else:
            norms = [_fn.norm(ops.reshape(t, shape=(-1,)), p=p) for t in ts]
            total = _fn.norm(_fn.stack(norms), p=p)
    if error_if_nonfinite and not math.isfinite(total.item()):
        raise RuntimeError(f"the total norm of order {norm_type} of the gradients is {total.item()}, so they "
                           "cannot be clipped; pass error_if_nonfinite=False to clip anyway")
    return total


def clip_grad_norm_(parameters: Tensor | Iterable[Tensor], max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False, foreach: bool | None = None) -> Tensor:
    r"""Scale the gradients in place so that their total norm (:func:`get_total_norm`) is at most
    ``max_norm``: ``g <- g * min(1, max_norm / (||g||_p + 1e-6))``. Returns the total norm before
    clipping. Parameters without a gradient are skipped. ``foreach`` is accepted (torch's flag for its
    batched kernels) and changes nothing."""
    if not max_norm >= 0:
        raise ValueError(f"clip_grad_norm_: max_norm must be >= 0, got {max_norm!r}")
    grads = [p.grad for p in _tensors(parameters) if p.grad is not None]
    total = get_total_norm(grads, norm_type, error_if_nonfinite)
    if not grads:
        return total
    with no_grad():
        coef = ops.clip(ops.div(float(max_norm), ops.add(total, 1e-6)), hi=1.0)
        for g in grads:
            g.mul_(coef.to(g.dtype))
    return total


def clip_grad_value_(parameters: Tensor | Iterable[Tensor], clip_value: float, foreach: bool | None = None) -> None:
    """Clamp every gradient in place to ``[-clip_value, clip_value]``."""
    if not clip_value >= 0:
        raise ValueError(f"clip_grad_value_: clip_value must be >= 0, got {clip_value!r}")
    for p in _tensors(parameters):
        if p.grad is not None:
            p.grad.clamp_(-float(clip_value), float(clip_value))


def parameters_to_vector(parameters: Iterable[Tensor]) -> Tensor:
    """All parameters flattened and concatenated, in order (a new tensor, recorded like any op)."""
    return _fn.cat([ops.reshape(p, shape=(-1,)) for p in _tensors(parameters)])


def vector_to_parameters(vec: Tensor, parameters: Iterable[Tensor]) -> None:
    """The inverse of :func:`parameters_to_vector`: each parameter's ``data`` becomes its slice of
    ``vec`` (a view of it, as in torch)."""
    if not isinstance(vec, Tensor) or vec.ndim != 1:
        raise TypeError(f"vector_to_parameters: expected a 1-D Tensor, got {type(vec).__name__} "
                        f"{getattr(vec, 'shape', '')}")
    ps = _tensors(parameters)
    need = sum(p.numel() for p in ps)
    if vec.numel() != need:
        raise ValueError(f"vector_to_parameters: the vector has {vec.numel()} elements but the parameters "
                         f"hold {need}")
    start = 0
    for p in ps:
        n = p.numel()
        p.data = vec._data[start:start + n].reshape(p.shape)
        start += n
