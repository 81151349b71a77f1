"""Are the models' errors correlated: the phi coefficient and Cohen's kappa of every pair of
models, the error-overlap matrix, and the "easy" / "hard" / "disputed" examples."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ._common import Result, as_named, figure, jsonable, markdown_table, pyplot, splitter, text_table
from .dynamics import TrainingDynamics


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


class ErrorCorrelationResult(Result):
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
        out = ["error correlation", text_table(self.model_records()), "", text_table(self.records()),
               "", f"examples: {n}; {parts}"]
        for name, d in self.dynamics.items():
            out += ["", f"training dynamics of {name}", d.table()]
        return "\n".join(out)

    def markdown(self) -> str:
        n = len(self.y)
        parts = ", ".join(f"**{k}** {len(v)} ({len(v) / n:.1%})" for k, v in self.partition().items())
        return "\n\n".join([markdown_table(self.model_records()), markdown_table(self.records()),
                            f"Examples: {n}; {parts}."])

    def to_dict(self) -> dict:
        d = {"names": self.names, "accuracy": self.accuracy, "phi": self.phi, "kappa": self.kappa,
             "overlap": self.overlap, "easy": self.easy, "hard": self.hard, "disputed": self.disputed,
             "dynamics": {k: v.to_dict() for k, v in self.dynamics.items()}}
        return jsonable(d)

    def plot(self, path) -> Path:
        """Heatmaps of phi (annotated with the number of shared errors) and of Cohen's kappa."""
        plt = pyplot()
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
        return figure(path, fig)

    def plot_examples(self, path, X, image_shape: tuple[int, int], n: int = 8, seed: int = 0) -> Path:
        """Up to ``n`` easy, disputed and hard examples drawn as images with their label, to see
        whether the hard ones look different (the lecture: "can we qualitatively tell?")."""
        plt = pyplot()
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
        return figure(path, fig)


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
    return np.asarray(cross_val_predict(est, X, y, cv=splitter(cv, est, y), n_jobs=n_jobs))


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
    named = as_named(estimators_or_predictions)
    if len(named) < 2:
        raise ValueError(f"error_correlation needs at least two models, got {len(named)}")
    X = None if X is None else np.asarray(X)
    preds = [_predictions(e, X, y, cv, n_jobs) for e in named.values()]
    return ErrorCorrelationResult(list(named), y, np.stack(preds), dict(dynamics or {}))
