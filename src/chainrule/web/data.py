"""The playground's 2-D data: the built-in sets, the feature map phi(x), and CSV uploads.

Every set is rescaled by one affine map so that its points lie in the square ``[-3, 3]^2`` (the
largest ``|coordinate|`` is 3) and the heatmap always covers ``[-EXTENT, EXTENT]^2``; the features
``x1^2`` and ``sin x1`` then mean the same thing on every data set. Regression targets are scaled
to ``[-1, 1]``.

Classification sets come from :mod:`chainrule.datasets` (xor, spiral, moons) and scikit-learn's
generators (circle, gaussians); the regression sets (plane, bumps) are closed-form surfaces plus
noise. A CSV upload goes through :func:`chainrule.datasets.load_csv`, the loader of the CLI's
``--data csv:PATH``, so a bad file gets the CLI's message and a continuous label makes a regression set.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field

import numpy as np

from .. import datasets

EXTENT = 3.5  # the heatmap covers [-EXTENT, EXTENT]^2; points are scaled into [-3, 3]^2
SCALE = 3.0
CLASSIFICATION = ("circle", "xor", "gaussians", "spiral", "moons")
REGRESSION = ("plane", "bumps")
MAX_UPLOAD_BYTES = 1 << 20  # 1 MiB of CSV text
MAX_UPLOAD_ROWS = 5000

# feature name -> (function of (x1, x2) on ndarrays, TeX)
FEATURES: dict[str, tuple] = {
    "x1": (lambda a, b: a, "x_1"),
    "x2": (lambda a, b: b, "x_2"),
    "x1^2": (lambda a, b: a * a, "x_1^2"),
    "x2^2": (lambda a, b: b * b, "x_2^2"),
    "x1*x2": (lambda a, b: a * b, "x_1 x_2"),
    "sin x1": (lambda a, b: np.sin(a), "\\sin x_1"),
    "sin x2": (lambda a, b: np.sin(b), "\\sin x_2"),
}


@dataclass
class PlayData:
    """A 2-D train/test split in playground coordinates. ``y`` is int64 class codes for
    classification and float32 in [-1, 1] for regression; ``classes`` names the classes."""

    name: str
    task: str  # "classification" | "regression"
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    classes: list[str] = field(default_factory=list)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def points(self) -> dict:
        """The points for the client: ``[[x1, x2, y], ...]`` per split, rounded for JSON."""
        def pts(X, y):
            return np.round(np.column_stack([X, y]).astype(np.float64), 4).tolist()
        return {"name": self.name, "task": self.task, "classes": self.classes, "extent": EXTENT,
                "train": pts(self.X_train, self.y_train), "test": pts(self.X_test, self.y_test)}


def phi(X: np.ndarray, features: list[str]) -> np.ndarray:
    """The feature map ``phi(x) = (f_1(x), ..., f_k(x))`` of the chosen features, float32 (N, k)."""
    unknown = [f for f in features if f not in FEATURES]
    if unknown or not features:
        raise ValueError(f"features must be a non-empty subset of {list(FEATURES)}, got {features}")
    a, b = X[:, 0], X[:, 1]
    return np.stack([FEATURES[f][0](a, b) for f in features], axis=1).astype(np.float32)


def _rescale(X_train: np.ndarray, X_test: np.ndarray):
    """One affine map for both splits: centre the bounding box of all points, largest |coord| -> 3."""
    X = np.concatenate([X_train, X_test]).astype(np.float64)
    centre = (X.max(0) + X.min(0)) / 2
    half = np.abs(X - centre).max()
    s = SCALE / half if half > 0 else 1.0
    return ((X_train - centre) * s).astype(np.float32), ((X_test - centre) * s).astype(np.float32)


def _split(X: np.ndarray, y: np.ndarray, test_size: float, seed: int, stratify: bool):
    from sklearn.model_selection import train_test_split
    return train_test_split(X, y, test_size=test_size, random_state=seed, stratify=y if stratify else None)


def _classification(name: str, n: int, noise: float, test_size: float, seed: int):
    if name == "xor":
        return tuple(datasets.make_xor(n, noise=0.1 + noise, test_size=test_size, seed=seed))
    if name == "spiral":
        return tuple(datasets.make_spirals(n, n_classes=2, noise=noise, test_size=test_size, seed=seed))
    if name == "moons":
        return tuple(datasets.make_moons(n, noise=noise, test_size=test_size, seed=seed))
    from sklearn.datasets import make_circles
    if name == "circle":
        X, y = make_circles(n, noise=noise / 2, factor=0.5, random_state=seed)
    else:  # gaussians: two blobs, spread growing with the noise
        rng = np.random.default_rng(seed)
        y = rng.integers(0, 2, n)
        X = np.where(y[:, None] == 1, 1.0, -1.0) * np.array([1.0, 1.0]) + rng.normal(0, 0.35 + noise, (n, 2))
    Xtr, Xte, ytr, yte = _split(X, y, test_size, seed, stratify=True)
    return Xtr, Xte, ytr.astype(np.int64), yte.astype(np.int64)


def _regression(name: str, n: int, noise: float, test_size: float, seed: int):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1.0, 1.0, (n, 2))
    if name == "plane":
        y = 0.5 * (X[:, 0] + X[:, 1])
    else:  # bumps: one bump up, one down
        y = np.exp(-8 * ((X[:, 0] - 0.4) ** 2 + (X[:, 1] - 0.4) ** 2)) - np.exp(
            -8 * ((X[:, 0] + 0.4) ** 2 + (X[:, 1] + 0.4) ** 2))
    y = y + rng.normal(0.0, noise / 2, n)
    y = y / max(np.abs(y).max(), 1e-12)
    return _split(X, y.astype(np.float32), test_size, seed, stratify=False)


def make(name: str, noise: float = 0.2, train_ratio: float = 0.5, n: int = 400, seed: int = 0) -> PlayData:
    """A built-in set by name: circle, xor, gaussians, spiral, moons (classification), plane, bumps
    (regression). ``noise`` in [0, 1]; ``train_ratio`` in [0.1, 0.9] of the ``n`` points train."""
    if name not in CLASSIFICATION + REGRESSION:
        raise ValueError(f"unknown data set {name!r}: choose one of {', '.join(CLASSIFICATION + REGRESSION)} or upload a CSV")
    test_size = 1.0 - train_ratio
    if name in CLASSIFICATION:
        Xtr, Xte, ytr, yte = _classification(name, n, noise, test_size, seed)
        classes, task = ["0", "1"], "classification"
    else:
        Xtr, Xte, ytr, yte = _regression(name, n, noise, test_size, seed)
        classes, task = [], "regression"
    Xtr, Xte = _rescale(Xtr, Xte)
    return PlayData(name, task, Xtr, np.asarray(ytr), Xte, np.asarray(yte), classes)


def from_csv(text: str, filename: str = "upload.csv", train_ratio: float = 0.5, seed: int = 0) -> PlayData:
    """An uploaded CSV (header, 2 numeric feature columns, a label column last), parsed by the
    CLI's loader :func:`chainrule.datasets.load_csv`: its errors name the file, line and column.
    A label the loader reads as continuous (many distinct numbers, or non-integers) makes a
    regression set, its targets scaled to ``[-1, 1]``; any other label is a class."""
    base = os.path.basename(filename or "upload.csv") or "upload.csv"
    if len(text.encode("utf-8")) > MAX_UPLOAD_BYTES:
        raise ValueError(f"{base}: the CSV has {len(text.encode('utf-8')):,} bytes; the playground accepts at most "
                         f"{MAX_UPLOAD_BYTES:,} (1 MiB)")
    n_rows = max(0, sum(1 for line in text.splitlines() if line.strip()) - 1)
    if n_rows > MAX_UPLOAD_ROWS:
        raise ValueError(f"{base}: the CSV has {n_rows:,} data rows; the playground accepts at most {MAX_UPLOAD_ROWS:,}")
    # the loader names the set (and some messages) after the file: a plain name is kept on disk; any
    # other (``..``, 300 bytes, a NUL, a slash) becomes upload.csv, never reaching the file system
    on_disk = base if re.fullmatch(r"[\w. -]{1,100}", base) and base.strip(".") else "upload.csv"
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, on_disk)
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        try:
            d = datasets.load_csv(path, test_size=1.0 - train_ratio, seed=seed)
        except ValueError as e:  # the CLI's message, with the file's own name instead of our temp path
            raise ValueError(str(e).replace(path, base)) from None
    if d.n_features != 2:
        raise ValueError(f"{base}: the playground needs exactly 2 numeric feature columns and a label, got "
                         f"{d.n_features} feature columns {d.feature_names}")
    Xtr, Xte = _rescale(d.X_train, d.X_test)
    name = os.path.splitext(base)[0]
    if d.task == "regression":  # a continuous target (the CLI's rule): fitted by squared error, like plane and bumps
        ytr, yte = _rescale_target(d.y_train, d.y_test)
        return PlayData(name, "regression", Xtr, ytr, Xte, yte)
    return PlayData(name, "classification", Xtr, d.y_train, Xte, d.y_test, list(d.target_names))


def _rescale_target(y_train: np.ndarray, y_test: np.ndarray):
    """One affine map for both splits' regression targets: their range -> [-1, 1] (the heatmap's
    orange -1 .. blue +1); a constant target becomes 0."""
    y = np.concatenate([y_train, y_test]).astype(np.float64)
    centre, half = (y.max() + y.min()) / 2, (y.max() - y.min()) / 2
    s = 1.0 / half if half > 0 else 1.0
    return ((y_train - centre) * s).astype(np.float32), ((y_test - centre) * s).astype(np.float32)


def grid(resolution: int = 50) -> np.ndarray:
    """The heatmap's cell centres, (resolution^2, 2), row 0 at the top (x2 = +EXTENT)."""
    s = (np.arange(resolution) + 0.5) / resolution * 2 * EXTENT - EXTENT
    x1, x2 = np.meshgrid(s, s[::-1])
    return np.column_stack([x1.ravel(), x2.ravel()]).astype(np.float32)
