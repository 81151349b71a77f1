"""The Tensor: an ndarray, its gradient, and the graph node that produced it.

A computation graph (lecture: "nodes are tensor values, edges are function arguments") is built
implicitly: every primitive applied to tensors that require grad returns a tensor whose ``_ctx``
points at a :class:`Node` holding the primitive and its inputs. No derivative math lives here;
the dunders forward to :mod:`chainrule.ops`.
"""

from __future__ import annotations

import itertools
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
float16 = np.dtype(np.float16)
int32 = np.dtype(np.int32)
int64 = np.dtype(np.int64)
bool_ = np.dtype(np.bool_)
DEFAULT_DTYPE = float32


_node_counter = itertools.count(1)


class Size(tuple):
    """A shape, as ``torch.Size``: a tuple of ints that also knows its element count."""

    def numel(self) -> int:
        n = 1
        for s in self:
            n *= s
        return n

    def __repr__(self) -> str:
        return f"Size({list(self)})"


#: id(storage) -> the node counter's value at its latest in-place update through a Tensor. Keyed by the
#: array that owns the memory, so an update through a view is seen through every other view (PyTorch's
#: version counter, shared per storage). A stale entry (its array freed, the id reused) is harmless:
#: it is older than any node that can read the new array.
_INPLACE_STAMPS: dict[int, int] = {}


def _storage(a) -> int:
    """id of the object that owns ``a``'s memory (views share it)."""
    while isinstance(a, np.ndarray) and a.base is not None:
        a = a.base
    return id(a)


def _stamp(t: Tensor) -> None:
    """Mark ``t``'s memory as updated in place now (after every node recorded so far)."""
    if len(_INPLACE_STAMPS) > 100_000:  # bound the table; forgetting only weakens the check
        _INPLACE_STAMPS.clear()
    _INPLACE_STAMPS[_storage(t._data)] = _autograd.state.last_inplace = next(_node_counter)


def _updated_after(t: Tensor, seq: int) -> bool:
    """Whether ``t``'s memory was updated in place after node number ``seq`` was recorded."""
    return _INPLACE_STAMPS.get(_storage(t._data), 0) > seq


class Node:
    """One recorded application of a primitive: ``out = op(*inputs, **attrs)``.

    ``inputs`` holds Tensors (graph edges) and ndarrays (constants). ``released`` is set when
    backward frees the graph; ``where`` is the creation stack, kept only in anomaly mode; ``seq``
    numbers nodes in creation order; ``saved`` is what a primitive flagged ``saves`` computed in its
    forward for its rule (e.g. softmax probabilities), freed with the graph.
    """

    __slots__ = ("op", "inputs", "attrs", "where", "seq", "saved")

    def __init__(self, op, inputs: tuple, attrs: dict, where=None, saved=None):
        self.op, self.inputs, self.attrs, self.where, self.saved = op, inputs, attrs, where, saved
        # Creation order is a topological order: an op's inputs always exist before it does.
        self.seq = next(_node_counter)

    @property
    def released(self) -> bool:
        return self.inputs is None


class Tensor:
    """An n-dimensional array that can record the operations applied to it.

    ``Tensor(data)`` wraps ``data`` without copying when it is already an ndarray of a supported
    dtype; :func:`tensor` is the user-facing constructor that copies and picks dtypes.
    """

    __slots__ = ("_data", "grad", "requires_grad", "_ctx", "name", "__weakref__")
    # Make ``ndarray @ Tensor`` and ``ndarray * Tensor`` reach Tensor's reflected dunders.
    __array_ufunc__ = None
    __array_priority__ = 1000

    def __init__(self, data, requires_grad: bool = False, _ctx: Node | None = None, name=None):
        self._data = data if isinstance(data, np.ndarray) else np.asarray(data)
        self.grad: Tensor | None = None
        self._ctx = _ctx
        self.name = name
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    # ----- identity and truth -----------------------------------------------------------------
    __hash__ = object.__hash__

    def __bool__(self) -> bool:
        if self._data.size != 1:
            raise ValueError(
                f"bool() of a tensor with {self._data.size} elements is ambiguous: "
                "use .any() or .all(), or compare a single element"
            )
        return bool(self._data)

    # ----- basic properties -------------------------------------------------------------------
    @property
    def data(self) -> Tensor:
        """This tensor's values as a new leaf that shares its memory and is cut from the graph, as
        ``torch.Tensor.data``: ``p.data -= lr * p.grad`` and ``p.data.zero_()`` update ``p`` without
        recording anything. The ndarray itself is ``p.numpy()`` (or ``np.asarray(p)``)."""
        t = Tensor.__new__(Tensor)
        t._data, t.grad, t._ctx, t.name, t.requires_grad = self._data, None, None, None, False
        return t

    @data.setter
    def data(self, value) -> None:
        self._data = value._data if isinstance(value, Tensor) else np.asarray(value)

    @property
    def shape(self) -> tuple[int, ...]:
        return self._data.shape

    @property
    def ndim(self) -> int:
        return self._data.ndim

    @property
    def dtype(self) -> np.dtype:
        return self._data.dtype

    def size(self, dim: int | None = None) -> Size | int:
        """The shape as a :class:`Size` (``torch.Tensor.size``), or the length of axis ``dim``.
        The element count (NumPy's ``ndarray.size``) is :meth:`numel`."""
        if dim is None:
            return Size(self._data.shape)
        try:
            return self._data.shape[dim]
        except (IndexError, TypeError):
            raise IndexError(f"size: dim {dim!r} is out of range for a tensor of shape {self.shape}") from None

    def numel(self) -> int:
        return self._data.size

    def dim(self) -> int:
        return self._data.ndim

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    @property
    def grad_fn(self):
        """The primitive that produced this tensor (None for leaves)."""
        return None if self._ctx is None else self._ctx.op

    @property
    def T(self) -> Tensor:
        return _ops.transpose(self, axes=None)

    @property
    def mT(self) -> Tensor:
        return _ops.swapaxes(self, -1, -2)

    def __len__(self) -> int:
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __array__(self, dtype=None, copy=None):
        return self._data if dtype is None else self._data.astype(dtype, copy=False)

    def numpy(self) -> np.ndarray:
        """The underlying ndarray (shared memory, like ``torch.Tensor.numpy``)."""
        return self._data

    def tolist(self):
        return self._data.tolist()

    def item(self) -> float | int | bool:
        if self._data.size != 1:
            raise ValueError(f"item() needs a one-element tensor; this one has shape {self.shape}")
        return self._data.item()

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self._data.dtype.kind not in "iu":
            raise TypeError(f"only integer tensors can be used as an index, not {self.dtype}")
        return int(self.item())

    def __repr__(self) -> str:
        body = np.array2string(self._data, precision=4, separator=", ", prefix="tensor(")
        extra = []
        if self._data.dtype != DEFAULT_DTYPE:
            extra.append(f"dtype={self._data.dtype}")
        if self._ctx is not None:
            extra.append(f"grad_fn={self._ctx.op.name}")
        elif self.requires_grad:
            extra.append("requires_grad=True")
        return f"tensor({body}{''.join(', ' + e for e in extra)})"

    # ----- autograd bookkeeping ---------------------------------------------------------------
    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if requires_grad and self._data.dtype.kind not in "fc":
            raise TypeError(
                f"only floating-point tensors can require grad; this one is {self._data.dtype} "
                "(labels and indices never need gradients)"
            )
        if not requires_grad and self._ctx is not None:
            raise RuntimeError("requires_grad can only be switched off on leaf tensors; use .detach()")
        self.requires_grad = bool(requires_grad)
        return self

    def detach(self) -> Tensor:
        """A new leaf sharing this tensor's data, cut from the graph."""
        return Tensor(self._data)

    def detach_(self) -> Tensor:
        self._ctx = None
        self.requires_grad = False
        return self

    def zero_(self) -> Tensor:
        self._check_inplace("zero_")
        self._data[...] = 0
        return self

    def backward(self, grad=None, retain_graph: bool = False, create_graph: bool = False,
                 inputs: Sequence[Tensor] | None = None) -> None:
        """Accumulate d(self)/d(leaf) into ``leaf.grad`` for every leaf that requires grad.

        Reverse-mode: nodes are visited in reverse topological order, each node's vector-Jacobian
        product is computed once and reused by everything upstream (the lecture's "key idea #2").
        """
        _autograd.backward(self, grad, retain_graph, create_graph, inputs)

    # ----- conversions -------------------------------------------------------------------------
    def astype(self, dtype) -> Tensor:
        return _ops.astype(self, dtype=np.dtype(dtype))

    to = astype

    def float(self) -> Tensor:
        return self.astype(float32)

    def double(self) -> Tensor:
        return self.astype(float64)

    def long(self) -> Tensor:
        return self.astype(int64)

    def clone(self) -> Tensor:
        return _ops.astype(self, dtype=self.dtype, copy=True)

    def contiguous(self) -> Tensor:
        return self

    # ----- arithmetic dunders ------------------------------------------------------------------
    def __add__(self, o): return _ops.add(self, o)
    def __radd__(self, o): return _ops.add(o, self)
    def __sub__(self, o): return _ops.sub(self, o)
    def __rsub__(self, o): return _ops.sub(o, self)
    def __mul__(self, o): return _ops.mul(self, o)
    def __rmul__(self, o): return _ops.mul(o, self)
    def __truediv__(self, o): return _ops.div(self, o)
    def __rtruediv__(self, o): return _ops.div(o, self)
    def __pow__(self, o): return _ops.pow(self, o)
    def __rpow__(self, o): return _ops.pow(o, self)
    def __matmul__(self, o): return _ops.matmul(self, o)
    def __rmatmul__(self, o): return _ops.matmul(o, self)
    def __neg__(self): return _ops.neg(self)
    def __pos__(self): return self
    def __abs__(self): return _ops.abs(self)

    def __lt__(self, o): return _ops.less(self, o)
    def __le__(self, o): return _ops.less_equal(self, o)
    def __gt__(self, o): return _ops.greater(self, o)
    def __ge__(self, o): return _ops.greater_equal(self, o)
    def __eq__(self, o): return _ops.equal(self, o)  # type: ignore[override]
    def __ne__(self, o): return _ops.not_equal(self, o)  # type: ignore[override]
    def __invert__(self): return _ops.logical_not(self)
    def __and__(self, o): return _ops.logical_and(self, o)
    def __or__(self, o): return _ops.logical_or(self, o)

    # In-place updates never enter the graph; they are for optimizers and initialisers. Each one
    # stamps the tensor, so a backward through a node recorded before it raises instead of using the
    # new values (PyTorch's version counter; writes to ``.data`` bypass it, as in PyTorch).
    def _check_inplace(self, what: str) -> None:
        if self.requires_grad and _autograd.is_grad_enabled():
            raise RuntimeError(
                f"{what}: in-place update of a tensor that requires grad while recording; "
                "wrap it in `with cr.no_grad():` or write `x = x + y`"
            )
        _stamp(self)

    def _inplace(self, ufunc, other, what):
        self._check_inplace(what)
        o = other._data if isinstance(other, Tensor) else other
        ufunc(self._data, o, out=self._data, casting="same_kind")
        return self

    def __iadd__(self, o): return self._inplace(np.add, o, "+=")
    def __isub__(self, o): return self._inplace(np.subtract, o, "-=")
    def __imul__(self, o): return self._inplace(np.multiply, o, "*=")
    def __itruediv__(self, o): return self._inplace(np.divide, o, "/=")

    def add_(self, o, alpha: float = 1.0) -> Tensor:
        return self._inplace(np.add, o if alpha == 1 else _unwrap(o) * alpha, "add_")

    def mul_(self, o) -> Tensor:
        return self._inplace(np.multiply, o, "mul_")

    def copy_(self, src) -> Tensor:
        self._check_inplace("copy_")
        np.copyto(self._data, _unwrap(src), casting="same_kind")
        return self

    def fill_(self, value) -> Tensor:
        self._check_inplace("fill_")
        self._data.fill(value)
        return self

    def __getitem__(self, idx) -> Tensor:
        return _ops.getitem(self, idx=_index(idx))

    def __setitem__(self, idx, value) -> None:
        self._check_inplace("__setitem__")
        if self._ctx is not None and _autograd.is_grad_enabled():
            raise RuntimeError("__setitem__ on a recorded tensor would corrupt its graph; .detach() it first")
        self._data[_index(idx)] = _unwrap(value)

    # ----- method forms of ops -----------------------------------------------------------------
    def sum(self, axis=None, keepdims=False, dim=None): return _ops.sum(self, axis=_ax(axis, dim), keepdims=keepdims)
    def mean(self, axis=None, keepdims=False, dim=None): return _fn.mean(self, _ax(axis, dim), keepdims)
    def var(self, axis=None, keepdims=False, correction=1, dim=None): return _fn.var(self, _ax(axis, dim), keepdims, correction)
    def std(self, axis=None, keepdims=False, correction=1, dim=None): return _fn.std(self, _ax(axis, dim), keepdims, correction)
    def max(self, axis=None, keepdims=False, dim=None): return _ops.max(self, axis=_ax(axis, dim), keepdims=keepdims)
    def min(self, axis=None, keepdims=False, dim=None): return _fn.min(self, _ax(axis, dim), keepdims)
    def prod(self, axis=None, keepdims=False, dim=None): return _ops.prod(self, axis=_ax(axis, dim), keepdims=keepdims)
    def logsumexp(self, axis=None, keepdims=False, dim=None): return _fn.logsumexp(self, _ax(axis, dim), keepdims)
    def softmax(self, axis=-1, dim=None): return _fn.softmax(self, _ax(axis, dim))
    def log_softmax(self, axis=-1, dim=None): return _fn.log_softmax(self, _ax(axis, dim))
    def argmax(self, axis=None, keepdims=False, dim=None): return _ops.argmax(self, axis=_ax(axis, dim), keepdims=keepdims)
    def argmin(self, axis=None, keepdims=False, dim=None): return _ops.argmin(self, axis=_ax(axis, dim), keepdims=keepdims)
    def any(self, axis=None): return Tensor(self._data.any(axis=axis))
    def all(self, axis=None): return Tensor(self._data.all(axis=axis))
    def exp(self): return _ops.exp(self)
    def log(self): return _ops.log(self)
    def sqrt(self): return _ops.sqrt(self)
    def abs(self): return _ops.abs(self)
    def tanh(self): return _ops.tanh(self)
    def sigmoid(self): return _ops.sigmoid(self)
    def relu(self): return _ops.relu(self)
    def sign(self): return _ops.sign(self)
    def sin(self): return _ops.sin(self)
    def cos(self): return _ops.cos(self)
    def log1p(self): return _ops.log1p(self)
    def clip(self, min=None, max=None): return _ops.clip(self, lo=min, hi=max)
    clamp = clip
    def maximum(self, o): return _ops.maximum(self, o)
    def minimum(self, o): return _ops.minimum(self, o)
    def matmul(self, o): return _ops.matmul(self, o)
    def pow(self, o): return _ops.pow(self, o)
    def reshape(self, *shape): return _ops.reshape(self, shape=_shape(shape))
    view = reshape
    def flatten(self, start_dim=0, end_dim=-1): return _fn.flatten(self, start_dim, end_dim)
    def transpose(self, *axes):
        # PyTorch's transpose(d0, d1) swaps two dims (also for 2-D: transpose(0, 1) is .T, not the
        # identity NumPy would give); one tuple is a NumPy permutation of all axes.
        if len(axes) == 2 and all(isinstance(a, numbers.Integral) for a in axes):
            return _ops.swapaxes(self, axes[0], axes[1])
        return _ops.transpose(self, axes=_shape(axes) or None)
    def permute(self, *axes): return _ops.transpose(self, axes=_shape(axes))
    def swapaxes(self, a, b): return _ops.swapaxes(self, a, b)
    def squeeze(self, axis=None, dim=None): return _fn.squeeze(self, _ax(axis, dim))
    def unsqueeze(self, axis): return _fn.unsqueeze(self, axis)
    def expand(self, *shape): return _fn.expand(self, _shape(shape))
    def broadcast_to(self, *shape): return _ops.broadcast_to(self, shape=_shape(shape))


def _ax(axis, dim):
    return dim if axis is None else axis


def _shape(shape) -> tuple:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def _unwrap(x):
    return x._data if isinstance(x, Tensor) else x


def _index(idx):
    """Turn Tensors inside an index expression into ndarrays (hashable attrs are not needed)."""
    if isinstance(idx, tuple):
        return tuple(_unwrap(i) for i in idx)
    if isinstance(idx, list):
        return np.asarray([_unwrap(i) for i in idx])
    return _unwrap(idx)


# ----- creation helpers ---------------------------------------------------------------------------
_rng = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed chainrule's global generator (used by randn/rand/dropout/init) and return it."""
    global _rng
    _rng = np.random.default_rng(seed)
    return _rng


def get_rng() -> np.random.Generator:
    """chainrule's global NumPy Generator (reseeded by :func:`manual_seed`); used by randn, rand, dropout and init."""
    return _rng


def _resolve_dtype(data: np.ndarray, dtype) -> np.dtype:
    if dtype is not None:
        return np.dtype(dtype)
    kind = data.dtype.kind
    if kind == "f":
        # float32 by default, even for float64 NumPy input: chainrule keeps float32 end to end.
        return DEFAULT_DTYPE if data.dtype != np.float16 else data.dtype
    if kind in "iu":
        return int64  # labels and indices: int64 like torch, whatever the integer width
    if kind == "b":
        return bool_
    raise TypeError(f"tensor(): unsupported data of dtype {data.dtype} (need numbers or booleans)")


def tensor(data: Any, dtype=None, requires_grad: bool = False) -> Tensor:
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
    arr = np.array(arr, dtype=_resolve_dtype(arr, dtype), copy=True)
    return Tensor(arr, requires_grad=requires_grad)


def as_tensor(data: Any, dtype=None) -> Tensor:
    """Like :func:`tensor` but shares memory when ``data`` already has the right dtype."""
    if isinstance(data, Tensor) and (dtype is None or data.dtype == np.dtype(dtype)):
        return data
    arr = np.asarray(_unwrap(data))
    return Tensor(arr.astype(_resolve_dtype(arr, dtype), copy=False))


def _dt(dtype):
    return DEFAULT_DTYPE if dtype is None else np.dtype(dtype)


def _size(shape) -> tuple:
    return _shape(shape) if shape else ()


def zeros(*shape, dtype=None, requires_grad=False) -> Tensor:
    """A tensor of zeros of the given shape (float32 unless ``dtype``)."""
    return Tensor(np.zeros(_size(shape), _dt(dtype)), requires_grad)


def ones(*shape, dtype=None, requires_grad=False) -> Tensor:
    """A tensor of ones of the given shape (float32 unless ``dtype``)."""
    return Tensor(np.ones(_size(shape), _dt(dtype)), requires_grad)


def empty(*shape, dtype=None, requires_grad=False) -> Tensor:
    """An uninitialised tensor of the given shape (float32 unless ``dtype``)."""
    return Tensor(np.empty(_size(shape), _dt(dtype)), requires_grad)


def full(shape, fill_value, dtype=None, requires_grad=False) -> Tensor:
    """A tensor of ``shape`` filled with ``fill_value`` (float32 unless ``dtype``)."""
    shape = (shape,) if isinstance(shape, numbers.Integral) else tuple(shape)
    return Tensor(np.full(shape, fill_value, _dt(dtype)), requires_grad)


def zeros_like(t, dtype=None, requires_grad=False) -> Tensor:
    """Zeros with the shape (and, unless ``dtype``, the dtype) of ``t``."""
    return Tensor(np.zeros(np.shape(_unwrap(t)), dtype or _unwrap(t).dtype), requires_grad)


def ones_like(t, dtype=None, requires_grad=False) -> Tensor:
    """Ones with the shape (and, unless ``dtype``, the dtype) of ``t``."""
    return Tensor(np.ones(np.shape(_unwrap(t)), dtype or _unwrap(t).dtype), requires_grad)


def full_like(t, fill_value, dtype=None, requires_grad=False) -> Tensor:
    """``fill_value`` with the shape (and, unless ``dtype``, the dtype) of ``t``."""
    return Tensor(np.full(np.shape(_unwrap(t)), fill_value, dtype or _unwrap(t).dtype), requires_grad)


def arange(start, stop=None, step=1, dtype=None, requires_grad=False) -> Tensor:
    """Evenly spaced values in [start, stop) by ``step``, like ``np.arange``; integers give int64, floats float32."""
    if stop is None:
        start, stop = 0, start
    a = np.arange(start, stop, step)
    return Tensor(a.astype(_resolve_dtype(a, dtype)), requires_grad)


def linspace(start, stop, num, dtype=None, requires_grad=False) -> Tensor:
    """``num`` evenly spaced values from ``start`` to ``stop`` inclusive (float32 unless ``dtype``)."""
    return Tensor(np.linspace(start, stop, num, dtype=_dt(dtype)), requires_grad)


def eye(n, m=None, dtype=None, requires_grad=False) -> Tensor:
    """The n x m identity matrix (m = n by default)."""
    return Tensor(np.eye(n, m, dtype=_dt(dtype)), requires_grad)


def randn(*shape, dtype=None, requires_grad=False) -> Tensor:
    """Standard normal samples from chainrule's seeded generator (see :func:`manual_seed`)."""
    return Tensor(_rng.standard_normal(_size(shape), dtype=_dt(dtype)), requires_grad)


def rand(*shape, dtype=None, requires_grad=False) -> Tensor:
    """Uniform samples on [0, 1) from chainrule's seeded generator."""
    return Tensor(_rng.random(_size(shape), dtype=_dt(dtype)), requires_grad)


def randint(low, high, size, dtype=None) -> Tensor:
    """Integers uniform on [low, high) from chainrule's seeded generator (int64 unless ``dtype``)."""
    size = (size,) if isinstance(size, numbers.Integral) else tuple(size)
    return Tensor(_rng.integers(low, high, size, dtype=dtype or int64))


def randn_like(t, requires_grad=False) -> Tensor:
    """Standard normal samples with the shape and dtype of ``t``."""
    return randn(*np.shape(_unwrap(t)), dtype=_unwrap(t).dtype, requires_grad=requires_grad)


# Late imports: ops/autograd/functional import Tensor from this module.
from . import autograd as _autograd  # noqa: E402
from . import functional as _fn  # noqa: E402
from . import ops as _ops  # noqa: E402
