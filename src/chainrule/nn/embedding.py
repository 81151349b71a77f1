"""Embeddings: the lecture's one-hot feature phi(word) times a matrix, learned, as a lookup.

For a vocabulary of V words, ``onehot(i) W = W[i]`` for W of shape (V, D): :func:`embedding` is the
row lookup ``getitem(W, idx)``, whose gradient rule scatters (adds) the incoming rows back, so a
word that occurs k times in a batch gets the sum of its k gradients, exactly the gradient of the
one-hot product, without ever building the (N, V) one-hot matrix. Names, arguments, init and
``padding_idx`` behave as in ``torch.nn.Embedding`` / ``EmbeddingBag``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import ops
from ..functional import _in_range
from ..modes import branch, same_values
from ..tensor import DEFAULT_DTYPE, Tensor, _unwrap
from . import init
from ._checks import param, positive_int
from .module import Module, Parameter


def _holds(idx: np.ndarray, pad: int) -> bool:
    return bool((idx == pad).any())


def _indices(name: str, input: Any, num: int) -> np.ndarray:  # noqa: A002
    idx = np.asarray(_unwrap(input))
    if idx.dtype.kind not in "iu":
        raise TypeError(f"{name}: indices must be integers (cr.long), got {idx.dtype}")
    if not branch(_in_range, idx, num, what=f"{name}: an index is out of range for {num} embeddings"):
        bad = idx[(idx < 0) | (idx >= num)]
        raise IndexError(f"{name}: index {int(bad.flat[0])} is out of range for {num} embeddings "
                         f"(valid: 0 .. {num - 1}; {bad.size} bad of {idx.size})")
    return idx if idx.dtype == np.intp else ops.astype(idx, dtype=np.dtype(np.intp))  # a primitive: replayed


def _padding(name: str, padding_idx: int | None, num: int) -> int | None:
    if padding_idx is None:
        return None
    if not -num <= padding_idx < num:
        raise ValueError(f"{name}: padding_idx must be within [-{num}, {num}) for {num} embeddings, "
                         f"got {padding_idx}")
    return int(padding_idx) % num


def _unsupported(name: str, max_norm: Any, scale_grad_by_freq: bool, sparse: bool) -> None:
    for arg, v, default in (("max_norm", max_norm, None), ("scale_grad_by_freq", scale_grad_by_freq, False),
                            ("sparse", sparse, False)):
        if v != default:
            raise ValueError(f"{name}: {arg}={v!r} is not supported (only {default!r})")


def _lookup(weight: Any, idx: np.ndarray, pad: int | None) -> Any:
    """``weight[idx]``; rows looked up at ``pad`` carry their value but pass no gradient (torch)."""
    out = ops.getitem(weight, idx=idx)
    if pad is None or not isinstance(weight, Tensor) or not branch(
            _holds, idx, pad, what="embedding: whether the batch holds padding_idx changed"):
        return out
    # the same values, outside the graph (cr.compile checks it is the same on both recording calls)
    frozen = np.array(weight._data[pad])
    return ops.where((idx == pad)[..., None], frozen, out)


def embedding(input: Any, weight: Any, padding_idx: int | None = None, max_norm: float | None = None,  # noqa: A002
              norm_type: float = 2.0, scale_grad_by_freq: bool = False, sparse: bool = False) -> Tensor:
    """Rows of ``weight`` (V, D) at the integer ``input`` of any shape: output ``input.shape + (D,)``.

    ``= onehot(input) @ weight``; the gradient of a row is the sum over its occurrences. Rows at
    ``padding_idx`` get no gradient. ``max_norm``, ``scale_grad_by_freq`` and ``sparse`` are not supported.
    """
    _unsupported("embedding", max_norm, scale_grad_by_freq, sparse)
    if np.ndim(weight) != 2:
        raise ValueError(f"embedding: weight must be (num_embeddings, embedding_dim), got shape {np.shape(weight)}")
    num = np.shape(weight)[0]
    return _lookup(weight, _indices("embedding", input, num), _padding("embedding", padding_idx, num))


def _bags(name: str, idx: np.ndarray, offsets: Any, include_last_offset: bool) -> tuple:
    """2-D input, or 1-D input cut at ``offsets``, as a padded (B, L) index array, its mask, and the
    positions in the 1-D input (None for 2-D input)."""
    if idx.ndim == 2:
        if offsets is not None:
            raise ValueError(f"{name}: offsets must be None with 2-D input {idx.shape} (each row is a bag)")
        return idx, np.ones(idx.shape, bool), None
    if idx.ndim != 1 or offsets is None:
        raise ValueError(f"{name}: input must be 2-D (B, L), or 1-D with offsets; got shape {idx.shape}"
                         f"{'' if offsets is None else ' and offsets'}")
    raw = np.asarray(_unwrap(offsets))
    same_values(raw, f"{name}: the offsets differ from the recorded ones (they set the bags)")
    off = raw.astype(np.intp).reshape(-1)
    if off.size == 0 or off[0] != 0 or np.any(np.diff(off) < 0) or off[-1] > idx.size:
        raise ValueError(f"{name}: offsets must start at 0 and be non-decreasing up to len(input)={idx.size}, "
                         f"got {off.tolist()[:10]}")
    ends = np.append(off[1:], idx.size) if not include_last_offset else off[1:]
    starts = off if not include_last_offset else off[:-1]
    lens = ends - starts
    width = max(int(lens.max()) if lens.size else 0, 1)
    mask = np.arange(width) < lens[:, None]
    pos = np.where(mask, starts[:, None] + np.arange(width), 0)
    return (idx[pos] if idx.size else np.zeros(pos.shape, np.intp)), mask, pos


def embedding_bag(input: Any, weight: Any, offsets: Any = None, max_norm: float | None = None,  # noqa: A002
                  norm_type: float = 2, scale_grad_by_freq: bool = False, mode: str = "mean", sparse: bool = False,
                  per_sample_weights: Any = None, include_last_offset: bool = False,
                  padding_idx: int | None = None) -> Tensor:
    """One vector per bag of indices: the sum, mean or max of its rows of ``weight``.

    Bags are the rows of a 2-D ``input`` (B, L), or the slices ``input[offsets[b]:offsets[b+1]]`` of a
    1-D one. ``mode='sum'`` is ``counts(bag) @ weight``, the bag-of-words vector times the matrix;
    ``per_sample_weights`` (sum only) weight each index. Indices equal to ``padding_idx`` are left
    out (and not counted by the mean); an empty bag gives zeros. Output (B, D).
    """
    name = "embedding_bag"
    _unsupported(name, max_norm, scale_grad_by_freq, sparse)
    if mode not in ("sum", "mean", "max"):
        raise ValueError(f"{name}: mode must be 'sum', 'mean' or 'max', got {mode!r}")
    num = np.shape(weight)[0]
    idx = _indices(name, input, num)
    pad = _padding(name, padding_idx, num)
    rows, mask, pos = _bags(name, idx, offsets, include_last_offset)
    if pad is not None:
        mask = mask & (rows != pad)
    emb = ops.getitem(weight, idx=rows)  # (B, L, D)
    if mode == "max":
        if per_sample_weights is not None:
            raise ValueError(f"{name}: per_sample_weights is only supported with mode='sum', got mode='max'")
        best = ops.max(ops.where(mask[..., None], emb, -np.inf), axis=1)
        return ops.where(mask.any(axis=1)[:, None], best, 0.0)  # empty bags: zeros, as in torch
    w = mask.astype(np.asarray(_unwrap(weight)).dtype)
    if per_sample_weights is not None:
        if mode != "sum":
            raise ValueError(f"{name}: per_sample_weights is only supported with mode='sum', got mode={mode!r}")
        psw = per_sample_weights
        if tuple(np.shape(psw)) != idx.shape:
            raise ValueError(f"{name}: per_sample_weights has shape {tuple(np.shape(psw))}, input {idx.shape}")
        w = ops.mul(w, psw if pos is None else ops.getitem(psw, idx=pos))
    elif mode == "mean":
        w = w / np.maximum(w.sum(axis=1, keepdims=True), 1)
    return ops.sum(ops.mul(emb, ops.reshape(w, shape=tuple(np.shape(w)) + (1,))), axis=1)


def _make_weight(num: int, dim: int, _weight: Any, dtype: Any, cls: str) -> Parameter:
    num, dim = positive_int(cls, "num_embeddings", num), positive_int(cls, "embedding_dim", dim)
    if _weight is None:
        w = param(np.zeros((num, dim), np.dtype(DEFAULT_DTYPE if dtype is None else dtype)))
        init.normal_(w)  # N(0, 1), as torch
        return w
    w = Parameter(_weight if isinstance(_weight, Tensor) else Tensor(np.asarray(_unwrap(_weight))))
    if tuple(w.shape) != (num, dim):
        raise ValueError(f"{cls}: _weight has shape {tuple(w.shape)}, expected ({num}, {dim})")
    return w


class Embedding(Module):
    """A lookup table ``phi(i) = W[i]``, W (num_embeddings, embedding_dim) ~ N(0, 1) (torch's init).

    ``Embedding(V, D)(idx) = onehot(idx) @ W``. With ``padding_idx`` that row starts at zero and never
    receives a gradient. :meth:`from_pretrained` wraps an existing matrix (frozen by default).
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 max_norm: float | None = None, norm_type: float = 2.0, scale_grad_by_freq: bool = False,
                 sparse: bool = False, _weight: Any = None, _freeze: bool = False, device: Any = None,
                 dtype: Any = None):
        super().__init__()
        cls = type(self).__name__
        _unsupported(cls, max_norm, scale_grad_by_freq, sparse)
        self.weight = _weight_of(self, cls, num_embeddings, embedding_dim, padding_idx, _weight, _freeze, dtype)
        self.max_norm, self.norm_type, self.scale_grad_by_freq, self.sparse = None, norm_type, False, False

    def forward(self, input: Any) -> Tensor:  # noqa: A002
        return embedding(input, self.weight, self.padding_idx)

    @classmethod
    def from_pretrained(cls, embeddings: Any, freeze: bool = True, padding_idx: int | None = None,
                        max_norm: float | None = None, norm_type: float = 2.0, scale_grad_by_freq: bool = False,
                        sparse: bool = False) -> Embedding:
        """An Embedding whose weight is ``embeddings`` (V, D), shared; ``freeze`` stops its gradient."""
        if np.ndim(embeddings) != 2:
            raise ValueError(f"{cls.__name__}.from_pretrained: embeddings must be 2-D, got shape {np.shape(embeddings)}")
        v, d = np.shape(embeddings)
        return cls(v, d, padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse, _weight=embeddings,
                   _freeze=freeze)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}" + (
            "" if self.padding_idx is None else f", padding_idx={self.padding_idx}")


def _weight_of(m: Module, cls: str, num: int, dim: int, padding_idx: int | None, _weight: Any, freeze: bool,
               dtype: Any) -> Parameter:
    """Validate and set the shared attributes of Embedding and EmbeddingBag; return the weight."""
    m.num_embeddings, m.embedding_dim = num, dim
    w = _make_weight(num, dim, _weight, dtype, cls)
    m.padding_idx = _padding(cls, padding_idx, num)
    if _weight is None and m.padding_idx is not None:
        w._data[m.padding_idx] = 0
    w.requires_grad = not freeze
    return w


class EmbeddingBag(Module):
    """``embedding_bag``: per bag, the sum / mean / max of its rows of W (see :func:`embedding_bag`).

    ``forward(input, offsets=None, per_sample_weights=None)``; with ``mode='sum'`` this is the
    bag-of-words count vector times W.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, max_norm: float | None = None,
                 norm_type: float = 2.0, scale_grad_by_freq: bool = False, mode: str = "mean", sparse: bool = False,
                 _weight: Any = None, include_last_offset: bool = False, padding_idx: int | None = None,
                 device: Any = None, dtype: Any = None):
        super().__init__()
        cls = type(self).__name__
        _unsupported(cls, max_norm, scale_grad_by_freq, sparse)
        if mode not in ("sum", "mean", "max"):
            raise ValueError(f"{cls}: mode must be 'sum', 'mean' or 'max', got {mode!r}")
        self.weight = _weight_of(self, cls, num_embeddings, embedding_dim, padding_idx, _weight, False, dtype)
        self.mode, self.include_last_offset = mode, bool(include_last_offset)
        self.max_norm, self.norm_type, self.scale_grad_by_freq, self.sparse = None, norm_type, False, False

    def forward(self, input: Any, offsets: Any = None, per_sample_weights: Any = None) -> Tensor:  # noqa: A002
        return embedding_bag(input, self.weight, offsets, mode=self.mode, per_sample_weights=per_sample_weights,
                             include_last_offset=self.include_last_offset, padding_idx=self.padding_idx)

    @classmethod
    def from_pretrained(cls, embeddings: Any, freeze: bool = True, max_norm: float | None = None,
                        norm_type: float = 2.0, scale_grad_by_freq: bool = False, mode: str = "mean",
                        sparse: bool = False, include_last_offset: bool = False,
                        padding_idx: int | None = None) -> EmbeddingBag:
        """An EmbeddingBag whose weight is ``embeddings`` (V, D), shared; ``freeze`` stops its gradient."""
        if np.ndim(embeddings) != 2:
            raise ValueError(f"{cls.__name__}.from_pretrained: embeddings must be 2-D, got shape {np.shape(embeddings)}")
        v, d = np.shape(embeddings)
        m = cls(v, d, max_norm, norm_type, scale_grad_by_freq, mode, sparse, _weight=embeddings,
                include_last_offset=include_last_offset, padding_idx=padding_idx)
        m.weight.requires_grad = not freeze
        return m

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, mode={self.mode!r}" + (
            "" if self.padding_idx is None else f", padding_idx={self.padding_idx}")
