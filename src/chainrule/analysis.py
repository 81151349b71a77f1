"""Experiment analysis beyond accuracy: the lecture's "Tips for the Final Project: Analysis".

* Which features drive performance? :func:`weight_importance` reads the learned weights of linear
  and softmax models; :func:`ablation_importance` removes a feature (or a group) and re-trains;
  :func:`permutation_importance` shuffles a feature at test time (scikit-learn's implementation).
* How much data do the models need? :func:`sample_complexity` plots learning curves (scikit-learn's
  ``learning_curve``).
* Are the models' errors correlated? :func:`error_correlation` gives the phi coefficient and Cohen's
  kappa of every pair of models, the error-overlap matrix and the "easy" / "hard" / "disputed"
  examples; :class:`TrainingDynamics` records when each example is learned and forgotten.

Everything works on any scikit-learn-compatible estimator (chainrule's own in
:mod:`chainrule.sklearn`, or scikit-learn's). Every result has ``.table()`` (printable),
``.to_dict()``, ``.to_csv(path)`` and ``.plot(path)`` (matplotlib, imported only when plotting).
``chainrule analyze`` runs all of it on a data set and writes figures and a markdown report.

Confidence intervals are Student-t intervals over folds (or repeats):
``mean ± t_{1-α/2, k-1} · s / sqrt(k)`` with ``s`` the sample standard deviation of the ``k`` values.
Folds share training data, so these intervals are somewhat optimistic (Nadeau & Bengio, 2003); they
are for ranking features and models, not for significance claims.
"""

from __future__ import annotations

import argparse
import csv
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "ImportanceResult", "SampleComplexityResult", "ErrorCorrelationResult", "TrainingDynamics",
    "weight_importance", "ablation_importance", "permutation_importance", "sample_complexity",
    "error_correlation", "track_training_dynamics", "configure_analyze", "run_analyze",
]


# ----- shared helpers -----------------------------------------------------------------------------
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


def _fmt(v) -> str:
    if isinstance(v, (float, np.floating)):
        return "nan" if np.isnan(v) else f"{v:.4g}"
    return str(v)


def _text_table(records: list[dict], columns: list[str] | None = None) -> str:
    if not records:
        return "(empty)"
    columns = columns or list(records[0])
    cells = [[_fmt(r.get(c, "")) for c in columns] for r in records]
    widths = [max(len(c), *(len(row[k]) for row in cells)) for k, c in enumerate(columns)]
    line = lambda row: "  ".join(s.rjust(w) if _numeric(s) else s.ljust(w) for s, w in zip(row, widths)).rstrip()
    return "\n".join([line(columns), line(["-" * w for w in widths])] + [line(r) for r in cells])


def _numeric(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _markdown_table(records: list[dict], columns: list[str] | None = None) -> str:
    if not records:
        return "(empty)"
    columns = columns or list(records[0])
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    out += ["| " + " | ".join(_fmt(r.get(c, "")) for c in columns) + " |" for r in records]
    return "\n".join(out)


def _jsonable(v):
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def _figure(path, fig) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def _pyplot():
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "pdf", "svg", "ps", "cairo"):
        try:
            matplotlib.use("Agg")  # files only: never open a window (or need a display)
        except Exception:  # noqa: BLE001 - a backend already in use keeps working for savefig
            pass
    import matplotlib.pyplot as plt

    return plt


class _Result:
    """Common surface: ``records()`` are the rows of the main table."""

    def records(self) -> list[dict]:
        raise NotImplementedError

    def table(self) -> str:
        return _text_table(self.records())

    def markdown(self) -> str:
        return _markdown_table(self.records())

    def __str__(self) -> str:
        return self.table()

    def to_dict(self) -> dict:
        return _jsonable({k: v for k, v in vars(self).items() if not k.startswith("_")})

    def to_csv(self, path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = self.records()
        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else [])
            w.writeheader()
            w.writerows(rows)
        return path


def _names(names, n: int, prefix: str = "x") -> list[str]:
    if names is None:
        return [f"{prefix}{j}" for j in range(n)]
    names = [str(s) for s in names]
    if len(names) != n:
        raise ValueError(f"got {len(names)} feature names for {n} features")
    return names


# ----- importance ---------------------------------------------------------------------------------
class ImportanceResult(_Result):
    """Feature (or feature-group) importances: ``mean`` per feature with ``std`` and a confidence
    interval ``[ci_low, ci_high]`` over ``scores`` (features x runs: folds, seeds or repeats).
    ``per_class`` (classes x features) is filled by :func:`weight_importance`."""

    def __init__(self, method: str, names: list[str], scores: np.ndarray, confidence: float = 0.95,
                 baseline: float | None = None, per_class: np.ndarray | None = None, classes=None,
                 groups: list[list[int]] | None = None):
        self.method, self.names, self.confidence = method, list(names), confidence
        self.scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
        self.mean = np.nanmean(self.scores, axis=1)
        k = self.scores.shape[1]
        self.std = np.nanstd(self.scores, axis=1, ddof=1) if k > 1 else np.zeros(len(self.names))
        self.ci_low, self.ci_high = confidence_interval(self.scores, confidence)
        self.baseline, self.per_class, self.classes, self.groups = baseline, per_class, classes, groups

    def ranking(self) -> list[str]:
        """Feature names, most important first."""
        return [self.names[j] for j in np.argsort(-self.mean, kind="stable")]

    def records(self) -> list[dict]:
        order = np.argsort(-self.mean, kind="stable")
        rows = []
        for rank, j in enumerate(order, 1):
            r = {"rank": rank, "feature": self.names[j], "importance": float(self.mean[j])}
            if self.scores.shape[1] > 1:  # an interval only where there was resampling
                r.update(std=float(self.std[j]), ci_low=float(self.ci_low[j]), ci_high=float(self.ci_high[j]))
            if self.per_class is not None:
                for c, cls in enumerate(self.classes):
                    r[f"class_{cls}"] = float(self.per_class[c, j])
            rows.append(r)
        return rows

    def table(self, top: int | None = 20) -> str:
        head = f"{self.method} importance"
        if self.baseline is not None:
            head += f" (baseline score {self.baseline:.4g})"
        recs = self.records()
        cols = ["rank", "feature", "importance"] + (["std", "ci_low", "ci_high"] if self.scores.shape[1] > 1 else [])
        more = f"\n... {len(recs) - top} more" if top and len(recs) > top else ""
        return head + "\n" + _text_table(recs[:top] if top else recs, cols) + more

    def plot(self, path, top: int = 20, image_shape: tuple[int, int] | None = None) -> Path:
        """Bar chart of the ``top`` features with confidence intervals; with ``image_shape`` (e.g.
        ``(8, 8)`` for digits) the per-feature importances are also drawn as images (overall and,
        for weight importance, per class)."""
        plt = _pyplot()
        if image_shape is not None and len(self.names) == image_shape[0] * image_shape[1]:
            maps = [("overall", self.mean)]
            if self.per_class is not None:
                maps += [(f"class {c}", self.per_class[k]) for k, c in enumerate(self.classes)]
            cols = min(len(maps), 6)
            rows = math.ceil(len(maps) / cols)
            fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.3 * rows), squeeze=False)
            for ax in axes.ravel():
                ax.axis("off")
            for ax, (title, m) in zip(axes.ravel(), maps):
                ax.imshow(np.asarray(m).reshape(image_shape), cmap="viridis")
                ax.set_title(title, fontsize=9)
            fig.suptitle(f"{self.method} importance")
            return _figure(path, fig)
        order = np.argsort(-self.mean, kind="stable")[:top][::-1]
        fig, ax = plt.subplots(figsize=(6, 0.3 * len(order) + 1.2))
        err = np.vstack([self.mean[order] - self.ci_low[order], self.ci_high[order] - self.mean[order]])
        ax.barh([self.names[j] for j in order], self.mean[order], xerr=err, color="#4c72b0", capsize=2)
        ax.axvline(0, color="k", lw=0.8)
        ci = f" ({int(self.confidence * 100)}% CI)" if self.scores.shape[1] > 1 else ""
        ax.set_xlabel(f"{self.method} importance{ci}")
        return _figure(path, fig)


def _final_estimator(est):
    """Unwrap a Pipeline into (preprocessing steps, final estimator)."""
    steps = getattr(est, "steps", None)
    if steps:
        return est[:-1], steps[-1][1]
    return None, est


def _coefficients(model) -> np.ndarray:
    """Weights (classes x features) of a linear/softmax model: scikit-learn's ``coef_``,
    chainrule's ``coef_`` or ``model_`` (first layer's weight, PyTorch layout out x in), or a
    ``chainrule.nn.Linear``."""
    coef = getattr(model, "coef_", None)
    if coef is None:
        inner = getattr(model, "model_", model)
        w = getattr(getattr(inner, "linear", inner), "weight", None)  # chainrule.models keep theirs in .linear
        if w is None and hasattr(inner, "parameters"):
            w = next((p for p in inner.parameters() if getattr(p, "ndim", 0) == 2), None)
        if w is None:
            raise TypeError(f"weight_importance needs a fitted linear or softmax model with coef_ (or a "
                            f"chainrule Linear); {type(model).__name__} has none. Fit it first, or use "
                            "ablation_importance / permutation_importance for other models.")
        coef = w
    coef = np.asarray(getattr(coef, "data", coef), dtype=np.float64)
    return coef.reshape(1, -1) if coef.ndim == 1 else coef


def weight_importance(model_or_estimator, feature_names: Sequence[str] | None = None, X=None) -> ImportanceResult:
    """Importance from the learned weights of a linear or softmax model.

    For class ``c`` and feature ``j`` with weight ``w_cj`` and feature standard deviation ``σ_j``
    (from ``X``; 1 when ``X`` is None), the importance is ``|w_cj| σ_j``: the change of the logit
    of class ``c`` when feature ``j`` moves by one standard deviation, so features on different
    scales compare. The overall importance is the mean over classes, ``(1/C) Σ_c |w_cj| σ_j``.

    Softmax weights are identifiable only up to a per-feature shift shared by all classes
    (``w_cj + b_j`` gives the same probabilities), so with ``C >= 2`` weight rows each feature's
    weights are first centred across classes (a binary logistic model has one row: left as is).

    A Pipeline's preprocessing (e.g. StandardScaler) is applied to ``X`` before measuring ``σ_j``,
    so the weights and the deviations refer to the same inputs.
    """
    pre, model = _final_estimator(model_or_estimator)
    W = _coefficients(model)
    n_features = W.shape[1]
    if W.shape[0] >= 2:  # softmax (also 2-class softmax): only differences between classes count
        W = W - W.mean(axis=0, keepdims=True)
    if X is not None:
        Xa = np.asarray(pre.transform(X) if pre is not None else X, dtype=np.float64)
        if Xa.shape[1] != n_features:
            raise ValueError(f"X has {Xa.shape[1]} features but the model has weights for {n_features}")
        sigma = Xa.std(axis=0)
    else:
        sigma = np.ones(n_features)
    per_class = np.abs(W) * sigma
    classes = list(getattr(model, "classes_", range(W.shape[0])))
    if W.shape[0] == 1 and len(classes) == 2:
        classes = [classes[1]]  # binary logistic regression: one weight vector, for the positive class
    elif len(classes) != W.shape[0]:
        classes = list(range(W.shape[0]))
    names = _names(feature_names if feature_names is not None else getattr(model, "feature_names_in_", None),
                   n_features)
    # One fitted model, no resampling: no interval (ablation and permutation have them); the
    # per-class columns show how much the classes disagree.
    return ImportanceResult("weight", names, per_class.mean(axis=0)[:, None], per_class=per_class, classes=classes)


def _groups(features, n_features: int, feature_names) -> tuple[list[str], list[np.ndarray]]:
    names = _names(feature_names, n_features)
    if features is None:
        return names, [np.array([j]) for j in range(n_features)]
    if isinstance(features, Mapping):
        items = [(str(k), v) for k, v in features.items()]
    else:
        items = []
        for f in features:
            if isinstance(f, (int, np.integer)):
                items.append((names[int(f)], [int(f)]))
            elif isinstance(f, str):
                items.append((f, [names.index(f)]))
            else:
                idx = [names.index(i) if isinstance(i, str) else int(i) for i in f]
                items.append(("+".join(names[i] for i in idx), idx))
    out_names, out_idx = [], []
    for name, idx in items:
        idx = np.atleast_1d(np.asarray(idx, dtype=int))
        if idx.size == 0 or idx.min() < -n_features or idx.max() >= n_features:
            raise ValueError(f"feature group {name!r}: indices {idx.tolist()} out of range for {n_features} features")
        if np.unique(idx % n_features).size == n_features:
            raise ValueError(f"feature group {name!r} removes every feature; nothing would be left to train on")
        out_names.append(name)
        out_idx.append(idx % n_features)
    return out_names, out_idx


def _splitter(cv, estimator, y, n_repeats: int = 1, random_state=0):
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


def _fit_score(estimator, X, y, train, test, keep, scoring):
    from sklearn.base import clone
    from sklearn.metrics import check_scoring

    est = clone(estimator)
    est.fit(X[train][:, keep], y[train])
    return float(check_scoring(est, scoring)(est, X[test][:, keep], y[test]))


def ablation_importance(estimator, X, y, features=None, cv=5, n_jobs: int | None = -1, scoring=None,
                        n_repeats: int = 1, random_state: int = 0, feature_names: Sequence[str] | None = None,
                        confidence: float = 0.95) -> ImportanceResult:
    """Remove a feature (or a group), re-train, and measure the drop in held-out score.

    For fold ``k`` with score ``s_k`` using all features and ``s_k^{(-G)}`` without group ``G``, the
    importance of ``G`` is the mean paired drop ``(1/K) Σ_k (s_k - s_k^{(-G)})`` with a t interval
    over the ``K`` folds (``cv`` folds times ``n_repeats`` re-shuffles). Both scores use the same
    folds and the same estimator parameters (including its ``random_state``), so the difference
    isolates the removed features.

    ``features`` is None (every feature alone), a list of indices or names, a list of index lists
    (groups), or a dict ``name -> indices``. Every (group, fold) fit is a separate joblib task.
    Removing correlated features one at a time understates them (the others stand in): group them.
    """
    # scikit-learn's joblib wrappers carry its config and the caller's warning filters to the workers.
    from sklearn.utils.parallel import Parallel, delayed

    X, y = np.asarray(X), np.asarray(y)
    names, groups = _groups(features, X.shape[1], feature_names)
    splits = list(_splitter(cv, estimator, y, n_repeats, random_state).split(X, y))
    all_cols = np.arange(X.shape[1])
    keeps = [all_cols] + [np.setdiff1d(all_cols, g) for g in groups]
    tasks = [(gi, train, test) for gi in range(len(keeps)) for train, test in splits]
    scores = Parallel(n_jobs=n_jobs)(delayed(_fit_score)(estimator, X, y, train, test, keeps[gi], scoring)
                                     for gi, train, test in tasks)
    S = np.asarray(scores).reshape(len(keeps), len(splits))
    drops = S[0] - S[1:]
    return ImportanceResult("ablation", names, drops, confidence, baseline=float(S[0].mean()),
                            groups=[g.tolist() for g in groups])


def permutation_importance(estimator, X, y, n_repeats: int = 5, scoring=None, random_state: int = 0,
                           n_jobs: int | None = None, X_test=None, y_test=None, test_size: float = 0.25,
                           feature_names: Sequence[str] | None = None, confidence: float = 0.95) -> ImportanceResult:
    """Drop in score when one feature's column is shuffled (scikit-learn's
    ``sklearn.inspection.permutation_importance``, not re-implemented here).

    An unfitted estimator is fitted on a stratified ``1 - test_size`` split of ``(X, y)`` and scored
    on the rest (or on ``X_test, y_test`` when given); a fitted one is scored on ``X_test, y_test``,
    or on ``X, y`` if none are given. The interval is over the ``n_repeats`` shuffles (it shows the
    shuffling noise, not retraining noise: use :func:`ablation_importance` for that).
    """
    from sklearn.base import clone, is_classifier
    from sklearn.exceptions import NotFittedError
    from sklearn.inspection import permutation_importance as _sk_permutation_importance
    from sklearn.model_selection import train_test_split
    from sklearn.utils.validation import check_is_fitted

    X, y = np.asarray(X), np.asarray(y)
    try:
        check_is_fitted(estimator)
        fitted = True
    except (NotFittedError, TypeError):
        fitted = False
    if not fitted:
        if X_test is None:
            X, X_test, y, y_test = train_test_split(X, y, test_size=test_size, random_state=random_state,
                                                    stratify=y if is_classifier(estimator) else None)
        estimator = clone(estimator).fit(X, y)
    elif X_test is None:
        X_test, y_test = X, y
    r = _sk_permutation_importance(estimator, np.asarray(X_test), np.asarray(y_test), scoring=scoring,
                                   n_repeats=n_repeats, random_state=random_state, n_jobs=n_jobs)
    from sklearn.metrics import check_scoring

    base = float(check_scoring(estimator, scoring)(estimator, np.asarray(X_test), np.asarray(y_test)))
    return ImportanceResult("permutation", _names(feature_names, X.shape[1]), r.importances, confidence, baseline=base)


# ----- sample complexity --------------------------------------------------------------------------
class SampleComplexityResult(_Result):
    """Learning curves: for each model, ``train_scores`` and ``val_scores`` (sizes x folds) at the
    absolute training-set sizes ``train_sizes[model]``."""

    def __init__(self, curves: dict[str, dict[str, np.ndarray]], scoring: str, log_x: bool = False,
                 confidence: float = 0.95):
        self.curves, self.scoring, self.log_x, self.confidence = curves, scoring, log_x, confidence

    def records(self) -> list[dict]:
        rows = []
        for name, c in self.curves.items():
            lo, hi = confidence_interval(c["val_scores"], self.confidence)
            for k, n in enumerate(c["train_sizes"]):
                rows.append({"model": name, "n_train": int(n),
                             "train_mean": float(np.nanmean(c["train_scores"][k])),
                             "train_std": float(np.nanstd(c["train_scores"][k])),
                             "val_mean": float(np.nanmean(c["val_scores"][k])),
                             "val_std": float(np.nanstd(c["val_scores"][k])),
                             "val_ci_low": float(lo[k]), "val_ci_high": float(hi[k])})
        return rows

    def table(self) -> str:
        return f"sample complexity ({self.scoring})\n" + _text_table(self.records())

    def plot(self, path, log_x: bool | None = None) -> Path:
        """Train (dashed) and validation (solid, with CI band) score against training-set size."""
        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(6, 4))
        for k, (name, c) in enumerate(self.curves.items()):
            color = f"C{k}"
            n = c["train_sizes"]
            v = np.nanmean(c["val_scores"], axis=1)
            lo, hi = confidence_interval(c["val_scores"], self.confidence)
            ax.plot(n, v, "o-", color=color, label=f"{name} validation")
            ax.fill_between(n, lo, hi, color=color, alpha=0.15)
            ax.plot(n, np.nanmean(c["train_scores"], axis=1), "--", color=color, alpha=0.8, label=f"{name} train")
        if self.log_x if log_x is None else log_x:
            ax.set_xscale("log")
        ax.set_xlabel("training examples")
        ax.set_ylabel(self.scoring)
        ax.set_title("sample complexity")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        return _figure(path, fig)


def _as_named(estimators, prefix: str = "model") -> dict[str, Any]:
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


def sample_complexity(estimator, X, y, train_sizes=(0.1, 0.2, 0.4, 0.7, 1.0), cv=5, n_jobs: int | None = None,
                      scoring=None, random_state: int = 0, log_x: bool = False,
                      confidence: float = 0.95) -> SampleComplexityResult:
    """Score against training-set size, by scikit-learn's ``learning_curve``.

    ``estimator`` may be one estimator or a dict ``name -> estimator`` (curves share the folds, so
    they compare). ``train_sizes`` are fractions of the training folds (floats in (0, 1]) or
    absolute counts (ints). Validation scores that keep rising at the largest size say more data
    would help; a large train/validation gap says the model is variance-limited.
    """
    from sklearn.model_selection import learning_curve

    X, y = np.asarray(X), np.asarray(y)
    curves = {}
    for name, est in _as_named(estimator).items():
        sizes, tr, va = learning_curve(est, X, y, train_sizes=np.asarray(train_sizes), scoring=scoring, n_jobs=n_jobs,
                                       cv=_splitter(cv, est, y, 1, random_state), shuffle=True,
                                       random_state=random_state)
        curves[name] = {"train_sizes": sizes, "train_scores": tr, "val_scores": va}
    if scoring is None:  # the estimators' own score(): accuracy for classifiers, R^2 for regressors
        from sklearn.base import is_classifier

        scoring = "accuracy" if all(is_classifier(e) for e in _as_named(estimator).values()) else "score"
    return SampleComplexityResult(curves, str(scoring), log_x, confidence)


# ----- error correlation --------------------------------------------------------------------------
def phi_coefficient(a, b) -> float:
    """Pearson correlation of two 0/1 vectors:

    .. math:: \\phi = \\frac{n_{11} n_{00} - n_{10} n_{01}}{\\sqrt{n_{1\\cdot} n_{0\\cdot} n_{\\cdot 1} n_{\\cdot 0}}}

    Undefined (nan) when either vector is constant, except that identical vectors give 1."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    if np.array_equal(a, b):
        return 1.0
    n11, n00 = np.sum(a & b), np.sum(~a & ~b)
    n10, n01 = np.sum(a & ~b), np.sum(~a & b)
    den = math.sqrt(float(n11 + n10) * float(n01 + n00) * float(n11 + n01) * float(n10 + n00))
    return float("nan") if den == 0 else float(n11 * n00 - n10 * n01) / den


class ErrorCorrelationResult(_Result):
    """Errors of several models on the same examples.

    ``errors`` (models x examples, bool), ``phi`` and ``kappa`` (models x models), ``overlap``
    (models x models: examples both get wrong; the diagonal is each model's error count), and the
    partition of the examples: ``easy`` (every model right), ``hard`` (every model wrong) and
    ``disputed`` (the rest), as index arrays."""

    def __init__(self, names, y, predictions, dynamics: dict[str, TrainingDynamics] | None = None):
        from sklearn.metrics import cohen_kappa_score

        self.names = list(names)
        self.y = np.asarray(y)
        self.predictions = np.asarray(predictions)
        self.errors = self.predictions != self.y[None, :]
        m = len(self.names)
        self.accuracy = 1.0 - self.errors.mean(axis=1)
        self.phi = np.ones((m, m))
        self.kappa = np.ones((m, m))
        E = self.errors.astype(np.int64)
        self.overlap = E @ E.T
        for i in range(m):
            for j in range(i + 1, m):
                self.phi[i, j] = self.phi[j, i] = phi_coefficient(self.errors[i], self.errors[j])
                if np.array_equal(self.predictions[i], self.predictions[j]):
                    k = 1.0  # sklearn gives nan when both predict one constant label; agreement is total
                else:
                    k = float(cohen_kappa_score(self.predictions[i], self.predictions[j]))
                self.kappa[i, j] = self.kappa[j, i] = k
        wrong = self.errors.sum(axis=0)
        self.easy = np.flatnonzero(wrong == 0)
        self.hard = np.flatnonzero(wrong == m)
        self.disputed = np.flatnonzero((wrong > 0) & (wrong < m))
        self.dynamics = dynamics or {}

    def records(self) -> list[dict]:
        rows = []
        union = lambda i, j: int(np.sum(self.errors[i] | self.errors[j]))
        for i in range(len(self.names)):
            for j in range(i + 1, len(self.names)):
                rows.append({"model_a": self.names[i], "model_b": self.names[j], "phi": float(self.phi[i, j]),
                             "kappa": float(self.kappa[i, j]), "both_wrong": int(self.overlap[i, j]),
                             "either_wrong": union(i, j),
                             "jaccard": float(self.overlap[i, j] / union(i, j)) if union(i, j) else 1.0})
        return rows

    def model_records(self) -> list[dict]:
        return [{"model": n, "accuracy": float(self.accuracy[i]), "errors": int(self.overlap[i, i])}
                for i, n in enumerate(self.names)]

    def partition(self) -> dict[str, np.ndarray]:
        return {"easy": self.easy, "hard": self.hard, "disputed": self.disputed}

    def table(self) -> str:
        n = len(self.y)
        parts = ", ".join(f"{k} {len(v)} ({len(v) / n:.1%})" for k, v in self.partition().items())
        out = ["error correlation", _text_table(self.model_records()), "", _text_table(self.records()),
               "", f"examples: {n}; {parts}"]
        for name, d in self.dynamics.items():
            out += ["", f"training dynamics of {name}", d.table()]
        return "\n".join(out)

    def markdown(self) -> str:
        n = len(self.y)
        parts = ", ".join(f"**{k}** {len(v)} ({len(v) / n:.1%})" for k, v in self.partition().items())
        return "\n\n".join([_markdown_table(self.model_records()), _markdown_table(self.records()),
                            f"Examples: {n}; {parts}."])

    def to_dict(self) -> dict:
        d = {"names": self.names, "accuracy": self.accuracy, "phi": self.phi, "kappa": self.kappa,
             "overlap": self.overlap, "easy": self.easy, "hard": self.hard, "disputed": self.disputed,
             "dynamics": {k: v.to_dict() for k, v in self.dynamics.items()}}
        return _jsonable(d)

    def plot(self, path) -> Path:
        """Heatmaps of phi (annotated with the number of shared errors) and of Cohen's kappa."""
        plt = _pyplot()
        m = len(self.names)
        fig, axes = plt.subplots(1, 2, figsize=(4 + 1.2 * m, 2 + 0.6 * m))
        for ax, M, title in ((axes[0], self.phi, "phi of errors (shared errors)"), (axes[1], self.kappa, "Cohen's kappa")):
            im = ax.imshow(M, vmin=-1, vmax=1, cmap="RdBu_r")
            ax.set_xticks(range(m), self.names, rotation=45, ha="right", fontsize=8)
            ax.set_yticks(range(m), self.names, fontsize=8)
            for i in range(m):
                for j in range(m):
                    txt = f"{M[i, j]:.2f}" + (f"\n({self.overlap[i, j]})" if M is self.phi else "")
                    ax.text(j, i, txt, ha="center", va="center", fontsize=7)
            ax.set_title(title, fontsize=9)
            fig.colorbar(im, ax=ax, fraction=0.046)
        return _figure(path, fig)

    def plot_examples(self, path, X, image_shape: tuple[int, int], n: int = 8, seed: int = 0) -> Path:
        """Up to ``n`` easy, disputed and hard examples drawn as images with their label, to see
        whether the hard ones look different (the lecture: "can we qualitatively tell?")."""
        plt = _pyplot()
        X = np.asarray(X)
        rng = np.random.default_rng(seed)
        fig, axes = plt.subplots(3, n, figsize=(1.1 * n, 3.9), squeeze=False)
        for r, (kind, idx) in enumerate(self.partition().items()):
            pick = rng.choice(idx, size=min(n, len(idx)), replace=False) if len(idx) else []
            for c in range(n):
                ax = axes[r, c]
                ax.axis("off")
                if c < len(pick):
                    i = pick[c]
                    ax.imshow(X[i].reshape(image_shape), cmap="gray_r")
                    preds = ",".join(str(p) for p in self.predictions[:, i])
                    ax.set_title(f"y={self.y[i]}\n{preds}", fontsize=6)
            axes[r, 0].text(-0.3, 0.5, f"{kind} ({len(idx)})", transform=axes[r, 0].transAxes, ha="right",
                            va="center", fontsize=8)
        return _figure(path, fig)


def _predictions(est, X, y, cv, n_jobs):
    from sklearn.model_selection import cross_val_predict

    if isinstance(est, np.ndarray) or (isinstance(est, (list, tuple)) and not hasattr(est, "fit")):
        p = np.asarray(est)
        if p.shape != y.shape:
            raise ValueError(f"predictions have shape {p.shape} but y has shape {y.shape}")
        return p
    if X is None:
        raise ValueError("error_correlation: X is needed to get predictions from estimators")
    if cv == "prefit":
        return np.asarray(est.predict(X))
    return np.asarray(cross_val_predict(est, X, y, cv=_splitter(cv, est, y), n_jobs=n_jobs))


def error_correlation(estimators_or_predictions, X=None, y=None, cv=5, n_jobs: int | None = None,
                      dynamics: Mapping[str, TrainingDynamics] | None = None) -> ErrorCorrelationResult:
    """Are the models' errors correlated?

    ``estimators_or_predictions`` is a dict ``name -> estimator or prediction array`` (or a list).
    Estimators get out-of-fold predictions for every example by ``cross_val_predict`` with the same
    ``cv`` folds (``cv="prefit"``: ``estimator.predict(X)`` of already fitted models). With error
    indicators ``e_i = [pred_i != y]``:

    * ``phi[a, b]``: Pearson correlation of ``e_a`` and ``e_b`` (1: same mistakes, 0: independent);
    * ``kappa[a, b]``: Cohen's kappa of the predicted labels, ``(p_o - p_e) / (1 - p_e)``, agreement
      beyond chance (low kappa between accurate models means an ensemble would help);
    * ``overlap[a, b] = Σ e_a e_b``: examples both get wrong.

    ``dynamics`` attaches :class:`TrainingDynamics` records (e.g. from :func:`track_training_dynamics`).
    """
    if y is None:
        raise ValueError("error_correlation needs the true labels y")
    y = np.asarray(y)
    named = _as_named(estimators_or_predictions)
    if len(named) < 2:
        raise ValueError(f"error_correlation needs at least two models, got {len(named)}")
    X = None if X is None else np.asarray(X)
    preds = [_predictions(e, X, y, cv, n_jobs) for e in named.values()]
    return ErrorCorrelationResult(list(named), y, np.stack(preds), dict(dynamics or {}))


# ----- per-example training dynamics --------------------------------------------------------------
class TrainingDynamics(_Result):
    """Which examples a model gets right after each epoch (Toneva et al., 2019, "An empirical study
    of example forgetting").

    ``correct[t, i]`` says whether example ``i`` is classified correctly after epoch ``t``.
    ``first_learned[i]`` is the first epoch ``t`` with ``correct[t, i]`` (-1: never). A forgetting
    event is a transition correct at epoch ``t`` -> wrong at ``t + 1``; ``forgetting[i]`` counts
    them. "Unforgettable" examples are learned and never forgotten.

    Three ways to fill it: pass it to :func:`chainrule.train.fit` as a callback
    (``callbacks=[TrainingDynamics(X, y)]``, ``y`` as class indices 0..K-1: it evaluates the
    trainer's model after every epoch, in eval mode); call ``dyn.record(model)`` from your own loop
    (``model`` has ``predict``, is a chainrule Module returning logits, or is a function
    ``X -> labels``); or build it from a recorded matrix with :meth:`from_correctness`.
    :func:`track_training_dynamics` does it for any estimator with ``partial_fit``.
    """

    def __init__(self, X=None, y=None):
        self.X = None if X is None else np.asarray(X)
        self.y = None if y is None else np.asarray(y)
        self._rows: list[np.ndarray] = []

    @classmethod
    def from_correctness(cls, correct) -> TrainingDynamics:
        d = cls()
        d._rows = [np.asarray(r, bool) for r in np.atleast_2d(np.asarray(correct, bool))]
        return d

    def record(self, model) -> np.ndarray:
        """Evaluate ``model`` on the tracked examples and append this epoch's correctness."""
        if self.X is None:
            raise ValueError("TrainingDynamics(X, y) needs the examples to evaluate on")
        if hasattr(model, "parameters") and hasattr(model, "training"):  # a chainrule Module: eval mode
            pred = _module_predict(model, self.X)
        elif hasattr(model, "predict"):
            pred = np.asarray(model.predict(self.X))
        else:
            pred = np.asarray(model(self.X))
        if pred.ndim == 2:  # scores or probabilities: the predicted class is the arg max
            pred = pred.argmax(axis=1)
        row = pred == self.y
        self._rows.append(row)
        return row

    def __call__(self, *args, **kwargs):
        """Callback form: the first argument with ``predict`` (or the ``model=`` keyword) is evaluated."""
        model = kwargs.get("model") or kwargs.get("estimator")
        if model is None:
            model = next((a for a in args if hasattr(a, "predict")), None)
        if model is None:
            raise TypeError("TrainingDynamics callback: pass the model (an object with predict)")
        self.record(model)

    # chainrule.train's Callback protocol, duck-typed (nothing to import): record after every epoch.
    def set_trainer(self, trainer) -> None:
        self.trainer = trainer

    def on_train_begin(self, logs=None) -> None: ...
    def on_train_end(self, logs=None) -> None: ...
    def on_epoch_begin(self, epoch, logs=None) -> None: ...
    def on_batch_end(self, batch, logs=None) -> None: ...

    def on_epoch_end(self, epoch, logs=None) -> None:
        self.record(self.trainer.model)

    def state_dict(self) -> dict:  # so a resumed run keeps the epochs already recorded
        return {"correct": self.correct.astype(np.uint8)}

    def load_state_dict(self, state: dict) -> None:
        self._rows = [np.asarray(r, bool) for r in np.asarray(state.get("correct", np.zeros((0, 0))))]

    @property
    def correct(self) -> np.ndarray:
        return np.stack(self._rows) if self._rows else np.zeros((0, 0 if self.y is None else len(self.y)), bool)

    @property
    def epochs(self) -> int:
        return len(self._rows)

    @property
    def first_learned(self) -> np.ndarray:
        C = self.correct
        return np.where(C.any(axis=0), C.argmax(axis=0), -1)

    @property
    def forgetting(self) -> np.ndarray:
        C = self.correct
        return (C[:-1] & ~C[1:]).sum(axis=0) if len(C) > 1 else np.zeros(C.shape[1], int)

    @property
    def never_learned(self) -> np.ndarray:
        return np.flatnonzero(self.first_learned < 0)

    @property
    def unforgettable(self) -> np.ndarray:
        return np.flatnonzero((self.first_learned >= 0) & (self.forgetting == 0))

    def records(self) -> list[dict]:
        C = self.correct
        fl, fg = self.first_learned, self.forgetting
        return [{"epoch": t, "accuracy": float(C[t].mean()), "learned_so_far": int(np.sum((fl >= 0) & (fl <= t))),
                 "forgotten_now": int(np.sum(C[t - 1] & ~C[t])) if t else 0,
                 "first_learned_now": int(np.sum(fl == t))} for t in range(len(C))] if len(fg) else []

    def table(self) -> str:
        n = self.correct.shape[1] if self.epochs else 0
        head = (f"{self.epochs} epochs, {n} examples: {len(self.unforgettable)} unforgettable, "
                f"{int(np.sum(self.forgetting > 0))} forgotten at least once "
                f"({int(self.forgetting.sum())} forgetting events), {len(self.never_learned)} never learned")
        return head + "\n" + _text_table(self.records())

    def to_dict(self) -> dict:
        return _jsonable({"correct": self.correct, "first_learned": self.first_learned, "forgetting": self.forgetting,
                          "never_learned": self.never_learned, "unforgettable": self.unforgettable})

    def plot(self, path) -> Path:
        """Accuracy per epoch and the histogram of forgetting events per example."""
        plt = _pyplot()
        fig, axes = plt.subplots(1, 2, figsize=(8, 3))
        C = self.correct
        axes[0].plot(np.arange(len(C)), C.mean(axis=1), "o-")
        axes[0].set_xlabel("epoch")
        axes[0].set_ylabel("fraction correct")
        fg = self.forgetting
        axes[1].hist(fg, bins=np.arange(fg.max() + 2) - 0.5 if len(fg) else 1, color="#c44e52")
        axes[1].set_xlabel("forgetting events per example")
        axes[1].set_ylabel("examples")
        axes[1].set_yscale("log")
        return _figure(path, fig)


def _module_predict(model, X) -> np.ndarray:
    """Class indices from a chainrule Module returning logits (one logit: sigmoid at 0), in eval
    mode (no dropout) and without recording a graph; the module's mode is restored."""
    from .autograd import no_grad
    from .tensor import Tensor

    was_training = model.training
    model.eval()
    try:
        with no_grad():
            z = np.asarray(model(Tensor(np.asarray(X, dtype=np.float32)))._data)
    finally:
        model.train(was_training)
    return (z.reshape(-1) >= 0).astype(np.int64) if z.ndim == 1 or z.shape[1] == 1 else z.argmax(axis=1)


def track_training_dynamics(estimator, X, y, epochs: int = 20, X_eval=None, y_eval=None, classes=None,
                            batch_size: int | None = None, random_state: int = 0) -> TrainingDynamics:
    """Train ``estimator`` one epoch at a time with ``partial_fit`` and record, after every epoch,
    which examples of ``X_eval`` (default: the training set itself, as in Toneva et al.) are right.

    One ``partial_fit(X, y)`` call is one epoch for chainrule's and scikit-learn's MLP and SGD
    estimators (they mini-batch inside). ``batch_size`` instead feeds each epoch as shuffled
    mini-batches, one ``partial_fit`` call each, for estimators whose ``partial_fit`` is one step."""
    from sklearn.base import clone

    if not hasattr(estimator, "partial_fit"):
        raise TypeError(f"{type(estimator).__name__} has no partial_fit: record dynamics from your training loop "
                        "instead, calling TrainingDynamics.record(model) after each epoch")
    X, y = np.asarray(X), np.asarray(y)
    est = clone(estimator)
    classes = np.unique(y) if classes is None else classes
    dyn = TrainingDynamics(X if X_eval is None else X_eval, y if y_eval is None else y_eval)
    rng = np.random.default_rng(random_state)
    for _ in range(epochs):
        if batch_size is None:
            est.partial_fit(X, y, classes=classes)
        else:
            perm = rng.permutation(len(y))
            for s in range(0, len(y), batch_size):
                b = perm[s:s + batch_size]
                est.partial_fit(X[b], y[b], classes=classes)
        dyn.record(est)
    return dyn


# ----- the `chainrule analyze` command ------------------------------------------------------------
MODELS = ("logreg", "mlp", "mlp-dropout")


def make_estimator(name: str, random_state: int = 0, max_epochs: int | None = None):
    """The CLI's models, standardised inputs first: ``logreg`` (softmax regression), ``mlp`` (one
    hidden layer of 64 ReLUs) and ``mlp-dropout`` (the same with dropout 0.2). chainrule's
    estimators when :mod:`chainrule.sklearn` is available, else scikit-learn's equivalents."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}: choose from {', '.join(MODELS)}")
    est = _chainrule_estimator(name, random_state, max_epochs)
    if est is None:
        from sklearn.linear_model import LogisticRegression
        from sklearn.neural_network import MLPClassifier

        if name == "logreg":
            est = LogisticRegression(max_iter=max_epochs or 200)
        else:  # scikit-learn's MLP has no dropout; its L2 penalty stands in as the regularised variant
            est = MLPClassifier((64,), alpha=1e-2 if name == "mlp-dropout" else 1e-4, max_iter=max_epochs or 60,
                                random_state=random_state)
    return make_pipeline(StandardScaler(), est)


def _chainrule_estimator(name, random_state, max_epochs):
    try:
        from . import sklearn as crsk  # noqa: F401 - written alongside; absent in older checkouts
    except ImportError:
        return None
    kw = {"random_state": random_state}
    if max_epochs is not None:
        kw["max_epochs"] = max_epochs
    if name == "logreg":
        cls = getattr(crsk, "SoftmaxRegression", None) or getattr(crsk, "LogisticRegression", None)
        return _construct(cls, kw)
    cls = getattr(crsk, "MLPClassifier", None)
    if cls is None:
        return None
    # Adam at 1e-2 (not the 1e-3 default) so that the short default budgets reach ~97% on digits.
    kw.update(hidden_layer_sizes=(64,), dropout=0.2 if name == "mlp-dropout" else 0.0, learning_rate=1e-2)
    return _construct(cls, kw)


def _construct(cls, kw):
    """Pass only the keyword arguments the estimator accepts (its signature is its contract)."""
    if cls is None:
        return None
    import inspect

    params = inspect.signature(cls).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return cls(**kw)
    return cls(**{k: v for k, v in kw.items() if k in params})


def configure_analyze(parser: argparse.ArgumentParser) -> None:
    """Options of ``chainrule analyze`` (see ``chainrule analyze --help``)."""
    parser.add_argument("--data", default="digits", help="data set: digits, iris, breast_cancer, mnist1d, ... or csv:PATH")
    parser.add_argument("--target", default=None, help="target column for csv: data")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, from {', '.join(MODELS)}")
    parser.add_argument("--out", default="analysis", help="output directory for figures, CSVs and report.md")
    parser.add_argument("--cv", type=int, default=3, help="cross-validation folds (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-jobs", type=int, default=2, help="parallel jobs (default 2)")
    parser.add_argument("--max-epochs", type=int, default=40, help="training epochs per fit (default 40; early stopping "
                        "on the training loss usually ends sooner)")
    parser.add_argument("--max-samples", type=int, default=None, help="subsample the data set for a quicker run")
    parser.add_argument("--epochs-dynamics", type=int, default=15, help="epochs recorded for training dynamics (0: skip)")


def _feature_groups(n_features: int, names: list[str], data: str) -> dict[str, list[int]]:
    """Groups for ablation: image rows for square images (digits: 8 rows of 8 pixels), else up to 8
    contiguous blocks, else single features."""
    side = int(round(math.sqrt(n_features)))
    if data == "digits" and side * side == n_features:
        return {f"row {r}": list(range(r * side, (r + 1) * side)) for r in range(side)}
    if n_features <= 12:
        return {names[j]: [j] for j in range(n_features)}
    edges = np.linspace(0, n_features, 9).astype(int)
    return {f"{names[a]}..{names[b - 1]}": list(range(a, b)) for a, b in zip(edges[:-1], edges[1:]) if b > a}


def run_analyze(args: argparse.Namespace) -> int:
    """``chainrule analyze``: every analysis on one data set, figures + CSVs + report.md in ``--out``."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        # Learning curves fit on 5% of the data and short epoch budgets on purpose: not news.
        warnings.simplefilter("ignore", ConvergenceWarning)
        return _run_analyze(args)


def _run_analyze(args: argparse.Namespace) -> int:
    from . import datasets

    t0 = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    for m in models:
        if m not in MODELS:
            raise ValueError(f"unknown model {m!r}: choose from {', '.join(MODELS)}")
    ds = datasets.load(args.data, target=args.target, seed=args.seed)
    X = np.concatenate([ds.X_train, ds.X_test]).astype(np.float64)
    y = np.concatenate([ds.y_train, ds.y_test])
    if args.max_samples and args.max_samples < len(y):
        from sklearn.model_selection import train_test_split

        X, _, y, _ = train_test_split(X, y, train_size=args.max_samples, stratify=y, random_state=args.seed)
    names = list(getattr(ds, "feature_names", None) or [f"x{j}" for j in range(X.shape[1])])
    side = int(round(math.sqrt(X.shape[1])))
    image_shape = (side, side) if args.data in ("digits",) and side * side == X.shape[1] else None
    ests = {m: make_estimator(m, args.seed, args.max_epochs) for m in models}
    backend = "chainrule" if _chainrule_estimator("logreg", 0, None) is not None else "scikit-learn (chainrule.sklearn missing)"
    log = lambda msg: print(f"[{time.perf_counter() - t0:6.1f}s] {msg}", flush=True)
    report = [f"# Analysis of `{args.data}`", "",
              f"{len(y)} examples, {X.shape[1]} features, {len(np.unique(y))} classes; models: {', '.join(models)} "
              f"({backend} estimators, standardised inputs); {args.cv}-fold cross-validation, seed {args.seed}.", ""]

    def section(title, result, stem, text=None, **plot_kw):
        result.to_csv(out / f"{stem}.csv")
        fig = result.plot(out / f"{stem}.png", **plot_kw)
        report.extend([f"## {title}", "", text or result.markdown(), "", f"![{title}]({fig.name})", ""])
        log(f"{title}: {stem}.png, {stem}.csv")

    if "logreg" in ests:
        fitted = ests["logreg"].fit(X, y)
        wi = weight_importance(fitted, names, X)
        section("Weight importance (logreg)", wi, "weights_logreg", _markdown_table(wi.records()[:10]),
                image_shape=image_shape)
    groups = _feature_groups(X.shape[1], names, args.data)
    for m, est in ests.items():
        ab = ablation_importance(est, X, y, groups, cv=args.cv, n_jobs=args.n_jobs, random_state=args.seed)
        section(f"Ablation importance ({m}): remove and re-train", ab, f"ablation_{m}",
                f"Baseline accuracy {ab.baseline:.4f}.\n\n" + _markdown_table(ab.records()))
        pi = permutation_importance(est, X, y, n_repeats=3, random_state=args.seed, n_jobs=args.n_jobs,
                                    feature_names=names)
        section(f"Permutation importance ({m})", pi, f"permutation_{m}", _markdown_table(pi.records()[:10]),
                image_shape=image_shape)
    sc = sample_complexity(ests, X, y, train_sizes=(0.05, 0.15, 0.4, 1.0), cv=args.cv, n_jobs=args.n_jobs,
                           random_state=args.seed, log_x=True)
    section("Sample complexity", sc, "sample_complexity")
    dyn = {}
    if args.epochs_dynamics > 0:
        for m, est in ests.items():
            if m != "logreg" and hasattr(est[-1], "partial_fit"):
                Xs = est[:-1].fit_transform(X)
                dyn[m] = track_training_dynamics(est[-1], Xs, y, epochs=args.epochs_dynamics, random_state=args.seed)
                dyn[m].to_csv(out / f"dynamics_{m}.csv")
                dyn[m].plot(out / f"dynamics_{m}.png")
                log(f"training dynamics ({m}): dynamics_{m}.png")
    if len(ests) >= 2:
        ec = error_correlation(ests, X, y, cv=args.cv, n_jobs=args.n_jobs, dynamics=dyn)
        section("Error correlation", ec, "error_correlation")
        if image_shape is not None:
            ec.plot_examples(out / "examples.png", X, image_shape)
            report.extend(["Easy, disputed and hard examples (title: label, then each model's prediction):", "",
                           "![examples](examples.png)", ""])
    for m, d in dyn.items():
        report.extend([f"## Training dynamics ({m})", "", "```", d.table(), "```", "", f"![dynamics](dynamics_{m}.png)", ""])
    report.append(f"_Generated by `chainrule analyze` in {time.perf_counter() - t0:.0f} s._")
    (out / "report.md").write_text("\n".join(report) + "\n")
    log(f"report: {out / 'report.md'}")
    return 0


configure = configure_analyze
run = run_analyze
