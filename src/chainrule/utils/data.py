"""``torch.utils.data`` on chainrule: datasets, samplers, collation and the DataLoader, with torch's names and rules.

A *map-style* dataset has ``__getitem__(i)`` and ``__len__``; an *iterable* dataset has ``__iter__``.
The :class:`DataLoader` draws indices from a sampler (:class:`SequentialSampler`, or
:class:`RandomSampler` with ``shuffle=True``), groups them with a :class:`BatchSampler`, fetches the
samples and merges them with ``collate_fn`` (:func:`default_collate`: tensors and arrays are
stacked along a new first axis, Python floats become a float64 tensor and ints an int64 one, as in
torch, and tuples, lists, dicts and namedtuples are collated field by field; a tuple sample gives a
*list* of batches, as in torch).

Randomness (shuffling, :func:`random_split`) comes from chainrule's seeded NumPy generator
(``cr.manual_seed``), read when an epoch starts, or from the ``generator=`` (a
``numpy.random.Generator``) given. The same seed gives other orders than torch's generator does.

``num_workers`` and ``pin_memory`` are accepted for source compatibility and change nothing: samples
are loaded in the calling process (CPU only), so the batches are the ones workers would produce.

This is not :class:`chainrule.data.DataLoader` (``DataLoader(X, y, batch_size)`` over arrays, used by
``cr.fit``), which stays as it is.
"""

from __future__ import annotations

import bisect
import collections.abc as abc
import copy
import math
import numbers
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from .. import functional as _fn
from ..creation import get_rng
from ..tensor import Tensor

__all__ = ["BatchSampler", "ConcatDataset", "DataLoader", "Dataset", "IterableDataset", "RandomSampler", "Sampler",
           "SequentialSampler", "Subset", "SubsetRandomSampler", "TensorDataset", "default_collate", "default_convert",
           "random_split"]


def _rng(generator) -> np.random.Generator:
    """The NumPy generator to draw from: ``generator`` itself, else chainrule's global one (read now, so that a
    ``cr.manual_seed`` after the loader was built still takes effect)."""
    if generator is None:
        return get_rng()
    if isinstance(generator, np.random.Generator):
        return generator
    inner = getattr(generator, "rng", None)  # a wrapper object that carries a NumPy generator
    if isinstance(inner, np.random.Generator):
        return inner
    raise TypeError(f"generator must be a numpy.random.Generator (or None for chainrule's global generator seeded "
                    f"by cr.manual_seed), got {type(generator).__name__}")


# ----- datasets -----------------------------------------------------------------------------------
class Dataset:
    """A map-style dataset: subclasses define ``__getitem__(index)`` and usually ``__len__``.
    ``a + b`` concatenates two datasets (:class:`ConcatDataset`), as in torch."""

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__(index)")

    def __add__(self, other: Dataset) -> ConcatDataset:
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    """A dataset that is a stream: subclasses define ``__iter__``. The DataLoader batches what it yields."""

    def __iter__(self) -> Iterator:
        raise NotImplementedError(f"{type(self).__name__} must define __iter__")

    def __getitem__(self, index):
        raise TypeError(f"{type(self).__name__} is an IterableDataset: iterate over it, it cannot be indexed")


class TensorDataset(Dataset):
    """Samples are ``tuple(t[i] for t in tensors)``; every tensor has the same first dimension."""

    def __init__(self, *tensors: Tensor):
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        sizes = [t.shape[0] if t.ndim else None for t in tensors]
        if None in sizes or len(set(sizes)) != 1:
            raise ValueError(f"Size mismatch between tensors: TensorDataset needs the same first dimension, "
                             f"got shapes {[tuple(t.shape) for t in tensors]}")
        self.tensors = tuple(tensors)

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self) -> int:
        return self.tensors[0].shape[0]


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order."""

    def __init__(self, dataset, indices: Sequence[int]):
        self.dataset = dataset
        self.indices = indices

    def __getitem__(self, idx):
        if isinstance(idx, list):
            return self.dataset[[self.indices[i] for i in idx]]
        return self.dataset[self.indices[idx]]

    def __getitems__(self, indices: list[int]) -> list:
        if callable(getattr(self.dataset, "__getitems__", None)):
            return self.dataset.__getitems__([self.indices[i] for i in indices])
        return [self.dataset[self.indices[i]] for i in indices]

    def __len__(self) -> int:
        return len(self.indices)


class ConcatDataset(Dataset):
    """Several map-style datasets one after another; ``cumulative_sizes[k]`` is where dataset ``k`` ends."""

    def __init__(self, datasets: Iterable):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: datasets should not be an empty iterable")
        for d in self.datasets:
            if isinstance(d, IterableDataset):
                raise TypeError("ConcatDataset does not support IterableDataset")
        self.cumulative_sizes = list(np.cumsum([len(d) for d in self.datasets]).tolist())

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def __getitem__(self, idx: int):
        n = len(self)
        if idx < 0:
            if -idx > n:
                raise ValueError(f"ConcatDataset: index {idx} out of range for a dataset of length {n}")
            idx += n
        k = bisect.bisect_right(self.cumulative_sizes, idx)
        start = self.cumulative_sizes[k - 1] if k > 0 else 0
        return self.datasets[k][idx - start]


def random_split(dataset, lengths: Sequence[int | float], generator=None) -> list[Subset]:
    """Split ``dataset`` into non-overlapping random :class:`Subset` s of the given lengths.

    Fractions summing to 1 become ``floor(f * len(dataset))`` each, the remainder handed out one at
    a time to the first splits (torch's rule), so ``[0.3, 0.3, 0.4]`` of 31 samples is ``[10, 9, 12]``
    ... exactly as torch computes it. The permutation comes from ``generator`` (or chainrule's seed).
    """
    n = len(dataset)
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        fracs = list(lengths)
        for i, f in enumerate(fracs):
            if f < 0 or f > 1:
                raise ValueError(f"random_split: fraction at index {i} is {f}, not between 0 and 1")
        lengths = [math.floor(n * f) for f in fracs]
        for i in range(n - sum(lengths)):
            lengths[i % len(lengths)] += 1
        for i, length in enumerate(lengths):
            if length == 0:
                warnings.warn(f"Length of split at index {i} is 0. This might result in an empty dataset.",
                              stacklevel=2)
    if any(int(x) != x or x < 0 for x in lengths):
        raise ValueError(f"random_split: lengths must be non-negative integers or fractions summing to 1, got {lengths}")
    if sum(lengths) != n:
        raise ValueError(f"Sum of input lengths does not equal the length of the input dataset! "
                         f"({list(lengths)} sums to {sum(lengths)}, the dataset has {n} samples)")
    order = _rng(generator).permutation(n).tolist()
    ends = np.cumsum(lengths).tolist()
    return [Subset(dataset, order[end - int(length):end]) for end, length in zip(ends, lengths)]


# ----- samplers -----------------------------------------------------------------------------------
class Sampler:
    """Yields indices (or lists of indices, for a batch sampler) into a dataset."""

    def __iter__(self) -> Iterator:
        raise NotImplementedError


class SequentialSampler(Sampler):
    """0, 1, ..., len(data_source) - 1."""

    def __init__(self, data_source):
        self.data_source = data_source

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


class RandomSampler(Sampler):
    """A fresh random permutation per epoch (or ``num_samples`` draws with replacement)."""

    def __init__(self, data_source, replacement: bool = False, num_samples: int | None = None, generator=None):
        self.data_source = data_source
        self.replacement = bool(replacement)
        self._num_samples = num_samples
        self.generator = generator
        if not isinstance(self.num_samples, int) or isinstance(self.num_samples, bool) or self.num_samples <= 0:
            raise ValueError(f"num_samples should be a positive integer value, but got num_samples={self.num_samples}")

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self) -> Iterator[int]:
        n, rng = len(self.data_source), _rng(self.generator)
        if self.replacement:
            yield from rng.integers(0, n, size=self.num_samples).tolist()
            return
        for _ in range(self.num_samples // n):
            yield from rng.permutation(n).tolist()
        yield from rng.permutation(n)[:self.num_samples % n].tolist()

    def __len__(self) -> int:
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given indices in a random order, fresh each epoch."""

    def __init__(self, indices: Sequence[int], generator=None):
        self.indices = indices
        self.generator = generator

    def __iter__(self) -> Iterator[int]:
        for i in _rng(self.generator).permutation(len(self.indices)).tolist():
            yield self.indices[i]

    def __len__(self) -> int:
        return len(self.indices)


class BatchSampler(Sampler):
    """Groups a sampler's indices into lists of ``batch_size`` (the last one shorter unless ``drop_last``)."""

    def __init__(self, sampler: Iterable[int], batch_size: int, drop_last: bool):
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size <= 0:
            raise ValueError(f"batch_size should be a positive integer value, but got batch_size={batch_size!r}")
        if not isinstance(drop_last, bool):
            raise ValueError(f"drop_last should be a boolean value, but got drop_last={drop_last!r}")
        self.sampler, self.batch_size, self.drop_last = sampler, int(batch_size), drop_last

    def __iter__(self) -> Iterator[list[int]]:
        batch: list[int] = []
        for i in self.sampler:
            batch.append(i)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self) -> int:
        full, rest = divmod(len(self.sampler), self.batch_size)
        return full + (rest > 0 and not self.drop_last)


# ----- collation ----------------------------------------------------------------------------------
def _is_text_array(a: np.ndarray) -> bool:
    return a.dtype.kind in "SaUO"


def _stack(batch: Sequence[Tensor]) -> Tensor:
    shapes = {tuple(t.shape) for t in batch}
    if len(shapes) > 1:
        raise RuntimeError(f"default_collate: stack expects each tensor to be equal size, got shapes {sorted(shapes)} "
                           "in one batch: pad the samples or pass a collate_fn")
    if any(t.requires_grad for t in batch):
        return _fn.stack(list(batch))  # recorded, so gradients reach the samples (torch.stack does the same)
    return Tensor(np.stack([t._data for t in batch]))


def _rebuild(elem, items: list):
    """A container of ``elem``'s type holding ``items`` (dicts: (key, value) pairs), like torch's collate."""
    if isinstance(elem, abc.Mapping):
        try:
            if isinstance(elem, abc.MutableMapping):
                clone = copy.copy(elem)
                clone.update(items)
                return clone
            return type(elem)(dict(items))
        except TypeError:
            return dict(items)
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # a namedtuple keeps its type
        return type(elem)(*items)
    if isinstance(elem, tuple):
        return items  # torch returns a list for tuples ("backwards compatibility")
    try:
        if isinstance(elem, abc.MutableSequence):
            clone = copy.copy(elem)
            clone[:] = items
            return clone
        return type(elem)(items)
    except TypeError:
        return items


def default_collate(batch: Sequence) -> Any:
    """Merge a list of samples into a batch, the way ``torch.utils.data.default_collate`` does.

    ======================  =============================================
    sample element          batch
    ======================  =============================================
    Tensor of shape s       Tensor of shape (B, *s) (stacked)
    ndarray / NumPy scalar  Tensor of its dtype, stacked
    float / int / bool      float64 / int64 / bool Tensor of shape (B,)
    str / bytes             the list, unchanged
    dict / namedtuple       same type, collated per key / field
    tuple / list            a list (tuple) or list (list) collated per position
    ======================  =============================================
    """
    elem = batch[0]
    if isinstance(elem, Tensor):
        return _stack(batch)
    if isinstance(elem, np.ndarray):
        if _is_text_array(elem):
            raise TypeError(f"default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; "
                            f"found an array of dtype {elem.dtype}")
        return _stack([Tensor(np.array(b)) for b in batch])
    if isinstance(elem, np.generic) and not isinstance(elem, (np.str_, np.bytes_)):
        return Tensor(np.array(batch))
    if isinstance(elem, (bool, np.bool_)):
        return Tensor(np.array(batch, dtype=np.bool_))
    if isinstance(elem, numbers.Integral):
        return Tensor(np.array(batch, dtype=np.int64))
    if isinstance(elem, numbers.Real):
        return Tensor(np.array(batch, dtype=np.float64))
    if isinstance(elem, (str, bytes)):
        return batch
    if isinstance(elem, abc.Mapping):
        return _rebuild(elem, [(k, default_collate([d[k] for d in batch])) for k in elem])
    if isinstance(elem, abc.Sequence):
        sizes = {len(s) for s in batch}
        if len(sizes) > 1:
            raise RuntimeError(f"each element in list of batch should be of equal size (got lengths {sorted(sizes)})")
        return _rebuild(elem, [default_collate(s) for s in zip(*batch)])
    raise TypeError(f"default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; "
                    f"found {type(elem).__name__}")


def default_convert(data: Any) -> Any:
    """Turn NumPy arrays and scalars inside ``data`` into Tensors, leave the rest (the collate_fn when
    ``batch_size=None``: one sample at a time, no batching)."""
    if isinstance(data, Tensor):
        return data
    if isinstance(data, np.ndarray):
        return data if _is_text_array(data) else Tensor(np.array(data))
    if isinstance(data, np.generic) and not isinstance(data, (np.str_, np.bytes_)):
        return Tensor(np.array(data))
    if isinstance(data, abc.Mapping):
        return _rebuild(data, [(k, default_convert(v)) for k, v in data.items()])
    if isinstance(data, tuple) and not hasattr(data, "_fields"):
        return [default_convert(d) for d in data]
    if isinstance(data, abc.Sequence) and not isinstance(data, (str, bytes)):
        return _rebuild(data, [default_convert(d) for d in data])
    return data


# ----- the loader ---------------------------------------------------------------------------------
def _check_options(dataset, batch_size, shuffle, sampler, batch_sampler, drop_last, num_workers) -> None:
    """torch's argument rules, with torch's messages (plus the values that broke them)."""
    if num_workers < 0:
        raise ValueError(f"num_workers option should be non-negative, got {num_workers}; "
                         "use num_workers=0 to disable multiprocessing.")
    if isinstance(dataset, IterableDataset):
        for name, value in (("shuffle", shuffle), ("sampler", sampler), ("batch_sampler", batch_sampler)):
            if value not in (None, False):
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified {name} option, "
                                 f"but got {name}={value}")
        return
    if sampler is not None and shuffle:
        raise ValueError("sampler option is mutually exclusive with shuffle")
    if batch_sampler is not None and (batch_size != 1 or shuffle or sampler is not None or drop_last):
        raise ValueError("batch_sampler option is mutually exclusive with batch_size, shuffle, sampler, and drop_last "
                         f"(got batch_size={batch_size}, shuffle={shuffle}, sampler={sampler}, drop_last={drop_last})")
    if batch_size is None and drop_last:
        raise ValueError("batch_size=None option disables auto-batching and is mutually exclusive with drop_last")


class DataLoader:
    """Iterate over a dataset in batches, as ``torch.utils.data.DataLoader``.

    Args:
        dataset: a map-style dataset (``__getitem__`` + ``__len__``) or an :class:`IterableDataset`.
        batch_size: samples per batch; ``None`` turns batching off (each sample goes through
            :func:`default_convert`).
        shuffle: a new random order every epoch (a :class:`RandomSampler` on ``generator``).
        sampler, batch_sampler: where the indices come from, instead of ``shuffle``/``batch_size``.
        collate_fn: merges a list of samples into a batch (:func:`default_collate`).
        drop_last: drop the last, smaller batch.
        generator: a ``numpy.random.Generator`` for the order; ``None`` reads chainrule's global
            generator at the start of each epoch (so ``cr.manual_seed`` fixes it).
        num_workers, pin_memory, timeout, worker_init_fn, prefetch_factor, persistent_workers,
        multiprocessing_context, in_order: accepted for compatibility; loading happens in this process.

    ``len(loader)`` is the number of batches (for an iterable dataset with ``__len__``, as torch
    estimates it).
    """

    def __init__(self, dataset, batch_size: int | None = 1, shuffle: bool | None = None, sampler=None,
                 batch_sampler=None, num_workers: int = 0, collate_fn: Callable | None = None,
                 pin_memory: bool = False, drop_last: bool = False, timeout: float = 0, worker_init_fn=None,
                 multiprocessing_context=None, generator=None, *, prefetch_factor: int | None = None,
                 persistent_workers: bool = False, pin_memory_device: str = "", in_order: bool = True):
        _check_options(dataset, batch_size, shuffle, sampler, batch_sampler, drop_last, num_workers)
        self.dataset, self.num_workers, self.pin_memory, self.timeout = dataset, num_workers, pin_memory, timeout
        self.worker_init_fn, self.generator, self.drop_last = worker_init_fn, generator, bool(drop_last)
        self._iterable = isinstance(dataset, IterableDataset)
        if self._iterable:
            sampler = None
        elif sampler is None:
            sampler = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
        if batch_sampler is not None:  # the user's own batches: torch then reports batch_size=None
            batch_size = None
        elif batch_size is not None and not self._iterable:
            batch_sampler = BatchSampler(sampler, batch_size, self.drop_last)
        self.batch_size = batch_size
        self.sampler, self.batch_sampler = sampler, batch_sampler
        auto = batch_sampler is not None or (self._iterable and batch_size is not None)
        self.collate_fn = collate_fn if collate_fn is not None else (default_collate if auto else default_convert)
        self._auto_collation = auto

    def _fetch(self, indices: list[int]):
        if (self.collate_fn is default_collate and type(self.dataset) is TensorDataset
                and not any(t.requires_grad for t in self.dataset.tensors)):
            # The same batch default_collate builds from single samples, indexed in one go.
            idx = np.asarray(indices, dtype=np.intp)
            return [Tensor(t._data[idx]) for t in self.dataset.tensors]
        getitems = getattr(self.dataset, "__getitems__", None)
        samples = getitems(indices) if callable(getitems) else [self.dataset[i] for i in indices]
        return self.collate_fn(samples)

    def _iter_stream(self) -> Iterator:
        if not self._auto_collation:
            yield from (self.collate_fn(s) for s in self.dataset)
            return
        batch: list = []
        for s in self.dataset:
            batch.append(s)
            if len(batch) == self.batch_size:
                yield self.collate_fn(batch)
                batch = []
        if batch and not self.drop_last:
            yield self.collate_fn(batch)

    def __iter__(self) -> Iterator:
        if self._iterable:
            yield from self._iter_stream()
        elif self._auto_collation:
            for indices in self.batch_sampler:
                yield self._fetch(list(indices))
        else:
            for i in self.sampler:
                yield self.collate_fn(self.dataset[i])

    def __len__(self) -> int:
        if self._iterable:
            n = len(self.dataset)
            if self.batch_size is None:
                return n
            return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        return len(self.batch_sampler if self._auto_collation else self.sampler)

    def __repr__(self) -> str:
        return (f"DataLoader(dataset={type(self.dataset).__name__} of {len(self.dataset)}, batch_size={self.batch_size}, "
                f"batches={len(self)}, drop_last={self.drop_last})")
