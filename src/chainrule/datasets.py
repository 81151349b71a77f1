"""Data sets that work offline, plus ``load_csv`` for your own data.

Every loader returns a :class:`Dataset`: float32 features and int64 class labels, already split into
train and test parts with a fixed seed (stratified), so ``X_train, X_test, y_train, y_test =
load_digits()`` unpacks like scikit-learn's ``train_test_split``. Features are returned as they come
(digits are pixel counts 0..16, MNIST-1D is already standardised); scaling is the caller's job, and
the CLI does it with the training split's mean and standard deviation.

- ``load_digits``, ``load_iris``, ``load_breast_cancer``: scikit-learn's bundled copies (no download).
- ``make_mnist1d``: MNIST-1D (Greydanus 2020) generated in process by the ``mnist1d`` package with its
  default arguments: 4,000 train / 1,000 test signals of length 40, 10 classes. Never downloaded.
- ``make_moons``, ``make_spirals``, ``make_xor``: 2-D toy problems for plots and quick checks.
"""

from __future__ import annotations

import csv
import math
import os
import random
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from .data import check_features, check_targets
from .io import open_regular

__all__ = ["Dataset", "load_digits", "load_iris", "load_breast_cancer", "make_mnist1d", "make_moons",
           "make_spirals", "make_xor", "load_csv", "read_csv_features", "load", "NAMES"]


@dataclass
class Dataset:
    """A train/test split. Iterates as ``(X_train, X_test, y_train, y_test)``.

    ``target_names[k]`` is the original label of class ``k`` (strings for CSV data), so predictions
    can be decoded; ``feature_names`` are the column names (used by ``chainrule predict``).
    """

    X_train: np.ndarray
    X_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray
    feature_names: list[str] = field(default_factory=list)
    target_names: list[str] = field(default_factory=list)
    name: str = ""
    task: str = "classification"  # or "regression": float y, target_names = [the target column]

    def __iter__(self):
        return iter((self.X_train, self.X_test, self.y_train, self.y_test))

    @property
    def X(self) -> np.ndarray:
        """All samples, train then test."""
        return np.concatenate([self.X_train, self.X_test])

    @property
    def y(self) -> np.ndarray:
        return np.concatenate([self.y_train, self.y_test])

    @property
    def n_features(self) -> int:
        return self.X_train.shape[1]

    @property
    def n_classes(self) -> int:
        """Classes of a classification set; 1 (one output) for regression."""
        return len(self.target_names)

    def __repr__(self) -> str:
        what = f"{self.n_classes} classes" if self.task == "classification" else f"regression of {self.target_names[0]!r}"
        return (f"Dataset({self.name!r}: {len(self.y_train)} train / {len(self.y_test)} test, "
                f"{self.n_features} features, {what})")


def _encode(y_raw: np.ndarray, what: str) -> tuple[np.ndarray, list[str]]:
    """Labels of any type -> int64 codes 0..K-1 and the sorted original labels."""
    classes, y = np.unique(y_raw, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(f"{what} has a single class ({classes[:1].tolist()[0]!r}): a classifier needs at least 2 classes")
    return y.astype(np.int64).reshape(-1), [str(c) for c in classes]


def _split(X, y_raw, name, feature_names=None, test_size=0.2, seed=0, target_names=None) -> Dataset:
    from sklearn.model_selection import train_test_split
    X = check_features(X, f"{name}: X")
    y_raw = check_targets(y_raw, X.shape[0], f"{name}: y")
    y, classes = _encode(y_raw, f"{name}: y")
    if target_names is not None:  # bundled sets come with names for the codes 0..K-1
        classes = [str(t) for t in target_names]
    counts = np.bincount(y)
    stratify = y if counts.min() >= 2 else None  # stratifying needs two samples of every class
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=test_size, random_state=seed, stratify=stratify)
    names = list(feature_names) if feature_names is not None else [f"x{i}" for i in range(X.shape[1])]
    return Dataset(Xtr, Xte, ytr, yte, names, classes, name)


def _sklearn(loader, name, test_size, seed) -> Dataset:
    b = loader()
    fn = getattr(b, "feature_names", None)
    return _split(b.data, b.target, name, fn, test_size, seed, getattr(b, "target_names", None))


def load_digits(test_size: float = 0.2, seed: int = 0) -> Dataset:
    """scikit-learn's 8x8 digits: 1,797 images, 64 pixel features in 0..16, 10 classes."""
    from sklearn.datasets import load_digits as f
    return _sklearn(f, "digits", test_size, seed)


def load_iris(test_size: float = 0.2, seed: int = 0) -> Dataset:
    """Fisher's iris: 150 flowers, 4 features, 3 classes."""
    from sklearn.datasets import load_iris as f
    return _sklearn(f, "iris", test_size, seed)


def load_breast_cancer(test_size: float = 0.2, seed: int = 0) -> Dataset:
    """Wisconsin breast cancer: 569 samples, 30 features, 2 classes (binary)."""
    from sklearn.datasets import load_breast_cancer as f
    return _sklearn(f, "breast_cancer", test_size, seed)


@lru_cache(maxsize=1)
def _mnist1d() -> tuple[np.ndarray, ...]:
    # mnist1d.make_dataset builds the data in process (its get_dataset would try a download); it
    # reseeds NumPy's and Python's *global* generators, so save and restore them around the call.
    from mnist1d.data import get_dataset_args, make_dataset
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        d = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return d["x"], d["x_test"], d["y"], d["y_test"]


def make_mnist1d() -> Dataset:
    """MNIST-1D with the package's default arguments and its own split: 4,000 train / 1,000 test,
    40 features, 10 classes. Generated offline (about a second, cached per process)."""
    Xtr, Xte, ytr, yte = _mnist1d()
    return Dataset(check_features(Xtr), check_features(Xte), ytr.astype(np.int64), yte.astype(np.int64),
                   [f"t{i}" for i in range(Xtr.shape[1])], [str(k) for k in range(10)], "mnist1d")


def make_moons(n_samples: int = 500, noise: float = 0.2, test_size: float = 0.2, seed: int = 0) -> Dataset:
    """Two interleaving half circles (scikit-learn's generator), 2 classes."""
    from sklearn.datasets import make_moons as f
    X, y = f(n_samples=n_samples, noise=noise, random_state=seed)
    return _split(X, y, "moons", ["x0", "x1"], test_size, seed)


def make_spirals(n_samples: int = 600, n_classes: int = 3, noise: float = 0.2, test_size: float = 0.2,
                 seed: int = 0) -> Dataset:
    """``n_classes`` interleaved spiral arms (the cs231n toy problem): not linearly separable."""
    if n_classes < 2 or n_samples < 2 * n_classes:
        raise ValueError(f"make_spirals: need n_classes >= 2 and n_samples >= 2*n_classes, got {n_samples}, {n_classes}")
    rng = np.random.default_rng(seed)
    per = n_samples // n_classes
    r = np.tile(np.linspace(0.0, 1.0, per), n_classes)
    k = np.repeat(np.arange(n_classes), per)
    t = k * 2 * math.pi / n_classes + r * 4.0 + rng.normal(0.0, noise, r.shape)
    X = np.stack([r * np.sin(t), r * np.cos(t)], axis=1)
    return _split(X, k, "spirals", ["x0", "x1"], test_size, seed)


def make_xor(n_samples: int = 400, noise: float = 0.1, test_size: float = 0.2, seed: int = 0) -> Dataset:
    """Points around the four corners of a square, labelled by XOR of the signs: the classic problem a
    linear model cannot solve and one hidden layer can."""
    rng = np.random.default_rng(seed)
    corners = rng.integers(0, 2, size=(n_samples, 2))
    X = (2 * corners - 1) + rng.normal(0.0, noise, (n_samples, 2))
    return _split(X, corners[:, 0] ^ corners[:, 1], "xor", ["x0", "x1"], test_size, seed)


# ----- CSV ----------------------------------------------------------------------------------------
CELL_LIMIT = 1 << 20  # characters per CSV cell (the csv module's default is 128 KB)


class Rows(list):
    """The data rows of a CSV; ``line(i)`` is row ``i``'s line number in the file (blank lines are
    skipped, so it is not always ``i + 2``), for error messages."""

    def __init__(self, rows, lines):
        super().__init__(rows)
        self.lines = list(lines)

    def line(self, i: int) -> int:
        return self.lines[i]


def _read_csv(path) -> tuple[list[str], Rows]:
    path = os.fspath(path)
    fd = open_regular(path, "CSV file")
    csv.field_size_limit(max(csv.field_size_limit(), CELL_LIMIT))
    try:
        with os.fdopen(fd, newline="", encoding="utf-8-sig") as f:  # -sig: Excel's "CSV UTF-8" starts with a BOM
            reader = csv.reader(f)  # line_num: the line a row ends on (a quoted cell may span lines)
            rows = [(reader.line_num, r) for r in reader if r and any(c.strip() for c in r)]
    except csv.Error as e:
        raise ValueError(f"{path}: not a readable CSV file ({e}; cells are limited to {CELL_LIMIT:,} characters)") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e})") from None
    if not rows:
        raise ValueError(f"{path}: the CSV file is empty")
    header, body = [h.strip() for h in rows[0][1]], Rows((r for _, r in rows[1:]), (n for n, _ in rows[1:]))
    dup = sorted({h for h in header if header.count(h) > 1})
    if dup:
        raise ValueError(f"{path}: duplicate column name(s) {dup}: every column needs its own name")
    if not body:
        raise ValueError(f"{path}: the CSV file has a header but no data rows")
    for i, r in enumerate(body):
        if len(r) != len(header):
            raise ValueError(f"{path}: line {body.line(i)} has {len(r)} fields, the header has {len(header)}")
    return header, body


_F32_MAX = float(np.finfo(np.float32).max)


def _numeric(path, header, body, cols) -> np.ndarray:
    X = np.empty((len(body), len(cols)), np.float64)
    for j, c in enumerate(cols):
        for i, r in enumerate(body):
            cell = r[c].strip()
            try:
                X[i, j] = float(cell)
            except ValueError:
                what = "an empty value" if not cell else f"the non-numeric value {cell[:40]!r}"
                raise ValueError(f"{path}: column {header[c]!r} has {what} at line {body.line(i)}: features must be "
                                 "numbers (encode categories, impute missing values)") from None
            if not math.isfinite(X[i, j]):
                raise ValueError(f"{path}: column {header[c]!r} has {cell[:40]} at line {body.line(i)}: impute or drop it")
            if abs(X[i, j]) > _F32_MAX:  # chainrule computes in float32: this would become inf
                raise ValueError(f"{path}: column {header[c]!r} has {X[i, j]:.4g} at line {body.line(i)}, beyond float32's "
                                 f"range (|x| <= {_F32_MAX:.4g}): rescale the column (log, or a unit)")
    return X


TASKS = ("auto", "classification", "regression")


def _looks_continuous(y: np.ndarray) -> bool:
    """A numeric target is a regression target if it has non-integer values, or more distinct
    integers than a classification set plausibly has (over 20, and over 5% of the rows)."""
    distinct = np.unique(y).size
    return bool(np.any(y != np.round(y))) or (distinct > 20 and distinct > 0.05 * y.size)


def _task(path, target, y_raw, task: str, lines: Rows) -> tuple[str, np.ndarray | None]:
    if task not in TASKS:
        raise ValueError(f"task must be one of {list(TASKS)}, got {task!r}")
    try:
        as_num = y_raw.astype(np.float64)
    except ValueError:
        as_num = None
    if task == "regression" and (as_num is None or not np.isfinite(as_num).all()):
        raise ValueError(f"{path}: regression needs a numeric target, but column {target!r} has non-numbers")
    if task == "auto":
        task = "regression" if as_num is not None and _looks_continuous(as_num) else "classification"
    elif task == "classification" and as_num is not None:
        frac = np.flatnonzero(as_num != np.round(as_num))
        if frac.size:  # a continuous target would silently become hundreds of "classes"
            raise ValueError(f"{path}: target column {target!r} holds non-integer numbers ({y_raw[frac[0]]} at line "
                             f"{lines.line(int(frac[0]))}): train a regressor (task 'regression'), or round or bin the target")
    return task, as_num


def load_csv(path, target: str | None = None, test_size: float = 0.2, seed: int = 0, task: str = "auto") -> Dataset:
    """Your own data: a CSV with a header row, numeric feature columns and a target column
    (default: the last one). ``task='auto'`` treats a numeric target with non-integer values or
    many distinct values (see :func:`_looks_continuous`) as regression (float32 ``y``), anything
    else as classification (labels of any type, strings too); ``'classification'`` or
    ``'regression'`` force it.

    Raises ValueError naming the line and column for non-numeric or missing feature values, a
    missing target column, duplicate column names, fewer than two classes or an empty file.
    """
    header, body = _read_csv(path)
    if target is None:
        target = header[-1]
    if target not in header:
        raise ValueError(f"{path}: no target column {target!r}; the columns are {header} (pass --target COL)")
    t = header.index(target)
    cols = [j for j in range(len(header)) if j != t]
    if not cols:
        raise ValueError(f"{path}: only the target column {target!r}; need at least one feature column")
    X = _numeric(path, header, body, cols)
    y_raw = np.array([r[t].strip() for r in body])
    if any(v == "" for v in y_raw):
        raise ValueError(f"{path}: target column {target!r} is empty at line {body.line(int(np.argmax(y_raw == '')))}")
    task, as_num = _task(path, target, y_raw, task, body)
    name = os.path.splitext(os.path.basename(os.fspath(path)))[0]
    features = [header[j] for j in cols]
    if task == "regression":
        return _split_regression(X, as_num, name, features, target, test_size, seed)
    if as_num is not None and not np.any(as_num != np.round(as_num)):
        y_raw = as_num.astype(np.int64)  # numeric labels sort numerically (2 < 10), not as strings
    return _split(X, y_raw, name, features, test_size, seed)


def _split_regression(X, y, name, feature_names, target, test_size, seed) -> Dataset:
    from sklearn.model_selection import train_test_split
    X = check_features(X, f"{name}: X")
    y = check_features(np.asarray(y).reshape(-1, 1), f"{name}: target {target!r}")[:, 0]
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=test_size, random_state=seed)
    return Dataset(Xtr, Xte, ytr, yte, list(feature_names), [target], name, task="regression")


def read_csv_features(path, feature_names: list[str]) -> np.ndarray:
    """The columns ``feature_names`` of a CSV (in that order) as float32, for prediction. Other
    columns (such as the target) are ignored; a missing one is a ValueError naming it."""
    header, body = _read_csv(path)
    missing = [c for c in feature_names if c not in header]
    if missing:
        raise ValueError(f"{path}: missing feature column(s) {missing}; the model was trained on {feature_names}")
    return check_features(_numeric(path, header, body, [header.index(c) for c in feature_names]), str(path))


NAMES = {"digits": load_digits, "iris": load_iris, "breast_cancer": load_breast_cancer, "mnist1d": make_mnist1d,
         "moons": make_moons, "spirals": make_spirals, "xor": make_xor}


def load(spec: str, target: str | None = None, seed: int = 0, task: str = "auto") -> Dataset:
    """A data set by name (``digits``, ``iris``, ..., or ``csv:PATH``), as the CLI's ``--data``.
    The bundled sets are classification problems; ``task`` applies to CSV files."""
    if spec.startswith("csv:"):
        return load_csv(spec[4:], target=target, seed=seed, task=task)
    if spec not in NAMES:
        raise ValueError(f"unknown data set {spec!r}: choose one of {sorted(NAMES)} or csv:PATH")
    if task == "regression":
        raise ValueError(f"{spec} is a classification data set; --task regression needs csv:PATH")
    if spec == "mnist1d":
        return make_mnist1d()
    return NAMES[spec](seed=seed)
