"""One browser tab's state: its data, network, optimizer and training loop, all chainrule.

A :class:`Session` is driven by messages (``configure``, ``step``, ``reset``) and renders
:meth:`Session.frame`, the JSON the page draws: losses, loss history, the decision boundary (or
regression surface) as an RGBA heatmap, the weights, every neuron's output map, and the
optimizer's own equations (:meth:`chainrule.optim.Optimizer.describe`). Nothing the client sends
is executed: every setting is validated against :data:`LIMITS` and the fixed choices below.

The training objective of a mini-batch B is the lecture's regularised empirical risk

    J(theta) = 1/|B| sum_{i in B} l(f_theta(phi(x_i)), y_i) + lambda R(W),
    R(W) = 1/2 sum ||W||_F^2 (L2) or sum |W| (L1), over the weights (not the biases),

with l the logistic loss (two classes, one logit), cross-entropy (more classes) or the squared
error (regression). The reported train and test losses are the data term alone, over the whole
split, with dropout off.
"""

from __future__ import annotations

import base64
import math
import time
from typing import Any

import numpy as np

from .. import functional as F
from .. import models, ops, optim
from ..autograd import no_grad
from ..creation import manual_seed
from ..nn import layers as L
from ..tensor import Tensor
from . import data as D

MAX_LAYERS, MAX_NEURONS = 6, 8
NEWTON_MAX_PARAMS = 250  # an exact Hessian: P backward passes and a P x P solve per step
HISTORY = 400  # loss-curve points kept (older ones are thinned out by halves)
ACTIVATIONS = {"relu": "relu", "tanh": "tanh", "sigmoid": "sigmoid", "linear": "identity"}
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "newton")
SCHEDULES = ("constant", "step", "exponential", "cosine")
REGULARIZATION = ("none", "l1", "l2")

DEFAULTS: dict[str, Any] = {
    "dataset": "circle", "noise": 0.1, "train_ratio": 0.5, "features": ["x1", "x2"], "hidden": [4, 4],
    "activation": "tanh", "dropout": 0.0, "regularization": "none", "reg_rate": 0.001, "optimizer": "adam",
    "learning_rate": 0.03, "momentum": 0.9, "batch_size": 16, "schedule": "constant", "steps_per_second": 100,
    "seed": 0,
}
# numeric setting -> (type, lowest, highest)
LIMITS: dict[str, tuple] = {
    "noise": (float, 0.0, 1.0), "train_ratio": (float, 0.1, 0.9), "dropout": (float, 0.0, 0.9),
    "reg_rate": (float, 0.0, 10.0), "learning_rate": (float, 1e-6, 10.0), "momentum": (float, 0.0, 0.999),
    "batch_size": (int, 1, 1000), "steps_per_second": (int, 1, 10000), "seed": (int, 0, 2 ** 31 - 1),
}
CHOICES: dict[str, tuple] = {"dataset": D.CLASSIFICATION + D.REGRESSION + ("csv",), "activation": tuple(ACTIVATIONS),
                             "regularization": REGULARIZATION, "optimizer": OPTIMIZERS, "schedule": SCHEDULES}
# settings whose change rebuilds: the data (and so the network), the network, or only the optimizer
_DATA_KEYS = {"dataset", "noise", "train_ratio", "seed"}
_NET_KEYS = {"features", "hidden", "activation"}
_OPT_KEYS = {"optimizer", "learning_rate", "momentum", "schedule"}


def validate(changes: dict) -> dict:
    """Check a partial configuration from the client; returns it with normalised types. Raises
    ValueError naming the setting, the value and the valid range or choices."""
    if not isinstance(changes, dict):
        raise ValueError(f"a configuration must be an object of settings, got {type(changes).__name__}")
    out: dict[str, Any] = {}
    for key, value in changes.items():
        if key in LIMITS:
            kind, lo, hi = LIMITS[key]
            try:
                v = kind(value)
            except (TypeError, ValueError, OverflowError):  # OverflowError: int(inf), JSON's Infinity or 1e400
                raise ValueError(f"{key} must be a number in [{lo}, {hi}], got {value!r}") from None
            if isinstance(value, bool) or not (lo <= v <= hi) or (kind is float and not math.isfinite(v)):
                raise ValueError(f"{key} must be in [{lo}, {hi}], got {value!r}")
            out[key] = v
        elif key in CHOICES:
            if value not in CHOICES[key]:
                raise ValueError(f"{key} must be one of {', '.join(CHOICES[key])}, got {value!r}")
            out[key] = value
        elif key == "features":
            if not isinstance(value, list) or not value or any(f not in D.FEATURES for f in value):
                raise ValueError(f"features must be a non-empty list from {list(D.FEATURES)}, got {value!r}")
            out[key] = [f for f in D.FEATURES if f in value]  # canonical order, no repeats
        elif key == "hidden":
            if (not isinstance(value, list) or len(value) > MAX_LAYERS
                    or any(isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_NEURONS for n in value)):
                raise ValueError(f"hidden must list at most {MAX_LAYERS} layer widths, each 1..{MAX_NEURONS}, got {value!r}")
            out[key] = list(value)
        else:
            raise ValueError(f"unknown setting {key!r}; the settings are {', '.join(DEFAULTS)}")
    return out


# ----- colours ------------------------------------------------------------------------------------
_NEG, _MID, _POS = np.array([245, 147, 34.0]), np.array([232, 234, 235.0]), np.array([8, 119, 189.0])
PALETTE = np.array([[245, 147, 34], [8, 119, 189], [46, 160, 67], [214, 39, 40], [148, 103, 189],
                    [140, 86, 75], [227, 119, 194], [127, 127, 127]], dtype=np.float64)


def _diverging_exact(t: np.ndarray) -> np.ndarray:
    t = t[..., None]
    return np.where(t < 0, _MID + (_NEG - _MID) * -t, _MID + (_POS - _MID) * t)


_LUT = _diverging_exact(np.linspace(-1.0, 1.0, 511))  # 511 levels: finer than 8-bit colour can show


def diverging(t: np.ndarray) -> np.ndarray:
    """t in [-1, 1] -> RGB: orange (-1, class 0) through light grey (0) to blue (+1, class 1), from a
    lookup table (a heatmap a frame, so this runs a few hundred times a second)."""
    t = np.clip(np.nan_to_num(np.asarray(t, np.float64)), -1.0, 1.0)
    return _LUT[np.rint((t + 1.0) * 255.0).astype(np.intp)]


def rgba_b64(rgb: np.ndarray, alpha: int = 255) -> str:
    """(H, W, 3) floats in 0..255 -> base64 of the RGBA bytes, what the page puts in an ImageData."""
    h, w = rgb.shape[:2]
    out = np.empty((h, w, 4), np.uint8)
    out[..., :3] = np.clip(rgb, 0, 255)
    out[..., 3] = alpha
    return base64.b64encode(out.tobytes()).decode("ascii")


def _map_image(values: np.ndarray, res: int) -> str:
    """A unit's output over the grid, scaled by its largest |value|, as diverging colours."""
    v = values.reshape(res, res).astype(np.float64)
    m = np.abs(v).max()
    return rgba_b64(diverging(v / m if m > 0 else v))


class Session:
    """A tab's playground. ``config`` holds the settings (:data:`DEFAULTS`); ``step()`` trains one
    mini-batch; ``frame()`` is what the page draws."""

    def __init__(self, sid: str = "local", config: dict | None = None, resolution: int = 50):
        self.sid, self.resolution = sid, int(resolution)
        self.config = {**DEFAULTS, **validate(config or {})}
        self.csv: D.PlayData | None = None
        self.playing = False
        self.hover: str | None = None
        self.last_active = time.monotonic()
        self._grid = D.grid(self.resolution)
        self._thumb_grid = D.grid(20)
        self._build_data()

    # ----- building -------------------------------------------------------------------------
    def _build_data(self) -> None:
        c = self.config
        if c["dataset"] == "csv":
            if self.csv is None:
                raise ValueError("dataset csv: upload a CSV file first")
            self.data = self.csv
        else:
            self.data = D.make(c["dataset"], noise=c["noise"], train_ratio=c["train_ratio"], seed=c["seed"])
        self._build_model()

    def _build_model(self) -> None:
        c, d = self.config, self.data
        self.Ftr, self.Fte = D.phi(d.X_train, c["features"]), D.phi(d.X_test, c["features"])
        self.Fgrid, self.Fthumb = D.phi(self._grid, c["features"]), D.phi(self._thumb_grid, c["features"])
        self.n_out = d.n_classes if d.task == "classification" and d.n_classes > 2 else 1
        manual_seed(c["seed"])  # the same settings give the same initial weights
        # dropout=0.5 only makes MLP insert the Dropout modules; their p is the setting (0 = off)
        self.model = models.MLP([len(c["features"]), *c["hidden"], self.n_out], ACTIVATIONS[c["activation"]],
                                dropout=0.5 if c["hidden"] else 0.0)
        self._set_dropout()
        self.linears = [m for m in self.model.layers if isinstance(m, L.Linear)]
        self.steps, self.history, self._order, self._cursor = 0, [], None, 0
        self._rng = np.random.default_rng(c["seed"])
        self._build_optimizer()

    def _set_dropout(self) -> None:
        for m in self.model.layers:
            if isinstance(m, L.Dropout):
                m.p = float(self.config["dropout"])

    @property
    def n_params(self) -> int:
        return sum(lin.weight.numel() + lin.bias.numel() for lin in self.linears)

    def mode(self, training: bool) -> None:
        """model.train() / model.eval(), only when it changes: each call walks every module, which
        costs as much as a training step of this small network."""
        if self.model.training != training:
            self.model.train(training)

    def _build_optimizer(self) -> None:
        c = self.config
        name, lr, params = c["optimizer"], c["learning_rate"], list(self.model.parameters())
        if name == "newton":  # its size limit is checked by _check, before anything is rebuilt
            self.opt = optim.Newton(params, lr=lr, damping=1e-3, line_search=True)  # lr = 1: the pure Newton step
        elif name in ("sgd", "momentum", "nesterov"):
            mu = 0.0 if name == "sgd" else c["momentum"]
            self.opt = optim.SGD(params, lr=lr, momentum=mu, nesterov=name == "nesterov")
        else:
            self.opt = {"adagrad": optim.Adagrad, "rmsprop": optim.RMSprop, "adam": optim.Adam}[name](params, lr=lr)
        sched = c["schedule"]
        self.sched = None if sched == "constant" else {
            "step": lambda o: optim.lr_scheduler.StepLR(o, step_size=500, gamma=0.5),
            "exponential": lambda o: optim.lr_scheduler.ExponentialLR(o, gamma=0.999),
            "cosine": lambda o: optim.lr_scheduler.CosineAnnealingLR(o, T_max=2000),
        }[sched](self.opt)

    def _check(self, c: dict) -> None:
        """Refuse a configuration that cannot be built, before anything changes."""
        if c["dataset"] == "csv" and self.csv is None:
            raise ValueError("dataset csv: upload a CSV file first")
        if c["optimizer"] == "newton":
            data = self.csv if c["dataset"] == "csv" else None
            n_out = data.n_classes if data is not None and data.n_classes > 2 else 1
            sizes = [len(c["features"]), *c["hidden"], n_out]
            P = sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))
            if P > NEWTON_MAX_PARAMS:
                raise ValueError(f"newton: this network has P = {P} parameters; an exact Hessian is kept for "
                                 f"P <= {NEWTON_MAX_PARAMS} (fewer neurons or layers, or another optimizer)")

    def configure(self, changes: dict) -> set[str]:
        """Apply settings; returns what was rebuilt (``data``, ``model``, ``optimizer``). A refused
        change (ValueError) leaves everything as it was, training progress included."""
        changes = validate(changes)
        new = {**self.config, **changes}
        self._check(new)
        keys = {k for k, v in changes.items() if self.config.get(k) != v}
        self.config = new
        if keys & _DATA_KEYS:
            self._build_data()
            return {"data", "model", "optimizer"}
        if keys & _NET_KEYS:
            self._build_model()
            return {"model", "optimizer"}
        if keys & _OPT_KEYS:
            self._build_optimizer()
            return {"optimizer"}
        if "dropout" in keys:
            self._set_dropout()
        return set()

    def upload_csv(self, text: str, filename: str) -> None:
        """Use an uploaded CSV as the data (validated by the CLI's loader; see :func:`data.from_csv`)."""
        self.csv = D.from_csv(text, filename, self.config["train_ratio"], self.config["seed"])
        self.config["dataset"] = "csv"
        self._build_data()

    def reset(self) -> None:
        """New initial weights (the same ones for the same seed), optimizer state and history."""
        self._build_model()

    # ----- training -------------------------------------------------------------------------
    def loss_fn(self, z: Tensor, y: Any) -> Tensor:
        """The data loss l: logistic (one logit), cross-entropy (K logits) or squared error."""
        if self.data.task == "regression":
            return F.mse_loss(ops.reshape(z, shape=(-1,)), y)
        if self.n_out == 1:
            return F.binary_cross_entropy_with_logits(ops.reshape(z, shape=(-1,)), y)
        return F.cross_entropy(z, y)

    def _target(self, y: np.ndarray) -> np.ndarray:
        return y.astype(np.float32) if self.n_out == 1 else y

    def penalty(self) -> Tensor | None:
        """lambda R(W): ``lambda/2 sum ||W||^2`` (L2) or ``lambda sum |W|`` (L1), weights only."""
        c = self.config
        if c["regularization"] == "none" or c["reg_rate"] == 0:
            return None
        if c["regularization"] == "l2":
            return L.l2_penalty(self.model, c["reg_rate"])
        total = None
        for lin in self.linears:
            term = ops.sum(ops.abs(lin.weight))
            total = term if total is None else total + term
        return total * c["reg_rate"]

    def objective(self, X: np.ndarray, y: np.ndarray) -> Tensor:
        J = self.loss_fn(self.model(Tensor(X)), self._target(y))
        pen = self.penalty()
        return J if pen is None else J + pen

    def _batch(self) -> tuple[np.ndarray, np.ndarray]:
        n, B = len(self.Ftr), min(self.config["batch_size"], len(self.Ftr))
        if self.config["optimizer"] == "newton" or B >= n:
            return self.Ftr, self.data.y_train
        if self._order is None or self._cursor + B > n:  # a new epoch: a fresh shuffle
            self._order, self._cursor = self._rng.permutation(n), 0
        idx = self._order[self._cursor:self._cursor + B]
        self._cursor += B
        return self.Ftr[idx], self.data.y_train[idx]

    def step(self, n: int = 1) -> None:
        """``n`` optimizer steps, each on the next mini-batch of the epoch's shuffle."""
        self.mode(True)
        for _ in range(n):
            X, y = self._batch()
            if isinstance(self.opt, optim.Newton):
                self.opt.step(lambda: self.objective(X, y))
            else:
                self.opt.zero_grad()
                self.objective(X, y).backward()
                self.opt.step()
            if self.sched is not None:
                self.sched.step()
            self.steps += 1

    @property
    def epoch(self) -> float:
        """Passes over the training set so far (Newton takes the whole set every step)."""
        n = len(self.Ftr)
        B = n if self.config["optimizer"] == "newton" else min(self.config["batch_size"], n)
        return self.steps * B / n

    # ----- what the page draws --------------------------------------------------------------
    def _forward(self, X: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        """Each hidden layer's output (after its activation) and the network's output, no graph."""
        hidden, x = [], Tensor(X)
        self.mode(False)
        with no_grad():
            for m in self.model.layers:
                x = m(x)
                if not isinstance(m, (L.Linear, L.Dropout)):
                    hidden.append(x._data)
        return hidden, x._data

    def losses(self) -> tuple[float, float]:
        """(train loss, test loss): the data loss over each whole split, dropout off."""
        out = []
        self.mode(False)
        with no_grad():
            for X, y in ((self.Ftr, self.data.y_train), (self.Fte, self.data.y_test)):
                out.append(float(self.loss_fn(self.model(Tensor(X)), self._target(y))._data))
        return out[0], out[1]

    def _surface(self, z: np.ndarray) -> np.ndarray:
        """Network outputs over the grid -> RGB: P(y=1) or the prediction on the diverging map, or
        for K classes the argmax class's colour, paler where the model is less sure."""
        if self.data.task == "regression":
            return diverging(z[:, 0])
        if self.n_out == 1:
            return diverging(2.0 / (1.0 + np.exp(-np.clip(z[:, 0], -30, 30))) - 1.0)
        p = F.softmax(z.astype(np.float64), -1)
        k, conf = p.argmax(1), p.max(1)
        K = p.shape[1]
        w = np.clip((conf - 1.0 / K) / (1.0 - 1.0 / K), 0, 1)[:, None]
        return _MID + (PALETTE[k % len(PALETTE)] - _MID) * w

    def node_map(self, node: str, res: int | None = None) -> str | None:
        """The output map of one node of the network drawing: ``f:k`` (feature k), ``h:l:j``
        (hidden layer l, unit j), ``out`` (the decision surface) or, with K > 2 classes, ``out:k``
        (P(y = k | x)); None for an unknown node."""
        res = res or self.resolution
        G = self.Fgrid if res == self.resolution else D.phi(D.grid(res), self.config["features"])
        parts = node.split(":")
        try:
            if parts[0] == "f":
                return _map_image(G[:, int(parts[1])], res)
            hidden, z = self._forward(G)
            if parts[0] == "h":
                return _map_image(hidden[int(parts[1])][:, int(parts[2])], res)
            if parts[0] == "out" and len(parts) == 1:
                return rgba_b64(self._surface(z).reshape(res, res, 3))
            if parts[0] == "out" and self.n_out > 1:
                return rgba_b64(self._class_maps(z, [int(parts[1])])[0].reshape(res, res, 3))
        except (IndexError, ValueError):
            return None
        return None

    def thumbnails(self) -> dict[str, str]:
        """Every node's output map at 20 x 20, keyed like :meth:`node_map` (each scaled by its own
        largest |value|, coloured in one pass)."""
        hidden, z = self._forward(self.Fthumb)
        keys = [f"f:{k}" for k in range(self.Fthumb.shape[1])]
        keys += [f"h:{li}:{j}" for li, h in enumerate(hidden) for j in range(h.shape[1])]
        V = np.concatenate([self.Fthumb, *hidden], axis=1).T.astype(np.float64)  # (nodes, 400)
        m = np.abs(V).max(axis=1, keepdims=True)
        rgb = diverging(V / np.where(m > 0, m, 1.0))
        maps = {k: rgba_b64(rgb[i].reshape(20, 20, 3)) for i, k in enumerate(keys)}
        maps["out"] = rgba_b64(self._surface(z).reshape(20, 20, 3))
        if self.n_out > 1:
            for k, rgb_k in enumerate(self._class_maps(z, range(self.n_out))):
                maps[f"out:{k}"] = rgba_b64(rgb_k.reshape(20, 20, 3))
        return maps

    def _class_maps(self, z: np.ndarray, classes) -> list[np.ndarray]:
        """softmax(z)_k over the grid for each class k, 0 orange .. 1 blue."""
        p = F.softmax(z.astype(np.float64), -1)
        return [diverging(2.0 * p[:, k] - 1.0) for k in classes]

    def record(self) -> tuple[float, float]:
        """The current losses, appended to the history (thinned by halves past HISTORY points)."""
        tr, te = self.losses()
        if not self.history or self.history[-1][0] != self.steps:
            self.history.append((self.steps, tr, te))
            if len(self.history) > HISTORY:
                kept = self.history[::2]
                self.history = kept if kept[-1] is self.history[-1] else [*kept, self.history[-1]]
        return tr, te

    def state(self) -> dict:
        """The numbers the page and ``GET /api/state`` show."""
        tr, te = self.record()
        return {"session": self.sid, "step": self.steps, "epoch": round(self.epoch, 3), "train_loss": tr,
                "test_loss": te, "playing": self.playing, "task": self.data.task, "dataset": self.data.name,
                "optimizer": self.config["optimizer"], "learning_rate": self.opt.param_groups[0]["lr"],
                "parameters": self.n_params, "config": dict(self.config)}

    def frame(self, thumbnails: bool = True, describe: bool = True) -> dict:
        """Everything the page redraws after a step: state, history, heatmap, weights, and with
        ``thumbnails`` every neuron's map, with ``describe`` the optimizer's equations (Adam's are a
        large part of a frame's cost: a playing tab gets both only a few times a second)."""
        _, z = self._forward(self.Fgrid)
        res = self.resolution
        out = {"type": "frame", **self.state(), "history": self.history,
               "heatmap": {"size": res, "rgba": rgba_b64(self._surface(z).reshape(res, res, 3))},
               "weights": [np.round(lin.weight._data.astype(np.float64), 4).tolist() for lin in self.linears],
               "biases": [np.round(lin.bias._data.astype(np.float64), 4).tolist() for lin in self.linears],
               "features": self.config["features"], "hidden": self.config["hidden"]}
        if describe:
            out["describe"] = self.opt.describe()
        if self.hover:
            out["hover"] = {"node": self.hover, "rgba": self.node_map(self.hover)}
        if thumbnails:
            out["thumbnails"] = self.thumbnails()
        return out
