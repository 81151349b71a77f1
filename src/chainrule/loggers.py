"""Training logs in the formats people already read: CSV (one row per epoch, as Lightning's CSVLogger)
and TensorBoard event files, both as fit() callbacks; and the History as a pandas DataFrame.

``cr.fit(..., callbacks=[CSVLogger("runs/x/history.csv"), TensorBoard("runs/x/tensorboard")])``.
Both start from the trainer's History, so a resumed run (``fit(resume=...)``) continues the same
CSV and the same TensorBoard curves from the checkpoint's epoch, dropping whatever the interrupted run
logged after it. In a data-parallel run only rank 0 writes.

Names. The epoch logs of :func:`chainrule.fit` are ``loss``, ``val_loss``, a metric ``m`` and
``val_m``, ``lr`` and ``time``. The CSV calls them ``train_loss``, ``val_loss``, ``train_m``,
``val_m``, ``lr``, ``time``; TensorBoard ``Loss/train``, ``Loss/val``, ``Accuracy/train``,
``Accuracy/val`` (``MSE/...``, ``MAE/...`` or the metric's own name), ``LearningRate`` and
``Time/epoch``, each at global step = epoch (1, 2, ...).
"""

from __future__ import annotations

import csv
import math
import os
import time
from collections.abc import Iterable
from typing import Any

from .history import to_dataframe
from .train import Callback, History

__all__ = ["CSVLogger", "TensorBoard", "ProgressBar", "history_to_dataframe", "from_spec"]


def _is_main() -> bool:
    from .distributed import is_main
    return is_main()


# ----- CSV ----------------------------------------------------------------------------------------
def _csv_name(key: str) -> str:
    if key in ("epoch", "lr", "time") or key.startswith("val_"):
        return key
    return f"train_{key}"


def _columns(rows: Iterable[dict]) -> list[str]:
    """epoch, the train_* columns, the val_* columns, then lr and time (first-seen order within each)."""
    seen: dict[str, None] = {}
    for r in rows:
        seen.update(dict.fromkeys(r))
    keys = list(seen)
    rank = lambda k: (0 if k == "epoch" else 3 if k == "lr" else 4 if k == "time" else 2 if k.startswith("val_") else 1)
    return sorted(keys, key=lambda k: (rank(k), keys.index(k)))


class CSVLogger(Callback):
    """Write one row per epoch to ``path``: ``epoch, train_loss, train_accuracy, ..., val_loss,
    val_accuracy, ..., lr, time`` (Lightning's CSVLogger columns). The file is rewritten from the
    trainer's history when training starts (so a resumed run keeps the epochs up to its checkpoint)
    and a row is appended and flushed after every epoch; a column that appears later rewrites the
    file with the wider header (empty cells before it)."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self.rows: list[dict] = []
        self._header: list[str] = []

    def _row(self, logs: dict) -> dict:
        return {_csv_name(k): v for k, v in logs.items()}

    def _rewrite(self) -> None:
        self._header = _columns(self.rows)
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        tmp = f"{self.path}.tmp-{os.getpid()}"
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, self._header, lineterminator="\n")
            w.writeheader()
            w.writerows(self.rows)
        os.replace(tmp, self.path)

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.rows = [self._row(e) for e in self.trainer.history.epochs]
        if _is_main():
            self._rewrite()

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        row = self._row(logs)
        self.rows.append(row)
        if not _is_main():
            return
        if set(row) - set(self._header):
            self._rewrite()
            return
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, self._header, lineterminator="\n").writerow(row)


# ----- TensorBoard --------------------------------------------------------------------------------
_TB_METRICS = {"loss": "Loss", "accuracy": "Accuracy", "mse": "MSE", "mae": "MAE"}


def _tb_scalars(logs: dict) -> dict[str, float]:
    """TensorBoard tags of one epoch's logs (finite numbers only)."""
    out: dict[str, float] = {}
    for k, v in logs.items():
        if not isinstance(v, (int, float)) or isinstance(v, bool) or k == "epoch" or not math.isfinite(v):
            continue
        if k == "lr":
            out["LearningRate"] = float(v)
        elif k == "time":
            out["Time/epoch"] = float(v)
        else:
            split, name = ("val", k[4:]) if k.startswith("val_") else ("train", k)
            out[f"{_TB_METRICS.get(name, name)}/{split}"] = float(v)
    return out


class TensorBoard(Callback):
    """Write the epoch logs as TensorBoard scalars to event files in ``log_dir`` (``tensorboard
    --logdir log_dir``): ``Loss/train``, ``Loss/val``, ``Accuracy/train``, ``Accuracy/val``,
    ``LearningRate``, ``Time/epoch``, at global step = epoch. Written with the ``tensorboard``
    package's own event writer (no TensorFlow needed; ``pip install "chainrule[logs]"``).

    When training starts from a resumed checkpoint at epoch k, a session-start event at step k + 1
    tells TensorBoard to drop anything an earlier, interrupted run logged from that step on (what
    ``torch.utils.tensorboard.SummaryWriter(purge_step=...)`` does), and the history up to k is
    written again only if the directory holds no event file yet."""

    def __init__(self, log_dir: str | os.PathLike, flush_secs: float = 10.0):
        self.log_dir, self.flush_secs = os.fspath(log_dir), float(flush_secs)
        self._writer = None

    def _event(self, step: int, **fields: Any):
        from tensorboard.compat.proto import event_pb2
        return event_pb2.Event(wall_time=time.time(), step=int(step), **fields)

    def _write(self, step: int, logs: dict) -> None:
        from tensorboard.compat.proto import summary_pb2
        values = [summary_pb2.Summary.Value(tag=t, simple_value=v) for t, v in _tb_scalars(logs).items()]
        self._writer.add_event(self._event(step, summary=summary_pb2.Summary(value=values)))

    def on_train_begin(self, logs: dict | None = None) -> None:
        if not _is_main():
            return
        try:
            from tensorboard.compat.proto import event_pb2
            from tensorboard.summary.writer.event_file_writer import EventFileWriter
        except ImportError as e:
            raise ImportError('the TensorBoard callback needs the tensorboard package: pip install "chainrule[logs]"') from e
        fresh = not (os.path.isdir(self.log_dir) and any("tfevents" in n for n in os.listdir(self.log_dir)))
        self._writer = EventFileWriter(self.log_dir, flush_secs=self.flush_secs)
        done = self.trainer.epoch
        if done:
            if fresh:  # a resumed run logging for the first time: its history so far
                for e in self.trainer.history.epochs:
                    self._write(int(e.get("epoch", 0)), e)
            self._writer.add_event(self._event(done + 1, session_log=event_pb2.SessionLog(status=event_pb2.SessionLog.START)))

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        if self._writer is not None:
            self._write(epoch, logs)
            self._writer.flush()

    def on_train_end(self, logs: dict | None = None) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


# ----- progress ----------------------------------------------------------------------------------
class ProgressBar(Callback):
    """Keras's ``verbose=1``: a tqdm bar per epoch over its batches, with the running mean batch loss
    and the ETA; when the epoch ends the bar shows the epoch's logs (validation included) and stays.
    ``tqdm.auto`` picks the notebook widget in Jupyter. ``file`` defaults to stderr; in a
    data-parallel run only rank 0 draws."""

    def __init__(self, file: Any = None, leave: bool = True):
        self.file, self.leave = file, leave
        self._bar = None
        self._sum, self._n = 0.0, 0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if not _is_main():
            return
        from tqdm.auto import tqdm
        loader = self.trainer.loader
        self._bar = tqdm(total=len(loader) if loader is not None else None, file=self.file, leave=self.leave,
                         desc=f"epoch {epoch}/{self.trainer.target_epochs}", unit="batch", dynamic_ncols=True)
        self._sum, self._n = 0.0, 0

    def on_batch_end(self, batch: int, logs: dict) -> None:
        if self._bar is not None:
            self._sum, self._n = self._sum + float(logs["loss"]), self._n + 1
            self._bar.update(1)
            self._bar.set_postfix(loss=f"{self._sum / self._n:.4f}", refresh=False)

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        if self._bar is not None:
            shown = {k: f"{v:.4f}" for k, v in logs.items() if k not in ("epoch", "lr", "time") and isinstance(v, float)}
            self._bar.set_postfix(shown, refresh=True)
            self._bar.close()
            self._bar = None


# ----- the History as a table ---------------------------------------------------------------------
def history_to_dataframe(history: History | dict | list):
    """The per-epoch logs as a ``pandas.DataFrame`` (see :meth:`History.to_pandas`); also accepts a
    History's ``to_dict()`` or the list of epoch dicts."""
    return to_dataframe(history)


# ----- the CLI's --log csv,tensorboard ------------------------------------------------------------
LOGGERS = {"csv": lambda run_dir: CSVLogger(os.path.join(run_dir, "history.csv")),
           "tensorboard": lambda run_dir: TensorBoard(os.path.join(run_dir, "tensorboard"))}


def from_spec(spec: str | Iterable[str] | None, run_dir: str | os.PathLike) -> list[Callback]:
    """The loggers named in ``spec`` ("csv,tensorboard", or a list of names) writing into
    ``run_dir``: ``history.csv`` and ``tensorboard/``. ``None`` or "" gives none."""
    names = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec or []) if s.strip()]
    unknown = [n for n in names if n not in LOGGERS]
    if unknown:
        raise ValueError(f"--log: unknown logger {', '.join(map(repr, unknown))}; choose from {', '.join(LOGGERS)} "
                         "(comma-separated, e.g. --log csv,tensorboard)")
    return [LOGGERS[n](os.fspath(run_dir)) for n in dict.fromkeys(names)]
