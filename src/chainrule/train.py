"""The fit loop: epochs of minibatch steps, evaluation, callbacks, and checkpoints you can resume.

``fit(model, loss_fn, optimizer, train=(X, y), val=(X_val, y_val), epochs=20, batch_size=32)``
returns a :class:`History`. It is the lecture's training procedure written once:

- the data come from a :class:`~chainrule._data.DataLoader` (``batch_size=None`` is full-batch GD);
- each step runs ``closure(); optimizer.step()`` (the closure computes the loss and calls
  ``backward``); Newton's method gets ``optimizer.step(closure)`` with a closure that only returns
  the loss (Newton differentiates it twice itself), and optimizers with ``requires_closure = True``
  get ``step(closure)`` with the backward-calling closure (torch's LBFGS convention);
- evaluation runs under ``cr.no_grad()`` with ``model.eval()`` (dropout off);
- :class:`EarlyStopping` is the lecture's early stopping (keep the weights of the best validation
  epoch), :class:`Checkpoint` writes everything needed to continue a run bit for bit.

A checkpoint is one safetensors file (``epoch-0007.safetensors``): arrays (weights, optimizer moments,
early-stopping's best weights) under dotted keys, and everything else (epoch, history, scheduler and
RNG states) as JSON in the file's header. No pickle, so loading a checkpoint cannot run code. It is
written to a temporary file and moved into place with ``os.replace``, so a crash mid-write leaves the
previous checkpoint intact.

This module also hosts the ``chainrule train|evaluate|predict`` subcommands (see the bottom).
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from . import functional as F
from .autograd import no_grad
from .creation import get_rng, manual_seed
from .data import DataLoader
from .tensor import Tensor

__all__ = ["fit", "evaluate", "make_optimizer", "OPTIMIZERS", "Trainer", "History", "Callback", "EarlyStopping", "Checkpoint",
           "LRSchedulerCallback", "save_checkpoint", "load_checkpoint", "latest_checkpoint"]


# ----- metrics ------------------------------------------------------------------------------------
def _arr(x) -> np.ndarray:
    return x._data if isinstance(x, Tensor) else np.asarray(x)


def accuracy(output, target) -> float:
    """Fraction of correct predictions. ``output`` holds logits: (N, C) with C > 1 is argmax, (N,) or
    (N, 1) is a binary logit (positive means class 1)."""
    out, t = _arr(output), _arr(target).reshape(-1)
    pred = out.argmax(axis=1) if out.ndim == 2 and out.shape[1] > 1 else (out.reshape(-1) > 0).astype(np.int64)
    return float(np.mean(pred == t))


def mse(output, target) -> float:
    out, t = _arr(output), _arr(target)
    return float(np.mean((out.reshape(t.shape) - t) ** 2)) if out.size == t.size else float(np.mean((out - t) ** 2))


def mae(output, target) -> float:
    out, t = _arr(output), _arr(target)
    return float(np.mean(np.abs(out.reshape(t.shape) - t))) if out.size == t.size else float(np.mean(np.abs(out - t)))


METRICS: dict[str, Callable] = {"accuracy": accuracy, "acc": accuracy, "mse": mse, "mae": mae}
LOSSES: dict[str, Callable] = {"cross_entropy": F.cross_entropy, "mse": F.mse_loss, "mse_loss": F.mse_loss,
                               "bce_with_logits": F.binary_cross_entropy_with_logits}


def _metric(m) -> tuple[str, Callable]:
    if callable(m):
        return getattr(m, "__name__", "metric"), m
    if m not in METRICS:
        raise ValueError(f"unknown metric {m!r}: choose one of {sorted(METRICS)} or pass a callable(output, target)")
    return ("accuracy" if m == "acc" else m), METRICS[m]


OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw", "newton")


def make_optimizer(name: str, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0):
    """The optimizer called ``name`` (one of :data:`OPTIMIZERS`) over ``params``: ``'momentum'`` and
    ``'nesterov'`` are SGD with ``momentum``; ``'newton'`` uses its line search, which keeps it from
    climbing where the Hessian is (nearly) singular, e.g. softmax regression's redundant offsets."""
    from . import optim
    params = list(params)
    if name == "sgd":
        return optim.SGD(params, lr=lr, weight_decay=weight_decay)
    if name in ("momentum", "nesterov"):
        return optim.SGD(params, lr=lr, momentum=momentum, nesterov=name == "nesterov", weight_decay=weight_decay)
    if name == "newton":
        if weight_decay:
            raise ValueError("newton: weight_decay is not supported; use an L2 penalty instead")
        return optim.Newton(params, lr=lr, line_search=True)
    classes = {"adagrad": optim.Adagrad, "rmsprop": optim.RMSprop, "adam": optim.Adam, "adamw": optim.AdamW}
    if name not in classes:
        raise ValueError(f"unknown optimizer {name!r}: choose one of {list(OPTIMIZERS)}")
    return classes[name](params, lr=lr, weight_decay=weight_decay)


# ----- history ------------------------------------------------------------------------------------
class History:
    """Per-epoch logs: ``loss`` (the objective minimised, penalty included), ``val_loss``, metrics
    (``accuracy``, ``val_accuracy``, ...), ``lr`` (during the epoch) and ``time`` (seconds).

    ``history["val_loss"]`` is the list over epochs; ``history.epochs`` the list of per-epoch dicts.
    """

    def __init__(self, epochs: list[dict] | None = None):
        self.epochs: list[dict] = list(epochs or [])

    def append(self, logs: dict) -> None:
        self.epochs.append(dict(logs))

    def __getitem__(self, key: str) -> list:
        if not any(key in e for e in self.epochs):
            raise KeyError(f"no {key!r} in the history; it has {self.keys()}")
        return [e.get(key) for e in self.epochs]

    def __len__(self) -> int:
        return len(self.epochs)

    def keys(self) -> list[str]:
        seen: dict[str, None] = {}
        for e in self.epochs:
            seen.update(dict.fromkeys(e))
        return list(seen)

    def to_dict(self) -> dict:
        return {"epochs": self.epochs}

    @classmethod
    def from_dict(cls, d: dict) -> History:
        return cls(d.get("epochs", []))

    def __repr__(self) -> str:
        last = self.epochs[-1] if self.epochs else {}
        return f"History({len(self)} epochs, last={ {k: v for k, v in last.items() if k != 'time'} })"

    def plot(self, path: str | os.PathLike) -> str:
        """Write loss and metric curves (train and validation) to a PNG; returns the path."""
        import matplotlib
        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        keys = self.keys()
        metrics = [k for k in keys if k not in ("epoch", "loss", "lr", "time") and not k.startswith("val_")]
        fig, axes = plt.subplots(1, 1 + len(metrics), figsize=(5 * (1 + len(metrics)), 3.6), squeeze=False)
        epochs = self["epoch"] if "epoch" in keys else list(range(1, len(self) + 1))
        for ax, name in zip(axes[0], ["loss", *metrics]):
            for k, style in ((name, "-"), (f"val_{name}", "--")):
                if k in keys:
                    ax.plot(epochs, self[k], style, label=k)
            ax.set_xlabel("epoch"); ax.set_title(name); ax.legend(); ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return os.fspath(path)


# ----- callbacks ----------------------------------------------------------------------------------
class Callback:
    """Base class: override the hooks you need. ``self.trainer`` is set before ``on_train_begin``.

    Stop training by returning True from ``on_epoch_end`` or setting ``self.trainer.stop_training``.
    Callbacks that carry state across epochs implement ``state_dict``/``load_state_dict`` (values:
    JSON types and ndarrays) so that a resumed run behaves exactly like an uninterrupted one.
    """

    trainer: Trainer

    def set_trainer(self, trainer: Trainer) -> None:
        self.trainer = trainer

    def on_train_begin(self, logs: dict | None = None) -> None: ...
    def on_train_end(self, logs: dict | None = None) -> None: ...
    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None: ...
    def on_epoch_end(self, epoch: int, logs: dict) -> bool | None: ...
    def on_batch_end(self, batch: int, logs: dict) -> None: ...

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class EarlyStopping(Callback):
    """The lecture's early stopping: stop when ``monitor`` has not improved by more than ``min_delta``
    for ``patience`` epochs and (``restore_best``) put back the weights of the best epoch.

    ``mode='auto'`` maximises monitors with ``acc`` in the name and minimises the rest.
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0, mode: str = "auto",
                 restore_best: bool = True):
        if patience < 0:
            raise ValueError(f"EarlyStopping: patience must be >= 0, got {patience}")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"EarlyStopping: mode must be 'auto', 'min' or 'max', got {mode!r}")
        self.monitor, self.patience, self.restore_best = monitor, int(patience), restore_best
        self.min_delta = abs(float(min_delta))
        self.mode = ("max" if "acc" in monitor else "min") if mode == "auto" else mode
        self._reset()

    def _reset(self) -> None:
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch, self.wait, self.stopped_epoch = 0, 0, 0
        self.best_weights: dict[str, np.ndarray] | None = None

    def _improved(self, value: float) -> bool:
        return value < self.best - self.min_delta if self.mode == "min" else value > self.best + self.min_delta

    def on_epoch_end(self, epoch: int, logs: dict) -> bool:
        if self.monitor not in logs:
            raise ValueError(f"EarlyStopping: no {self.monitor!r} in the epoch logs {sorted(logs)}: "
                             "pass val=... to fit or monitor='loss'")
        value = float(logs[self.monitor])
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best:
                self.best_weights = {k: np.array(_arr(v)) for k, v in self.trainer.model.state_dict().items()}
            return False
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            return True
        return False

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.restore_best and self.best_weights is not None:
            self.trainer.model.load_state_dict(self.best_weights)

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait,
                "stopped_epoch": self.stopped_epoch, "best_weights": self.best_weights}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch, self.wait = float(state["best"]), int(state["best_epoch"]), int(state["wait"])
        self.stopped_epoch, self.best_weights = int(state["stopped_epoch"]), state["best_weights"]


def _needs_metric(scheduler) -> bool:
    """ReduceLROnPlateau-style schedulers step on a monitored value, the others on the epoch."""
    from .optim.lr_scheduler import ReduceLROnPlateau
    return isinstance(scheduler, ReduceLROnPlateau) or bool(getattr(scheduler, "requires_metric", False))


class LRSchedulerCallback(Callback):
    """Step a learning-rate scheduler after every epoch; ReduceLROnPlateau gets ``logs[monitor]``.
    ``fit(scheduler=...)`` wraps its scheduler in one of these."""

    def __init__(self, scheduler, monitor: str = "val_loss"):
        self.scheduler, self.monitor = scheduler, monitor

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        if _needs_metric(self.scheduler):
            key = self.monitor if self.monitor in logs else "loss"  # no validation set: plateau of the train loss
            self.scheduler.step(logs[key])
        else:
            self.scheduler.step()

    def state_dict(self) -> dict:
        return {"scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.scheduler.load_state_dict(state["scheduler"])


class Checkpoint(Callback):
    """Write a resumable checkpoint to ``dir`` every ``every`` epochs (and after the last one),
    keeping the newest ``keep`` files (``None`` keeps all)."""

    def __init__(self, dir: str | os.PathLike, every: int = 1, keep: int | None = 2):  # noqa: A002
        if every < 1:
            raise ValueError(f"Checkpoint: every must be >= 1, got {every}")
        self.dir, self.every, self.keep = os.fspath(dir), int(every), keep

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        if epoch % self.every == 0 or epoch == self.trainer.target_epochs or self.trainer.stop_training:
            self.trainer.save_checkpoint(self.dir)
            if self.keep:
                for old in _checkpoints(self.dir)[:-self.keep]:
                    os.remove(old)


class _Printer(Callback):
    """One line per epoch on stdout (the CLI's progress when there is no terminal for tqdm)."""

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        parts = [f"{k} {v:.4f}" if isinstance(v, float) and k not in ("lr", "time") else None for k, v in logs.items()]
        body = "  ".join(p for p in parts if p)
        print(f"epoch {epoch:>3}/{self.trainer.target_epochs}  {body}  lr {logs.get('lr', 0):.3g}  "
              f"{logs.get('time', 0):.2f}s", flush=True)


# ----- checkpoint files ---------------------------------------------------------------------------
_CKPT = re.compile(r"^epoch-(\d+)\.safetensors$")


def _encode(obj: Any, key: str, arrays: dict[str, np.ndarray]) -> Any:
    """Nested state -> JSON tree; arrays (and NumPy scalars, to keep their dtype) go to ``arrays``
    under their dotted path. Dicts keep their key types (optimizer state is keyed by int)."""
    if isinstance(obj, Tensor):
        obj = obj._data
    if isinstance(obj, np.ndarray):
        arrays[key] = np.ascontiguousarray(obj)
        return {"__array__": key}
    if isinstance(obj, np.generic):
        arrays[key] = np.asarray(obj)
        return {"__scalar__": key}
    if isinstance(obj, dict):
        return {"__dict__": [[k, _encode(v, f"{key}.{k}", arrays)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, f"{key}.{i}", arrays) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, f"{key}.{i}", arrays) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"checkpoint: cannot store {type(obj).__name__} at {key!r} (only arrays, numbers, "
                    "strings, lists, tuples and dicts)")


def _decode(tree: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(tree, list):
        return [_decode(v, arrays) for v in tree]
    if isinstance(tree, dict):
        if "__array__" in tree:
            return arrays[tree["__array__"]]
        if "__scalar__" in tree:
            return arrays[tree["__scalar__"]][()]
        if "__tuple__" in tree:
            return tuple(_decode(v, arrays) for v in tree["__tuple__"])
        return {(tuple(k) if isinstance(k, list) else k): _decode(v, arrays) for k, v in tree["__dict__"]}
    return tree


def save_checkpoint(state: dict, path: str | os.PathLike) -> str:
    """Write ``state`` (nested dicts/lists of arrays and JSON values) atomically to ``path``."""
    from safetensors.numpy import save_file
    path = os.fspath(path)
    arrays: dict[str, np.ndarray] = {}
    tree = _encode(state, "state", arrays)
    tmp = os.path.join(os.path.dirname(path) or ".", f".{os.path.basename(path)}.tmp-{os.getpid()}")
    try:
        save_file(arrays, tmp, metadata={"format": "chainrule-checkpoint", "state": json.dumps(tree)})
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint file, or the newest one in a directory."""
    from safetensors import safe_open
    path = os.fspath(path)
    if os.path.isdir(path):
        path = latest_checkpoint(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no checkpoint at {path}")
    with safe_open(path, "np") as f:
        meta = f.metadata() or {}
        if meta.get("format") != "chainrule-checkpoint":
            raise ValueError(f"{path} is not a chainrule checkpoint (format {meta.get('format')!r})")
        arrays = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
    return _decode(json.loads(meta["state"]), arrays)


def _checkpoints(directory: str) -> list[str]:
    if not os.path.isdir(directory):
        return []
    found = sorted((int(m.group(1)), n) for n in os.listdir(directory) if (m := _CKPT.match(n)))
    return [os.path.join(directory, n) for _, n in found]


def latest_checkpoint(directory: str | os.PathLike) -> str:
    """Path of the newest ``epoch-NNNN.safetensors`` in ``directory``."""
    found = _checkpoints(os.fspath(directory))
    if not found:
        sub = os.path.join(os.fspath(directory), "checkpoints")  # a CLI run directory
        found = _checkpoints(sub)
    if not found:
        raise FileNotFoundError(f"no checkpoint (epoch-NNNN.safetensors) in {os.fspath(directory)}")
    return found[-1]


# ----- the loop -----------------------------------------------------------------------------------
def _loader(data, batch_size, shuffle, seed=None) -> DataLoader:
    if isinstance(data, DataLoader):
        return data
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return DataLoader(data[0], data[1], batch_size=batch_size, shuffle=shuffle, seed=seed)
    raise ValueError(f"data must be an (X, y) tuple or a DataLoader, got {type(data).__name__}")


def _differentiates_closure(optimizer) -> bool:
    """Newton's method needs ``step(closure)`` with a closure that only *returns* the loss: it
    differentiates it twice itself, so the closure must not call ``backward()``."""
    from .optim import Newton
    return isinstance(optimizer, Newton) or bool(getattr(optimizer, "differentiates_closure", False))


def _lr(optimizer) -> float | None:
    groups = getattr(optimizer, "param_groups", None)
    return float(groups[0]["lr"]) if groups else None


def evaluate(model, loss_fn, data, metrics: Sequence = ("accuracy",), batch_size: int = 4096) -> dict[str, float]:
    """Mean loss and metrics of ``model`` on ``data`` ((X, y) or a DataLoader), under ``no_grad`` and
    ``model.eval()``; the model's previous train/eval mode is restored afterwards."""
    loss_fn = LOSSES.get(loss_fn, loss_fn) if isinstance(loss_fn, str) else loss_fn
    named = [_metric(m) for m in metrics]
    batches = data if isinstance(data, DataLoader) else DataLoader(data[0], data[1], batch_size=batch_size, shuffle=False, seed=0)
    was_training = getattr(model, "training", True)
    model.eval()
    total, sums = 0, {"loss": 0.0, **{n: 0.0 for n, _ in named}}
    try:
        with no_grad():
            for xb, yb in batches:
                out, n = model(xb), len(yb)
                sums["loss"] += float(_arr(loss_fn(out, yb))) * n
                for name, f in named:
                    sums[name] += f(out, yb) * n
                total += n
    finally:
        model.train(was_training)
    return {k: v / total for k, v in sums.items()}


class Trainer:
    """Holds a model, loss, optimizer, scheduler and callbacks across calls to :meth:`fit`.

    ``epochs`` given to :meth:`fit` is the total number of epochs: a fresh trainer runs epochs
    1..epochs, a resumed one continues from the checkpoint's epoch, and calling ``fit(data,
    epochs=trainer.epoch + 1)`` trains one more epoch (the estimators' ``partial_fit``).

    Args:
        penalty: optional ``() -> scalar Tensor`` added to every step's loss, e.g.
            ``lambda: cr.nn.l2_penalty(model, lam)`` (the lecture's ``lam/2 ||W||^2``).
        verbose: print one line per epoch (the tqdm bar is for terminals only).
    """

    def __init__(self, model, loss_fn, optimizer, scheduler=None, metrics: Sequence = ("accuracy",),
                 callbacks: Iterable[Callback] = (), progress: bool = True, checkpoint_dir: str | os.PathLike | None = None,
                 penalty: Callable[[], Any] | None = None, verbose: bool = False):
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.loss_fn = LOSSES.get(loss_fn, loss_fn) if isinstance(loss_fn, str) else loss_fn
        if not callable(self.loss_fn):
            raise ValueError(f"loss_fn must be callable(output, target) or one of {sorted(LOSSES)}, got {loss_fn!r}")
        self.metrics = [_metric(m) for m in metrics]
        self.callbacks: list[Callback] = list(callbacks)
        if scheduler is not None:
            self.callbacks.insert(0, LRSchedulerCallback(scheduler))
        if verbose:
            self.callbacks.append(_Printer())
        if checkpoint_dir is not None:
            self.callbacks.append(Checkpoint(checkpoint_dir))
        self.progress, self.penalty = progress, penalty
        self.history = History()
        self.epoch = 0
        self.target_epochs = 0
        self.stop_training = False
        self.loader: DataLoader | None = None
        for cb in self.callbacks:
            cb.set_trainer(self)

    # -- one step ------------------------------------------------------------------------------
    def _step(self, xb, yb) -> tuple[float, Any]:
        last: dict[str, Any] = {}
        second_order = _differentiates_closure(self.optimizer)

        def closure():
            if not second_order:
                self.optimizer.zero_grad()
            out = self.model(xb)
            loss = self.loss_fn(out, yb)
            if self.penalty is not None:
                loss = loss + self.penalty()
            if not second_order:
                loss.backward()
            last["out"], last["loss"] = out, loss
            return loss

        if second_order or getattr(self.optimizer, "requires_closure", False):
            self.optimizer.step(closure)
        else:  # torch's convention for first-order optimizers: closure(); step()
            closure()
            self.optimizer.step()
        return float(_arr(last["loss"])), last["out"]

    def _run_epoch(self, loader: DataLoader) -> dict[str, float]:
        bar = None
        if self.progress and sys.stderr.isatty():
            from tqdm.auto import tqdm
            bar = tqdm(total=len(loader), desc=f"epoch {self.epoch + 1}/{self.target_epochs}", leave=False, file=sys.stderr)
        total, sums = 0, {"loss": 0.0, **{n: 0.0 for n, _ in self.metrics}}
        self.model.train()
        for b, (xb, yb) in enumerate(loader):
            loss, out = self._step(xb, yb)
            if not math.isfinite(loss):
                raise FloatingPointError(f"the loss became {loss} at epoch {self.epoch + 1}, batch {b}: "
                                         "lower the learning rate or scale the inputs")
            n = len(yb)
            sums["loss"] += loss * n
            for name, f in self.metrics:
                sums[name] += f(out, yb) * n
            total += n
            for cb in self.callbacks:
                cb.on_batch_end(b, {"loss": loss})
            if bar is not None:
                bar.update(1)
                bar.set_postfix({k: f"{v / total:.4f}" for k, v in sums.items()}, refresh=False)
        if bar is not None:
            bar.close()
        return {k: v / total for k, v in sums.items()}

    # -- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything a resumed run needs: model, optimizer, scheduler, epoch, history, callbacks,
        chainrule's global RNG (dropout, init) and the data loader's RNG (shuffling)."""
        return {"epoch": self.epoch, "stop_training": self.stop_training,
                "model": dict(self.model.state_dict()),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
                "loader": self.loader.state_dict() if self.loader is not None else None,
                "rng": get_rng().bit_generator.state,
                "history": self.history.to_dict(),
                "callbacks": [[type(cb).__name__, cb.state_dict()] for cb in self.callbacks]}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if self.loader is not None and state.get("loader") is not None:
            self.loader.load_state_dict(state["loader"])
        get_rng().bit_generator.state = state["rng"]
        self.history = History.from_dict(state["history"])
        self.epoch, self.stop_training = int(state["epoch"]), bool(state["stop_training"])
        # Match callback states by class, in order: a resumed run may add or drop stateless ones.
        saved = [list(item) for item in state.get("callbacks", [])]
        for cb in self.callbacks:
            match = next((item for item in saved if item[0] == type(cb).__name__), None)
            if match is not None:
                saved.remove(match)
                cb.load_state_dict(match[1])

    def save_checkpoint(self, directory: str | os.PathLike) -> str:
        os.makedirs(directory, exist_ok=True)
        return save_checkpoint(self.state_dict(), os.path.join(directory, f"epoch-{self.epoch:04d}.safetensors"))

    # -- the loop ------------------------------------------------------------------------------
    # Seams of fit() that data-parallel training (chainrule.distributed) overrides; one process: plain.
    def _make_loader(self, train, batch_size, seed) -> DataLoader:
        return _loader(train, batch_size, True, seed)

    def _read_checkpoint(self, path) -> dict:
        return load_checkpoint(path)

    def _sync_replicas(self) -> None:
        """Make every replica start from the same weights and optimizer state (one process: nothing)."""

    def _evaluate(self, val_data, metric_names) -> dict:
        return evaluate(self.model, self.loss_fn, val_data, metric_names)

    def _agree_to_stop(self, stop: bool) -> bool:
        return stop

    def fit(self, train, val=None, epochs: int = 10, batch_size: int | None = 32, resume: str | os.PathLike | None = None,
            seed: int | None = None) -> History:
        """Train until ``epochs`` epochs are done in total (or a callback stops); see :func:`fit`."""
        if int(epochs) != epochs or epochs < 0:
            raise ValueError(f"epochs must be a non-negative integer, got {epochs!r}")
        if seed is not None:
            manual_seed(seed)
        self.loader = self._make_loader(train, batch_size, seed)
        val_data = None if val is None else (val if isinstance(val, DataLoader) else _loader(val, 4096, False, 0))
        if resume is not None:
            self.load_state_dict(self._read_checkpoint(resume))
        else:
            self.stop_training = False
        self._sync_replicas()
        self.target_epochs = int(epochs)
        for cb in self.callbacks:
            cb.on_train_begin()
        while self.epoch < self.target_epochs and not self.stop_training:
            for cb in self.callbacks:
                cb.on_epoch_begin(self.epoch + 1)
            lr, t0 = _lr(self.optimizer), time.perf_counter()
            logs: dict[str, Any] = {"epoch": self.epoch + 1, **self._run_epoch(self.loader)}
            if val_data is not None:
                res = self._evaluate(val_data, [n for n, _ in self.metrics if n in METRICS])
                logs.update({f"val_{k}": v for k, v in res.items()})
            logs["lr"], logs["time"] = lr, time.perf_counter() - t0
            self.epoch += 1
            self.history.append(logs)
            stop = False
            for cb in self.callbacks:  # every callback sees the epoch, even after one asked to stop
                stop = bool(cb.on_epoch_end(self.epoch, logs)) or stop
            self.stop_training = self._agree_to_stop(stop or self.stop_training)
        for cb in self.callbacks:
            cb.on_train_end()
        return self.history


def fit(model, loss_fn, optimizer, train, val=None, epochs: int = 10, batch_size: int | None = 32, scheduler=None,
        metrics: Sequence = ("accuracy",), callbacks: Iterable[Callback] = (), progress: bool = True,
        resume: str | os.PathLike | None = None, checkpoint_dir: str | os.PathLike | None = None,
        seed: int | None = None, penalty: Callable[[], Any] | None = None, verbose: bool = False,
        distributed: bool = False) -> History:
    """Train ``model`` on ``train`` for ``epochs`` epochs and return the :class:`History`.

    Args:
        model: a ``cr.nn.Module`` returning logits (or predictions for regression).
        loss_fn: ``loss_fn(output, target) -> scalar Tensor`` or a name: ``'cross_entropy'``, ``'mse'``,
            ``'bce_with_logits'``.
        optimizer: a ``cr.optim`` optimizer over ``model.parameters()``. Optimizers with
            ``requires_closure`` (Newton) get ``step(closure)``.
        train, val: ``(X, y)`` tuples (arrays or Tensors) or DataLoaders.
        batch_size: for tuple data; ``None`` is full-batch gradient descent.
        scheduler: stepped once per epoch (ReduceLROnPlateau with ``val_loss``, or ``loss`` without val).
        metrics: names (``'accuracy'``, ``'mse'``, ``'mae'``) or callables ``f(output, target) -> float``.
        callbacks: e.g. ``EarlyStopping(patience=5)``; see :class:`Callback`.
        progress: a tqdm bar per epoch when stderr is a terminal.
        resume: a checkpoint file or directory; continue that run (build model/optimizer/scheduler/
            callbacks as for the interrupted run). Checkpoints keep going to the same directory unless
            ``checkpoint_dir`` says otherwise.
        checkpoint_dir: write a checkpoint after every epoch (keeps the last two).
        seed: reseed chainrule's global generator (dropout) and seed the shuffling. Model initialisation
            happens before ``fit``: seed that with ``cr.manual_seed`` yourself.
        penalty: ``() -> scalar Tensor`` added to each step's loss (e.g. L2).
        verbose: print one line per epoch.
        distributed: data-parallel over the MPI ranks of ``mpiexec -n K python script.py``
            (:func:`chainrule.distributed.fit`; needs ``pip install "chainrule[distributed]"``).
    """
    if distributed:
        from . import distributed as dist
        return dist.fit(model, loss_fn, optimizer, train, val, epochs, batch_size, scheduler, metrics, callbacks,
                        progress, resume, checkpoint_dir, seed, penalty, verbose)
    if checkpoint_dir is None and resume is not None:
        checkpoint_dir = resume if os.path.isdir(resume) else os.path.dirname(os.fspath(resume))
    trainer = Trainer(model, loss_fn, optimizer, scheduler, metrics, callbacks, progress, checkpoint_dir, penalty, verbose)
    return trainer.fit(train, val, epochs, batch_size, resume, seed)


# ----- the command line: chainrule train | evaluate | predict --------------------------------------
# Options default to None so that we can tell what the user typed: a resumed run takes its settings
# from the run's config.json, and only --epochs may change (anything else would not be the same run).
DEFAULTS: dict[str, Any] = {
    "data": "digits", "target": None, "model": "mlp", "hidden": [128], "activation": "relu", "dropout": 0.0,
    "optimizer": "adam", "lr": 1e-3, "momentum": 0.9, "weight_decay": 0.0, "batch_size": 32, "epochs": 20,
    "early_stopping": 0, "val_fraction": 0.1, "seed": 0,
}

_TRAIN_EXAMPLES = """examples:
  chainrule train                                   # MLP on the bundled digits, 20 epochs
  chainrule train --data mnist1d --hidden 256,256 --epochs 60 --lr 3e-3 --batch-size 128
  chainrule train --model softmax --optimizer sgd --lr 0.1 --batch-size 0   # full-batch GD
  chainrule train --data csv:my.csv --target label --early-stopping 5 --out runs/mine
  chainrule train --resume runs/mine --epochs 40    # continue an interrupted (or finished) run

A run directory holds config.json, history.json, checkpoints/, loss_curve.png, model.safetensors
and metrics.json. Features are standardised with the training split's mean and std (kept in
config.json); 10% of the training split is held out for validation; the test split is only used
for the final accuracy."""


def _hidden(text: str) -> list[int]:
    import argparse
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--hidden wants comma-separated integers like 128,64, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"--hidden sizes must be positive integers, got {text!r}")
    return sizes


def _positive(kind):
    import argparse

    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {text!r}") from None
        if v < 0:
            raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
        return v
    return parse


def configure_train(p) -> None:
    """Options of ``chainrule train`` (see ``chainrule train --help``)."""
    p.description = "Train a model on a bundled or CSV data set and write a run directory."
    p.epilog = _TRAIN_EXAMPLES
    d = DEFAULTS
    g = p.add_argument_group("data")
    g.add_argument("--data", help=f"digits|iris|breast_cancer|mnist1d|moons|spirals|xor|csv:PATH (default {d['data']})")
    g.add_argument("--target", help="target column of a CSV (default: the last column)")
    g = p.add_argument_group("model")
    g.add_argument("--model", choices=["logreg", "softmax", "mlp"], help=f"default {d['model']}")
    g.add_argument("--hidden", type=_hidden, help="hidden layer sizes of the MLP, e.g. 128,64 (default 128)")
    g.add_argument("--activation", help=f"MLP activation: relu, tanh, sigmoid, ... (default {d['activation']})")
    g.add_argument("--dropout", type=_positive(float), help="drop probability after each hidden layer (default 0)")
    g = p.add_argument_group("optimisation")
    g.add_argument("--optimizer", choices=list(OPTIMIZERS), help=f"default {d['optimizer']}")
    g.add_argument("--lr", type=_positive(float), help=f"learning rate (default {d['lr']})")
    g.add_argument("--momentum", type=_positive(float), help=f"for momentum/nesterov (default {d['momentum']})")
    g.add_argument("--weight-decay", type=_positive(float), help="the optimizer's weight decay (default 0)")
    g.add_argument("--batch-size", type=_positive(int), help=f"0 means full batch (GD) (default {d['batch_size']})")
    g.add_argument("--epochs", type=_positive(int), help=f"total epochs (default {d['epochs']})")
    g.add_argument("--early-stopping", type=_positive(int), metavar="PATIENCE",
                   help="stop after PATIENCE epochs without a better validation loss; keep the best weights (default off)")
    g.add_argument("--seed", type=int, help=f"seed of the split, the initialisation, dropout and shuffling (default {d['seed']})")
    g = p.add_argument_group("output")
    g.add_argument("--out", help="run directory (default runs/<data>-<model>-<timestamp>)")
    g.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its latest checkpoint")
    g.add_argument("--distributed", action="store_true",
                   help="data-parallel over MPI ranks: mpiexec -n 2 chainrule train --distributed ... "
                        '(needs pip install "chainrule[distributed]")')
    g.add_argument("--quiet", action="store_true", help="no per-epoch lines")


def _standardize(X: np.ndarray, scaler: dict) -> np.ndarray:
    return ((X - np.asarray(scaler["mean"], np.float32)) / np.asarray(scaler["scale"], np.float32)).astype(np.float32)


def _build_model(cfg: dict, n_features: int, n_classes: int):
    """The model a config describes. Logistic regression with more than two classes is the
    multinomial model (softmax regression), as in scikit-learn."""
    from . import models
    if cfg["model"] == "mlp":
        return models.MLP([n_features, *cfg["hidden"], n_classes], activation=cfg["activation"], dropout=cfg["dropout"])
    if cfg["model"] == "logreg" and n_classes == 2:
        return models.LogisticRegression(n_features)
    return models.SoftmaxRegression(n_features, n_classes)


def _binary_loss(out, y):
    return F.binary_cross_entropy_with_logits(out, y.astype(out.dtype))


def _loss_for(model):
    return _binary_loss if type(model).__name__ == "LogisticRegression" else F.cross_entropy


def _prepare(cfg: dict):
    """Data set, scaler and the train/val/test arrays of a config (deterministic given its seed)."""
    from sklearn.model_selection import train_test_split

    from . import datasets
    ds = datasets.load(cfg["data"], target=cfg["target"], seed=cfg["seed"])
    mean = ds.X_train.mean(axis=0)
    scale = ds.X_train.std(axis=0)
    scale[scale == 0] = 1.0  # constant columns (digits' border pixels): leave them at 0, not NaN
    scaler = {"mean": mean.tolist(), "scale": scale.tolist()}
    Xtr, Xte = _standardize(ds.X_train, scaler), _standardize(ds.X_test, scaler)
    counts = np.bincount(ds.y_train)
    n_val = int(round(cfg["val_fraction"] * len(Xtr)))
    strat = ds.y_train if counts.min() >= 2 and n_val >= len(counts) else None
    Xtr, Xva, ytr, yva = train_test_split(Xtr, ds.y_train, test_size=cfg["val_fraction"], stratify=strat,
                                          random_state=cfg["seed"])
    return ds, scaler, (Xtr, ytr), (Xva, yva), (Xte, ds.y_test)


def _write_json(path: str, obj: Any) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
    os.replace(tmp, path)


def _read_config(run_dir: str) -> dict:
    path = os.path.join(run_dir, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no {path}: {run_dir} is not a chainrule run directory; "
                                "give the --out directory of a 'chainrule train' run")
    with open(path) as f:
        return json.load(f)


def run_train(args) -> int:
    """``chainrule train``: train, print progress and the test accuracy, write the run directory."""
    if getattr(args, "distributed", False):  # mpiexec -n K chainrule train --distributed ...
        from .distributed import run_train as run_distributed
        return run_distributed(args)
    from . import io
    given = {k: v for k, v in vars(args).items() if k in DEFAULTS and v is not None}
    if args.resume:
        cfg = _read_config(args.resume)
        changed = sorted(k for k in given if k != "epochs" and given[k] != cfg.get(k))
        if changed:
            raise ValueError(f"--resume continues the run as configured; only --epochs may change, not "
                             f"{', '.join('--' + k.replace('_', '-') for k in changed)}")
        cfg.update(given)
        out = args.resume
    else:
        cfg = {**DEFAULTS, **given}
        if cfg["model"] != "mlp" and ("hidden" in given or "dropout" in given or "activation" in given):
            raise ValueError(f"--hidden/--dropout/--activation apply to --model mlp, not {cfg['model']}")
        out = args.out or os.path.join("runs", f"{cfg['data'].replace('csv:', '').replace(os.sep, '_')}-{cfg['model']}-"
                                       f"{time.strftime('%Y%m%d-%H%M%S')}")
    if not 0.0 <= cfg["dropout"] < 1.0:
        raise ValueError(f"--dropout must be in [0, 1), got {cfg['dropout']}")
    ds, scaler, train, val, test = _prepare(cfg)
    manual_seed(cfg["seed"])
    model = _build_model(cfg, ds.n_features, ds.n_classes)
    optimizer = make_optimizer(cfg["optimizer"], model.parameters(), cfg["lr"], cfg["momentum"], cfg["weight_decay"])
    cfg.update(n_features=ds.n_features, n_classes=ds.n_classes, feature_names=ds.feature_names,
               target_names=ds.target_names, scaler=scaler, model_config=model.config())
    os.makedirs(out, exist_ok=True)
    _write_json(os.path.join(out, "config.json"), cfg)  # before training: an interrupted run can resume
    callbacks = [EarlyStopping(patience=cfg["early_stopping"])] if cfg["early_stopping"] else []
    ckpt = os.path.join(out, "checkpoints")
    print(f"chainrule train: {ds!r}; {type(model).__name__} with {sum(p._data.size for p in model.parameters()):,} "
          f"parameters; {cfg['optimizer']} lr={cfg['lr']}; run directory {out}", flush=True)
    try:
        history = fit(model, _loss_for(model), optimizer, train, val, epochs=cfg["epochs"],
                      batch_size=cfg["batch_size"] or None, callbacks=callbacks, checkpoint_dir=ckpt,
                      resume=ckpt if args.resume else None, seed=cfg["seed"], verbose=not args.quiet)
    except KeyboardInterrupt:
        print(f"chainrule train: interrupted; continue with: chainrule train --resume {out}", file=sys.stderr)
        raise
    except FloatingPointError as e:
        raise ValueError(str(e)) from None
    result = evaluate(model, _loss_for(model), test)
    io.save(model, os.path.join(out, "model.safetensors"), metadata={"chainrule.run": json.dumps(
        {"target_names": ds.target_names, "feature_names": ds.feature_names})})
    _write_json(os.path.join(out, "history.json"), history.to_dict())
    _write_json(os.path.join(out, "metrics.json"), {"test_" + k: v for k, v in result.items()} | {"epochs": len(history)})
    history.plot(os.path.join(out, "loss_curve.png"))
    print(f"test accuracy {result['accuracy']:.4f}  test loss {result['loss']:.4f}  ({len(test[1])} samples, "
          f"{len(history)} epochs)")
    print(f"wrote {out}/ (config.json, history.json, metrics.json, loss_curve.png, model.safetensors, checkpoints/)")
    return 0


def _load_run(run_dir: str):
    """Model and config of a run: the final model file, else (interrupted run) the latest checkpoint."""
    from . import io
    cfg = _read_config(run_dir)
    final = os.path.join(run_dir, "model.safetensors")
    if os.path.exists(final):
        return io.load_model(final), cfg
    model = _build_model(cfg, cfg["n_features"], cfg["n_classes"])
    model.load_state_dict(load_checkpoint(os.path.join(run_dir, "checkpoints"))["model"])
    return model, cfg


def configure_evaluate(p) -> None:
    p.description = "Evaluate a trained run on its test split (or on a labelled CSV)."
    p.epilog = """examples:
  chainrule evaluate runs/digits-mlp-20250101-120000
  chainrule evaluate runs/mine --data csv:new_labelled.csv"""
    p.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by chainrule train")
    p.add_argument("--data", help="csv:PATH with the training target column (default: the run's test split)")


def run_evaluate(args) -> int:
    from . import datasets
    model, cfg = _load_run(args.run_dir)
    if args.data:
        if not args.data.startswith("csv:"):
            raise ValueError(f"--data must be csv:PATH for evaluate, got {args.data!r}")
        path = args.data[4:]
        target = cfg["target"] or ([c for c in datasets._read_csv(path)[0] if c not in cfg["feature_names"]] or [None])[0]
        if target is None:
            raise ValueError(f"{path}: no target column besides the features {cfg['feature_names']}")
        X = datasets.read_csv_features(path, cfg["feature_names"])
        header, body = datasets._read_csv(path)
        labels = [r[header.index(target)].strip() for r in body]
        index = {name: k for k, name in enumerate(cfg["target_names"])}
        unknown = sorted(set(labels) - set(index))
        if unknown:
            raise ValueError(f"{path}: labels {unknown[:5]} were not seen in training (classes {cfg['target_names']})")
        data = (_standardize(X, cfg["scaler"]), np.array([index[v] for v in labels], np.int64))
        where = path
    else:
        _, _, _, _, data = _prepare(cfg)
        where = f"the {cfg['data']} test split"
    res = evaluate(model, _loss_for(model), data)
    print(f"accuracy {res['accuracy']:.4f}  loss {res['loss']:.4f}  ({len(data[1])} samples of {where})")
    return 0


def configure_predict(p) -> None:
    p.description = "Predict classes for the rows of a CSV with a trained run; writes CSV to stdout."
    p.epilog = """examples:
  chainrule predict runs/mine --data csv:new.csv > predictions.csv
  chainrule predict runs/mine --data csv:new.csv --proba

The CSV needs the training feature columns (by name, any order); other columns are ignored."""
    p.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by chainrule train")
    p.add_argument("--data", required=True, help="csv:PATH of the rows to predict")
    p.add_argument("--proba", action="store_true", help="add one probability column per class")


def run_predict(args) -> int:
    import csv

    from . import datasets
    if not args.data.startswith("csv:"):
        raise ValueError(f"--data must be csv:PATH, got {args.data!r}")
    model, cfg = _load_run(args.run_dir)
    X = _standardize(datasets.read_csv_features(args.data[4:], cfg["feature_names"]), cfg["scaler"])
    proba = np.asarray(model.predict_proba(X), np.float64)
    if proba.ndim == 1:  # binary logistic regression: P(y = 1)
        proba = np.stack([1.0 - proba, proba], axis=1)
    names = cfg["target_names"]
    w = csv.writer(sys.stdout, lineterminator="\n")
    try:
        w.writerow(["prediction"] + ([f"p_{n}" for n in names] if args.proba else []))
        for row in proba:
            w.writerow([names[int(row.argmax())]] + ([f"{v:.6g}" for v in row] if args.proba else []))
        sys.stdout.flush()
    except BrokenPipeError:  # `chainrule predict ... | head`: the reader left; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
