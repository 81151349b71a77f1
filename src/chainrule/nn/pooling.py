"""Pooling layers, the twins of ``torch.nn``'s: max, average and adaptive average pooling in 1-d and 2-d.

No parameters: each module stores its hyperparameters and calls :mod:`chainrule.nn.functional`.
Max and average pooling are ``unfold`` (the windows) and a max or a mean over the kernel axes (windows
that tile the input, as in LeNet's 2x2 max-pooling, are a reshape into blocks instead);
adaptive average pooling multiplies by constant bin-averaging matrices.
"""

from __future__ import annotations

from typing import Any

from ..tensor import Tensor
from . import functional as F
from .module import Module


class _PoolNd(Module):
    _nd = 0

    def _set_window(self, kernel_size: Any, stride: Any, padding: Any) -> None:
        """Check the window (constructors validate) and keep the arguments as given, as torch does."""
        F._pool_args(type(self).__name__, self._nd, kernel_size, stride, padding)
        self.kernel_size, self.stride, self.padding = kernel_size, kernel_size if stride is None else stride, padding


class _MaxPoolNd(_PoolNd):

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
                 return_indices: bool = False, ceil_mode: bool = False):
        super().__init__()
        name = type(self).__name__
        self._set_window(kernel_size, stride, padding)
        F._ntuple(name, "dilation", dilation, self._nd)
        self.dilation = dilation
        if return_indices:
            raise NotImplementedError(f"{name}: return_indices=True is not supported")
        self.return_indices, self.ceil_mode = False, bool(ceil_mode)

    def forward(self, x: Any) -> Tensor:
        fn = F.max_pool1d if self._nd == 1 else F.max_pool2d
        return fn(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class MaxPool1d(_MaxPoolNd):
    """``y[n, c, l] = max_k x[n, c, l stride + k dilation - padding]`` over (N, C, L) inputs, stride
    defaulting to the kernel size, as ``torch.nn.MaxPool1d``. The gradient goes to the window's
    maximum; a tie shares it equally (torch gives it all to one element: the same wherever the max is unique)."""

    _nd = 1


class MaxPool2d(_MaxPoolNd):
    """The maximum over each kH x kW window of (N, C, H, W) inputs, as ``torch.nn.MaxPool2d``
    (see :class:`MaxPool1d`)."""

    _nd = 2


class _AvgPoolNd(_PoolNd):

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override: int | None = None):
        super().__init__()
        self._set_window(kernel_size, stride, padding)
        self.ceil_mode, self.count_include_pad = bool(ceil_mode), bool(count_include_pad)
        self.divisor_override = divisor_override

    def forward(self, x: Any) -> Tensor:
        return F._avg_poolnd(self._nd, x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                             self.count_include_pad, self.divisor_override)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool1d(_AvgPoolNd):
    """``y[n, c, l] = sum_k xpad[n, c, l stride + k] / K`` over (N, C, L) inputs, as ``torch.nn.AvgPool1d``;
    ``count_include_pad=False`` divides by the number of real elements in each window."""

    _nd = 1

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
                 count_include_pad: bool = True):
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad)
        one = lambda v: tuple(v) if isinstance(v, (tuple, list)) else (v,)  # noqa: E731 - torch keeps 1-tuples here
        self.kernel_size, self.stride, self.padding = one(self.kernel_size), one(self.stride), one(self.padding)


class AvgPool2d(_AvgPoolNd):
    """The mean over each kH x kW window of (N, C, H, W) inputs, as ``torch.nn.AvgPool2d``;
    ``divisor_override`` replaces the divisor kH kW."""

    _nd = 2


class _AdaptiveAvgPoolNd(_PoolNd):

    def __init__(self, output_size: Any):
        super().__init__()
        self.output_size = output_size

    def forward(self, x: Any) -> Tensor:
        return F._adaptive_avg_poolnd(self._nd, x, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveAvgPool1d(_AdaptiveAvgPoolNd):
    """Average over ``output_size`` bins ``[floor(i L/O), ceil((i+1) L/O))``, as ``torch.nn.AdaptiveAvgPool1d``."""

    _nd = 1


class AdaptiveAvgPool2d(_AdaptiveAvgPoolNd):
    """Average over an ``output_size`` grid of bins (``None`` keeps an axis), as ``torch.nn.AdaptiveAvgPool2d``;
    ``AdaptiveAvgPool2d(1)`` is global average pooling."""

    _nd = 2
