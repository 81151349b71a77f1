"""More of torch's Tensor methods, bound onto :class:`~chainrule.tensor.Tensor` (tensor.py holds the core ones).

Each out-of-place method is the function of the same name in :mod:`chainrule.functional_torch` with the
tensor first (``x.gather(1, idx)`` is ``gather(x, 1, idx)``). The in-place ones (``masked_fill_``,
``scatter_``, ``scatter_add_``) write the array under the same checks as ``fill_`` (refused on a
leaf that requires grad while recording, stamped for the in-place check of backward).
"""

from __future__ import annotations

import numpy as np

from . import creation as _creation
from . import functional_torch as _ft
from . import ops as _ops
from .creation import tensor as _tensor
from .tensor import Tensor

_SAME = ("gather", "scatter", "scatter_add", "index_select", "masked_fill", "masked_select", "flip", "roll", "chunk",
         "split", "tril", "triu", "sort", "argsort", "topk", "bmm", "outer", "square", "rsqrt", "reciprocal", "ceil",
         "cumsum", "isnan", "isinf", "isfinite", "nonzero", "allclose", "isclose", "equal", "diag", "unique")


def _method(name, fn):
    def method(self, *args, **kwargs):
        return fn(self, *args, **kwargs)
    method.__name__, method.__qualname__, method.__doc__ = name, f"Tensor.{name}", getattr(fn, "doc", fn.__doc__)
    return method


def _write(self: Tensor, what: str, new) -> Tensor:
    self._check_inplace(what)
    np.copyto(self._data, _ops._array(new) if isinstance(new, Tensor) else new, casting="same_kind")
    return self


def masked_fill_(self, mask, value) -> Tensor:
    """In place: ``value`` where ``mask`` holds."""
    return _write(self, "masked_fill_", _ft.masked_fill(self._data, mask, value))


def scatter_(self, dim: int, index, src=None, value=None, reduce=None) -> Tensor:
    """In place: ``self[index[i][j]][j] = src[i][j]`` for ``dim=0`` (``reduce='add'``: added instead)."""
    if reduce not in (None, "add"):
        raise ValueError(f"scatter_: reduce must be None or 'add', got {reduce!r}")
    src = value if src is None else src
    src = src._data if isinstance(src, Tensor) else src
    fn = _ft.scatter_add if reduce == "add" else _ft.scatter
    return _write(self, "scatter_", fn(self._data.copy(), dim, index, src))


def scatter_add_(self, dim: int, index, src) -> Tensor:
    """In place: ``src`` added at ``index`` along ``dim``."""
    return scatter_(self, dim, index, src, reduce="add")


def where(self, condition, other) -> Tensor:
    """``self`` where ``condition`` holds, else ``other``."""
    return _ops.where(np.asarray(condition._data if isinstance(condition, Tensor) else condition, bool), self, other)


def _new(fill):
    def make(self, *size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
        shape = tuple(size[0]) if len(size) == 1 and not isinstance(size[0], int) else size
        return _tensor(fill(shape, self.dtype if dtype is None else dtype), requires_grad=requires_grad)
    return make


def new_full(self, size, fill_value, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor of ``size`` filled with ``fill_value``, of this tensor's dtype unless ``dtype`` is given."""
    return _tensor(np.full(tuple(size), fill_value, self.dtype if dtype is None else dtype), requires_grad=requires_grad)


def new_tensor(self, data, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor copied from ``data``, of this tensor's dtype unless ``dtype`` is given."""
    return _tensor(data, dtype=self.dtype if dtype is None else dtype, requires_grad=requires_grad)


def bernoulli_(self, p: float = 0.5, generator=None) -> Tensor:
    """In place: 1 with probability ``p`` (a number or a tensor of probabilities), else 0."""
    probs = p._data if isinstance(p, Tensor) else np.full(self.shape, p)
    return _write(self, "bernoulli_", _creation.bernoulli(probs, generator=generator)._data)


def is_floating_point(self) -> bool:
    """True for a float16/32/64 tensor."""
    return np.issubdtype(self.dtype, np.floating)


def clamp_max(self, max) -> Tensor:  # noqa: A002
    """``min(x, max)``."""
    return self.clip(None, max)


def unflatten(self, dim: int, sizes) -> Tensor:
    """Split dim ``dim`` into ``sizes`` (one of them may be -1)."""
    d = dim % self.ndim
    return self.reshape(*self.shape[:d], *sizes, *self.shape[d + 1:])


for _name in _SAME:
    setattr(Tensor, _name, _method(_name, getattr(_ft, _name)))
for _fn in (masked_fill_, scatter_, scatter_add_, bernoulli_, where, new_full, new_tensor, is_floating_point, clamp_max,
            unflatten):
    setattr(Tensor, _fn.__name__, _fn)


def _unary_(name: str):
    def method(self) -> Tensor:
        return _write(self, f"{name}_", getattr(self, name)()._data)
    method.__name__, method.__doc__ = f"{name}_", f"In place: ``{name}`` (as ``fill_``, not recorded)."
    return method


for _name in ("exp", "log", "log1p", "sqrt", "abs", "neg", "sigmoid", "tanh", "relu", "floor", "ceil", "round",
              "sign", "square", "sin", "cos", "reciprocal", "rsqrt"):
    setattr(Tensor, f"{_name}_", _unary_(_name))
Tensor.clamp_min_ = lambda self, min: self.clamp_(min, None)  # noqa: A006
Tensor.clamp_max_ = lambda self, max: self.clamp_(None, max)  # noqa: A006
Tensor.new_zeros, Tensor.new_ones, Tensor.new_empty = _new(np.zeros), _new(np.ones), _new(np.empty)
Tensor.bernoulli = lambda self, generator=None: _creation.bernoulli(self, generator=generator)
Tensor.multinomial = lambda self, *a, **k: _creation.multinomial(self, *a, **k)
Tensor.nelement = Tensor.numel
Tensor.remainder = Tensor.__mod__
Tensor.fmod = lambda self, o: self - _ops.mul(_ops.sign(self), _ops.floor(_ops.abs(self / o)) * _ops.abs(o))
Tensor.true_divide, Tensor.floor_divide = Tensor.__truediv__, Tensor.__floordiv__
Tensor.logical_and, Tensor.logical_or, Tensor.logical_not = Tensor.__and__, Tensor.__or__, Tensor.__invert__
