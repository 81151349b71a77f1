"""The lecture's models: logistic regression, softmax regression and the multilayer perceptron.

Each ``forward`` returns logits (train them with ``F.binary_cross_entropy_with_logits`` or
``F.cross_entropy``); ``predict_proba`` and ``predict`` apply the lecture's probabilistic
interpretation and prediction rule, without recording a graph and in evaluation mode.
``feature_fn`` is the lecture's feature function phi (or f): any callable applied to the input
before the first layer, e.g. :class:`PolynomialFeatures`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import functional as F
from . import ops
from .autograd import no_grad
from .creation import as_tensor
from .nn import layers as L
from .nn import rnn as R
from .nn.module import Module
from .tensor import Tensor

ACTIVATIONS: dict[str, type[Module]] = {
    "relu": L.ReLU, "sigmoid": L.Sigmoid, "tanh": L.Tanh, "leaky_relu": L.LeakyReLU, "gelu": L.GELU,
    "identity": L.Identity,
}


class PolynomialFeatures:
    """The feature function ``phi(x)`` = all monomials of the inputs up to ``degree``.

    Same columns in the same order as ``sklearn.preprocessing.PolynomialFeatures``: for x = (a, b)
    and degree 2, ``phi(x) = (1, a, b, a^2, a b, b^2)``. Works on Tensors (differentiable) and
    ndarrays; input of shape (N, d), output (N, n_output_features(d)).
    """

    def __init__(self, degree: int = 2, interaction_only: bool = False, include_bias: bool = True):
        if isinstance(degree, bool) or not isinstance(degree, (int, np.integer)) or degree < 0:
            raise ValueError(f"PolynomialFeatures: degree must be an integer >= 0, got {degree!r}")
        self.degree, self.interaction_only, self.include_bias = int(degree), bool(interaction_only), bool(include_bias)

    def combinations(self, n_features: int) -> list[tuple[int, ...]]:
        """The input indices multiplied together in each output column."""
        comb = itertools.combinations if self.interaction_only else itertools.combinations_with_replacement
        start = 0 if self.include_bias else 1
        return [c for k in range(start, self.degree + 1) for c in comb(range(n_features), k)]

    def n_output_features(self, n_features: int) -> int:
        return len(self.combinations(n_features))

    def __call__(self, x: Any) -> Any:
        if np.ndim(x) != 2:
            raise ValueError(f"PolynomialFeatures: input must be (N, n_features), got shape {np.shape(x)}")
        n, d = np.shape(x)
        ones = np.ones((n,), dtype=x.dtype if isinstance(x, (Tensor, np.ndarray)) else np.float32)
        cols = []
        for c in self.combinations(d):
            col = ones if not c else ops.getitem(x, idx=(slice(None), c[0]))
            for j in c[1:]:
                col = col * ops.getitem(x, idx=(slice(None), j))
            cols.append(col)
        if isinstance(x, Tensor):
            cols = [c if isinstance(c, Tensor) else Tensor(c) for c in cols]
        return F.stack(cols, axis=1)

    def config(self) -> dict:
        return {"degree": self.degree, "interaction_only": self.interaction_only, "include_bias": self.include_bias}

    def __repr__(self) -> str:
        return (f"PolynomialFeatures(degree={self.degree}, interaction_only={self.interaction_only}, "
                f"include_bias={self.include_bias})")


class _Classifier(Module):
    """Shared helpers: ``phi`` applied in ``forward``, and no-grad, eval-mode predictions."""

    feature_fn: Callable | None = None

    def _features(self, x: Any) -> Any:
        return x if self.feature_fn is None else self.feature_fn(x)

    def _input(self, x: Any) -> Tensor:
        dtype = next(self.parameters()).dtype
        if isinstance(x, Tensor):
            return x
        return as_tensor(np.asarray(x), dtype=dtype)

    def _logits(self, x: Any) -> Tensor:
        was_training = self.training
        self.eval()
        try:
            with no_grad():
                return self(self._input(x))
        finally:
            self.train(was_training)

    def predict_proba(self, x: Any) -> np.ndarray:
        """``P(y = k | x) = softmax(z)_k`` of the logits z, shape (N, K). Binary models override it."""
        return F.softmax(self._logits(x)._data, -1)

    def predict(self, x: Any) -> np.ndarray:
        """The prediction rule ``y_hat = argmax_k z_k``, int64 of shape (N,)."""
        return np.argmax(self._logits(x)._data, axis=-1).astype(np.int64)

    def config(self) -> dict | None:
        """A JSON-able description that rebuilds this model (None if ``feature_fn`` is custom)."""
        return None

    def _feature_config(self) -> dict | None:
        if self.feature_fn is None:
            return None
        if isinstance(self.feature_fn, PolynomialFeatures):
            return {"PolynomialFeatures": self.feature_fn.config()}
        raise _Unserialisable(f"feature_fn {self.feature_fn!r} is not a PolynomialFeatures")


class _Unserialisable(Exception):
    pass


def _binary_proba(z: np.ndarray) -> np.ndarray:
    return ops.sigmoid(z)


class LogisticRegression(_Classifier):
    """Binary logistic regression.

    Hypothesis class: ``h_w(x) = w^T phi(x) + b``. Probabilistic interpretation:
    ``P(y = 1 | x; w) = sigma(w^T phi(x) + b)``. Prediction rule: ``y_hat = 1[w^T phi(x) + b >= 0]``.
    Loss: the logistic loss ``F.binary_cross_entropy_with_logits(model(x), y)``; with the lecture's
    ``+ lam/2 ||w||^2`` add ``cr.nn.l2_penalty(model, lam)``.

    ``forward`` returns the logits ``w^T phi(x) + b`` with shape (N,), the shape of the labels.
    ``n_features`` is the length of ``phi(x)``. Parameters: ``linear.weight`` (1, n_features), ``linear.bias``.
    """

    def __init__(self, n_features: int, feature_fn: Callable | None = None, bias: bool = True):
        super().__init__()
        self.feature_fn = feature_fn
        self.linear = L.Linear(n_features, 1, bias=bias)

    def forward(self, x: Any) -> Tensor:
        z = self.linear(self._features(x))
        return ops.reshape(z, shape=z.shape[:-1])

    def predict_proba(self, x: Any) -> np.ndarray:
        """``P(y = 1 | x)``, shape (N,)."""
        return _binary_proba(self._logits(x)._data)

    def predict(self, x: Any) -> np.ndarray:
        """``1[w^T phi(x) + b >= 0]`` as int64, shape (N,)."""
        return (self._logits(x)._data >= 0).astype(np.int64)

    def config(self) -> dict | None:
        try:
            return {"class": "LogisticRegression", "n_features": self.linear.in_features,
                    "bias": self.linear.bias is not None, "feature_fn": self._feature_config()}
        except _Unserialisable:
            return None


class SoftmaxRegression(_Classifier):
    """Multi-class (softmax) logistic regression.

    Hypothesis class: ``h_W(x) = W phi(x) + b``, W in R^{K x d}. Probabilistic interpretation:
    ``p(y | x) = softmax(W phi(x) + b)``. Prediction rule: ``y_hat = argmax_k w_k^T phi(x) + b_k``.
    Loss: cross-entropy ``-w_y^T phi(x) + log sum_j e^{w_j^T phi(x)}`` = ``F.cross_entropy(model(x), y)``.

    ``forward`` returns logits (N, K). Parameters: ``linear.weight`` (K, d), ``linear.bias`` (K,).
    """

    def __init__(self, n_features: int, n_classes: int, feature_fn: Callable | None = None, bias: bool = True):
        super().__init__()
        if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 2:
            raise ValueError(f"SoftmaxRegression: n_classes must be an integer >= 2, got {n_classes!r} "
                             "(for two classes LogisticRegression needs only one logit)")
        self.feature_fn = feature_fn
        self.linear = L.Linear(n_features, n_classes, bias=bias)

    def forward(self, x: Any) -> Tensor:
        return self.linear(self._features(x))

    def config(self) -> dict | None:
        try:
            return {"class": "SoftmaxRegression", "n_features": self.linear.in_features,
                    "n_classes": self.linear.out_features, "bias": self.linear.bias is not None,
                    "feature_fn": self._feature_config()}
        except _Unserialisable:
            return None


class MLP(_Classifier):
    """The multilayer perceptron ``p(y | x) = softmax(W g(V f(x)))``, with any number of hidden layers.

    ``sizes = [in, h1, ..., hL, out]``. With L hidden layers the logits are
    ``z = W^(L+1) g(... g(W^(1) f(x) + b^(1)) ...) + b^(L+1)``, g the ``activation`` and f the
    ``feature_fn`` (identity by default). ``dropout`` > 0 puts a :class:`~chainrule.nn.Dropout`
    (drop probability, PyTorch's convention) after each hidden activation.
    Prediction rule: ``y_hat = argmax_k z_k``; for ``out == 1`` the MLP is a binary classifier,
    ``P(y = 1 | x) = sigma(z)`` and ``y_hat = 1[z >= 0]``.

    **PyTorch mapping.** The layers live in ``self.layers``, a Sequential of
    ``Linear, g, [Dropout,] Linear, g, [Dropout,] ..., Linear``: the same structure as
    ``torch.nn.Sequential(nn.Linear(...), nn.ReLU(), [nn.Dropout(p),] ...)``. A chainrule key is
    ``"layers." + torch_key`` (``layers.0.weight`` <-> ``0.weight``; with dropout the second Linear
    is index 3, otherwise 2). :meth:`to_torch_state_dict` / :meth:`from_torch_state_dict` do the
    renaming, and :meth:`torch_equivalent` builds the matching torch module.
    """

    def __init__(self, sizes: Sequence[int], activation: str | type[Module] = "relu", dropout: float = 0.0,
                 feature_fn: Callable | None = None, bias: bool = True):
        super().__init__()
        sizes = list(sizes)
        if len(sizes) < 2:
            raise ValueError(f"MLP: sizes must list at least [in, out], got {sizes}")
        if isinstance(activation, str):
            if activation not in ACTIVATIONS:
                raise ValueError(f"MLP: unknown activation {activation!r}; use one of {sorted(ACTIVATIONS)} "
                                 "or pass a Module class")
            act = ACTIVATIONS[activation]
        elif isinstance(activation, type) and issubclass(activation, Module):
            act = activation
        else:
            raise ValueError(f"MLP: activation must be a name or a Module class, got {activation!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"MLP: dropout must be in [0, 1), got {dropout}")
        self.sizes, self.activation, self.dropout = sizes, activation, float(dropout)
        self.feature_fn = feature_fn
        mods: list[Module] = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            mods.append(L.Linear(n_in, n_out, bias=bias))
            if i < len(sizes) - 2:  # hidden layer: activation (and dropout); the output stays logits
                mods.append(act())
                if self.dropout > 0:
                    mods.append(L.Dropout(self.dropout))
        self.layers = L.Sequential(*mods)

    def forward(self, x: Any) -> Tensor:
        f = self.feature_fn
        return self.layers(x if f is None else f(x))

    def predict_proba(self, x: Any) -> np.ndarray:
        """``softmax(z)`` of shape (N, K); for one output ``sigma(z)`` of shape (N,)."""
        z = self._logits(x)._data
        return _binary_proba(z[..., 0]) if z.shape[-1] == 1 else F.softmax(z, -1)

    def predict(self, x: Any) -> np.ndarray:
        """``argmax_k z_k`` (or ``1[z >= 0]`` for one output), int64 of shape (N,)."""
        z = self._logits(x)._data
        return (z[..., 0] >= 0).astype(np.int64) if z.shape[-1] == 1 else np.argmax(z, axis=-1).astype(np.int64)

    def config(self) -> dict | None:
        if not isinstance(self.activation, str):
            return None
        try:
            return {"class": "MLP", "sizes": [int(s) for s in self.sizes], "activation": self.activation,
                    "dropout": self.dropout, "bias": self.layers[0].bias is not None,
                    "feature_fn": self._feature_config()}
        except _Unserialisable:
            return None

    # ----- PyTorch interop ---------------------------------------------------------------------
    def to_torch_state_dict(self) -> dict[str, np.ndarray]:
        """This model's weights under the keys of :meth:`torch_equivalent` (``0.weight``, ...)."""
        return {k.removeprefix("layers."): v._data for k, v in self.state_dict().items()}

    def from_torch_state_dict(self, state: Any, strict: bool = True) -> Any:
        """Load weights saved from the equivalent ``torch.nn.Sequential`` (keys ``0.weight``, ...)."""
        return self.load_state_dict({f"layers.{k}": v for k, v in state.items()}, strict=strict)

    def torch_equivalent(self):
        """A ``torch.nn.Sequential`` with the same structure (weights not copied). Needs torch."""
        import torch

        names = {L.ReLU: "ReLU", L.Sigmoid: "Sigmoid", L.Tanh: "Tanh", L.LeakyReLU: "LeakyReLU",
                 L.GELU: "GELU", L.Identity: "Identity"}
        mods = []
        for m in self.layers:
            if isinstance(m, L.Linear):
                mods.append(torch.nn.Linear(m.in_features, m.out_features, bias=m.bias is not None))
            elif isinstance(m, L.Dropout):
                mods.append(torch.nn.Dropout(m.p))
            elif type(m) in names:
                mods.append(getattr(torch.nn, names[type(m)])())
            else:
                raise ValueError(f"torch_equivalent: no torch twin known for {type(m).__name__}")
        return torch.nn.Sequential(*mods)


MODELS: dict[str, type[_Classifier]] = {"MLP": MLP, "LogisticRegression": LogisticRegression,
                                        "SoftmaxRegression": SoftmaxRegression}


class GRUClassifier(_Classifier):
    """A GRU reading a signal as a sequence, then a linear read-out: the MNIST-1D paper's recurrent model.

    The (N, n_features) input is read as ``n_features / input_size`` time steps of ``input_size`` values
    (MNIST-1D: 40 steps of 1). ``h_t = GRU(x_t, h_{t-1})`` (:class:`~chainrule.nn.GRU`, PyTorch's
    equations), and the logits are ``z = W [h_1 ... h_T] + b`` over all states (``readout='all'``, as in
    the paper's model, which sees where in the signal a feature appeared) or ``z = W h_T + b``
    (``readout='last'``). Children ``rnn`` (torch.nn.GRU's keys) and ``head`` (a Linear).
    """

    def __init__(self, n_features: int = 40, n_classes: int = 10, hidden_size: int = 32, num_layers: int = 1,
                 input_size: int = 1, readout: str = "all", dropout: float = 0.0):
        super().__init__()
        if n_features % input_size:
            raise ValueError(f"GRUClassifier: n_features={n_features} is not a multiple of input_size={input_size}")
        if readout not in ("all", "last"):
            raise ValueError(f"GRUClassifier: readout must be 'all' or 'last', got {readout!r}")
        self.n_features, self.n_classes, self.input_size, self.readout = n_features, n_classes, input_size, readout
        self.steps = n_features // input_size
        self.rnn = R.GRU(input_size, hidden_size, num_layers, batch_first=True, dropout=dropout)
        self.head = L.Linear(hidden_size * (self.steps if readout == "all" else 1), n_classes)

    def forward(self, x: Any) -> Tensor:
        x = self._input(x)
        out = self.rnn(ops.reshape(x, shape=(x.shape[0], self.steps, self.input_size)))[0]  # (N, T, H)
        feats = ops.reshape(out, shape=(x.shape[0], -1)) if self.readout == "all" else out[:, -1]
        return self.head(feats)

    def config(self) -> dict | None:
        return {"class": "GRUClassifier", "n_features": self.n_features, "n_classes": self.n_classes,
                "hidden_size": self.rnn.hidden_size, "num_layers": self.rnn.num_layers,
                "input_size": self.input_size, "readout": self.readout, "dropout": self.rnn.dropout}


    @staticmethod
    def state_numel(n_features: int = 40, n_classes: int = 10, hidden_size: int = 32, num_layers: int = 1,
                    input_size: int = 1, readout: str = "all", dropout: float = 0.0) -> int:
        """The numbers in ``GRUClassifier(...)``'s state_dict (its parameters), computed without building it
        (load_model checks a file against it before allocating)."""
        H, gates = hidden_size, 3 * hidden_size
        rnn = sum(gates * (input_size if k == 0 else H) + gates * H + 2 * gates for k in range(num_layers))
        features = H * (n_features // input_size if readout == "all" else 1)
        return rnn + features * n_classes + n_classes


MODELS["GRUClassifier"] = GRUClassifier
class CNN1d(_Classifier):
    """The MNIST-1D paper's convolutional network (Greydanus 2020, its ``ConvBase``): three 1-d
    convolutions with ReLU and a linear read-out of the flattened features.

    On (N, n_features) signals: ``Unflatten`` to (N, 1, n_features), ``Conv1d(1, c, 5, stride=2,
    padding=1)``, ``Conv1d(c, c, 3, stride=2, padding=1)`` twice, each followed by ReLU, then
    ``Flatten`` and ``Linear(c * L, n_classes)`` (L = 5 for the 40-sample signals). Logits (N, n_classes).
    The paper's model is ``CNN1d()`` (25 channels); ``batch_norm=True`` puts a BatchNorm1d between each
    convolution and its ReLU, ``dropout`` > 0 a Dropout before the read-out (``examples/09_mnist1d_cnn.py``
    trains ``CNN1d(channels=32, dropout=0.3, batch_norm=True)``).

    The layers live in ``self.layers``, a Sequential with the same structure as the torch Sequential of
    the same modules, so a chainrule key is ``"layers." + torch_key`` (``layers.1.weight`` <-> ``1.weight``).
    """

    def __init__(self, n_features: int = 40, n_classes: int = 10, channels: int = 25, dropout: float = 0.0,
                 batch_norm: bool = False):
        super().__init__()
        from .nn.conv import Conv1d, Unflatten
        from .nn.normalization import BatchNorm1d
        from .ops_conv import out_sizes

        for name, v in (("n_features", n_features), ("n_classes", n_classes), ("channels", channels)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"CNN1d: {name} must be a positive integer, got {v!r}")
        length = n_features
        for k in (5, 3, 3):
            (length,) = out_sizes((length,), (k,), (2,), ((1, 1),), (1,))
        if length < 1:
            raise ValueError(f"CNN1d: n_features={n_features} is too short for three stride-2 convolutions")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"CNN1d: dropout must be in [0, 1), got {dropout}")
        self.n_features, self.n_classes, self.channels = int(n_features), int(n_classes), int(channels)
        self.dropout, self.batch_norm = float(dropout), bool(batch_norm)
        c = self.channels
        mods: list[Module] = [Unflatten(1, (1, n_features))]
        for c_in, k in ((1, 5), (c, 3), (c, 3)):
            mods += [Conv1d(c_in, c, k, stride=2, padding=1)] + ([BatchNorm1d(c)] if batch_norm else []) + [L.ReLU()]
        mods += [L.Flatten()] + ([L.Dropout(self.dropout)] if self.dropout > 0 else [])
        self.layers = L.Sequential(*mods, L.Linear(c * length, n_classes))

    def forward(self, x: Any) -> Tensor:
        return self.layers(x)

    def config(self) -> dict:
        return {"class": "CNN1d", "n_features": self.n_features, "n_classes": self.n_classes, "channels": self.channels,
                "dropout": self.dropout, "batch_norm": self.batch_norm}

    @staticmethod
    def state_numel(n_features: int = 40, n_classes: int = 10, channels: int = 25, dropout: float = 0.0,
                    batch_norm: bool = False) -> int:
        """The numbers in ``CNN1d(...)``'s state_dict (parameters, and BatchNorm's running mean, variance and
        batch count), computed without building it (load_model checks a file against it before allocating)."""
        from .ops_conv import out_sizes
        length, c = n_features, channels
        for k in (5, 3, 3):
            (length,) = out_sizes((length,), (k,), (2,), ((1, 1),), (1,))
        convs = (5 * c + c) + 2 * (3 * c * c + c) + (3 * (2 * c + 2 * c + 1) if batch_norm else 0)
        return convs + c * length * n_classes + n_classes


MODELS["CNN1d"] = CNN1d
