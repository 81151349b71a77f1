"""The models ``chainrule analyze`` compares: chainrule's scikit-learn estimators behind a scaler."""

from __future__ import annotations

MODELS = ("logreg", "mlp", "mlp-dropout")


def make_estimator(name: str, random_state: int = 0, max_epochs: int | None = None):
    """The CLI's models, standardised inputs first: ``logreg`` (softmax regression), ``mlp`` (one
    hidden layer of 64 ReLUs) and ``mlp-dropout`` (the same with dropout 0.2), all
    :mod:`chainrule.sklearn` estimators."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from .. import sklearn as crsk

    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}: choose from {', '.join(MODELS)}")
    kw = {"random_state": random_state} | ({} if max_epochs is None else {"max_epochs": max_epochs})
    if name == "logreg":
        est = crsk.SoftmaxRegression(**kw)
    else:  # Adam at 1e-2 (not the 1e-3 default) so that the short default budgets reach ~97% on digits.
        est = crsk.MLPClassifier(hidden_layer_sizes=(64,), dropout=0.2 if name == "mlp-dropout" else 0.0,
                                 learning_rate=1e-2, **kw)
    return make_pipeline(StandardScaler(), est)
