"""How much data the models need: learning curves over training-set sizes (scikit-learn's
``learning_curve``), with Student-t intervals over folds."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._common import Result, as_named, confidence_interval, figure, pyplot, splitter, text_table


class SampleComplexityResult(Result):
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
        return f"sample complexity ({self.scoring})\n" + text_table(self.records())

    def plot(self, path, log_x: bool | None = None) -> Path:
        """Train (dashed) and validation (solid, with CI band) score against training-set size."""
        plt = pyplot()
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
        return figure(path, fig)



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
    for name, est in as_named(estimator).items():
        sizes, tr, va = learning_curve(est, X, y, train_sizes=np.asarray(train_sizes), scoring=scoring, n_jobs=n_jobs,
                                       cv=splitter(cv, est, y, 1, random_state), shuffle=True,
                                       random_state=random_state)
        curves[name] = {"train_sizes": sizes, "train_scores": tr, "val_scores": va}
    if scoring is None:  # the estimators' own score(): accuracy for classifiers, R^2 for regressors
        from sklearn.base import is_classifier

        scoring = "accuracy" if all(is_classifier(e) for e in as_named(estimator).values()) else "score"
    return SampleComplexityResult(curves, str(scoring), log_x, confidence)
