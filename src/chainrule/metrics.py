"""Metrics and named losses for the fit loop: ``f(output, target) -> float`` over NumPy arrays.

Classification: ``accuracy``. Regression: ``mse``, ``mae`` and ``r2`` (the coefficient of
determination ``R^2 = 1 - sum (y - yhat)^2 / sum (y - mean y)^2``, 1 for a perfect fit, 0 for
predicting the mean).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import functional as F
from .creation import as_ndarray

__all__ = ["accuracy", "mse", "mae", "r2", "METRICS", "LOSSES", "metric"]


def accuracy(output, target) -> float:
    """Fraction of correct predictions. ``output`` holds logits: (N, C) with C > 1 is argmax, (N,) or
    (N, 1) is a binary logit (positive means class 1). ``target`` holds class indices, or (N, C)
    one-hot / probability rows (their argmax is the class)."""
    out, t = as_ndarray(output), as_ndarray(target)
    if t.ndim == 2 and t.shape[1] > 1:  # one-hot (or soft) targets, as cross_entropy accepts them
        t = t.argmax(axis=1)
    t = t.reshape(-1)
    pred = out.argmax(axis=1) if out.ndim == 2 and out.shape[1] > 1 else (out.reshape(-1) > 0).astype(np.int64)
    if pred.shape != t.shape:
        raise ValueError(f"accuracy: {pred.shape[0]} predictions (output {out.shape}) but {t.shape[0]} targets")
    return float(np.mean(pred == t))


def _pair(output, target) -> tuple[np.ndarray, np.ndarray]:
    out, t = as_ndarray(output).astype(np.float64), as_ndarray(target).astype(np.float64)
    return (out.reshape(t.shape) if out.size == t.size else out), t


def mse(output, target) -> float:
    """Mean squared error ``mean (yhat - y)^2``."""
    out, t = _pair(output, target)
    return float(np.mean((out - t) ** 2))


def mae(output, target) -> float:
    """Mean absolute error ``mean |yhat - y|``."""
    out, t = _pair(output, target)
    return float(np.mean(np.abs(out - t)))


def r2(output, target) -> float:
    """Coefficient of determination ``1 - SS_res / SS_tot`` (scikit-learn's ``r2_score``; 0.0 when
    the target is constant and the fit is not perfect, 1.0 when it is)."""
    out, t = _pair(output, target)
    ss_res = float(np.sum((t - out) ** 2))
    ss_tot = float(np.sum((t - t.mean(axis=0)) ** 2))
    if ss_tot == 0.0:
        return 1.0 if ss_res == 0.0 else 0.0
    return 1.0 - ss_res / ss_tot


METRICS: dict[str, Callable] = {"accuracy": accuracy, "acc": accuracy, "mse": mse, "mae": mae, "r2": r2}
LOSSES: dict[str, Callable] = {"cross_entropy": F.cross_entropy, "mse": F.mse_loss, "mse_loss": F.mse_loss,
                               "bce_with_logits": F.binary_cross_entropy_with_logits}


def metric(m) -> tuple[str, Callable]:
    """``(name, function)`` of a metric given by name or as a callable ``f(output, target)``."""
    if callable(m):
        return getattr(m, "__name__", "metric"), m
    if m not in METRICS:
        raise ValueError(f"unknown metric {m!r}: choose one of {sorted(METRICS)} or pass a callable(output, target)")
    return ("accuracy" if m == "acc" else m), METRICS[m]
