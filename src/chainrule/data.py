"""Minibatches over in-memory arrays: the lecture's GD, SGD and minibatch SGD are one loader.

``DataLoader(X, y, batch_size=None)`` is full-batch gradient descent, ``batch_size=1`` is pure SGD,
anything in between is minibatch SGD. The order of the samples comes from the loader's own seeded
generator, so a run is reproducible, and its state (epoch and generator state) is plain JSON that a
checkpoint can store and :meth:`DataLoader.load_state_dict` can restore to resume mid-run.

``train_test_split`` is scikit-learn's, re-exported (imported lazily: the core needs only NumPy).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from .creation import as_ndarray, get_rng
from .tensor import Tensor

__all__ = ["DataLoader", "check_finite", "check_features", "check_targets", "check_X_y", "train_test_split"]


def _float32(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float32) if a.dtype.kind == "f" and a.dtype != np.float32 else a


_F32_MAX = float(np.finfo(np.float32).max)


def _where(idx) -> str:
    r, *c = (int(i) for i in idx)
    return f"row {r}" + (f", column {c[0] if len(c) == 1 else tuple(c)}" if c else "")


def _as_numbers(X: np.ndarray, name: str) -> np.ndarray:
    """``X`` (strings, objects) as float64, or a ValueError naming the first value that is not a number."""
    try:
        return X.astype(np.float64)
    except (TypeError, ValueError):
        flat = X.reshape(X.shape[0], -1) if X.ndim else X.reshape(1, 1)
        for (r, c), v in np.ndenumerate(flat):
            try:
                float(v)
            except (TypeError, ValueError):
                v = v.item() if isinstance(v, np.generic) else v  # 'x', not np.str_('x')
                raise ValueError(f"{name} has a non-numeric value {v!r:.40} at row {r}, column {c}: "
                                 "encode categorical columns as numbers first") from None
        raise


def check_finite(X, name: str = "X", float32: bool = False) -> None:
    """Refuse NaN/Inf (and, with ``float32``, magnitudes above float32's maximum, which would turn
    into Inf when cast) with a ValueError naming the row and column of the first one; text or
    objects that are not numbers are refused the same way."""
    X = as_ndarray(X)
    if X.dtype.kind in "OUS" and X.size:
        X = _as_numbers(X, name)
    if X.dtype.kind not in "fc" or X.size == 0:
        return
    bad = ~np.isfinite(X)
    if bad.any():
        idx = np.argwhere(bad)[0]
        what = "NaN" if np.isnan(X[tuple(idx)]) else "Inf"
        raise ValueError(f"{name} contains {what} at {_where(idx)} ({int(bad.sum())} non-finite values in all): "
                         "impute or drop them first")
    if float32 and X.dtype.itemsize > 4:
        big = np.abs(X) > _F32_MAX
        if big.any():
            idx = np.argwhere(big)[0]
            raise ValueError(f"{name} has {X[tuple(idx)]:.4g} at {_where(idx)}, beyond float32's range "
                             f"(|x| <= {_F32_MAX:.4g}): rescale the column (e.g. log or divide by a unit)")


def check_features(X, name: str = "X") -> np.ndarray:
    """Validate a feature matrix and return it as a float32 ndarray of shape (n, d).

    Refuses (with a ValueError that names the row and column) empty data, non-numeric values and
    NaN/Inf, because each of these otherwise turns into a silently wrong model rather than an error.
    """
    X = as_ndarray(X)
    if X.ndim == 1:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {X.shape}: "
                         "reshape a single feature with X.reshape(-1, 1)")
    if X.ndim == 0 or X.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {X.shape}): need at least one sample")
    if X.dtype.kind not in "biuf":
        X = _as_numbers(X, name)
    check_finite(X, name, float32=True)
    return X.astype(np.float32, copy=False)


def check_targets(y, n: int | None = None, name: str = "y", classification: bool = True) -> np.ndarray:
    """Validate a target vector: 1-D, as long as X, finite, and (for classification) >= 2 classes."""
    y = as_ndarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 and classification:
        raise ValueError(f"{name} must be 1-D class labels, got shape {y.shape}")
    if y.shape[0] == 0:
        raise ValueError(f"{name} is empty: need at least one sample")
    if n is not None and y.shape[0] != n:
        raise ValueError(f"X and {name} have different lengths: {n} samples in X, {y.shape[0]} in {name}")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        r = int(np.argwhere(~np.isfinite(y))[0][0])
        raise ValueError(f"{name} contains a non-finite value {y[r]} at row {r}")
    if classification and np.unique(y).size < 2:
        raise ValueError(f"{name} has a single class ({y.reshape(-1)[:1].tolist()[0]!r}): a classifier needs at least 2 classes")
    return y


def check_X_y(X, y, classification: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """:func:`check_features` and :func:`check_targets` together, with the length check between them."""
    X = check_features(X)
    return X, check_targets(y, X.shape[0], classification=classification)


def train_test_split(*arrays, **kwargs):
    """scikit-learn's ``train_test_split`` (re-exported, not rewritten)."""
    from sklearn.model_selection import train_test_split as split
    return split(*arrays, **kwargs)


class DataLoader:
    """Iterate over ``(X_batch, y_batch)`` Tensor pairs (or ``X_batch`` alone when ``y`` is None).

    Args:
        X, y: NumPy arrays or Tensors with the same first dimension.
        batch_size: samples per batch; ``None`` means the whole data set (full-batch GD), ``1`` is
            pure SGD.
        shuffle: draw a fresh permutation every epoch from the loader's generator.
        drop_last: drop the last, smaller batch.
        seed: seed of the loader's generator. ``None`` draws one from chainrule's global generator,
            so ``cr.manual_seed(n)`` alone makes a run reproducible.

    ``len(loader)`` is the number of batches per epoch. ``state_dict()`` holds the epoch counter and
    the generator state (JSON-serialisable); after ``load_state_dict`` the next epoch is exactly the
    one an uninterrupted loader would have produced.
    """

    def __init__(self, X, y=None, batch_size: int | None = 32, shuffle: bool = True, drop_last: bool = False,
                 seed: int | None = None):
        # Floating data is cast to float32 once here (chainrule is float32 end to end), not per batch.
        self.X = _float32(as_ndarray(X))
        self.y = None if y is None else _float32(as_ndarray(y))
        n = self.X.shape[0] if self.X.ndim else 0
        if n == 0:
            raise ValueError(f"DataLoader: X is empty (shape {self.X.shape}): need at least one sample")
        if self.y is not None and self.y.shape[0] != n:
            raise ValueError(f"DataLoader: X and y have different lengths: {n} samples in X, {self.y.shape[0]} in y")
        if batch_size is not None and (isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1):
            raise ValueError(f"DataLoader: batch_size must be a positive integer or None (full batch), got {batch_size!r}")
        self.n = n
        self.batch_size = n if batch_size is None else min(int(batch_size), n)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = int(get_rng().integers(2**63)) if seed is None else int(seed)
        self.rng = np.random.default_rng(self.seed)
        self.epoch = 0

    def __len__(self) -> int:
        full, rest = divmod(self.n, self.batch_size)
        return full + (rest > 0 and not self.drop_last)

    def __iter__(self) -> Iterator[Any]:
        order = self.rng.permutation(self.n) if self.shuffle else np.arange(self.n)
        self.epoch += 1
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            xb = Tensor(self.X[idx])
            yield xb if self.y is None else (xb, Tensor(self.y[idx]))

    def state_dict(self) -> dict:
        """Epoch counter and generator state: JSON-serialisable, stored in checkpoints."""
        return {"epoch": self.epoch, "seed": self.seed, "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.epoch = int(state["epoch"])
        self.seed = int(state["seed"])
        self.rng = np.random.default_rng(self.seed)
        self.rng.bit_generator.state = state["rng"]

    def __repr__(self) -> str:
        return (f"DataLoader(n={self.n}, batch_size={self.batch_size}, batches={len(self)}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last}, seed={self.seed})")
