"""scikit-learn estimators backed by chainrule models: drop them into ``Pipeline``, ``GridSearchCV``,
``cross_val_score``.

``LogisticRegression``, ``SoftmaxRegression``, ``MLPClassifier`` and ``MLPRegressor`` train with
:class:`chainrule.train.Trainer`, so the optimizers are the lecture's (``'sgd'``, ``'momentum'``,
``'nesterov'``, ``'adagrad'``, ``'rmsprop'``, ``'adam'``, ``'newton'``) and the objective is

    mean loss over the batch  +  alpha/2 * sum_l ||W^(l)||_F^2

(the lecture's L2 on weights, not biases). Unlike scikit-learn's MLP, the penalty is *not* divided by
the batch size, so ``alpha`` here corresponds to ``alpha / batch_size`` there.

Differences from scikit-learn worth knowing:

- ``warm_start=True`` and ``partial_fit`` keep the optimizer's state (Adam's moments, momentum
  buffers, step count): training continues as if it had never stopped. scikit-learn's MLP restarts
  Adam's moments on every ``fit``; we do not.
- ``early_stopping=True`` holds out ``validation_fraction`` of the data (stratified), stops when the
  validation *loss* has not improved for ``n_iter_no_change`` epochs and restores the best weights
  (the lecture's early stopping). Without it, training stops when the training loss has not improved
  by ``tol`` for ``n_iter_no_change`` epochs (as scikit-learn).
- Training uses the estimator's own random stream (seeded by ``random_state``); chainrule's global
  generator is left as it was.
- ``MLPClassifier`` / ``MLPRegressor`` start from scikit-learn's initialisation by default
  (``init='glorot'``): weights *and* biases ~ U(-b, b) with b = sqrt(6 / (fan_in + fan_out)),
  sqrt(2 / ...) for ``activation='sigmoid'`` (scikit-learn's ``'logistic'``), as scikit-learn's
  ``_init_coef``. ``init='pytorch'`` keeps :class:`chainrule.models.MLP`'s own start, PyTorch's
  ``nn.Linear`` default U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (smaller weights; on MNIST-1D, 30 epochs
  of Adam 1e-3 end about 1.3 points lower than from the Glorot start, mean over 20 seeds).
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from . import functional as F
from . import models
from .autograd import no_grad
from .creation import get_rng
from .data import DataLoader
from .nn.layers import Linear
from .tensor import Tensor
from .train import OPTIMIZERS, EarlyStopping, History, Trainer, make_optimizer

__all__ = ["LogisticRegression", "SoftmaxRegression", "MLPClassifier", "MLPRegressor", "make_optimizer", "OPTIMIZERS"]

# Module-level (picklable) losses and penalty: fitted estimators must survive pickle/clone.
def _cross_entropy(out, y):
    return F.cross_entropy(out, y)


def _bce(out, y):
    return F.binary_cross_entropy_with_logits(out.reshape(-1), y)


def _mse(out, y):
    return F.mse_loss(out.reshape(*y.shape), y)


class _L2:
    """``alpha/2 * sum ||W||^2`` over the model's weights (the lecture's L2)."""

    def __init__(self, model, alpha: float):
        self.model, self.alpha = model, alpha

    def __call__(self):
        from .nn import l2_penalty
        return l2_penalty(self.model, self.alpha)


def _check_params(est) -> None:
    """Hyperparameters are checked in fit (scikit-learn's rule: __init__ only stores them)."""
    def bad(name, need):
        raise ValueError(f"{type(est).__name__}: {name} must be {need}, got {getattr(est, name)!r}")
    if est.optimizer not in OPTIMIZERS:
        bad("optimizer", f"one of {list(OPTIMIZERS)}")
    if not est.learning_rate > 0:
        bad("learning_rate", "> 0")
    if est.batch_size is not None and (int(est.batch_size) != est.batch_size or est.batch_size < 1):
        bad("batch_size", "a positive integer or None (full batch)")
    if int(est.max_epochs) != est.max_epochs or est.max_epochs < 1:
        bad("max_epochs", "a positive integer")
    if est.alpha < 0:
        bad("alpha", ">= 0")
    if not 0 <= getattr(est, "dropout", 0.0) < 1:
        bad("dropout", "in [0, 1)")
    if not 0 < est.validation_fraction < 1:
        bad("validation_fraction", "in (0, 1)")
    if est.n_iter_no_change < 1:
        bad("n_iter_no_change", ">= 1")
    if getattr(est, "init", "glorot") not in ("glorot", "pytorch"):
        bad("init", "'glorot' (scikit-learn's) or 'pytorch' (torch.nn.Linear's)")
    hidden = getattr(est, "hidden_layer_sizes", ())
    if any(int(h) != h or h < 1 for h in np.atleast_1d(hidden)):
        bad("hidden_layer_sizes", "positive integers")


def _glorot_(model, activation) -> None:
    """scikit-learn's MLP initialisation (``_init_coef``) in place: every Linear's weight and bias
    ~ U(-b, b), b = sqrt(factor / (fan_in + fan_out)), factor 2 for a sigmoid network, else 6.
    Draws from chainrule's generator (the estimator's own stream while fitting)."""
    sigmoid = activation in ("sigmoid", "logistic") or getattr(activation, "__name__", "") == "Sigmoid"
    factor = 2.0 if sigmoid else 6.0
    g = get_rng()
    for m in model.modules():
        if isinstance(m, Linear):
            bound = float(np.sqrt(factor / (m.in_features + m.out_features)))
            m.weight._data[...] = g.uniform(-bound, bound, m.weight.shape)
            if m.bias is not None:
                m.bias._data[...] = g.uniform(-bound, bound, m.bias.shape)


class _Base(BaseEstimator):
    """The shared training procedure; subclasses say how to encode targets and build the model."""

    _is_classifier = True

    # -- subclass hooks ----------------------------------------------------------------------------
    def _build(self, n_features: int, n_outputs: int):
        raise NotImplementedError

    def _hidden(self) -> list[int]:
        h = getattr(self, "hidden_layer_sizes", ())
        return [int(v) for v in np.atleast_1d(h)] if h is not None else []

    # -- random stream -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _own_rng(self):
        """Swap the estimator's generator state into chainrule's global generator (used by init and
        dropout) and back out, so fits are reproducible and leave the caller's stream alone."""
        g = get_rng()
        saved = g.bit_generator.state
        g.bit_generator.state = self._rng_state
        try:
            yield
        finally:
            self._rng_state = g.bit_generator.state
            g.bit_generator.state = saved

    # -- training ----------------------------------------------------------------------------------
    def _new_trainer(self, callbacks=()):
        penalty = _L2(self.model_, float(self.alpha)) if self.alpha > 0 else None
        trainer = Trainer(self.model_, self._loss, self.optimizer_, metrics=(), callbacks=callbacks, progress=False,
                          penalty=penalty, verbose=bool(self.verbose), compile=True)  # replayed steps: same bits, faster
        old = getattr(self, "_trainer", None)
        if old is not None:  # continue the epoch count and the curves
            trainer.history, trainer.epoch = old.history, old.epoch
        self._trainer = trainer
        return trainer

    def _initialize(self, X, y_enc, n_outputs: int) -> None:
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        self._rng_state = np.random.default_rng(seed).bit_generator.state
        self._trainer = None
        with self._own_rng():
            self.model_ = self._build(X.shape[1], n_outputs)
        self.optimizer_ = make_optimizer(self.optimizer, self.model_.parameters(), float(self.learning_rate),
                                         float(getattr(self, "momentum", 0.9)))

    def _fit(self, X, y, partial: bool, classes=None):
        _check_params(self)
        first = not hasattr(self, "model_") or (not partial and not self.warm_start)
        X, y = validate_data(self, X, y, reset=first, dtype=[np.float32, np.float64], y_numeric=not self._is_classifier,
                             multi_output=not self._is_classifier)
        X = X.astype(np.float32, copy=False)
        y_enc, n_outputs = self._encode_targets(y, first, classes)
        if first:
            self._initialize(X, y_enc, n_outputs)
        callbacks: list = []
        val = None
        if not partial:
            if self.early_stopping:
                strat = y_enc if self._is_classifier and np.bincount(y_enc.astype(np.int64)).min() >= 2 else None
                X, Xv, y_enc, yv = train_test_split(X, y_enc, test_size=self.validation_fraction, stratify=strat,
                                                    random_state=int(self._seed_for("split")))
                val = (Xv, yv)
                callbacks.append(EarlyStopping("val_loss", patience=int(self.n_iter_no_change), restore_best=True))
            else:
                callbacks.append(EarlyStopping("loss", patience=int(self.n_iter_no_change), min_delta=float(self.tol),
                                               restore_best=False))
        trainer = self._new_trainer(callbacks) if (not partial or self._trainer is None) else self._trainer
        loader = DataLoader(X, y_enc, batch_size=self.batch_size, shuffle=self.shuffle, seed=self._seed_for("loader"))
        start = trainer.epoch
        with self._own_rng():
            trainer.fit(loader, val, epochs=start + (1 if partial else int(self.max_epochs)))
        ran = trainer.epoch - start
        if not partial and not trainer.stop_training and ran == int(self.max_epochs):
            warnings.warn(f"{type(self).__name__}: max_epochs={self.max_epochs} reached and the optimisation "
                          "has not converged yet (raise max_epochs)", ConvergenceWarning, stacklevel=3)
        self.history_: History = trainer.history
        self.n_iter_ = trainer.epoch
        self.loss_curve_ = list(trainer.history["loss"]) if len(trainer.history) else []
        self.validation_loss_curve_ = (list(trainer.history["val_loss"])
                                       if "val_loss" in trainer.history.keys() else [])
        return self

    def _seed_for(self, what: str) -> int:
        """A seed drawn from the estimator's stream (so loaders and splits are reproducible too)."""
        g = np.random.default_rng()
        g.bit_generator.state = self._rng_state
        s = int(g.integers(2**31))
        self._rng_state = g.bit_generator.state
        return s

    def _forward(self, X) -> np.ndarray:
        check_is_fitted(self, "model_")
        X = validate_data(self, X, reset=False, dtype=[np.float32, np.float64]).astype(np.float64, copy=False)
        # Predict with a float64 copy of the network: float32 BLAS kernels differ with the batch
        # size in the last bit, and scikit-learn requires a row's prediction not to depend on the
        # other rows in the batch (check_methods_subset_invariance).
        model = copy.deepcopy(self.model_).double().eval()
        with no_grad():
            return model(Tensor(X))._data

    def fit(self, X, y):
        """Train from scratch (or, with ``warm_start=True``, continue) for up to ``max_epochs`` epochs."""
        return self._fit(X, y, partial=False)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.random_state is None
        return tags


class _ClassifierBase(ClassifierMixin, _Base):
    _binary_single_logit = True

    def _encode_targets(self, y, first: bool, classes=None):
        check_classification_targets(y)
        if first:
            self._label_encoder = LabelEncoder().fit(classes if classes is not None else y)
            self.classes_ = self._label_encoder.classes_
            if len(self.classes_) < 2:
                raise ValueError(f"{type(self).__name__}: y has only one class ({self.classes_[0]!r}): "
                                 "a classifier needs at least 2 classes")
        unseen = np.setdiff1d(np.unique(y), self.classes_)
        if unseen.size:
            raise ValueError(f"{type(self).__name__}: y has labels {unseen.tolist()} not in classes_ "
                             f"{self.classes_.tolist()} (pass every class to the first partial_fit)")
        codes = np.searchsorted(self.classes_, y).astype(np.int64)
        k = len(self.classes_)
        if k == 2 and self._binary_single_logit:
            self._loss = _bce
            return codes.astype(np.float32), 1
        self._loss = _cross_entropy
        return codes, k

    def partial_fit(self, X, y, classes=None):
        """One epoch over ``(X, y)``. The first call needs ``classes`` (all labels) unless ``y`` has
        them all. The optimizer state carries over between calls."""
        if not hasattr(self, "model_") and classes is None:
            classes = np.unique(y)
        return self._fit(X, y, partial=True, classes=classes)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, shape (n_samples, n_classes), columns in the order of ``classes_``."""
        z = self._forward(X)
        if z.ndim == 1 or z.shape[1] == 1:
            p = 1.0 / (1.0 + np.exp(-z.reshape(-1).astype(np.float64)))
            return np.stack([1.0 - p, p], axis=1)
        return F.softmax(z.astype(np.float64), -1)

    def predict(self, X) -> np.ndarray:
        """The most probable class, as the original labels."""
        z = self._forward(X)
        idx = (z.reshape(-1) >= 0).astype(np.int64) if (z.ndim == 1 or z.shape[1] == 1) else z.argmax(axis=1)
        return self.classes_[idx]


_DOC_PARAMS = """
    Parameters:
        optimizer: one of ``'sgd', 'momentum', 'nesterov', 'adagrad', 'rmsprop', 'adam', 'newton'``.
        learning_rate: the step size ``lr``.
        batch_size: samples per step; ``None`` is full-batch gradient descent.
        max_epochs: passes over the data (fewer with early stopping / no improvement).
        alpha: L2 strength ``lam`` in ``mean loss + lam/2 ||W||^2``.
        early_stopping, validation_fraction, n_iter_no_change, tol: see the module docstring.
        warm_start: ``fit`` continues from the current weights *and optimizer state*.
        random_state: int for reproducible results.
        verbose: print one line per epoch.

    Fitted attributes: ``model_`` (the chainrule Module), ``optimizer_``, ``classes_`` (classifiers),
    ``n_iter_`` (epochs run in total), ``loss_curve_``, ``validation_loss_curve_``, ``history_``.
"""


class LogisticRegression(_ClassifierBase):
    __doc__ = """Logistic regression trained by chainrule: ``P(y=1|x) = sigma(w^T x + b)`` for two
    classes; for more classes the multinomial (softmax) model, like scikit-learn's.
    """ + _DOC_PARAMS

    def __init__(self, optimizer: str = "adam", learning_rate: float = 0.01, batch_size: int | None = 64,
                 max_epochs: int = 100, alpha: float = 1e-4, early_stopping: bool = False, validation_fraction: float = 0.1,
                 n_iter_no_change: int = 10, tol: float = 1e-4, shuffle: bool = True, warm_start: bool = False,
                 random_state: Any = None, verbose: bool = False):
        self.optimizer, self.learning_rate, self.batch_size, self.max_epochs = optimizer, learning_rate, batch_size, max_epochs
        self.alpha, self.early_stopping, self.validation_fraction = alpha, early_stopping, validation_fraction
        self.n_iter_no_change, self.tol, self.shuffle, self.warm_start = n_iter_no_change, tol, shuffle, warm_start
        self.random_state, self.verbose = random_state, verbose

    def _build(self, n_features, n_outputs):
        if n_outputs == 1:
            return models.LogisticRegression(n_features)
        return models.SoftmaxRegression(n_features, n_outputs)

    @property
    def coef_(self) -> np.ndarray:
        """Learned weights, scikit-learn's layout: (1, n_features) for two classes with one logit,
        (n_classes, n_features) otherwise. A copy; the model lives in ``model_``."""
        check_is_fitted(self, "model_")
        return self.model_.linear.weight.numpy().copy()

    @property
    def intercept_(self) -> np.ndarray:
        """Learned biases, shape (1,) or (n_classes,)."""
        check_is_fitted(self, "model_")
        return self.model_.linear.bias.numpy().copy()


class SoftmaxRegression(LogisticRegression):
    __doc__ = """Softmax (multinomial logistic) regression ``p(y|x) = softmax(W x + b)``, with K outputs
    even for two classes.
    """ + _DOC_PARAMS

    _binary_single_logit = False

    def _build(self, n_features, n_outputs):
        return models.SoftmaxRegression(n_features, n_outputs)


class MLPClassifier(_ClassifierBase):
    __doc__ = """A multilayer perceptron classifier ``p(y|x) = softmax(W g(V x))`` trained by chainrule.

    ``hidden_layer_sizes`` as scikit-learn's; ``activation`` one of chainrule's (``'relu'``, ``'tanh'``,
    ``'sigmoid'``, ...); ``dropout`` the drop probability after each hidden activation; ``momentum``
    for ``'momentum'``/``'nesterov'``. Two classes use a single logit (sigmoid). ``init``:
    ``'glorot'`` (default) starts from scikit-learn's initialisation, ``'pytorch'`` from
    ``torch.nn.Linear``'s (that of :class:`chainrule.models.MLP`); see the module docstring.
    """ + _DOC_PARAMS

    def __init__(self, hidden_layer_sizes=(100,), activation: str = "relu", optimizer: str = "adam",
                 learning_rate: float = 1e-3, batch_size: int | None = 200, max_epochs: int = 200, alpha: float = 1e-4,
                 dropout: float = 0.0, momentum: float = 0.9, early_stopping: bool = False, validation_fraction: float = 0.1,
                 n_iter_no_change: int = 10, tol: float = 1e-4, shuffle: bool = True, warm_start: bool = False,
                 random_state: Any = None, verbose: bool = False, init: str = "glorot"):
        self.hidden_layer_sizes, self.activation, self.optimizer = hidden_layer_sizes, activation, optimizer
        self.learning_rate, self.batch_size, self.max_epochs, self.alpha = learning_rate, batch_size, max_epochs, alpha
        self.dropout, self.momentum, self.early_stopping = dropout, momentum, early_stopping
        self.validation_fraction, self.n_iter_no_change, self.tol = validation_fraction, n_iter_no_change, tol
        self.shuffle, self.warm_start, self.random_state, self.verbose = shuffle, warm_start, random_state, verbose
        self.init = init

    def _build(self, n_features, n_outputs):
        model = models.MLP([n_features, *self._hidden(), n_outputs], activation=self.activation,
                           dropout=float(self.dropout))
        if self.init == "glorot":
            _glorot_(model, self.activation)
        return model


class MLPRegressor(RegressorMixin, _Base):
    __doc__ = """A multilayer perceptron regressor (squared error), same parameters as
    :class:`MLPClassifier`. Targets may be 1-D or (n_samples, n_outputs).
    """ + _DOC_PARAMS

    _is_classifier = False

    __init__ = MLPClassifier.__init__
    _build = MLPClassifier._build

    def _encode_targets(self, y, first: bool, classes=None):
        y = np.asarray(y, dtype=np.float32)
        if first:
            self._y_ndim = y.ndim
        n_out = 1 if y.ndim == 1 else y.shape[1]
        if not first and n_out != self.model_.sizes[-1]:
            raise ValueError(f"MLPRegressor: y has {n_out} outputs, the model was fitted with {self.model_.sizes[-1]}")
        self._loss = _mse
        return y, n_out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True  # y may be (n_samples, n_outputs)
        return tags

    def partial_fit(self, X, y):
        """One epoch over ``(X, y)``, keeping the optimizer state."""
        return self._fit(X, y, partial=True)

    def predict(self, X) -> np.ndarray:
        z = self._forward(X).astype(np.float64)
        return z.reshape(-1) if self._y_ndim == 1 else z
