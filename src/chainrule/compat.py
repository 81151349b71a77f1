"""PyTorch's names for dtypes and legacy tensor types, so ``import chainrule as torch`` runs torch code.

chainrule's dtypes are NumPy's (``cr.float32 is np.dtype('float32')``); ``cr.float`` is float32,
``cr.long`` int64, and so on, exactly as torch's aliases. ``torch.FloatTensor([...])``-style
constructors make tensors of their dtype. :class:`Generator` is torch's seeded generator object.
:func:`inference_mode` is :func:`~chainrule.no_grad` (chainrule has no separate inference tensors).
"""

from __future__ import annotations

import operator
import sys

import numpy as np

from .autograd import is_grad_enabled as _is_grad_enabled
from .autograd import no_grad as _no_grad
from .autograd import set_grad_enabled as _set_grad_enabled
from .creation import tensor as _tensor
from .tensor import PRINT_OPTIONS

__all__ = ["float", "double", "half", "long", "int", "short", "bool", "uint8", "int8", "int16", "float32", "float64",
           "float16", "int32", "int64", "cfloat", "dtype", "FloatTensor", "DoubleTensor", "LongTensor", "IntTensor",
           "BoolTensor", "ByteTensor", "Generator", "finfo", "iinfo", "inference_mode", "set_printoptions"]

float32 = float = np.dtype(np.float32)  # noqa: A001
float64 = double = np.dtype(np.float64)
float16 = half = np.dtype(np.float16)
int64 = long = np.dtype(np.int64)
int32 = int = np.dtype(np.int32)  # noqa: A001
int16 = short = np.dtype(np.int16)
int8 = np.dtype(np.int8)
uint8 = np.dtype(np.uint8)
bool = np.dtype(np.bool_)  # noqa: A001
cfloat = np.dtype(np.complex64)
dtype = np.dtype
finfo, iinfo = np.finfo, np.iinfo


def _typed(dt, name):
    def make(*data):
        """A tensor of this dtype from data (``LongTensor([1, 2])``)."""
        return _tensor(data[0] if len(data) == 1 else list(data), dtype=dt)
    make.__name__ = name
    return make


FloatTensor, DoubleTensor = _typed(float32, "FloatTensor"), _typed(float64, "DoubleTensor")
LongTensor, IntTensor = _typed(int64, "LongTensor"), _typed(int32, "IntTensor")
BoolTensor, ByteTensor = _typed(bool, "BoolTensor"), _typed(uint8, "ByteTensor")


class Generator:
    """A seeded random generator (``torch.Generator().manual_seed(42)``): wraps a NumPy Generator
    and can be passed as ``generator=`` to randn, rand, randint, randperm and random_split."""

    def __init__(self, device=None):
        self._rng, self._seed = np.random.default_rng(), None

    def manual_seed(self, seed: int) -> Generator:
        self._rng, self._seed = np.random.default_rng(seed), seed
        return self

    def initial_seed(self):
        return self._seed

    @property
    def rng(self) -> np.random.Generator:
        """The NumPy generator drawn from (what ``random_split``/``DataLoader(generator=)`` use)."""
        return self._rng

    def __getattr__(self, name):  # standard_normal, random, integers, permutation ...
        return getattr(self._rng, name)


def inference_mode(mode=True):
    """Context manager and decorator (``@inference_mode`` or ``@inference_mode()``): :func:`~chainrule.no_grad`
    when ``mode`` is true, nothing changed when it is false."""
    if callable(mode):  # used bare as a decorator
        return _no_grad()(mode)
    return _no_grad() if mode else _set_grad_enabled(_is_grad_enabled())


def set_printoptions(precision: int | None = None, threshold: int | None = None, edgeitems: int | None = None,
                     linewidth: int | None = None, profile: str | None = None, sci_mode: bool | None = None) -> None:
    """torch.set_printoptions: ``precision`` sets the digits a tensor prints with (4 by default, as torch);
    ``threshold``, ``edgeitems`` and ``linewidth`` go to NumPy's print options, which tensors print with;
    ``profile='default'`` restores torch's defaults (4 digits, threshold 1000, 3 edge items, 80 columns)."""
    if profile is not None:
        if profile not in ("default", "short", "full"):
            raise ValueError(f"set_printoptions: profile must be 'default', 'short' or 'full', got {profile!r}")
        precision = {"short": 2}.get(profile, 4) if precision is None else precision
        threshold = {"full": sys.maxsize}.get(profile, 1000) if threshold is None else threshold
        edgeitems = {"short": 2}.get(profile, 3) if edgeitems is None else edgeitems
        linewidth = 80 if linewidth is None else linewidth
    if precision is not None:
        PRINT_OPTIONS["precision"] = operator.index(precision)
    np.set_printoptions(**{k: v for k, v in (("threshold", threshold), ("edgeitems", edgeitems),
                                             ("linewidth", linewidth)) if v is not None},
                        **({} if sci_mode is None else {"suppress": not sci_mode}))
