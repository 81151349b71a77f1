"""Which features drive performance: the learned weights of linear and softmax models
(:func:`weight_importance`), removing a feature or group and re-training (:func:`ablation_importance`),
and shuffling a feature at test time (:func:`permutation_importance`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ._common import Result, confidence_interval, figure, names_or_default, pyplot, splitter, text_table


class ImportanceResult(Result):
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
        return head + "\n" + text_table(recs[:top] if top else recs, cols) + more

    def plot(self, path, top: int = 20, image_shape: tuple[int, int] | None = None) -> Path:
        """Bar chart of the ``top`` features with confidence intervals; with ``image_shape`` (e.g.
        ``(8, 8)`` for digits) the per-feature importances are also drawn as images (overall and,
        for weight importance, per class)."""
        plt = pyplot()
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
            return figure(path, fig)
        order = np.argsort(-self.mean, kind="stable")[:top][::-1]
        fig, ax = plt.subplots(figsize=(6, 0.3 * len(order) + 1.2))
        err = np.vstack([self.mean[order] - self.ci_low[order], self.ci_high[order] - self.mean[order]])
        ax.barh([self.names[j] for j in order], self.mean[order], xerr=err, color="#4c72b0", capsize=2)
        ax.axvline(0, color="k", lw=0.8)
        ci = f" ({int(self.confidence * 100)}% CI)" if self.scores.shape[1] > 1 else ""
        ax.set_xlabel(f"{self.method} importance{ci}")
        return figure(path, fig)


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
    names = names_or_default(feature_names if feature_names is not None else getattr(model, "feature_names_in_", None),
                   n_features)
    # One fitted model, no resampling: no interval (ablation and permutation have them); the
    # per-class columns show how much the classes disagree.
    return ImportanceResult("weight", names, per_class.mean(axis=0)[:, None], per_class=per_class, classes=classes)


def _groups(features, n_features: int, feature_names) -> tuple[list[str], list[np.ndarray]]:
    names = names_or_default(feature_names, n_features)
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
    splits = list(splitter(cv, estimator, y, n_repeats, random_state).split(X, y))
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
    return ImportanceResult("permutation", names_or_default(feature_names, X.shape[1]), r.importances, confidence, baseline=base)
