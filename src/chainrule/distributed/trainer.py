"""Data-parallel training: :class:`DistributedTrainer` is :class:`chainrule.train.Trainer` with
each rank computing its slice of every global batch and gradients averaged over ranks."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from .. import train as T
from ..callbacks import Printer
from ..creation import manual_seed
from ..data import DataLoader
from ..metrics import metric
from ..tensor import Tensor
from .comm import (
    GradientAllreducer,
    _get_comm,
    allreduce,
    broadcast_object,
    broadcast_optimizer,
    broadcast_parameters,
    guard,
    init,
    is_main,
    rank,
    shard_bounds,
    world_size,
)

# ----- training -----------------------------------------------------------------------------------------

def _dropout_seed(seed: int, epoch: int, step: int, r: int) -> int:
    """A per-(rank, epoch, step) seed: masks differ across ranks, and a resumed run draws the same
    masks as an uninterrupted one (the seed depends only on the position in training, not on history)."""
    return int(np.random.SeedSequence([seed, r, epoch, step]).generate_state(1)[0])


def evaluate(model, loss_fn, data, metrics: Sequence = ("accuracy",), batch_size: int = 4096) -> dict[str, float]:
    """:func:`chainrule.train.evaluate` over all ranks: each rank evaluates a disjoint slice of ``data``
    and the sums are combined with one Allreduce, so every rank gets the exact global means."""
    X, y = (data.X, data.y) if isinstance(data, DataLoader) else data
    X, y = (v._data if isinstance(v, Tensor) else v for v in (X, y))
    names = ["loss"] + [metric(m)[0] for m in metrics]
    lo, hi = shard_bounds(len(y), world_size(), rank())
    sums = np.zeros(len(names) + 1)
    if hi > lo:
        res = T.evaluate(model, loss_fn, (X[lo:hi], y[lo:hi]), metrics, batch_size)
        sums[:-1] = [res[k] * (hi - lo) for k in names]
        sums[-1] = hi - lo
    total = allreduce(sums)
    return {k: float(v / total[-1]) for k, v in zip(names, total[:-1])}


def allgather_object(obj: Any) -> list:
    """Every rank's ``obj``, as a list indexed by rank (pickled; for small start-up facts)."""
    c = _get_comm()
    return [obj] if c is None or c.Get_size() == 1 else c.allgather(obj)


def _signature(model, loader) -> dict:
    """What every rank must agree on before the first collective, or the job ends in raw MPI errors
    ("Message truncated") or trains silently on inconsistent data."""
    return {"training rows": loader.n, "feature shape": tuple(loader.X.shape[1:]), "feature dtype": str(loader.X.dtype),
            "target dtype": None if loader.y is None else str(loader.y.dtype),
            "parameter count": sum(p.numel() for p in model.parameters()),
            "parameter shapes": [tuple(p.shape) for p in model.parameters()],
            "parameter dtypes": sorted({str(p.dtype) for p in model.parameters()}),
            "batch size": loader.batch_size, "batches per epoch": len(loader)}


def check_consistent(model, loader) -> None:
    """Compare :func:`_signature` across ranks; rank 0 raises a ValueError naming the first field
    that differs and each rank's value (the others are then ended by the abort)."""
    sigs = allgather_object(_signature(model, loader))
    for key in sigs[0]:
        values = [s[key] for s in sigs]
        if any(v != values[0] for v in values) and is_main():
            shown = ", ".join(f"rank {r}: {v!r:.60}" for r, v in enumerate(values))
            raise ValueError(f"distributed fit: the ranks disagree on the {key} ({shown}); every rank must build "
                             "the same model and hold the same full training set (each trains on its slice of "
                             "every global batch)")


class DistributedTrainer(T.Trainer):
    """``cr.train.Trainer`` with data parallelism: same callbacks, history and checkpoint files.

    Differences from the single-process Trainer, all in overridden methods:
    ``_step`` averages gradients over ranks between ``backward()`` and ``optimizer.step()``;
    ``_run_epoch`` feeds each rank its shard of every global batch and reduces the metrics;
    ``fit`` checks that the ranks agree (data, model, schedule), broadcasts rank 0's state (or its
    checkpoint on resume), evaluates on shards, and makes the stop decision global;
    ``save_checkpoint`` writes on rank 0 only.
    """

    def __init__(self, *args, bucket_bytes: int = 4 << 20, **kwargs):
        init()
        super().__init__(*args, **kwargs)
        if T.closure_kind(self.optimizer) is not None:
            raise ValueError(f"distributed fit: {type(self.optimizer).__name__} re-evaluates the loss in "
                             "step(closure) (line search), which needs a globally reduced loss; use a first-order "
                             "optimizer (SGD, Adam, ...) for data-parallel training")
        if not is_main():   # one voice: rank 0 prints, shows the bar and writes the files
            self.callbacks = [cb for cb in self.callbacks if not isinstance(cb, T.Checkpoint | Printer)]
            self.progress = False
        self.reducer = GradientAllreducer(self.model, bucket_bytes)
        self._n_global, self._seed = 0, 0

    def fit(self, *args, **kwargs) -> T.History:
        with guard():
            return super().fit(*args, **kwargs)

    def _step(self, xb, yb):
        n_local = len(yb)
        self.optimizer.zero_grad()
        loss_value, out = float("nan"), None
        if n_local:   # an empty shard (last batch smaller than K) contributes a zero gradient
            loss, out = self._objective(xb, yb)
            loss.backward()
            loss_value = float(loss._data)
        self.reducer.reduce(n_local, self._n_global)
        self.optimizer.step()
        return loss_value, out

    def _run_epoch(self, loader):
        r, k = rank(), world_size()
        names = ["loss"] + [n for n, _ in self.metrics]
        sums = np.zeros(len(names) + 1)
        self.model.train()
        for b, (xb, yb) in enumerate(loader):       # the global batch, identical on every rank
            self._n_global = n_global = len(yb)
            lo, hi = shard_bounds(n_global, k, r)
            xl, yl = Tensor(xb._data[lo:hi]), Tensor(yb._data[lo:hi])
            manual_seed(_dropout_seed(self._seed, self.epoch, b, r))
            loss, out = self._step(xl, yl)
            if hi > lo:
                if not np.isfinite(loss):
                    raise FloatingPointError(f"the loss became {loss} at epoch {self.epoch + 1}, batch {b}: "
                                             "lower the learning rate or scale the inputs")
                sums[0] += loss * (hi - lo)
                for j, (_, f) in enumerate(self.metrics, start=1):
                    sums[j] += f(out, yl) * (hi - lo)
                sums[-1] += hi - lo
            for cb in self.callbacks:
                cb.on_batch_end(b, {"loss": loss})
        total = allreduce(sums)
        return {n: float(v / total[-1]) for n, v in zip(names, total[:-1])}

    def save_checkpoint(self, directory):
        return super().save_checkpoint(directory) if is_main() else ""

    # The epoch loop is Trainer.fit's; these are its seams.
    def _make_loader(self, train, batch_size, seed):
        loader = T._loader(train, batch_size, True, seed)
        check_consistent(self.model, loader)
        # Same shuffling on every rank: rank 0's loader seed and generator state win.
        loader.load_state_dict(broadcast_object(loader.state_dict()))
        self._seed = loader.seed
        return loader

    def _read_checkpoint(self, resume):
        # Rank 0 reads the checkpoint (it need not exist on other hosts) and sends it to all.
        state, path = broadcast_object(super()._read_checkpoint(resume) if is_main() else None)
        if is_main() and any(isinstance(c, Printer) for c in self.callbacks):
            print(f"resumed from {path} at epoch {state['epoch']} with {world_size()} rank(s)", flush=True)
        return state, path

    def _sync_replicas(self):
        broadcast_parameters(self.model)
        broadcast_optimizer(self.optimizer)

    def _evaluate(self, val_data, metric_names):
        return evaluate(self.model, self.loss_fn, val_data, metric_names)

    def _agree_to_stop(self, stop):
        # Every rank must leave the loop together, or the others wait forever in Allreduce.
        return bool(allreduce(int(stop), "max"))


T.PARALLEL["mpi"] = DistributedTrainer  # cr.fit(..., distributed=True)


def fit(model, loss_fn, optimizer, train, val=None, epochs: int = 10, batch_size: int | None = 32, scheduler=None,
        metrics: Sequence = ("accuracy",), callbacks: Iterable = (), progress: bool = True,
        resume: str | os.PathLike | None = None, checkpoint_dir: str | os.PathLike | None = None,
        seed: int | None = None, penalty: Callable[[], Any] | None = None, verbose: bool = False,
        *, bucket_bytes: int = 4 << 20):
    """:func:`chainrule.fit`, data-parallel over all MPI ranks (same arguments, same History, same
    checkpoint files). Run the same script on every rank: ``mpiexec -n K python script.py``.

    ``batch_size`` is the *global* batch: every rank iterates the same shuffled batches (rank 0's
    loader seed is broadcast), computes forward/backward on its contiguous ``~batch_size/K`` slice,
    and gradients are averaged weighted by slice size, so the weights follow a 1-process
    ``cr.fit(..., batch_size=batch_size)`` up to float rounding (without dropout).

    - Start: the ranks must agree on the training rows, feature shape and dtype, the parameters'
      count, shapes and dtypes, and the batch schedule (a ValueError names the first difference).
      Rank 0's parameters and optimizer state (or, with ``resume``, the checkpoint rank 0 reads)
      are then broadcast. Checkpoints hold no per-rank state: a run checkpointed with K ranks
      resumes with any number of ranks, or with plain ``cr.fit``.
    - Metrics (training and validation) are reduced over ranks; every rank gets the same History.
    - Rank 0 alone prints (``verbose``), shows the progress bar and writes checkpoints. Other
      callbacks run on every rank, so early-stopping decisions agree; guard your own side effects
      with :func:`is_main`.
    - Dropout masks are seeded by ``(seed, rank, epoch, batch)``: different per rank, reproducible,
      and the same after a resume.
    - An exception on any rank aborts the job with ``rank r: <error>`` on stderr (see :func:`guard`).

    With one process (no ``mpiexec``) this is ``cr.fit`` with per-batch dropout seeds.
    ``bucket_bytes`` caps the size of one gradient Allreduce.
    """
    init()
    with guard():
        if checkpoint_dir is None and resume is not None:
            checkpoint_dir = resume if os.path.isdir(resume) else os.path.dirname(os.fspath(resume))
        trainer = DistributedTrainer(model, loss_fn, optimizer, scheduler, metrics, callbacks, progress, checkpoint_dir,
                                     penalty, verbose, bucket_bytes=bucket_bytes)
        return trainer.fit(train, val, epochs, batch_size, resume, seed)


