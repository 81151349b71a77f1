"""Callbacks of the fit loop: early stopping, checkpoints, learning-rate schedules, progress lines.

A callback overrides the hooks it needs; the :class:`~chainrule.train.Trainer` calls them in order.
Callbacks that carry state across epochs implement ``state_dict``/``load_state_dict`` (values: JSON
types and ndarrays), so that a resumed run behaves exactly like an uninterrupted one.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from .checkpoint import clean, list_checkpoints
from .creation import as_ndarray

__all__ = ["Callback", "EarlyStopping", "LRSchedulerCallback", "Checkpoint", "Printer"]


class Callback:
    """Base class: override the hooks you need. ``self.trainer`` is set before ``on_train_begin``.

    Stop training by returning True from ``on_epoch_end`` or setting ``self.trainer.stop_training``.
    """

    trainer: Any  # a chainrule.train.Trainer (a layer above: not imported here)

    def set_trainer(self, trainer: Any) -> None:
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

    ``mode='auto'`` maximises monitors with ``acc`` or ``r2`` in the name and minimises the rest.
    After training, ``stopped_epoch`` is the epoch it stopped at (0: it did not stop) and
    ``restored_epoch`` the epoch whose weights the model holds (0: the last epoch's).
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0, mode: str = "auto",
                 restore_best: bool = True):
        if patience < 0:
            raise ValueError(f"EarlyStopping: patience must be >= 0, got {patience}")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"EarlyStopping: mode must be 'auto', 'min' or 'max', got {mode!r}")
        self.monitor, self.patience, self.restore_best = monitor, int(patience), restore_best
        self.min_delta = abs(float(min_delta))
        self.mode = ("max" if "acc" in monitor or "r2" in monitor else "min") if mode == "auto" else mode
        self._reset()

    def _reset(self) -> None:
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch, self.wait, self.stopped_epoch, self.restored_epoch = 0, 0, 0, 0
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
                self.best_weights = {k: np.array(as_ndarray(v)) for k, v in self.trainer.model.state_dict().items()}
            return False
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            return True
        return False

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.restore_best and self.best_weights is not None:
            self.trainer.model.load_state_dict(self.best_weights)
            self.restored_epoch = self.best_epoch

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait,
                "stopped_epoch": self.stopped_epoch, "best_weights": self.best_weights}

    def load_state_dict(self, state: dict) -> None:
        w = state["best_weights"]
        if w is not None and not (isinstance(w, dict) and all(isinstance(v, np.ndarray) for v in w.values())):
            raise ValueError(f"EarlyStopping: best_weights must map names to arrays, got {type(w).__name__}")
        self.best, self.best_epoch, self.wait = float(state["best"]), int(state["best_epoch"]), int(state["wait"])
        self.stopped_epoch, self.best_weights = int(state["stopped_epoch"]), w


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
    keeping the newest ``keep`` files (``None`` keeps all). At the start it removes temporaries
    that a killed run left behind."""

    def __init__(self, dir: str | os.PathLike, every: int = 1, keep: int | None = 2):  # noqa: A002
        if every < 1:
            raise ValueError(f"Checkpoint: every must be >= 1, got {every}")
        self.dir, self.every, self.keep = os.fspath(dir), int(every), keep

    def on_train_begin(self, logs: dict | None = None) -> None:
        clean(self.dir)

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        if epoch % self.every == 0 or epoch == self.trainer.target_epochs or self.trainer.stop_training:
            self.trainer.save_checkpoint(self.dir)
            if self.keep:
                for old in list_checkpoints(self.dir)[:-self.keep]:
                    os.remove(old)


class Printer(Callback):
    """One line per epoch on stdout (the CLI's progress when there is no terminal for tqdm)."""

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        parts = [f"{k} {v:.4f}" if isinstance(v, float) and k not in ("lr", "time") else None for k, v in logs.items()]
        body = "  ".join(p for p in parts if p)
        print(f"epoch {epoch:>3}/{self.trainer.target_epochs}  {body}  lr {logs.get('lr', 0):.3g}  "
              f"{logs.get('time', 0):.2f}s", flush=True)
