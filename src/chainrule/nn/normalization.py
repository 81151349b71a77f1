"""Normalization layers: ``BatchNorm1d``, ``BatchNorm2d`` and ``LayerNorm``, the twins of ``torch.nn``'s.

Both normalize ``x_hat = (x - mean) / sqrt(var + eps)`` (biased variance) and then scale and shift,
``y = weight * x_hat + bias``. BatchNorm takes the statistics over the batch (and spatial axes) of
each channel and keeps running averages for evaluation, in buffers named as torch names them
(``running_mean``, ``running_var``, ``num_batches_tracked``); LayerNorm takes them over the last axes
of each sample and behaves the same in training and evaluation.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from ..autograd import replayed
from ..tensor import DEFAULT_DTYPE, Tensor
from . import functional as F
from . import init
from ._checks import check_device, match_dtype, param, positive_int
from .module import Module


def _check_eps(cls: str, eps: Any) -> float:
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not eps >= 0:
        raise ValueError(f"{cls}: eps must be a number >= 0, got {eps!r}")
    return float(eps)


class _BatchNorm(Module):
    """Shared by BatchNorm1d and BatchNorm2d; subclasses say which input ranks they accept."""

    _ranks: tuple[int, ...] = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, device: Any = None, dtype: Any = None, *, bias: bool = True):
        super().__init__()
        cls = type(self).__name__
        check_device(cls, device)
        if momentum is not None and (isinstance(momentum, bool) or not isinstance(momentum, numbers.Real)
                                     or not 0 <= momentum <= 1):
            raise ValueError(f"{cls}: momentum must be in [0, 1] or None (cumulative average), got {momentum!r}")
        self.num_features, self.eps = positive_int(cls, "num_features", num_features), _check_eps(cls, eps)
        self.momentum = None if momentum is None else float(momentum)
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        dtype = np.dtype(DEFAULT_DTYPE if dtype is None else dtype)
        c = self.num_features
        self.weight = param(np.ones(c, dtype)) if affine else None
        self.bias = param(np.zeros(c, dtype)) if affine and bias else None
        if self.track_running_stats:
            self.register_buffer("running_mean", Tensor(np.zeros(c, dtype)))
            self.register_buffer("running_var", Tensor(np.ones(c, dtype)))
            self.register_buffer("num_batches_tracked", Tensor(np.zeros((), np.int64)))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)

    def reset_running_stats(self) -> None:
        """Running mean 0, running variance 1, no batches seen."""
        if self.track_running_stats:
            self.running_mean._data[...] = 0
            self.running_var._data[...] = 1
            self.num_batches_tracked._data[...] = 0

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def forward(self, x: Any) -> Tensor:
        cls = type(self).__name__
        if np.ndim(x) not in self._ranks:
            want = " or ".join(f"{r}D" for r in self._ranks)
            raise ValueError(f"{cls}: expected {want} input (got {np.ndim(x)}D input of shape {tuple(np.shape(x))})")
        if np.shape(x)[1] != self.num_features:
            raise ValueError(f"{cls}: input {tuple(np.shape(x))} has {np.shape(x)[1]} channels (axis 1) but the "
                             f"layer was built for num_features={self.num_features}")
        ref = self.weight if self.weight is not None else self.running_mean
        if ref is not None and (not isinstance(x, Tensor) or x._data.dtype != ref._data.dtype):
            x = match_dtype(cls, x, ref.dtype)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            _count(self.num_batches_tracked)
            if self.momentum is None:  # cumulative moving average: the mean of all batches so far
                factor = 1.0 / float(self.num_batches_tracked._data)
        use_batch = self.training or self.running_mean is None
        keep = not self.training or self.track_running_stats  # running stats are updated or used
        return F.batch_norm(x, self.running_mean if keep else None, self.running_var if keep else None,
                            self.weight, self.bias, use_batch, factor, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalization of (N, C) or (N, C, L) inputs per channel C, as ``torch.nn.BatchNorm1d``.

    Training: ``y = (x - mu_B) / sqrt(var_B + eps) * weight + bias`` with the batch's statistics
    (over N, and L), and ``running = (1 - momentum) running + momentum * batch`` (the variance
    unbiased); ``momentum=None`` makes the running statistics the plain average over all batches.
    Evaluation (``model.eval()``): the running statistics replace the batch's, unless
    ``track_running_stats=False``. Parameters ``weight`` (1s) and ``bias`` (0s) when ``affine``;
    buffers ``running_mean``, ``running_var``, ``num_batches_tracked`` (in the state_dict).
    ``device`` may only be None or 'cpu' (chainrule runs on NumPy)."""

    _ranks = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalization of (N, C, H, W) inputs per channel, statistics over N, H and W, as
    ``torch.nn.BatchNorm2d`` (see :class:`BatchNorm1d`)."""

    _ranks = (4,)


class LayerNorm(Module):
    """``y = (x - mean) / sqrt(var + eps) * weight + bias`` over the last ``len(normalized_shape)`` axes
    of each sample (biased variance), as ``torch.nn.LayerNorm``. ``weight`` (1s) and ``bias`` (0s)
    have shape ``normalized_shape``; ``elementwise_affine=False`` drops both, ``bias=False`` the bias."""

    def __init__(self, normalized_shape: int | tuple[int, ...], eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, device: Any = None, dtype: Any = None):
        super().__init__()
        check_device("LayerNorm", device)
        ns = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else tuple(normalized_shape)
        if not ns or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 for s in ns):
            raise ValueError(f"LayerNorm: normalized_shape must be a positive int or a tuple of them, "
                             f"got {normalized_shape!r}")
        self.normalized_shape = tuple(int(s) for s in ns)
        self.eps, self.elementwise_affine = _check_eps("LayerNorm", eps), bool(elementwise_affine)
        dtype = np.dtype(DEFAULT_DTYPE if dtype is None else dtype)
        self.weight = param(np.ones(self.normalized_shape, dtype)) if elementwise_affine else None
        self.bias = param(np.zeros(self.normalized_shape, dtype)) if elementwise_affine and bias else None

    def reset_parameters(self) -> None:
        if self.weight is not None:
            init.ones_(self.weight)
        if self.bias is not None:
            init.zeros_(self.bias)

    def forward(self, x: Any) -> Tensor:
        if self.weight is not None and (not isinstance(x, Tensor) or x._data.dtype != self.weight._data.dtype):
            x = match_dtype("LayerNorm", x, self.weight.dtype)
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
                f"bias={self.bias is not None}")


@replayed
def _count(counter: Tensor) -> None:
    """``num_batches_tracked += 1`` (a compiled step repeats it)."""
    counter._data += 1
