"""``chainrule analyze``: every analysis of :mod:`chainrule.analysis` on one data set; figures, CSVs
and a markdown report in ``--out``.

    chainrule analyze --data digits --models logreg,mlp,mlp-dropout --out analysis
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from pathlib import Path

import numpy as np

from .. import analysis as A
from .. import datasets
from ..analysis._common import markdown_table


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default="digits", help="data set: digits, iris, breast_cancer, mnist1d, ... or csv:PATH")
    parser.add_argument("--target", default=None, help="target column for csv: data")
    parser.add_argument("--models", default=",".join(A.MODELS), help=f"comma-separated, from {', '.join(A.MODELS)}")
    parser.add_argument("--out", default="analysis", help="output directory for figures, CSVs and report.md")
    parser.add_argument("--cv", type=int, default=3, help="cross-validation folds (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-jobs", type=int, default=2, help="parallel jobs (default 2)")
    parser.add_argument("--max-epochs", type=int, default=40, help="training epochs per fit (default 40; early stopping "
                        "on the training loss usually ends sooner)")
    parser.add_argument("--max-samples", type=int, default=None, help="subsample the data set for a quicker run")
    parser.add_argument("--epochs-dynamics", type=int, default=15, help="epochs recorded for training dynamics (0: skip)")


def run(args: argparse.Namespace) -> int:
    """Run every analysis; figures + CSVs + report.md in ``args.out``."""
    from sklearn.exceptions import ConvergenceWarning

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    for m in models:
        if m not in A.MODELS:
            raise ValueError(f"unknown model {m!r}: choose from {', '.join(A.MODELS)}")
    with warnings.catch_warnings():
        # Learning curves fit on 5% of the data and short epoch budgets on purpose: not news.
        warnings.simplefilter("ignore", ConvergenceWarning)
        _Analysis(args, models).run()
    return 0


def feature_groups(n_features: int, names: list[str], data: str) -> dict[str, list[int]]:
    """Groups for ablation: image rows for square images (digits: 8 rows of 8 pixels), else up to 8
    contiguous blocks, else single features."""
    side = int(round(math.sqrt(n_features)))
    if data == "digits" and side * side == n_features:
        return {f"row {r}": list(range(r * side, (r + 1) * side)) for r in range(side)}
    if n_features <= 12:
        return {names[j]: [j] for j in range(n_features)}
    edges = np.linspace(0, n_features, 9).astype(int)
    return {f"{names[a]}..{names[b - 1]}": list(range(a, b)) for a, b in zip(edges[:-1], edges[1:]) if b > a}


def _load(args: argparse.Namespace):
    """(X, y, feature names, image shape or None): train and test splits together, optionally subsampled."""
    ds = datasets.load(args.data, target=args.target, seed=args.seed)
    X = np.concatenate([ds.X_train, ds.X_test]).astype(np.float64)
    y = np.concatenate([ds.y_train, ds.y_test])
    if args.max_samples and args.max_samples < len(y):
        from sklearn.model_selection import train_test_split

        X, _, y, _ = train_test_split(X, y, train_size=args.max_samples, stratify=y, random_state=args.seed)
    names = list(getattr(ds, "feature_names", None) or [f"x{j}" for j in range(X.shape[1])])
    side = int(round(math.sqrt(X.shape[1])))
    image_shape = (side, side) if args.data == "digits" and side * side == X.shape[1] else None
    return X, y, names, image_shape


class _Analysis:
    """One ``chainrule analyze`` run: the data, the models, and the report being written."""

    def __init__(self, args: argparse.Namespace, models: list[str]):
        self.args, self.t0, self.out = args, time.perf_counter(), Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.X, self.y, self.names, self.image_shape = _load(args)
        self.ests = {m: A.make_estimator(m, args.seed, args.max_epochs) for m in models}
        self.report = [f"# Analysis of `{args.data}`", "",
                       f"{len(self.y)} examples, {self.X.shape[1]} features, {len(np.unique(self.y))} classes; models: "
                       f"{', '.join(models)} (chainrule estimators, standardised inputs); {args.cv}-fold "
                       f"cross-validation, seed {args.seed}.", ""]

    def log(self, msg: str) -> None:
        print(f"[{time.perf_counter() - self.t0:6.1f}s] {msg}", flush=True)

    def section(self, title: str, result, stem: str, text: str | None = None, **plot_kw) -> None:
        result.to_csv(self.out / f"{stem}.csv")
        fig = result.plot(self.out / f"{stem}.png", **plot_kw)
        self.report.extend([f"## {title}", "", text or result.markdown(), "", f"![{title}]({fig.name})", ""])
        self.log(f"{title}: {stem}.png, {stem}.csv")

    def run(self) -> None:
        self.importance()
        a = self.args
        sc = A.sample_complexity(self.ests, self.X, self.y, train_sizes=(0.05, 0.15, 0.4, 1.0), cv=a.cv,
                                 n_jobs=a.n_jobs, random_state=a.seed, log_x=True)
        self.section("Sample complexity", sc, "sample_complexity")
        dyn = self.dynamics() if a.epochs_dynamics > 0 else {}
        if len(self.ests) >= 2:
            self.errors(dyn)
        for m, d in dyn.items():
            self.report.extend([f"## Training dynamics ({m})", "", "```", d.table(), "```", "",
                                f"![dynamics](dynamics_{m}.png)", ""])
        self.report.append(f"_Generated by `chainrule analyze` in {time.perf_counter() - self.t0:.0f} s._")
        (self.out / "report.md").write_text("\n".join(self.report) + "\n")
        self.log(f"report: {self.out / 'report.md'}")

    def importance(self) -> None:
        a, X, y = self.args, self.X, self.y
        if "logreg" in self.ests:
            wi = A.weight_importance(self.ests["logreg"].fit(X, y), self.names, X)
            self.section("Weight importance (logreg)", wi, "weights_logreg", markdown_table(wi.records()[:10]),
                         image_shape=self.image_shape)
        groups = feature_groups(X.shape[1], self.names, a.data)
        for m, est in self.ests.items():
            ab = A.ablation_importance(est, X, y, groups, cv=a.cv, n_jobs=a.n_jobs, random_state=a.seed)
            self.section(f"Ablation importance ({m}): remove and re-train", ab, f"ablation_{m}",
                         f"Baseline accuracy {ab.baseline:.4f}.\n\n" + markdown_table(ab.records()))
            pi = A.permutation_importance(est, X, y, n_repeats=3, random_state=a.seed, n_jobs=a.n_jobs,
                                          feature_names=self.names)
            self.section(f"Permutation importance ({m})", pi, f"permutation_{m}", markdown_table(pi.records()[:10]),
                         image_shape=self.image_shape)

    def dynamics(self) -> dict:
        dyn = {}
        for m, est in self.ests.items():
            if m != "logreg" and hasattr(est[-1], "partial_fit"):
                Xs = est[:-1].fit_transform(self.X)
                dyn[m] = A.track_training_dynamics(est[-1], Xs, self.y, epochs=self.args.epochs_dynamics,
                                                   random_state=self.args.seed)
                dyn[m].to_csv(self.out / f"dynamics_{m}.csv")
                dyn[m].plot(self.out / f"dynamics_{m}.png")
                self.log(f"training dynamics ({m}): dynamics_{m}.png")
        return dyn

    def errors(self, dyn: dict) -> None:
        a = self.args
        ec = A.error_correlation(self.ests, self.X, self.y, cv=a.cv, n_jobs=a.n_jobs, dynamics=dyn)
        self.section("Error correlation", ec, "error_correlation")
        if self.image_shape is not None:
            ec.plot_examples(self.out / "examples.png", self.X, self.image_shape)
            self.report.extend(["Easy, disputed and hard examples (title: label, then each model's prediction):", "",
                                "![examples](examples.png)", ""])
