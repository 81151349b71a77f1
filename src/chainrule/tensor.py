"""The Tensor: an ndarray, its gradient, and the graph node that produced it.

A computation graph (lecture: "nodes are tensor values, edges are function arguments") is built
implicitly: every primitive applied to tensors that require grad returns a tensor whose ``_ctx``
points at a :class:`Node` holding the primitive and its inputs. No derivative math lives here;
the dunders forward to :mod:`chainrule.ops`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
float16 = np.dtype(np.float16)
int32 = np.dtype(np.int32)
int64 = np.dtype(np.int64)
bool_ = np.dtype(np.bool_)
DEFAULT_DTYPE = float32
PRINT_OPTIONS = {"precision": 4}  # torch's repr precision; set_printoptions changes it


_node_counter = itertools.count(1)


class Size(tuple):
    """A shape, as ``torch.Size``: a tuple of ints that also knows its element count."""

    def numel(self) -> int:
        n = 1
        for s in self:
            n *= s
        return n

    # printed as the tuple it is (torch prints torch.Size([...])), so shapes read the same in every message


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

    def name(self) -> str:
        """torch's name for this node's backward: ``MulBackward0`` for a ``mul``."""
        name = self.op.name
        return (name if name[0].isupper() else "".join(w.capitalize() for w in name.split("_"))) + "Backward0"

    @property
    def next_functions(self) -> tuple:
        """``(node, 0)`` per input, as torch's ``grad_fn.next_functions``: the node that made a recorded
        input, an :class:`AccumulateGrad` for a leaf that requires grad, None otherwise."""
        if self.inputs is None:
            return ()
        return tuple((i._ctx if i._ctx is not None else AccumulateGrad(i), 0) if isinstance(i, Tensor) and i.requires_grad
                     else (None, 0) for i in self.inputs)

    def __repr__(self) -> str:
        return f"<{self.name()}>"


class AccumulateGrad:
    """The end of a backward path: where a leaf's gradient is accumulated (``variable`` is the leaf)."""

    __slots__ = ("variable",)
    next_functions = ()

    def __init__(self, variable):
        self.variable = variable

    def name(self) -> str:
        return "AccumulateGrad"

    def __repr__(self) -> str:
        return "<AccumulateGrad>"


class Tensor:
    """An n-dimensional array that can record the operations applied to it.

    ``Tensor(data)`` wraps ``data`` without copying when it is already an ndarray of a supported
    dtype (lists and numbers become float32, as ``torch.Tensor([...])``); :func:`~chainrule.tensor`
    is the user-facing constructor that copies and picks dtypes.
    """

    __slots__ = ("_data", "_grad", "requires_grad", "_ctx", "name", "__weakref__")
    # Make ``ndarray @ Tensor`` and ``ndarray * Tensor`` reach Tensor's reflected dunders.
    __array_ufunc__ = None
    __array_priority__ = 1000

    def __init__(self, data=(), requires_grad: bool = False, _ctx: Node | None = None, name=None):
        if isinstance(data, Tensor):
            data = data._data
        elif isinstance(data, np.generic):  # a NumPy scalar (what ufuncs return for 0-d arrays) keeps its dtype
            data = np.asarray(data)
        elif not isinstance(data, np.ndarray):
            data = np.asarray(data)
            if data.dtype.kind in "iuf" or data.size == 0:  # torch.Tensor([...]) is float32
                data = data.astype(DEFAULT_DTYPE)
        self._data, self._grad, self._ctx, self.name, self.requires_grad = data, None, _ctx, name, False
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
        if _autograd.state.profiler is not None:
            _autograd.untraced("bool() of a tensor (Python control flow on a value)")
        return bool(self._data)

    # ----- basic properties -------------------------------------------------------------------
    @property
    def data(self) -> Tensor:
        """This tensor's values as a new leaf that shares its memory and is cut from the graph, as
        ``torch.Tensor.data``: ``p.data -= lr * p.grad`` and ``p.data.zero_()`` update ``p`` without
        recording anything. The ndarray itself is ``p.numpy()`` (or ``np.asarray(p)``)."""
        return _leaf(self._data)

    @data.setter
    def data(self, value) -> None:
        self._data = value._data if isinstance(value, Tensor) else np.asarray(value)

    @property
    def grad(self) -> Tensor | None:
        """The gradient accumulated by backward (None until then)."""
        return self._grad

    @grad.setter
    def grad(self, value) -> None:
        _set_grad(self, value)

    @property
    def shape(self) -> Size:
        return Size(self._data.shape)

    @property
    def ndim(self) -> int:
        return self._data.ndim

    @property
    def dtype(self) -> np.dtype:
        return self._data.dtype

    @property
    def device(self) -> _device.device:
        return _device.CPU

    is_cuda = False

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

    ndimension = dim

    def element_size(self) -> int:
        return self._data.itemsize

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    @property
    def grad_fn(self) -> Node | None:
        """The recorded node that produced this tensor (None for leaves), as torch's ``grad_fn``:
        ``name()`` and ``next_functions`` walk the graph."""
        return self._ctx

    @property
    def T(self) -> Tensor:
        return _ops.transpose(self, axes=None)

    @property
    def mT(self) -> Tensor:
        return _ops.swapaxes(self, -1, -2)

    def t(self) -> Tensor:
        """The transpose of a matrix (a 0-d or 1-d tensor is returned as it is), as ``torch.t``."""
        if self._data.ndim > 2:
            raise ValueError(f"t() expects a tensor with <= 2 dimensions, got shape {self.shape}; use transpose(d0, d1)")
        return self if self._data.ndim < 2 else _ops.transpose(self, axes=None)

    def __len__(self) -> int:
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __array__(self, dtype=None, copy=None):
        return self._data if dtype is None else self._data.astype(dtype, copy=False)

    def numpy(self, force: bool = False) -> np.ndarray:
        """The underlying ndarray (shared memory, like ``torch.Tensor.numpy``; allowed on tensors that
        require grad too)."""
        if _autograd.state.profiler is not None:
            _autograd.read(self, self._data)
        return self._data

    def tolist(self):
        if _autograd.state.profiler is not None:
            _autograd.untraced("tolist()")
        return self._data.tolist()

    def item(self) -> float | int | bool:
        if self._data.size != 1:
            raise ValueError(f"item() needs a one-element tensor; this one has shape {self.shape}")
        v = self._data.item()
        if _autograd.state.profiler is not None:
            _autograd.read(self, v)
        return v

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self._data.dtype.kind not in "iu":
            raise TypeError(f"only integer tensors can be used as an index, not {self.dtype}")
        return int(self.item())

    def __format__(self, spec: str) -> str:
        if self._data.size == 1 and self._data.ndim == 0 or spec:
            return format(self.item(), spec)
        return repr(self)

    def __repr__(self) -> str:
        body = np.array2string(self._data, precision=PRINT_OPTIONS["precision"], separator=", ", prefix="tensor(")
        extra = []
        if self._data.dtype != DEFAULT_DTYPE and not (self._data.dtype == int64 and self._data.size):
            extra.append(f"dtype={self._data.dtype}")
        if self._ctx is not None:
            extra.append(f"grad_fn=<{self._ctx.name()}>")
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
        return _leaf(self._data)

    def detach_(self) -> Tensor:
        self._ctx = None
        self.requires_grad = False
        return self

    def backward(self, gradient=None, retain_graph: bool | None = None, create_graph: bool = False,
                 inputs: Sequence[Tensor] | None = None, grad=None) -> None:
        """Accumulate d(self)/d(leaf) into ``leaf.grad`` for every leaf that requires grad.

        Reverse-mode: nodes are visited in reverse topological order, each node's vector-Jacobian
        product is computed once and reused by everything upstream (the lecture's "key idea #2").
        ``gradient`` (torch's name; ``grad`` also works) seeds a non-scalar output: the result is then
        the vector-Jacobian product ``gradient . d(self)/d(leaf)``.
        """
        _autograd.backward(self, gradient if grad is None else grad, retain_graph, create_graph, inputs)

    # ----- conversions -------------------------------------------------------------------------
    def astype(self, dtype) -> Tensor:
        return _ops.astype(self, dtype=np.dtype(dtype))

    def to(self, *args, **kwargs) -> Tensor:
        """``to(dtype)``, ``to(device)``, ``to(device, dtype)``, ``to(other)`` as torch: a cast when the
        dtype changes (recorded, so gradients flow back), else this tensor itself. Only the CPU exists."""
        dtype, copy = kwargs.pop("dtype", None), kwargs.pop("copy", False)
        _device.as_device(kwargs.pop("device", None))
        kwargs.pop("non_blocking", None)
        if kwargs:
            raise TypeError(f"to() got unexpected arguments {sorted(kwargs)}")
        for a in args:
            if isinstance(a, Tensor):
                dtype = a.dtype
            elif isinstance(a, (str, _device.device)) and not _is_dtype_name(a):
                _device.as_device(a)
            elif a is not None:
                dtype = a
        if dtype is not None and np.dtype(dtype) != self._data.dtype:
            return self.astype(dtype)
        return self.clone() if copy else self

    def cpu(self) -> Tensor:
        return self

    def cuda(self, *args, **kwargs) -> Tensor:
        return _device.device("cuda")  # raises: there is no CUDA device

    def type(self, dtype=None) -> str | Tensor:
        """Without an argument, torch's type name (``'torch.FloatTensor'``); with a dtype, a cast."""
        if dtype is None:
            return "torch." + _TYPE_NAMES.get(self._data.dtype, str(self._data.dtype)) + "Tensor"
        return self.to(_TYPE_NAMES_BACK.get(dtype, dtype))

    def type_as(self, other: Tensor) -> Tensor:
        return self.to(other.dtype)

    def float(self) -> Tensor: return self.to(float32)
    def double(self) -> Tensor: return self.to(float64)
    def half(self) -> Tensor: return self.to(float16)
    def long(self) -> Tensor: return self.to(int64)
    def int(self) -> Tensor: return self.to(int32)
    def bool(self) -> Tensor: return self.to(bool_)

    def clone(self) -> Tensor:
        return _ops.astype(self, dtype=self.dtype, copy=True)

    def contiguous(self) -> Tensor:
        return self

    def is_contiguous(self) -> bool:
        return bool(self._data.flags.c_contiguous)

    # ----- arithmetic dunders ------------------------------------------------------------------
    def __add__(self, o): return _ops.add(self, o)
    def __radd__(self, o): return _ops.add(o, self)
    def __sub__(self, o): return _ops.sub(self, o)
    def __rsub__(self, o): return _ops.sub(o, self)
    def __mul__(self, o): return _ops.mul(self, o)
    def __rmul__(self, o): return _ops.mul(o, self)
    def __truediv__(self, o): return _ops.div(self, o)
    def __rtruediv__(self, o): return _ops.div(o, self)
    def __floordiv__(self, o): return _ops.floor(_ops.div(self, o))
    def __mod__(self, o): return _ops.sub(self, _ops.mul(_ops.floor(_ops.div(self, o)), o))
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

    # In-place updates stamp the tensor, so a backward through a node recorded before the update
    # raises instead of using the new values (PyTorch's version counter; writes through ``.data``
    # are not checked, as in PyTorch). On a leaf that requires grad they are refused while recording.
    def _check_inplace(self, what: str) -> None:
        if self.requires_grad and _autograd.is_grad_enabled():
            if self._ctx is None:
                raise RuntimeError(
                    f"{what}: in-place update of a leaf tensor that requires grad while recording; "
                    "wrap it in `with cr.no_grad():` or write `x = x + y`")
            raise RuntimeError(
                f"{what}: in-place update of a recorded tensor would rewrite its graph; write `x = x + y` "
                "(or `x += y`, which records the op)")

    def _inplace(self, ufunc, other, what, op=None, alpha=1):
        if op is not None and self._ctx is not None and _autograd.is_grad_enabled():
            # x += y on a recorded tensor: record the op and rebind x to its result (earlier uses of x
            # keep the value they read), as torch records in-place ops on non-leaves
            return op(self, other)
        self._check_inplace(what)
        _ufunc_into(self._data, ufunc, _unwrap(other), alpha)
        return self

    def __iadd__(self, o): return self._inplace(np.add, o, "+=", _ops.add)
    def __isub__(self, o): return self._inplace(np.subtract, o, "-=", _ops.sub)
    def __imul__(self, o): return self._inplace(np.multiply, o, "*=", _ops.mul)
    def __itruediv__(self, o): return self._inplace(np.divide, o, "/=", _ops.div)
    def __ipow__(self, o): return self._inplace(np.power, o, "**=", _ops.pow)

    def add_(self, o, alpha: float = 1.0) -> Tensor:
        return self._inplace(np.add, o, "add_", alpha=alpha)

    def sub_(self, o, alpha: float = 1.0) -> Tensor:
        return self._inplace(np.subtract, o, "sub_", alpha=alpha)

    def mul_(self, o) -> Tensor:
        return self._inplace(np.multiply, o, "mul_")

    def div_(self, o) -> Tensor:
        return self._inplace(np.divide, o, "div_")

    def pow_(self, o) -> Tensor:
        return self._inplace(np.power, o, "pow_")

    def clamp_(self, min=None, max=None) -> Tensor:  # noqa: A002
        self._check_inplace("clamp_")
        _clip_into(self._data, _unwrap(min), _unwrap(max))
        return self

    def copy_(self, src) -> Tensor:
        self._check_inplace("copy_")
        _copy_into(self._data, _unwrap(src))
        return self

    def fill_(self, value) -> Tensor:
        self._check_inplace("fill_")
        _fill(self._data, _unwrap(value))
        return self

    def zero_(self) -> Tensor:
        return self.fill_(0)

    def normal_(self, mean: float = 0.0, std: float = 1.0) -> Tensor:
        """Fill with samples of N(mean, std^2) from chainrule's seeded generator."""
        return self.copy_(_creation._draw("normal", (mean, std, self.shape), None))

    def uniform_(self, a: float = 0.0, b: float = 1.0) -> Tensor:
        """Fill with samples of U(a, b) from chainrule's seeded generator."""
        return self.copy_(_creation._draw("uniform", (a, b, self.shape), None))

    def __getitem__(self, idx) -> Tensor:
        return _ops.getitem(self, idx=_index(idx))

    def __setitem__(self, idx, value) -> None:
        self._check_inplace("__setitem__")
        if self._ctx is not None and _autograd.is_grad_enabled():
            raise RuntimeError("__setitem__ on a recorded tensor would corrupt its graph; .detach() it first")
        idx = _index(idx)
        _set_items(self._data, _unwrap(value), *(idx if type(idx) is tuple else (idx,)))

    # ----- method forms of ops (torch's signatures: positional or keyword, dim/keepdim or axis/keepdims)
    def sum(self, *a, **k): return _ops.sum(self, *a, **k)
    def prod(self, *a, **k): return _ops.prod(self, *a, **k)
    def mean(self, *a, **k): return _fn.mean(self, *a, **k)
    def var(self, *a, **k): return _fn.var(self, *a, **k)
    def std(self, *a, **k): return _fn.std(self, *a, **k)
    def max(self, *a, **k): return _fn.max(self, *a, **k)
    def min(self, *a, **k): return _fn.min(self, *a, **k)
    def amax(self, *a, **k): return _ops.max(self, *a, **k)
    def amin(self, *a, **k): return _fn.amin(self, *a, **k)
    def logsumexp(self, *a, **k): return _fn.logsumexp(self, *a, **k)
    def softmax(self, *a, **k): return _fn.softmax(self, *a, **k)
    def log_softmax(self, *a, **k): return _fn.log_softmax(self, *a, **k)
    def argmax(self, *a, **k): return _ops.argmax(self, *a, **k)
    def argmin(self, *a, **k): return _ops.argmin(self, *a, **k)
    def norm(self, *a, **k): return _fn.norm(self, *a, **k)
    def any(self, axis=None, dim=None): return _leaf(self._data.any(axis=_ax(axis, dim)))
    def all(self, axis=None, dim=None): return _leaf(self._data.all(axis=_ax(axis, dim)))
    def exp(self): return _ops.exp(self)
    def log(self): return _ops.log(self)
    def sqrt(self): return _ops.sqrt(self)
    def abs(self): return _ops.abs(self)
    def neg(self): return _ops.neg(self)
    def tanh(self): return _ops.tanh(self)
    def sigmoid(self): return _ops.sigmoid(self)
    def relu(self): return _ops.relu(self)
    def sign(self): return _ops.sign(self)
    def sin(self): return _ops.sin(self)
    def cos(self): return _ops.cos(self)
    def log1p(self): return _ops.log1p(self)
    def floor(self): return _ops.floor(self)
    def round(self): return _ops.round(self)
    def clip(self, min=None, max=None): return _fn.clip(self, min, max)  # noqa: A002
    clamp = clip
    def clamp_min(self, min): return _fn.clip(self, min, None)  # noqa: A002
    def maximum(self, o): return _ops.maximum(self, o)
    def minimum(self, o): return _ops.minimum(self, o)
    def add(self, o, alpha=1): return _ops.add(self, o if alpha == 1 else _ops.mul(o, alpha))
    def sub(self, o, alpha=1): return _ops.sub(self, o if alpha == 1 else _ops.mul(o, alpha))
    def mul(self, o): return _ops.mul(self, o)
    def div(self, o): return _ops.div(self, o)
    def eq(self, o): return _ops.equal(self, o)
    def ne(self, o): return _ops.not_equal(self, o)
    def lt(self, o): return _ops.less(self, o)
    def le(self, o): return _ops.less_equal(self, o)
    def gt(self, o): return _ops.greater(self, o)
    def ge(self, o): return _ops.greater_equal(self, o)
    def matmul(self, o): return _ops.matmul(self, o)
    def mm(self, o): return _fn.mm(self, o)
    def dot(self, o): return _fn.dot(self, o)
    def pow(self, o): return _ops.pow(self, o)
    def reshape(self, *shape): return _ops.reshape(self, shape=_shape(shape))
    def view(self, *shape): return _ops.reshape(self, shape=_shape(shape))
    def view_as(self, other): return _ops.reshape(self, shape=other.shape)
    reshape_as = view_as
    def flatten(self, start_dim=0, end_dim=-1): return _fn.flatten(self, start_dim, end_dim)
    def transpose(self, *dims): return _fn.transpose(self, *dims)
    def permute(self, *dims): return _ops.transpose(self, axes=_shape(dims))
    def swapaxes(self, a, b): return _ops.swapaxes(self, a, b)
    def squeeze(self, *a, **k): return _fn.squeeze(self, *a, **k)
    def unsqueeze(self, *a, **k): return _fn.unsqueeze(self, *a, **k)
    def expand(self, *shape): return _fn.expand(self, _shape(shape))
    def expand_as(self, other): return _fn.expand(self, other.shape)
    def broadcast_to(self, *shape): return _ops.broadcast_to(self, shape=_shape(shape))
    def repeat(self, *reps): return _fn.repeat(self, _shape(reps))


def _leaf(a: np.ndarray) -> Tensor:
    """A leaf Tensor around the ndarray ``a`` (no copy, no checks)."""
    t = Tensor.__new__(Tensor)
    t._data, t._grad, t._ctx, t.name, t.requires_grad = a, None, None, None, False
    return t


_TYPE_NAMES = {float32: "Float", float64: "Double", float16: "Half", int64: "Long", int32: "Int",
               np.dtype(np.int16): "Short", np.dtype(np.int8): "Char", np.dtype(np.uint8): "Byte", np.dtype(np.bool_): "Bool"}
_TYPE_NAMES_BACK = {f"torch.{v}Tensor": k for k, v in _TYPE_NAMES.items()}


def _is_dtype_name(a) -> bool:
    return isinstance(a, str) and a in _TYPE_NAMES_BACK


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


# Late imports: ops/autograd/functional import Tensor from this module.
from . import autograd as _autograd  # noqa: E402
from . import creation as _creation  # noqa: E402
from . import device as _device  # noqa: E402
from . import functional as _fn  # noqa: E402
from . import ops as _ops  # noqa: E402
from .writes import _clip_into, _copy_into, _fill, _set_grad, _set_items, _ufunc_into  # noqa: E402
