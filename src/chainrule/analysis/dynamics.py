"""Per-example training dynamics: when each example is learned and forgotten (Toneva et al.)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..autograd import no_grad
from ..tensor import Tensor
from ._common import Result, figure, jsonable, pyplot, text_table


class TrainingDynamics(Result):
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
        return head + "\n" + text_table(self.records())

    def to_dict(self) -> dict:
        return jsonable({"correct": self.correct, "first_learned": self.first_learned, "forgetting": self.forgetting,
                          "never_learned": self.never_learned, "unforgettable": self.unforgettable})

    def plot(self, path) -> Path:
        """Accuracy per epoch and the histogram of forgetting events per example."""
        plt = pyplot()
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
        return figure(path, fig)


def _module_predict(model, X) -> np.ndarray:
    """Class indices from a chainrule Module returning logits (one logit: sigmoid at 0), in eval
    mode (no dropout) and without recording a graph; the module's mode is restored."""
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
