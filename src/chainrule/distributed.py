"""Data-parallel training across processes and machines on MPI.

Every rank holds a full replica of the model. Rank 0's parameters and optimizer state are
broadcast at the start; each global batch of ``B`` examples is split into disjoint shards, one per
rank; after backward the gradients are averaged with ``Allreduce`` on flat buffers, a few buckets
per step rather than one call per parameter; then every rank takes the same optimizer step, so the
replicas stay bit-for-bit identical without ever sending weights again.

Exactness. Rank ``r`` computes the gradient of the *mean* loss over its ``n_r`` examples. Scaling
it by ``n_r / B`` before summing gives ``(1/B) sum_i grad l_i``: the gradient of the mean loss over
the global batch, for any split, including an uneven last batch and an empty shard (``n_r = 0``).
So a K-rank run with global batch ``B`` follows the same trajectory as a 1-rank run with batch ``B``
up to floating-point summation order (tested with SGD, momentum and Adam, with and without L2).

Launch::

    pip install "chainrule[distributed]"       # mpi4py + the mpich wheel: mpiexec comes with pip
    mpiexec -n 4 python train.py                # or: mpiexec -n 4 python -m chainrule.distributed train ...

Without ``mpiexec`` (or without mpi4py installed) everything here still works as world size 1,
and ``import chainrule`` never imports mpi4py: it is imported lazily by :func:`init`.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from .tensor import Tensor, manual_seed

__all__ = [
    "init", "rank", "world_size", "is_main", "is_initialized", "barrier", "abort", "require_mpi",
    "allreduce", "broadcast_object", "broadcast_parameters", "broadcast_optimizer",
    "DistributedSampler", "GradientAllreducer", "guard", "fit", "evaluate", "save_checkpoint", "load_checkpoint",
    "INSTALL_HINT",
]

INSTALL_HINT = 'pip install "chainrule[distributed]"   (installs mpi4py and the mpich wheel, which provides mpiexec)'

# Environment variables that MPI launchers set in every process they start. Their presence means
# "we were started by mpiexec/srun", so MPI must be initialised; their absence lets a plain
# `python script.py` run as world size 1 without touching mpi4py at all.
_LAUNCHER_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS", "MV2_COMM_WORLD_SIZE")
_LAUNCHER_ANY_VARS = _LAUNCHER_SIZE_VARS + ("PMI_RANK", "PMIX_RANK", "OMPI_COMM_WORLD_RANK", "HYDRA_CONTROL_FD")

_comm: Any = None          # an mpi4py communicator, or None when running as a single process
_initialized = False


# ----- process group ---------------------------------------------------------------------------------

def _launched_by_mpi() -> bool:
    return any(v in os.environ for v in _LAUNCHER_ANY_VARS)


def _launcher_size() -> int:
    for v in _LAUNCHER_SIZE_VARS:
        with contextlib.suppress(KeyError, ValueError):
            return int(os.environ[v])
    return 1


def require_mpi() -> Any:
    """Import and return ``mpi4py.MPI``, or raise an ImportError that says exactly what to install."""
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError(f"distributed training needs mpi4py, which is not installed ({e}). Install it with: "
                          f"{INSTALL_HINT}") from None
    return MPI


def init(backend: str = "auto", comm: Any = None) -> int:
    """Join the process group and return this process's rank. Idempotent.

    ``backend="auto"`` uses MPI when the process was started by an MPI launcher (``mpiexec``,
    ``srun``) and is a single process (world size 1) otherwise, even when mpi4py is not installed.
    ``backend="mpi"`` always initialises MPI (a singleton MPI run without a launcher);
    ``backend="single"`` never does. ``comm`` selects a sub-communicator (default ``COMM_WORLD``).
    """
    global _comm, _initialized
    if backend not in ("auto", "mpi", "single"):
        raise ValueError(f"init: backend must be 'auto', 'mpi' or 'single', got {backend!r}")
    if _initialized and comm is None:
        return rank()
    if comm is not None:
        _comm = comm
    elif backend == "mpi" or (backend == "auto" and _launched_by_mpi()):
        try:
            MPI = require_mpi()
        except ImportError:
            if backend == "auto" and _launcher_size() <= 1:
                _comm = None   # `mpiexec -n 1` without mpi4py: nothing to communicate, run alone
            else:
                raise
        else:
            _comm = MPI.COMM_WORLD
    else:
        _comm = None
    _initialized = True
    return rank()


def is_initialized() -> bool:
    return _initialized


def _get_comm() -> Any:
    if not _initialized:
        init()
    return _comm


def rank() -> int:
    """This process's rank, 0..world_size()-1 (0 for a single process)."""
    c = _get_comm()
    return 0 if c is None else c.Get_rank()


def world_size() -> int:
    """Number of processes training together (1 without ``mpiexec``)."""
    c = _get_comm()
    return 1 if c is None else c.Get_size()


def is_main() -> bool:
    """True on rank 0, the one that prints, writes checkpoints and saves the final model."""
    return rank() == 0


def barrier() -> None:
    c = _get_comm()
    if c is not None and c.Get_size() > 1:
        c.Barrier()


def abort(message: str | None = None, code: int = 1) -> None:
    """Print ``rank r: message`` to stderr and end the whole job (every rank), not just this one.

    A bare ``sys.exit`` on one rank would leave the others blocked forever in their next
    collective; ``MPI_Abort`` makes the launcher kill them, so ``mpiexec`` exits promptly.
    """
    if message:
        print(f"rank {rank()}: {message}", file=sys.stderr, flush=True)
    sys.stdout.flush()
    c = _get_comm()
    if c is not None and c.Get_size() > 1:
        c.Abort(code)
    raise SystemExit(code)


@contextlib.contextmanager
def guard() -> Iterator[None]:
    """Turn an exception on any rank into an abort of the whole job with that rank's message.

    With one process the exception propagates unchanged (a normal traceback). With several, the
    failing rank prints its traceback and ``rank r: <Error>: <message>`` to stderr and calls
    ``Abort(1)``; the launcher then ends every rank, so no ``mpiexec`` hangs on a dead peer.
    """
    try:
        yield
    except BaseException as e:  # noqa: BLE001 - KeyboardInterrupt must abort the job too
        if world_size() <= 1 or (isinstance(e, SystemExit) and not e.code):
            raise
        traceback.print_exc(file=sys.stderr)
        abort(f"{type(e).__name__}: {e}", code=1)


# ----- collectives ------------------------------------------------------------------------------------

def allreduce(x, op: str = "sum") -> np.ndarray:
    """Element-wise reduction of an array (or scalar) over all ranks; returns a new ndarray.

    For small things such as metric sums; gradients go through :class:`GradientAllreducer`.
    """
    if op not in ("sum", "max", "min"):
        raise ValueError(f"allreduce: op must be 'sum', 'max' or 'min', got {op!r}")
    a = np.asarray(x)
    a = np.array(a, dtype=np.int64 if a.dtype.kind in "iub" else np.float64)  # metrics: sum in 64 bits
    c = _get_comm()
    if c is None or c.Get_size() == 1:
        return a
    MPI = require_mpi()
    out = np.empty_like(a)
    c.Allreduce(np.ascontiguousarray(a), out, op={"sum": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}[op])
    return out


def broadcast_object(obj: Any, root: int = 0) -> Any:
    """Rank ``root``'s Python object on every rank (pickled; for one-off state, not per-step data)."""
    c = _get_comm()
    return obj if c is None or c.Get_size() == 1 else c.bcast(obj, root=root)


def _params(model_or_params) -> list[Tensor]:
    ps = model_or_params.parameters() if hasattr(model_or_params, "parameters") else model_or_params
    return list(ps)


def broadcast_parameters(model_or_params, root: int = 0) -> None:
    """Overwrite every rank's parameters, in place, with rank ``root``'s (one Bcast per dtype bucket)."""
    c = _get_comm()
    if c is None or c.Get_size() == 1:
        return
    for bucket in _Bucket.make(_params(model_or_params), with_grad=False):
        if c.Get_rank() == root:
            bucket.pack_data()
        c.Bcast(bucket.buf, root=root)
        bucket.unpack_data()


def broadcast_optimizer(optimizer, root: int = 0) -> None:
    """Give every rank rank ``root``'s optimizer state (moments, step counts, hyperparameters)."""
    if world_size() == 1 or not hasattr(optimizer, "state_dict"):
        return
    state = broadcast_object(optimizer.state_dict() if rank() == root else None, root=root)
    if rank() != root:
        optimizer.load_state_dict(state)


class _Bucket:
    """A flat contiguous buffer that holds a run of same-dtype parameters, so one collective moves
    many tensors. Offsets are fixed at construction: no per-step allocation."""

    def __init__(self, params: list[Tensor], dtype: np.dtype):
        self.params, self.dtype = params, dtype
        self.sizes = [p.data.size for p in params]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(int)
        self.buf = np.empty(int(self.offsets[-1]), dtype=dtype)

    @staticmethod
    def make(params: list[Tensor], bucket_bytes: int = 4 << 20, with_grad: bool = True) -> list[_Bucket]:
        buckets, cur, cur_bytes, cur_dtype = [], [], 0, None
        for p in params:
            if with_grad and not p.requires_grad:
                continue
            dt = np.dtype(p.data.dtype)
            if cur and (dt != cur_dtype or cur_bytes + p.data.nbytes > bucket_bytes):
                buckets.append(_Bucket(cur, cur_dtype))
                cur, cur_bytes = [], 0
            cur.append(p); cur_bytes += p.data.nbytes; cur_dtype = dt
        if cur:
            buckets.append(_Bucket(cur, cur_dtype))
        return buckets

    def _views(self):
        for p, lo, hi in zip(self.params, self.offsets[:-1], self.offsets[1:]):
            yield p, self.buf[lo:hi]

    def pack_data(self) -> None:
        for p, v in self._views():
            v[...] = p.data.reshape(-1)

    def unpack_data(self) -> None:
        for p, v in self._views():
            p.data[...] = v.reshape(p.data.shape)

    def pack_grads(self, weight: float) -> None:
        w = self.dtype.type(weight)   # a float64 weight must not upcast (or re-round) float32 grads
        for p, v in self._views():
            if p.grad is None:
                v[...] = 0
            else:
                np.multiply(p.grad.data.reshape(-1), w, out=v)

    def unpack_grads(self) -> None:
        for p, v in self._views():
            g = v.reshape(p.data.shape)
            if p.grad is None or p.grad._ctx is not None or not p.grad.data.flags.writeable or p.grad.data.shape != g.shape:
                p.grad = Tensor(g.copy())
            else:
                p.grad.data[...] = g


class GradientAllreducer:
    """Averages gradients over ranks after ``backward()``, weighted by each rank's share of the batch.

    ``reduce(n_local, n_global)`` sets every ``p.grad`` to ``sum_r (n_r / n_global) grad_r``. With
    ``grad_r`` the gradient of the mean loss over rank r's shard, that is exactly the gradient of
    the mean loss over the global batch. Parameters are packed into flat buffers of at most
    ``bucket_bytes`` (one dtype per bucket: float32 models reduce float32, float64 models float64),
    and each bucket is one in-place ``Allreduce`` on a NumPy buffer (mpi4py's fast uppercase API).

    ``comm_seconds`` accumulates the time spent in Allreduce, ``calls`` the number of collectives.
    """

    def __init__(self, model_or_params, bucket_bytes: int = 4 << 20):
        if bucket_bytes <= 0:
            raise ValueError(f"GradientAllreducer: bucket_bytes must be > 0, got {bucket_bytes}")
        self.params = _params(model_or_params)
        self.buckets = _Bucket.make(self.params, bucket_bytes)
        self.comm_seconds = 0.0
        self.calls = 0

    def reduce(self, n_local: int, n_global: int) -> None:
        c = _get_comm()
        if c is None or c.Get_size() == 1:
            return
        if n_global <= 0:
            raise ValueError(f"GradientAllreducer.reduce: n_global must be > 0, got {n_global}")
        MPI = require_mpi()
        weight = n_local / n_global
        for b in self.buckets:
            b.pack_grads(weight)
            t0 = time.perf_counter()
            c.Allreduce(MPI.IN_PLACE, b.buf, op=MPI.SUM)
            self.comm_seconds += time.perf_counter() - t0
            self.calls += 1
            b.unpack_grads()


# ----- data ---------------------------------------------------------------------------------------------

class DistributedSampler:
    """Splits each global batch of ``batch_size`` examples into disjoint per-rank shards.

    Every rank draws the same permutation (seeded by ``(seed, epoch)``, independent of the number of
    ranks), cuts it into global batches of ``batch_size``, and takes its contiguous slice of each
    batch (``np.array_split``: shard sizes differ by at most one, an uneven last batch included).
    The union of the shards of a global batch is exactly the batch a 1-rank run sees, so the
    trajectory does not depend on the number of ranks, and a checkpoint taken after global step
    ``s`` resumes with any number of ranks by skipping ``s`` batches (``start_step``).
    """

    def __init__(self, n: int, batch_size: int, *, shuffle: bool = True, seed: int = 0, drop_last: bool = False,
                 rank: int | None = None, world_size: int | None = None):
        if n < 0:
            raise ValueError(f"DistributedSampler: n must be >= 0, got {n}")
        if batch_size < 1:
            raise ValueError(f"DistributedSampler: batch_size must be >= 1, got {batch_size}")
        self.n, self.batch_size, self.shuffle, self.seed, self.drop_last = n, batch_size, shuffle, seed, drop_last
        self.rank = _rank_fn() if rank is None else rank
        self.world_size = _world_size_fn() if world_size is None else world_size
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"DistributedSampler: rank must be in [0, {self.world_size}), got {self.rank}")
        self.epoch, self.start_step = 0, 0

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        """Choose the epoch's permutation; skip the first ``start_step`` global batches (resume)."""
        self.epoch, self.start_step = epoch, start_step

    def __len__(self) -> int:
        """Global batches per epoch (the same on every rank, so every rank makes the same collectives)."""
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    def permutation(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.n)
        return np.random.default_rng([self.seed, self.epoch]).permutation(self.n)

    def __iter__(self) -> Iterator[tuple[np.ndarray, int]]:
        """Yield ``(local_indices, global_batch_size)``; local_indices may be empty on some ranks."""
        perm, B = self.permutation(), self.batch_size
        for s in range(self.start_step, len(self)):
            batch = perm[s * B:(s + 1) * B]
            yield np.array_split(batch, self.world_size)[self.rank], len(batch)


_rank_fn, _world_size_fn = rank, world_size


def _take(data, idx: np.ndarray):
    """Rows ``idx`` of an array, a tuple of arrays (inputs, targets), or a dataset indexed by arrays."""
    if isinstance(data, tuple | list):
        return tuple(_take(d, idx) for d in data)
    if isinstance(data, Tensor):
        return data.data[idx]
    if isinstance(data, np.ndarray):
        return data[idx]
    try:
        return data[idx]
    except (TypeError, IndexError, KeyError):
        items = [data[int(i)] for i in idx]
        return tuple(np.stack(col) for col in zip(*items)) if items and isinstance(items[0], tuple) else np.stack(items)


def _len(data) -> int:
    if isinstance(data, tuple | list):
        n = {_len(d) for d in data}
        if len(n) != 1:
            raise ValueError(f"inputs and targets have different lengths: {sorted(n)}")
        return n.pop()
    return len(data)


def _split_xy(data):
    if isinstance(data, tuple | list) and len(data) == 2:
        return data
    if hasattr(data, "tensors") and len(data.tensors) == 2:      # a TensorDataset-like object
        return tuple(getattr(t, "data", t) for t in data.tensors)
    raise TypeError("fit: train/val must be (inputs, targets) arrays or a dataset yielding (input, target) pairs; "
                    f"got {type(data).__name__}")


# ----- checkpoints --------------------------------------------------------------------------------------

CHECKPOINT_NAME = "checkpoint.pkl"


def _model_state(model) -> dict:
    if hasattr(model, "state_dict"):
        return {k: np.array(getattr(v, "data", v), copy=True) for k, v in model.state_dict().items()}
    return {str(i): p.data.copy() for i, p in enumerate(_params(model))}


def _load_model_state(model, state: dict) -> None:
    if hasattr(model, "load_state_dict"):
        model.load_state_dict(state)
        return
    for i, p in enumerate(_params(model)):
        p.data[...] = state[str(i)]


def save_checkpoint(path: str | os.PathLike, model, optimizer, progress: dict) -> None:
    """Write model + optimizer state + progress atomically (temp file, fsync, rename).

    A rank that dies mid-write leaves the previous checkpoint untouched: ``os.replace`` is atomic.
    The state is global (the same on every rank), so it resumes with any number of ranks.
    """
    state = {"format": "chainrule.distributed/1", "model": _model_state(model),
             "optimizer": optimizer.state_dict() if hasattr(optimizer, "state_dict") else None, "progress": progress}
    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: str | os.PathLike, model, optimizer) -> dict:
    """Restore model and optimizer from :func:`save_checkpoint`; return the saved progress dict."""
    with open(path, "rb") as f:
        state = pickle.load(f)
    _load_model_state(model, state["model"])
    if state.get("optimizer") is not None and hasattr(optimizer, "load_state_dict"):
        optimizer.load_state_dict(state["optimizer"])
    return state["progress"]


# ----- training -----------------------------------------------------------------------------------------

def _is_classification(out: np.ndarray, y: np.ndarray) -> bool:
    return out.ndim == 2 and out.shape[1] > 1 and y.ndim == 1 and y.dtype.kind in "iu"


def _as_input(x, dtype):
    return Tensor(np.ascontiguousarray(x, dtype=dtype) if np.asarray(x).dtype.kind == "f" else np.asarray(x))


def _model_dtype(model) -> np.dtype:
    ps = _params(model)
    return ps[0].data.dtype if ps else np.dtype(np.float32)


def evaluate(model, loss_fn: Callable, data, batch_size: int = 1024) -> dict[str, float]:
    """Loss (and accuracy for classification) over ``data``, sharded across ranks and summed with
    one Allreduce, so every rank gets the exact global mean, whatever the number of ranks."""
    from .autograd import no_grad

    x, y = _split_xy(data)
    n = _len((x, y))
    idx = np.array_split(np.arange(n), world_size())[rank()]
    dtype = _model_dtype(model)
    sums = np.zeros(3)  # loss * n, correct, n
    set_train = getattr(model, "train", None)
    was_training = getattr(model, "training", None)
    if callable(getattr(model, "eval", None)):
        model.eval()
    try:
        with no_grad():
            for lo in range(0, len(idx), batch_size):
                i = idx[lo:lo + batch_size]
                xb, yb = np.asarray(_take(x, i)), np.asarray(_take(y, i))
                out = model(_as_input(xb, dtype))
                sums[0] += float(loss_fn(out, Tensor(yb)).data) * len(i)
                if _is_classification(out.data, yb):
                    sums[1] += float((out.data.argmax(1) == yb).sum())
                else:
                    sums[1] = np.nan
                sums[2] += len(i)
    finally:
        if was_training and callable(set_train):
            set_train(True)
    total = allreduce(sums)
    metrics = {"loss": float(total[0] / total[2])}
    if not np.isnan(total[1]):
        metrics["accuracy"] = float(total[1] / total[2])
    return metrics


def _dropout_seed(seed: int, epoch: int, step: int, r: int) -> int:
    """A per-(rank, epoch, step) seed: masks differ across ranks, and a resumed run draws the same
    masks as an uninterrupted one (the seed depends only on the position in training, not on history)."""
    return int(np.random.SeedSequence([seed, r, epoch, step]).generate_state(1)[0])


def fit(model, loss_fn: Callable, optimizer, train, val=None, *, epochs: int = 1, batch_size: int = 32,
        shuffle: bool = True, seed: int = 0, drop_last: bool = False, callbacks: Iterable[Callable] = (),
        checkpoint_dir: str | os.PathLike | None = None, checkpoint_every: int | None = None,
        resume: bool = False, verbose: bool = True, bucket_bytes: int = 4 << 20,
        on_step: Callable[[int, int], None] | None = None) -> dict[str, list[float]]:
    """Data-parallel training: ``cr.fit`` over all MPI ranks. Returns the history on every rank.

    Run the same script on every rank (``mpiexec -n K python script.py``). ``batch_size`` is the
    *global* batch: each rank processes about ``batch_size / K`` examples per step, and the result
    equals a single-process run with the same ``batch_size`` (see the module docstring). With one
    process this is an ordinary training loop.

    - Start: rank 0's parameters and optimizer state are broadcast to all ranks.
    - Each step: forward/backward on the local shard, gradients averaged (weighted by shard size),
      the same optimizer step everywhere. Dropout masks are seeded by ``(seed, rank, epoch, step)``.
    - Each epoch: the training loss and the validation metrics are reduced over all ranks; only
      rank 0 prints, writes ``checkpoint_dir/checkpoint.pkl`` (atomically) and calls ``callbacks``
      as ``callback(epoch, metrics)``.
    - ``checkpoint_every=s`` also checkpoints every ``s`` global steps; ``resume=True`` continues
      from the checkpoint (rank 0 reads it and broadcasts it), with any number of ranks.
    - An exception on any rank aborts the whole job with ``rank r: <error>`` on stderr.
    - ``on_step(epoch, step)`` is called on every rank after each optimizer step (tests, profiling).
    """
    if epochs < 0:
        raise ValueError(f"fit: epochs must be >= 0, got {epochs}")
    if checkpoint_every is not None and checkpoint_every < 1:
        raise ValueError(f"fit: checkpoint_every must be >= 1, got {checkpoint_every}")
    if resume and checkpoint_dir is None:
        raise ValueError("fit: resume=True needs checkpoint_dir")
    init()
    with guard():
        return _fit(model, loss_fn, optimizer, train, val, epochs, batch_size, shuffle, seed, drop_last,
                    list(callbacks), checkpoint_dir, checkpoint_every, resume, verbose, bucket_bytes, on_step)


def _fit(model, loss_fn, optimizer, train, val, epochs, batch_size, shuffle, seed, drop_last, callbacks,
         checkpoint_dir, checkpoint_every, resume, verbose, bucket_bytes, on_step):
    r, K, main = rank(), world_size(), is_main()
    x, y = _split_xy(train)
    n = _len((x, y))
    dtype = _model_dtype(model)
    history: dict[str, list[float]] = {}
    progress = {"epoch": 0, "step": 0, "global_step": 0, "history": history, "seed": seed, "batch_size": batch_size}

    ckpt = os.path.join(os.fspath(checkpoint_dir), CHECKPOINT_NAME) if checkpoint_dir is not None else None
    if main and ckpt:
        os.makedirs(os.fspath(checkpoint_dir), exist_ok=True)
    if resume:
        found = broadcast_object(main and os.path.exists(ckpt))
        if found:
            if main:
                progress = load_checkpoint(ckpt, model, optimizer)
            progress = broadcast_object(progress)
            history = progress["history"]
            if progress.get("batch_size") != batch_size:
                raise ValueError(f"fit: resuming a run with batch_size={progress.get('batch_size')} "
                                 f"with batch_size={batch_size}; the global batch must match")
            if main and verbose:
                print(f"resumed from {ckpt} at epoch {progress['epoch'] + 1} step {progress['step']} "
                      f"with {K} rank(s)", flush=True)
    broadcast_parameters(model)
    broadcast_optimizer(optimizer)

    reducer = GradientAllreducer(model, bucket_bytes)
    sampler = DistributedSampler(n, batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last, rank=r, world_size=K)

    def checkpoint(epoch, step):
        if main and ckpt:
            save_checkpoint(ckpt, model, optimizer, dict(progress, epoch=epoch, step=step, history=history))

    if callable(getattr(model, "train", None)):
        model.train()
    for epoch in range(progress["epoch"], epochs):
        start = progress["step"] if epoch == progress["epoch"] else 0
        sampler.set_epoch(epoch, start)
        sums, t0 = np.zeros(2), time.perf_counter()
        for step, (idx, n_global) in enumerate(sampler, start=start):
            optimizer.zero_grad()
            if len(idx):
                manual_seed(_dropout_seed(seed, epoch, step, r))
                loss = loss_fn(model(_as_input(_take(x, idx), dtype)), Tensor(np.asarray(_take(y, idx))))
                loss.backward()
                sums += (float(loss.data) * len(idx), len(idx))
            reducer.reduce(len(idx), n_global)
            optimizer.step()
            progress["global_step"] += 1
            if on_step is not None:
                on_step(epoch, step + 1)
            if checkpoint_every and (step + 1) % checkpoint_every == 0 and step + 1 < len(sampler):
                checkpoint(epoch, step + 1)
        total = allreduce(sums)
        metrics = {"loss": float(total[0] / total[1]) if total[1] else float("nan")}
        if val is not None:
            metrics.update({f"val_{k}": v for k, v in evaluate(model, loss_fn, val).items()})
            if callable(getattr(model, "train", None)):
                model.train()
        metrics["examples_per_s"] = float(total[1]) / max(time.perf_counter() - t0, 1e-12)
        for k, v in metrics.items():
            history.setdefault(k, []).append(v)
        progress.update(epoch=epoch + 1, step=0)
        checkpoint(epoch + 1, 0)
        if main:
            if verbose:
                print(f"epoch {epoch + 1}/{epochs} " + " ".join(f"{k}={v:.4g}" for k, v in metrics.items())
                      + f" ranks={K}", flush=True)
            for cb in callbacks:
                cb(epoch, metrics)
    return history

