"""Lecture: Tips for the Final Project: Analysis. Questions beyond accuracy, on digits:

* Which features drive performance? The learned weights of softmax regression, and ablation:
  remove a group of pixels, re-train, measure the drop.
* How much data do the models need? A sample-complexity curve.
* Are the errors of logreg, mlp and mlp-dropout correlated? Which examples are easy, which hard?
"""

import warnings

import chainrule as cr
from chainrule import analysis


def main(quick=False, out="."):
    with warnings.catch_warnings():   # fixed epoch budgets: the estimators warn they could go on
        warnings.filterwarnings("ignore", message=".*max_epochs=.* reached")
        return analyse(quick, out)


def analyse(quick, out):
    ds = cr.datasets.load_digits()
    X, y = (ds.X[:400], ds.y[:400]) if quick else (ds.X, ds.y)
    cv, epochs = (2, 15) if quick else (5, None)
    names = [f"px{r}{c}" for r in range(8) for c in range(8)]
    models = {m: analysis.make_estimator(m, random_state=0, max_epochs=epochs)
              for m in ("logreg", "mlp", "mlp-dropout")}   # standardise, then a chainrule estimator

    weights = analysis.weight_importance(models["logreg"].fit(X, y), feature_names=names, X=X)
    print(weights.table(top=5))
    halves = {"left half": [8 * r + c for r in range(8) for c in range(4)],
              "right half": [8 * r + c for r in range(8) for c in range(4, 8)],
              "border": [j for j in range(64) if j // 8 in (0, 7) or j % 8 in (0, 7)],
              "centre 4x4": [8 * r + c for r in range(2, 6) for c in range(2, 6)]}
    ablation = analysis.ablation_importance(models["logreg"], X, y, features=halves, cv=cv, n_jobs=1)
    print(ablation.table())

    sizes = (0.2, 0.5, 1.0) if quick else (0.05, 0.1, 0.2, 0.4, 0.7, 1.0)
    curve = analysis.sample_complexity({k: models[k] for k in ("logreg", "mlp")}, X, y, train_sizes=sizes, cv=cv)
    print(curve.table())

    errors = analysis.error_correlation(models, X, y, cv=cv)
    print(errors.table())
    figures = {"weights": weights.plot(f"{out}/08_weight_importance.png", image_shape=(8, 8)),
               "curve": curve.plot(f"{out}/08_sample_complexity.png"),
               "errors": errors.plot(f"{out}/08_error_correlation.png")}
    print("figures:", ", ".join(map(str, figures.values())))
    val = {m: [r["val_mean"] for r in curve.records() if r["model"] == m] for m in ("logreg", "mlp")}
    return dict(weight_ranking=weights.ranking(), ablation={n: float(v) for n, v in zip(ablation.names, ablation.mean)},
                curve=val, phi=errors.phi, accuracy=dict(zip(errors.names, errors.accuracy)),
                partition={k: len(v) for k, v in errors.partition().items()}, n=len(y), figures=figures)


if __name__ == "__main__":
    import argparse
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--out", default=".", help="directory for the figures (default: the current directory)")
    cli.add_argument("--quick", action="store_true", help="a few seconds instead of the guide's full run")
    main(**vars(cli.parse_args()))
