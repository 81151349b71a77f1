"""The fit loop: epochs of minibatch steps, evaluation, callbacks, and checkpoints you can resume.

``fit(model, loss_fn, optimizer, train=(X, y), val=(X_val, y_val), epochs=20, batch_size=32)``
returns a :class:`History`. It is the lecture's training procedure written once:

- the data come from a :class:`~chainrule.data.DataLoader` (``batch_size=None`` is full-batch GD);
- each step runs ``closure(); optimizer.step()`` (the closure computes the loss and calls
  ``backward``); Newton's method gets ``optimizer.step(closure)`` with a closure that only returns
  the loss (Newton differentiates it twice itself), and optimizers with ``requires_closure = True``
  get ``step(closure)`` with the backward-calling closure (torch's LBFGS convention);
- evaluation runs under ``cr.no_grad()`` with ``model.eval()`` (dropout off);
- callbacks (:mod:`chainrule.callbacks`): :class:`EarlyStopping` is the lecture's early stopping,
  :class:`Checkpoint` writes everything needed to continue a run bit for bit, in the format of
  :mod:`chainrule.checkpoint`.

Data-parallel training (:mod:`chainrule.distributed`) subclasses :class:`Trainer` and overrides its
seams; it sits above this module and registers itself in :data:`PARALLEL` when imported, so that
``fit(..., distributed=True)`` needs no import upwards.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .autograd import no_grad
from .callbacks import Callback, Checkpoint, EarlyStopping, LRSchedulerCallback, Printer
from .checkpoint import check_state, latest_checkpoint, list_checkpoints, load_checkpoint, save_checkpoint
from .compile import compile as _compiled
from .creation import get_rng, manual_seed
from .data import DataLoader, check_finite
from .history import History
from .metrics import LOSSES, METRICS, accuracy, mae, metric, mse, r2

__all__ = ["fit", "evaluate", "make_optimizer", "OPTIMIZERS", "Trainer", "History", "Callback", "EarlyStopping",
           "Checkpoint", "LRSchedulerCallback", "save_checkpoint", "load_checkpoint", "latest_checkpoint",
           "list_checkpoints", "accuracy", "mse", "mae", "r2", "METRICS", "LOSSES"]

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


def closure_kind(optimizer) -> str | None:
    """How ``optimizer.step`` is called: ``'second_order'`` (Newton: ``step(closure)`` with a closure
    that only returns the loss, which Newton differentiates twice), ``'closure'`` (``requires_closure
    = True``, torch's LBFGS convention: the closure calls ``backward()``) or None (``step()``)."""
    from .optim import Newton
    if isinstance(optimizer, Newton):
        return "second_order"
    return "closure" if getattr(optimizer, "requires_closure", False) else None


def _loader(data, batch_size, shuffle, seed=None, name: str = "train") -> DataLoader:
    if isinstance(data, DataLoader):
        return data
    if isinstance(data, (tuple, list)) and len(data) == 2:
        check_finite(data[0], f"{name} X")
        check_finite(data[1], f"{name} y")
        return DataLoader(data[0], data[1], batch_size=batch_size, shuffle=shuffle, seed=seed)
    raise ValueError(f"{name} data must be an (X, y) tuple or a DataLoader, got {type(data).__name__}")


def _lr(optimizer) -> float | None:
    groups = getattr(optimizer, "param_groups", None)
    return float(groups[0]["lr"]) if groups else None


def _loss(loss_fn):
    fn = LOSSES.get(loss_fn, loss_fn) if isinstance(loss_fn, str) else loss_fn
    if not callable(fn):
        raise ValueError(f"loss_fn must be callable(output, target) or one of {sorted(LOSSES)}, got {loss_fn!r}")
    return fn


def evaluate(model, loss_fn, data, metrics: Sequence = ("accuracy",), batch_size: int = 4096) -> dict[str, float]:
    """Mean loss and metrics of ``model`` on ``data`` ((X, y) or a DataLoader), under ``no_grad`` and
    ``model.eval()``; the model's previous train/eval mode is restored afterwards."""
    loss_fn = _loss(loss_fn)
    named = [metric(m) for m in metrics]
    batches = _loader(data, batch_size, False, 0, "evaluate")
    was_training = getattr(model, "training", True)
    model.eval()
    total, sums = 0, {"loss": 0.0, **{n: 0.0 for n, _ in named}}
    try:
        with no_grad():
            for xb, yb in batches:
                out, n = model(xb), len(yb)
                sums["loss"] += float(loss_fn(out, yb)._data) * n
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
        verbose: Keras's levels: ``"auto"`` (the default) a tqdm bar per epoch when stderr is a terminal;
            0 (or False) nothing; 1 a bar per epoch everywhere (tqdm's notebook widget in Jupyter),
            left in place with the epoch's logs; 2 (or True) one line per epoch.
    """

    def __init__(self, model, loss_fn, optimizer, scheduler=None, metrics: Sequence = ("accuracy",),
                 callbacks: Iterable[Callback] = (), progress: bool = True, checkpoint_dir: str | os.PathLike | None = None,
                 penalty: Callable[[], Any] | None = None, verbose: bool | int | str = "auto", compile: bool = False):
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        # the replayed step (chainrule.compile); second-order optimizers call a closure: they run eagerly
        self.compiled = _compiled(self._first_order_step) if compile and closure_kind(optimizer) is None else None
        self.loss_fn = _loss(loss_fn)
        self.metrics = [metric(m) for m in metrics]
        self.callbacks: list[Callback] = list(callbacks)
        if scheduler is not None:
            self.callbacks.insert(0, LRSchedulerCallback(scheduler))
        level = (2 if verbose else 0) if isinstance(verbose, bool) else verbose
        if level not in ("auto", 0, 1, 2):
            raise ValueError(f"verbose must be 'auto', 0, 1 or 2 (or a bool), got {verbose!r}")
        if level == 2:
            self.callbacks.append(Printer())
        if checkpoint_dir is not None:
            self.callbacks.append(Checkpoint(checkpoint_dir))
        self.progress, self.penalty = progress and level in ("auto", 1), penalty
        self.bar_everywhere = level == 1  # not only on a terminal
        self.history = History()
        self.epoch = 0
        self.target_epochs = 0
        self.stop_training = False
        self.resumed_from: str | None = None
        self.loader: DataLoader | None = None
        for cb in self.callbacks:
            cb.set_trainer(self)

    # -- one step ------------------------------------------------------------------------------
    def _objective(self, xb, yb):
        """The batch's loss (plus the penalty) and the model's output."""
        out = self.model(xb)
        loss = self.loss_fn(out, yb)
        if self.penalty is not None:
            loss = loss + self.penalty()
        return loss, out

    def _first_order_step(self, xb, yb):
        """torch's step for first-order optimizers: zero_grad, forward, loss, backward, step."""
        self.optimizer.zero_grad()
        loss, out = self._objective(xb, yb)
        loss.backward()
        self.optimizer.step()
        return loss, out

    def _step(self, xb, yb) -> tuple[float, Any]:
        kind = closure_kind(self.optimizer)
        if kind is None:
            loss, out = (self.compiled or self._first_order_step)(xb, yb)
            return float(loss._data), out
        last: dict[str, Any] = {}

        def closure():
            if kind != "second_order":
                self.optimizer.zero_grad()
            loss, out = self._objective(xb, yb)
            if kind != "second_order":
                loss.backward()
            last["out"], last["loss"] = out, loss
            return loss

        self.optimizer.step(closure)
        return float(last["loss"]._data), last["out"]

    def _run_epoch(self, loader: DataLoader) -> dict[str, float]:
        bar = None
        if self.progress and (self.bar_everywhere or sys.stderr.isatty()):
            from tqdm.auto import tqdm
            bar = tqdm(total=len(loader), desc=f"epoch {self.epoch + 1}/{self.target_epochs}", leave=self.bar_everywhere,
                       file=sys.stderr)
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

    def load_state_dict(self, state: dict, where: str = "checkpoint") -> None:
        """Restore :meth:`state_dict`. The state is checked first (:func:`chainrule.checkpoint.check_state`),
        and a state that does not fit this model, optimizer or callbacks is a ValueError naming ``where``."""
        check_state(state, where)
        try:
            self._apply(state)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
            raise ValueError(f"{where}: the checkpoint does not fit this run ({type(e).__name__}: {e}); "
                             "build the model, optimizer and callbacks as for the run that wrote it") from None

    def _apply(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if self.loader is not None and state.get("loader") is not None:
            self.loader.load_state_dict(state["loader"])
        get_rng().bit_generator.state = state["rng"]
        self.history = History.from_dict(state["history"])
        self.epoch, self.stop_training = int(state["epoch"]), bool(state.get("stop_training", False))
        # Match callback states by class, in order: a resumed run may add or drop stateless ones.
        saved = [list(item) for item in state.get("callbacks", [])]
        for cb in self.callbacks:
            match = next((item for item in saved if item[0] == type(cb).__name__), None)
            if match is not None:
                saved.remove(match)
                cb.load_state_dict(match[1])

    def save_checkpoint(self, directory: str | os.PathLike) -> str:
        """Write ``directory/epoch-NNNN.safetensors``. A failed write (full disk, file-size limit)
        raises an OSError that names the newest checkpoint still intact."""
        path = os.path.join(directory, f"epoch-{self.epoch:04d}.safetensors")
        try:
            os.makedirs(directory, exist_ok=True)
            return save_checkpoint(self.state_dict(), path)
        except OSError as e:
            good = [p for p in list_checkpoints(directory) if p != path]
            last = f"the last good checkpoint is {good[-1]}" if good else "no earlier checkpoint exists"
            what = e.strerror or str(e)
            if e.filename is not None:  # the system's error (makedirs onto a file...): say which path
                what = f"could not write the checkpoint {path}: {what} ({e.filename})"
            raise OSError(e.errno, f"{what} (epoch {self.epoch}); {last}") from None

    # -- the loop ------------------------------------------------------------------------------
    # Seams of fit() that data-parallel training (chainrule.distributed) overrides; one process: plain.
    def _make_loader(self, train, batch_size, seed) -> DataLoader:
        return _loader(train, batch_size, True, seed)

    def _read_checkpoint(self, resume) -> tuple[dict, str]:
        """The state to resume from and the file it came from (the newest one of a directory)."""
        path = os.fspath(resume)
        if os.path.isdir(path):
            path = latest_checkpoint(path)
        return load_checkpoint(path), path

    def _sync_replicas(self) -> None:
        """Make every replica start from the same weights and optimizer state (one process: nothing)."""

    def _evaluate(self, val_data, metric_names) -> dict:
        return evaluate(self.model, self.loss_fn, val_data, metric_names)

    def _agree_to_stop(self, stop: bool) -> bool:
        return stop

    def _resume(self, resume) -> None:
        state, path = self._read_checkpoint(resume)
        self.load_state_dict(state, path)
        self.resumed_from = path

    def fit(self, train, val=None, epochs: int = 10, batch_size: int | None = 32, resume: str | os.PathLike | None = None,
            seed: int | None = None) -> History:
        """Train until ``epochs`` epochs are done in total (or a callback stops); see :func:`fit`."""
        if isinstance(epochs, bool) or int(epochs) != epochs or epochs < 0:
            raise ValueError(f"epochs must be a non-negative integer, got {epochs!r}")
        if seed is not None:
            manual_seed(seed)
        self.loader = self._make_loader(train, batch_size, seed)
        val_data = None if val is None else _loader(val, 4096, False, 0, "val")
        if resume is not None:
            self._resume(resume)
        else:
            self.stop_training = False
        self._sync_replicas()
        self.target_epochs = int(epochs)
        for cb in self.callbacks:
            cb.on_train_begin()
        while self.epoch < self.target_epochs and not self.stop_training:
            self._epoch(val_data)
        for cb in self.callbacks:
            cb.on_train_end()
        return self.history

    def _epoch(self, val_data) -> None:
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
        for cb in self.callbacks:  # every callback sees the epoch, even after one asked to stop
            if cb.on_epoch_end(self.epoch, logs):
                self.stop_training = True  # the callbacks after it (a Checkpoint) see the decision
        self.stop_training = self._agree_to_stop(self.stop_training)


# chainrule.distributed puts its Trainer subclass here when it is imported (``import chainrule`` does).
PARALLEL: dict[str, type[Trainer]] = {}


def fit(model, loss_fn, optimizer, train, val=None, epochs: int = 10, batch_size: int | None = 32, scheduler=None,
        metrics: Sequence = ("accuracy",), callbacks: Iterable[Callback] = (), progress: bool = True,
        resume: str | os.PathLike | None = None, checkpoint_dir: str | os.PathLike | None = None,
        seed: int | None = None, penalty: Callable[[], Any] | None = None, verbose: bool | int | str = "auto",
        distributed: bool = False, compile: bool = False) -> History:
    """Train ``model`` on ``train`` for ``epochs`` epochs and return the :class:`History`.

    Args:
        model: a ``cr.nn.Module`` returning logits (or predictions for regression).
        loss_fn: ``loss_fn(output, target) -> scalar Tensor`` or a name: ``'cross_entropy'``, ``'mse'``,
            ``'bce_with_logits'``.
        optimizer: a ``cr.optim`` optimizer over ``model.parameters()``. Newton gets ``step(closure)``.
        train, val: ``(X, y)`` tuples (arrays or Tensors; NaN/Inf refused naming row and column) or DataLoaders.
        batch_size: for tuple data; ``None`` is full-batch gradient descent.
        scheduler: stepped once per epoch (ReduceLROnPlateau with ``val_loss``, or ``loss`` without val).
        metrics: names (``'accuracy'``, ``'mse'``, ``'mae'``, ``'r2'``) or callables ``f(output, target) -> float``.
        callbacks: e.g. ``EarlyStopping(patience=5)``; see :class:`Callback`.
        progress: a tqdm bar per epoch when stderr is a terminal.
        resume: a checkpoint file or directory; continue that run (build model/optimizer/scheduler/
            callbacks as for the interrupted run). Checkpoints keep going to the same directory unless
            ``checkpoint_dir`` says otherwise.
        checkpoint_dir: write a checkpoint after every epoch (keeps the last two).
        seed: reseed chainrule's global generator (dropout) and seed the shuffling. Model initialisation
            happens before ``fit``: seed that with ``cr.manual_seed`` yourself.
        penalty: ``() -> scalar Tensor`` added to each step's loss (e.g. L2).
        verbose: "auto" (a bar on a terminal), 0 silent, 1 a bar per epoch everywhere, 2 one line per epoch
            (Keras's levels; True is 2, False 0).
        compile: replay each step's recorded primitives instead of running the engine (:func:`chainrule.compile`):
            the same numbers bit for bit, less Python per step; a step it cannot replay runs eagerly and says why.
            First-order optimizers only (a closure-calling optimizer runs eagerly); not with ``distributed``.
        distributed: data-parallel over the MPI ranks of ``mpiexec -n K python script.py``
            (:class:`chainrule.distributed.DistributedTrainer`; needs ``pip install "chainrule[distributed]"``).
    """
    if checkpoint_dir is None and resume is not None:
        checkpoint_dir = resume if os.path.isdir(resume) else os.path.dirname(os.fspath(resume))
    cls = PARALLEL["mpi"] if distributed else Trainer
    if compile and distributed:
        raise ValueError("fit: compile=True and distributed=True cannot be combined yet (the gradient all-reduce "
                         "runs between backward and step); drop one")
    trainer = cls(model, loss_fn, optimizer, scheduler, metrics, callbacks, progress, checkpoint_dir, penalty, verbose,
                  compile=compile)
    return trainer.fit(train, val, epochs, batch_size, resume, seed)
