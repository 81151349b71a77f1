"""Making tensors: ``tensor``, ``zeros``, ``randn`` ... with PyTorch's signatures (``*size`` or a
shape tuple, ``dtype=``, ``device=``, ``requires_grad=``), chainrule's seeded generator, and the
default dtype (float32)."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from . import device as _device
from . import tensor as _t
from .modes import branch
from .tensor import Tensor, _leaf, _unwrap

_rng = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed chainrule's global generator (used by randn/rand/dropout/init) and return it."""
    global _rng
    _rng = np.random.default_rng(int(seed))
    return _rng


seed = manual_seed


def get_rng() -> np.random.Generator:
    """chainrule's global NumPy Generator (reseeded by :func:`manual_seed`); used by randn, rand, dropout and init."""
    return _rng


def set_default_dtype(dtype) -> None:
    """The dtype of new floating tensors (float32 unless changed), as ``torch.set_default_dtype``."""
    d = np.dtype(dtype)
    if d.kind != "f":
        raise TypeError(f"set_default_dtype: only floating dtypes are allowed, got {d}")
    _t.DEFAULT_DTYPE = d


def get_default_dtype() -> np.dtype:
    return _t.DEFAULT_DTYPE


def _resolve_dtype(data: np.ndarray, dtype) -> np.dtype:
    if dtype is not None:
        return np.dtype(dtype)
    kind = data.dtype.kind
    if kind == "f":
        # the default dtype, even for float64 NumPy input: chainrule keeps float32 end to end.
        return _t.DEFAULT_DTYPE if data.dtype != np.float16 else data.dtype
    if kind in "iu":
        return _t.int64  # labels and indices: int64 like torch, whatever the integer width
    if kind == "b":
        return _t.bool_
    raise TypeError(f"tensor(): unsupported data of dtype {data.dtype} (need numbers or booleans)")


def _new(a: np.ndarray, requires_grad: bool, device) -> Tensor:
    _device.as_device(device)
    t = _leaf(a)
    return t.requires_grad_(True) if requires_grad else t


def tensor(data: Any, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Create a leaf tensor holding a copy of ``data``.

    Floating data becomes float32 unless ``dtype`` says otherwise (also for float64 NumPy arrays,
    unlike ``torch.tensor``); integers become int64; booleans stay bool.
    """
    if isinstance(data, Tensor):
        data = data._data
    if isinstance(data, (list, tuple)) and any(isinstance(d, Tensor) for d in data):
        data = [np.asarray(_unwrap(d)) for d in data]
    arr = np.asarray(data)
    if arr.dtype == object:
        raise TypeError(f"tensor(): cannot make a tensor from {type(data).__name__} holding non-numbers")
    return _new(np.array(arr, dtype=_resolve_dtype(arr, dtype), copy=True), requires_grad, device)


def as_tensor(data: Any, dtype=None, device=None) -> Tensor:
    """Like :func:`tensor` but shares memory when ``data`` already has the right dtype."""
    _device.as_device(device)
    if isinstance(data, Tensor) and (dtype is None or data.dtype == np.dtype(dtype)):
        return data
    arr = np.asarray(_unwrap(data))
    return _leaf(arr.astype(_resolve_dtype(arr, dtype), copy=False))


def from_numpy(a: np.ndarray) -> Tensor:
    """A tensor sharing ``a``'s memory and dtype (float64 stays float64), as ``torch.from_numpy``."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"from_numpy: expected an np.ndarray, got {type(a).__name__}")
    if a.dtype.kind not in "fiub":
        raise TypeError(f"from_numpy: unsupported dtype {a.dtype}")
    return _leaf(a)


def as_ndarray(x: Any) -> np.ndarray:
    """``x``'s values as an ndarray, shared rather than copied where possible: a chainrule Tensor's
    array, an ndarray itself, a torch tensor through ``.detach().cpu().numpy()``, anything else
    through ``np.asarray``. The inverse of :func:`from_numpy`, for code that reads arguments that may
    or may not be tensors (metrics, data checks, state dicts, exporters)."""
    if isinstance(x, Tensor):
        return x._data
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor (load_state_dict(torch_model.state_dict()))
        return x.detach().cpu().numpy()
    return np.asarray(x)


def is_tensor(x) -> bool:
    return isinstance(x, Tensor)


def numel(x) -> int:
    return int(np.size(_unwrap(x)))


def _dt(dtype):
    return _t.DEFAULT_DTYPE if dtype is None else np.dtype(dtype)


def _size(size) -> tuple:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    if not all(isinstance(s, numbers.Integral) and s >= 0 for s in size):
        raise ValueError(f"size must be non-negative integers, got {tuple(size)}")
    return tuple(int(s) for s in size)


def zeros(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    """A tensor of zeros of the given shape (float32 unless ``dtype``)."""
    return _new(np.zeros(_size(size), _dt(dtype)), requires_grad, device)


def ones(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    """A tensor of ones of the given shape (float32 unless ``dtype``)."""
    return _new(np.ones(_size(size), _dt(dtype)), requires_grad, device)


def empty(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    """An uninitialised tensor of the given shape (float32 unless ``dtype``)."""
    return _new(np.empty(_size(size), _dt(dtype)), requires_grad, device)


def full(size, fill_value, dtype=None, device=None, requires_grad=False) -> Tensor:
    """A tensor of ``size`` filled with ``fill_value`` (float32 unless ``dtype``)."""
    size = (size,) if isinstance(size, numbers.Integral) else tuple(size)
    return _new(np.full(size, _unwrap(fill_value), _dt(dtype)), requires_grad, device)


def _like(t, dtype):
    a = np.asarray(_unwrap(t))
    return a.shape, np.dtype(dtype) if dtype is not None else a.dtype


def zeros_like(t, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Zeros with the shape (and, unless ``dtype``, the dtype) of ``t``."""
    return _new(np.zeros(*_like(t, dtype)), requires_grad, device)


def ones_like(t, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Ones with the shape (and, unless ``dtype``, the dtype) of ``t``."""
    return _new(np.ones(*_like(t, dtype)), requires_grad, device)


def empty_like(t, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Uninitialised, with the shape (and, unless ``dtype``, the dtype) of ``t``."""
    return _new(np.empty(*_like(t, dtype)), requires_grad, device)


def full_like(t, fill_value, dtype=None, device=None, requires_grad=False) -> Tensor:
    """``fill_value`` with the shape (and, unless ``dtype``, the dtype) of ``t``."""
    shape, dt = _like(t, dtype)
    return _new(np.full(shape, fill_value, dt), requires_grad, device)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Evenly spaced values in [start, end) by ``step``; integers give int64, floats the default dtype."""
    if end is None:
        start, end = 0, start
    a = np.arange(_unwrap(start), _unwrap(end), _unwrap(step))
    return _new(a.astype(_resolve_dtype(a, dtype)), requires_grad, device)


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False) -> Tensor:
    """``steps`` evenly spaced values from ``start`` to ``end`` inclusive (float32 unless ``dtype``)."""
    return _new(np.linspace(start, end, steps, dtype=_dt(dtype)), requires_grad, device)


def eye(n, m=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    """The n x m identity matrix (m = n by default)."""
    return _new(np.eye(n, m, dtype=_dt(dtype)), requires_grad, device)


def _draw(method: str, args: tuple, generator, dtype=None, cast=None) -> np.ndarray:
    """A random array through the ``random_draw`` primitive, so that a compiled step draws again on
    every replay (from the generator of that moment: :func:`manual_seed` replaces it)."""
    from .ops_const import random_draw  # not at the top: the engine imports this module while loading

    return random_draw(method, args, dtype, cast, generator)


def randn(*size, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Standard normal samples from chainrule's seeded generator (see :func:`manual_seed`)."""
    return _new(_draw("standard_normal", (_size(size),), generator, dtype=_dt(dtype)), requires_grad, device)


def rand(*size, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Uniform samples on [0, 1) from chainrule's seeded generator."""
    return _new(_draw("random", (_size(size),), generator, dtype=_dt(dtype)), requires_grad, device)


def randint(low, high=None, size=None, generator=None, dtype=None, device=None) -> Tensor:
    """Integers uniform on [low, high) (``randint(high, size)`` as torch: low = 0), int64 unless ``dtype``."""
    if size is None:
        low, high, size = 0, low, high
    size = (size,) if isinstance(size, numbers.Integral) else tuple(size)
    return _new(_draw("integers", (low, high, size), generator, dtype=np.dtype(dtype or _t.int64)), False, device)


def randperm(n: int, generator=None, dtype=None, device=None) -> Tensor:
    """A random permutation of 0..n-1 (int64)."""
    return _new(_draw("permutation", (n,), generator, cast=np.dtype(dtype or _t.int64)), False, device)


def normal(mean: float, std: float, size, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Samples of N(mean, std^2) of ``size``."""
    return _new(_draw("normal", (mean, std, _size((size,))), generator, cast=_dt(dtype)), requires_grad, device)


def randn_like(t, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Standard normal samples with the shape and (unless ``dtype``) the dtype of ``t``."""
    shape, dt = _like(t, dtype)
    return randn(*shape, dtype=dt, device=device, requires_grad=requires_grad)


def rand_like(t, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Uniform samples on [0, 1) with the shape and (unless ``dtype``) the dtype of ``t``."""
    shape, dt = _like(t, dtype)
    return rand(*shape, dtype=dt, device=device, requires_grad=requires_grad)


def _probabilities(p: np.ndarray) -> bool:
    """Every value in [0, 1] (bernoulli's and binary_cross_entropy's check, re-run by a compiled step)."""
    return not p.size or bool(p.min() >= 0 and p.max() <= 1)


def bernoulli(input, p: float | None = None, generator=None) -> Tensor:  # noqa: A002
    """0/1 samples, 1 with probability ``input`` (elementwise; or ``p`` for every entry), of input's dtype."""
    probs = as_ndarray(input)
    probs = np.full(probs.shape, p) if p is not None else probs
    if not branch(_probabilities, probs, what="bernoulli: a probability is outside [0, 1]"):
        raise ValueError(f"bernoulli: probabilities must be in [0, 1], got [{probs.min()}, {probs.max()}]")
    from . import ops  # not at the top, as in _draw

    u = _draw("random", (probs.shape,), generator)  # a primitive: a compiled step draws again
    return _new(ops.astype(ops.less(u, probs), dtype=as_ndarray(input).dtype), False, None)


def multinomial(input, num_samples: int, replacement: bool = False, generator=None) -> Tensor:  # noqa: A002
    """``num_samples`` int64 category indices per row, drawn with the row's (unnormalised) weights ``input``."""
    from .ops_const import multinomial_draw  # a primitive, so that a compiled step draws again on every replay

    return _new(multinomial_draw(as_ndarray(input), num_samples, replacement, generator), False, None)
