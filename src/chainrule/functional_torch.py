"""torch's remaining tensor functions, each a composite of primitives (so differentiable to any order).

- indexing: ``gather(x, dim, index)`` is ``x[grid]`` with ``index`` in place of the ``dim`` axis of the
  coordinate grid; ``scatter``/``scatter_add`` put ``src`` there with the ``scatter_add`` primitive
  (``getitem``'s own gradient); ``index_select``, ``masked_fill``, ``masked_select``, ``flip``, ``roll``,
  ``chunk``, ``split``, ``tril``/``triu`` are indexing or a constant mask.
- sorting: ``sort``/``argsort``/``topk`` take the indices from NumPy (a stable sort) and the values with
  ``gather``, so the gradient flows to the chosen elements.
- comparisons: ``allclose``, ``isclose``, ``equal``, ``isnan``, ``isinf``, ``isfinite`` (no gradient).
"""

from __future__ import annotations

import builtins
import numbers
from typing import NamedTuple

import numpy as np

from . import ops
from .functional import unsqueeze
from .ops_einsum import einsum as _einsum
from .ops_scan import cumsum
from .tensor import Tensor

__all__ = ["gather", "scatter", "scatter_add", "index_select", "masked_fill", "masked_select", "flip", "roll",
           "chunk", "split", "tril", "triu", "sort", "argsort", "topk", "bmm", "outer", "square", "rsqrt",
           "reciprocal", "ceil", "cumsum", "allclose", "isclose", "equal", "isnan", "isinf", "isfinite", "nonzero",
           "diag", "unique", "einsum"]


def _data(x):
    return x._data if isinstance(x, Tensor) else np.asarray(x)


def _const(a: np.ndarray) -> Tensor:
    return Tensor(a)


def _grid(name: str, x, dim: int, index) -> tuple:
    """The advanced index that reads ``x[..., index[i, j, k], ...]`` at position (i, j, k) of ``index``."""
    idx = _data(index)
    if idx.ndim != np.ndim(_data(x)) or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"{name}: index must be an integer tensor with as many dims as input {np.shape(_data(x))}, "
                         f"got {idx.dtype} {idx.shape}")
    d = dim % idx.ndim
    for a, (n, m) in enumerate(zip(idx.shape, np.shape(_data(x)))):
        if a != d and n > m:
            raise ValueError(f"{name}: index {idx.shape} is larger than input {np.shape(_data(x))} in dim {a}")
    return tuple(idx if a == d else np.arange(n).reshape((-1,) + (1,) * (idx.ndim - a - 1))
                 for a, n in enumerate(idx.shape))


def gather(input, dim: int, index):  # noqa: A002
    """``out[i][j][k] = input[index[i][j][k]][j][k]`` for ``dim=0`` (and so on); differentiable in ``input``."""
    return ops.getitem(input, idx=_grid("gather", input, dim, index))


def _src_at(name, input, dim, index, src, last_only=False):
    """The index grid and a zero tensor of input's shape holding ``src`` at it (summed over repeated targets,
    or with ``last_only`` the last source written to each target, as torch's CPU loop leaves it)."""
    shape, g = np.shape(_data(input)), _grid(name, input, dim, index)
    if isinstance(src, numbers.Number):
        src = np.full(_data(index).shape, src, dtype=_data(input).dtype)
    src = ops.getitem(src, idx=tuple(slice(0, n) for n in _data(index).shape))
    if last_only:
        flat = np.ravel_multi_index(np.broadcast_arrays(*g), shape).ravel()
        _, first = np.unique(flat[::-1], return_index=True)
        keep = np.unravel_index(np.sort(flat.size - 1 - first), _data(index).shape)
        g, src = tuple(np.broadcast_arrays(*g)[a][keep] for a in range(len(shape))), ops.getitem(src, idx=keep)
    return g, ops.scatter_add(src, idx=g, shape=shape)


def scatter(input, dim: int, index, src=None, value=None):  # noqa: A002
    """``input`` with ``out[index[i][j]][j] = src[i][j]`` (``dim=0``); ``value=`` writes one number.
    Of the sources for one target the last one wins (torch's CPU order; torch calls it undefined)."""
    g, put = _src_at("scatter", input, dim, index, value if src is None else src, last_only=True)
    mask = np.zeros(np.shape(_data(input)), dtype=bool)
    mask[g] = True
    return ops.where(mask, put, input)


def scatter_add(input, dim: int, index, src):  # noqa: A002
    """``input`` plus ``src`` added at ``index`` along ``dim`` (repeated indices accumulate)."""
    return input + _src_at("scatter_add", input, dim, index, src)[1]


def index_select(input, dim: int, index):  # noqa: A002
    """The entries ``index`` (1-D) along ``dim``."""
    return ops.getitem(input, idx=(slice(None),) * (dim % np.ndim(_data(input))) + (_data(index).astype(np.int64),))


def masked_fill(input, mask, value):  # noqa: A002
    """``value`` where ``mask`` (broadcast) holds, else ``input``; the gradient flows to the kept entries."""
    value = _data(value).astype(_data(input).dtype)
    return ops.where(_data(mask).astype(bool), value, input)


def masked_select(input, mask):  # noqa: A002
    """The 1-D tensor of the entries where ``mask`` (broadcast to ``input``) holds."""
    return ops.getitem(input, idx=np.broadcast_to(_data(mask).astype(bool), np.shape(_data(input))))


def _dims(dims) -> tuple:
    return (dims,) if isinstance(dims, numbers.Integral) else tuple(dims)


def flip(input, dims):  # noqa: A002
    """Reverse the order of the entries along each of ``dims``."""
    nd = np.ndim(_data(input))
    rev = {d % nd for d in _dims(dims)}
    return ops.getitem(input, idx=tuple(slice(None, None, -1) if a in rev else slice(None) for a in range(nd)))


def roll(input, shifts, dims=None):  # noqa: A002
    """Shift the entries cyclically by ``shifts`` along ``dims`` (the flattened tensor when None)."""
    if dims is None:
        return ops.reshape(roll(ops.reshape(input, shape=(-1,)), shifts, 0), shape=np.shape(_data(input)))
    shape = np.shape(_data(input))
    for s, d in zip(_dims(shifts), _dims(dims)):
        order = np.roll(np.arange(shape[d]), s)
        input = ops.getitem(input, idx=(slice(None),) * (d % len(shape)) + (order,))
    return input


def split(tensor, split_size_or_sections, dim: int = 0) -> tuple:
    """Pieces of ``split_size`` along ``dim`` (the last one smaller), or of the listed sizes."""
    n = np.shape(_data(tensor))[dim]
    if isinstance(split_size_or_sections, numbers.Integral):
        sizes = [split_size_or_sections] * (n // split_size_or_sections) + [n % split_size_or_sections] * bool(
            n % split_size_or_sections)
    else:
        sizes = list(split_size_or_sections)
        if builtins.sum(sizes) != n:
            raise ValueError(f"split: sizes {sizes} sum to {builtins.sum(sizes)}, but dim {dim} has {n} entries")
    lead, starts = (slice(None),) * (dim % np.ndim(_data(tensor))), np.cumsum([0] + sizes)
    return tuple(ops.getitem(tensor, idx=lead + (slice(int(a), int(b)),)) for a, b in zip(starts, starts[1:]))


def chunk(input, chunks: int, dim: int = 0) -> tuple:  # noqa: A002
    """At most ``chunks`` pieces of ``ceil(n / chunks)`` entries along ``dim``."""
    n = np.shape(_data(input))[dim]
    return split(input, max(1, -(-n // chunks)), dim)


def _triangle(x, diagonal, upper):
    r, c = np.shape(_data(x))[-2:]
    keep = np.tri(r, c, diagonal - 1 if upper else diagonal, dtype=bool)
    return ops.where(~keep if upper else keep, x, np.zeros((), _data(x).dtype))


def tril(input, diagonal: int = 0):  # noqa: A002
    """The lower triangle (entries with ``j - i <= diagonal``) of the last two dims; zeros elsewhere."""
    return _triangle(input, diagonal, False)


def triu(input, diagonal: int = 0):  # noqa: A002
    """The upper triangle (entries with ``j - i >= diagonal``) of the last two dims; zeros elsewhere."""
    return _triangle(input, diagonal, True)


class SortResult(NamedTuple):
    values: Tensor
    indices: Tensor


def argsort(input, dim: int = -1, descending: bool = False, stable: bool = False):  # noqa: A002
    """The indices that sort ``input`` along ``dim`` (ties keep their order)."""
    x = _data(input)
    return _const(np.argsort(-x if descending and x.dtype != np.bool_ else x, axis=dim, kind="stable"))


def sort(input, dim: int = -1, descending: bool = False, stable: bool = False) -> SortResult:  # noqa: A002
    """``(values, indices)`` of ``input`` sorted along ``dim``; the gradient flows back to each value's place."""
    i = argsort(input, dim, descending)
    return SortResult(gather(input, dim, i), i)


def topk(input, k: int, dim: int = -1, largest: bool = True, sorted: bool = True) -> SortResult:  # noqa: A002
    """``(values, indices)`` of the ``k`` largest (``largest=False``: smallest) entries along ``dim``."""
    n = np.shape(_data(input))[dim]
    if not 0 <= k <= n:
        raise ValueError(f"topk: k={k} is out of range for dim {dim} of size {n}")
    i = _data(argsort(input, dim, largest))
    i = _const(np.take(i, np.arange(k), axis=dim))
    return SortResult(gather(input, dim, i), i)


def bmm(input, mat2):  # noqa: A002
    """Batched matrix product of (b, n, m) and (b, m, p) tensors."""
    a, b = np.shape(_data(input)), np.shape(_data(mat2))
    if len(a) != 3 or len(b) != 3 or a[0] != b[0] or a[2] != b[1]:
        raise ValueError(f"bmm: expected (b, n, m) and (b, m, p), got {a} and {b}")
    return ops.matmul(input, mat2)


def outer(input, vec2):  # noqa: A002
    """``out[i, j] = input[i] * vec2[j]``."""
    return unsqueeze(input, 1) * unsqueeze(vec2, 0)


def square(input):  # noqa: A002
    """``x * x``."""
    return input * input


def rsqrt(input):  # noqa: A002
    """``1 / sqrt(x)``."""
    return 1.0 / ops.sqrt(input)


def reciprocal(input):  # noqa: A002
    """``1 / x``."""
    return 1.0 / input


def ceil(input):  # noqa: A002
    """The smallest integer >= x (``-floor(-x)``; zero gradient)."""
    return -ops.floor(-input)


def isclose(input, other, rtol: float = 1e-5, atol: float = 1e-8, equal_nan: bool = False) -> Tensor:  # noqa: A002
    """``|input - other| <= atol + rtol |other|`` elementwise (a bool tensor, no gradient)."""
    return _const(np.isclose(_data(input), _data(other), rtol=rtol, atol=atol, equal_nan=equal_nan))


def allclose(input, other, rtol: float = 1e-5, atol: float = 1e-8, equal_nan: bool = False) -> bool:  # noqa: A002
    """True when :func:`isclose` holds everywhere (shapes broadcast)."""
    return bool(np.allclose(_data(input), _data(other), rtol=rtol, atol=atol, equal_nan=equal_nan))


def equal(input, other) -> bool:  # noqa: A002
    """True when both have the same shape and the same entries."""
    return bool(np.array_equal(_data(input), _data(other)))


def isnan(input) -> Tensor:  # noqa: A002
    """True where the entry is NaN."""
    return _const(np.isnan(_data(input)))


def isinf(input) -> Tensor:  # noqa: A002
    """True where the entry is +-inf."""
    return _const(np.isinf(_data(input)))


def isfinite(input) -> Tensor:  # noqa: A002
    """True where the entry is neither NaN nor +-inf."""
    return _const(np.isfinite(_data(input)))


def nonzero(input, as_tuple: bool = False):  # noqa: A002
    """The (n, ndim) int64 coordinates of the nonzero entries (a tuple of 1-D tensors with ``as_tuple``)."""
    nz = np.nonzero(_data(input))
    return tuple(_const(i) for i in nz) if as_tuple else _const(np.stack(nz, axis=1).astype(np.int64))


def diag(input, diagonal: int = 0):  # noqa: A002
    """A 1-D input: the square matrix with it on the ``diagonal``; a 2-D input: that diagonal as 1-D."""
    x = _data(input)
    if x.ndim == 1:
        n = x.shape[0] + abs(diagonal)
        r = np.arange(x.shape[0]) + max(0, -diagonal)
        return ops.scatter_add(input, idx=(r, r + diagonal), shape=(n, n))
    if x.ndim != 2:
        raise ValueError(f"diag: input must be 1-D or 2-D, got shape {x.shape}")
    r = np.arange(max(0, -diagonal), min(x.shape[0], x.shape[1] - diagonal))
    return ops.getitem(input, idx=(r, r + diagonal))


def unique(input, sorted: bool = True, return_inverse: bool = False, return_counts: bool = False, dim=None):  # noqa: A002
    """The sorted distinct entries (no gradient), with the inverse indices and counts when asked."""
    if dim is not None:
        raise ValueError("unique: dim= is not supported; unique works on the flattened tensor")
    u, inv, cnt = np.unique(_data(input), return_inverse=True, return_counts=True)
    out = (_const(u),) + ((_const(inv.reshape(_data(input).shape).astype(np.int64)),) if return_inverse else ()) + (
        (_const(cnt.astype(np.int64)),) if return_counts else ())
    return out[0] if len(out) == 1 else out


def einsum(equation: str, *operands):
    """``torch.einsum(equation, *operands)`` (or a list of operands); differentiable (see :mod:`chainrule.ops_einsum`)."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    return _einsum(*operands, equation=equation)
