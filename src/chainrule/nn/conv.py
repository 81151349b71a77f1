"""Convolution layers (``Conv1d``, ``Conv2d``) and ``Unflatten``, the twins of their ``torch.nn`` classes.

A convolution is im2col plus one matrix product (:func:`chainrule.nn.functional.conv2d`): the weight
(out_channels, in_channels/groups, *kernel_size) and bias (out_channels,) have torch's shapes, names
and initialisation, so state_dicts copy across both ways.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import ops
from ..tensor import DEFAULT_DTYPE, Tensor
from . import functional as F
from . import init
from ._checks import check_device, match_dtype, param, positive_int
from .layers import _FUSES_ACTIVATION
from .module import Module

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
_NP_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


class _ConvNd(Module):
    """Shared by Conv1d and Conv2d: hyperparameter checks, torch's init, padding modes."""

    _nd = 0

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, dilation: Any = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", device: Any = None, dtype: Any = None):
        super().__init__()
        cls, nd = type(self).__name__, self._nd
        check_device(cls, device)
        self.in_channels = positive_int(cls, "in_channels", in_channels)
        self.out_channels = positive_int(cls, "out_channels", out_channels)
        self.groups = positive_int(cls, "groups", groups)
        if self.in_channels % self.groups:
            raise ValueError(f"{cls}: in_channels ({in_channels}) must be divisible by groups ({groups})")
        if self.out_channels % self.groups:
            raise ValueError(f"{cls}: out_channels ({out_channels}) must be divisible by groups ({groups})")
        self.kernel_size = F._ntuple(cls, "kernel_size", kernel_size, nd)
        self.stride = F._ntuple(cls, "stride", stride, nd)
        self.dilation = F._ntuple(cls, "dilation", dilation, nd)
        if isinstance(padding, str):
            if padding not in ("valid", "same"):
                raise ValueError(f"{cls}: invalid padding string {padding!r}, should be one of 'valid', 'same'")
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError(f"{cls}: padding='same' is not supported for strided convolutions "
                                 f"(stride={self.stride})")
            self.padding: Any = padding
        else:
            self.padding = F._ntuple(cls, "padding", padding, nd, low=0)
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"{cls}: padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}")
        self.padding_mode = padding_mode
        dtype = np.dtype(DEFAULT_DTYPE if dtype is None else dtype)
        shape = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        self.weight = param(np.empty(shape, dtype))
        self.bias = param(np.empty((self.out_channels,), dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch's: ``kaiming_uniform_(W, a=sqrt(5))`` (``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``) and
        ``b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, ``fan_in = in_channels/groups * prod(kernel_size)``."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight.shape[1] * math.prod(self.kernel_size)
            bound = 1.0 / math.sqrt(fan_in)
            init.uniform_(self.bias, -bound, bound)

    def _pad_input(self, x: Any) -> tuple[Any, Any]:
        """(input, padding for the convolution): non-zero padding modes pad here, by a gather."""
        if self.padding_mode == "zeros":
            return x, self.padding
        pads = F._conv_padding(type(self).__name__, self.padding, self.kernel_size, self.dilation, self.stride)
        spatial = np.shape(x)[-self._nd:]
        idx = [np.pad(np.arange(s), p, mode=_NP_MODES[self.padding_mode]) for s, p in zip(spatial, pads)]
        grid = np.ix_(*idx)  # one index array per spatial axis, broadcast against each other
        return ops.getitem(x, idx=(Ellipsis,) + tuple(grid)), 0

    def forward(self, x: Any, activation: str | None = None) -> Tensor:
        """The convolution; with ``activation`` ('relu', 'tanh', 'sigmoid') ``g(conv(x))`` computed in
        place on the product, keeping no pre-activation (what :class:`~chainrule.nn.Sequential` does for a
        convolution followed by that activation, as for Linear)."""
        if not isinstance(x, Tensor) or x._data.dtype != self.weight._data.dtype:
            x = match_dtype(type(self).__name__, x, self.weight.dtype)
        x, padding = self._pad_input(x)
        return F._convnd(self._nd, x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups,
                         activation)

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * self._nd:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * self._nd:
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class Conv1d(_ConvNd):
    """1-d convolution (cross-correlation) over (N, C_in, L) inputs, as ``torch.nn.Conv1d``:
    ``y[n, o, l] = b[o] + sum_{c, k} W[o, c, k] x[n, g c, l stride + k dilation - padding]`` with
    W of shape (out_channels, in_channels/groups, kernel_size)."""

    _nd = 1


class Conv2d(_ConvNd):
    """2-d convolution (cross-correlation) over (N, C_in, H, W) inputs, as ``torch.nn.Conv2d``:
    ``y[n, o, i, j] = b[o] + sum_{c, p, q} W[o, c, p, q] x[n, g c, i s_h + p d_h - pad_h, j s_w + q d_w - pad_w]``.

    Computed as im2col plus one matrix product: ``cols = unfold(x)`` of shape (N, C kH kW, L), then
    ``W (O, C kH kW) @ cols``, batched over the batch and the groups."""

    _nd = 2


_FUSES_ACTIVATION.update((Conv1d, Conv2d))  # Sequential runs Conv + ReLU/Tanh/Sigmoid as one fused step


class Unflatten(Module):
    """Split axis ``dim`` into ``unflattened_size`` (one entry may be -1), the inverse of Flatten."""

    def __init__(self, dim: int, unflattened_size: Any):
        super().__init__()
        if isinstance(unflattened_size, (int, np.integer)) or not all(
                isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in unflattened_size):
            raise ValueError(f"Unflatten: unflattened_size must be a sequence of ints, got {unflattened_size!r}")
        self.dim, self.unflattened_size = int(dim), tuple(int(s) for s in unflattened_size)

    def forward(self, x: Any) -> Tensor:
        shape = tuple(np.shape(x))
        d = self.dim % len(shape) if shape and -len(shape) <= self.dim < len(shape) else None
        if d is None:
            raise ValueError(f"Unflatten: dim {self.dim} is out of range for an input of shape {shape}")
        new = self.unflattened_size
        known = math.prod(s for s in new if s != -1)
        if (-1 not in new and known != shape[d]) or (-1 in new and (known == 0 or shape[d] % known)):
            raise ValueError(f"Unflatten: cannot split axis {self.dim} of size {shape[d]} (input {shape}) into {new}")
        return ops.reshape(x, shape=shape[:d] + new + shape[d + 1:])

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"
