"""What every analysis result shares: confidence intervals, tables (text and markdown), CSV and
JSON export, figures written to files, and the cross-validation splitter."""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .._plot import pyplot, save  # noqa: F401 - pyplot: the analysis modules import it from here
from .._text import grid, html_table, number


def confidence_interval(values, confidence: float = 0.95, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """Student-t interval of the mean along ``axis``; zero width when there is a single value."""
    from scipy import stats

    v = np.asarray(values, dtype=np.float64)
    k = v.shape[axis]
    mean = np.nanmean(v, axis=axis)
    if k < 2:
        return mean, mean
    half = stats.t.ppf(0.5 + confidence / 2, k - 1) * np.nanstd(v, axis=axis, ddof=1) / math.sqrt(k)
    return mean - half, mean + half



def text_table(records: list[dict], columns: list[str] | None = None) -> str:
    """Records as an aligned text table (numbers right-aligned)."""
    if not records:
        return "(empty)"
    columns = columns or list(records[0])
    return grid(columns, [[number(r.get(c, "")) for c in columns] for r in records], align="numbers-right")


def markdown_table(records: list[dict], columns: list[str] | None = None) -> str:
    """Records as a markdown table."""
    if not records:
        return "(empty)"
    columns = columns or list(records[0])
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    out += ["| " + " | ".join(number(r.get(c, "")) for c in columns) + " |" for r in records]
    return "\n".join(out)


def jsonable(v):
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, Mapping):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    return v


def figure(path, fig) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save(fig, path, dpi=120)
    return path


class Result:
    """Common surface: ``records()`` are the rows of the main table."""

    def records(self) -> list[dict]:
        raise NotImplementedError

    def table(self) -> str:
        return text_table(self.records())

    def markdown(self) -> str:
        return markdown_table(self.records())

    def __str__(self) -> str:
        return self.table()

    def _repr_html_(self) -> str:  # Jupyter: the main table as HTML, the same cells as table()
        rows = self.records()
        columns = list(rows[0]) if rows else []
        return html_table(columns, [[number(r.get(c, "")) for c in columns] for r in rows], caption=type(self).__name__)

    def to_dict(self) -> dict:
        return jsonable({k: v for k, v in vars(self).items() if not k.startswith("_")})

    def to_csv(self, path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = self.records()
        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else [])
            w.writeheader()
            w.writerows(rows)
        return path


def names_or_default(names, n: int, prefix: str = "x") -> list[str]:
    if names is None:
        return [f"{prefix}{j}" for j in range(n)]
    names = [str(s) for s in names]
    if len(names) != n:
        raise ValueError(f"got {len(names)} feature names for {n} features")
    return names



def splitter(cv, estimator, y, n_repeats: int = 1, random_state=0):
    from sklearn.base import is_classifier
    from sklearn.model_selection import KFold, RepeatedKFold, RepeatedStratifiedKFold, StratifiedKFold

    if not isinstance(cv, (int, np.integer)):
        return cv
    classif = is_classifier(estimator)
    if n_repeats > 1:
        cls = RepeatedStratifiedKFold if classif else RepeatedKFold
        return cls(n_splits=int(cv), n_repeats=n_repeats, random_state=random_state)
    cls = StratifiedKFold if classif else KFold
    return cls(n_splits=int(cv), shuffle=True, random_state=random_state)


def as_named(estimators, prefix: str = "model") -> dict[str, Any]:
    if isinstance(estimators, Mapping):
        return {str(k): v for k, v in estimators.items()}
    if isinstance(estimators, (list, tuple)):
        out: dict[str, Any] = {}
        for k, e in enumerate(estimators):
            base = type(e).__name__ if not isinstance(e, np.ndarray) else f"{prefix}{k}"
            name = base if base not in out else f"{base}_{k}"
            out[name] = e
        return out
    return {type(estimators).__name__: estimators}

