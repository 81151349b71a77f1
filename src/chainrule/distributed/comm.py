"""The process group and its collectives: rank, world size, broadcast, Allreduce on flat buckets,
the sampler that shards each global batch, and abort/guard so that a failing rank ends the job.

Without ``mpiexec`` (or without mpi4py installed) everything here works as world size 1, and
``import chainrule`` never imports mpi4py: it is imported lazily by :func:`init`.
"""


from __future__ import annotations

import contextlib
import os
import sys
import time
import traceback
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..tensor import Tensor

INSTALL_HINT = 'pip install "chainrule[distributed]"   (installs mpi4py and the mpich wheel, which provides mpiexec)'

# Environment variables that MPI launchers set in every process they start. Their presence means
# "we were started by mpiexec/srun", so MPI must be initialised; their absence lets a plain
# `python script.py` run as world size 1 without touching mpi4py at all.
_LAUNCHER_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MV2_COMM_WORLD_SIZE")
_LAUNCHER_ANY_VARS = _LAUNCHER_SIZE_VARS + ("PMI_RANK", "PMIX_RANK", "OMPI_COMM_WORLD_RANK", "MPI_LOCALNRANKS",
                                            "HYDRA_CONTROL_FD")

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
    With more than one rank, an uncaught exception anywhere in the script then aborts the whole job
    with ``rank r: <error>`` (a ``sys.excepthook``) instead of leaving the other ranks waiting.
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
    if _comm is not None and _comm.Get_size() > 1 and sys.excepthook is not _abort_excepthook:
        _install_excepthook()
    return rank()


def _install_excepthook() -> None:
    """An uncaught exception on one rank would end that process normally while its peers wait in
    their next collective forever (mpiexec hangs). After init(), such an exception aborts the job."""
    global _previous_excepthook
    _previous_excepthook = sys.excepthook
    sys.excepthook = _abort_excepthook


def _abort_excepthook(exc_type, exc, tb) -> None:
    if _previous_excepthook is not sys.__excepthook__:
        _previous_excepthook(exc_type, exc, tb)   # a user's hook: let it run, then abort
        abort(f"{exc_type.__name__}: {exc}", code=1)
    abort(f"{exc_type.__name__}: {exc}", code=1, details="".join(traceback.format_exception(exc_type, exc, tb)))


_previous_excepthook = sys.excepthook


def is_initialized() -> bool:
    """True once :func:`init` has set up the process group (always answers, even without MPI)."""
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
    """Wait until every rank reaches this point (a no-op in a world of one)."""
    c = _get_comm()
    if c is not None and c.Get_size() > 1:
        c.Barrier()


def abort(message: str | None = None, code: int = 1, details: str = "") -> None:
    """Print ``details`` (e.g. a traceback) and ``rank r: message`` to stderr and end the whole job
    (every rank), not just this one.

    A bare ``sys.exit`` on one rank would leave the others blocked forever in their next
    collective; ``MPI_Abort`` makes the launcher kill them, so ``mpiexec`` exits promptly. The text
    goes out in one write, and the rank waits a moment before aborting: the launcher forwards each
    rank's stderr through a pipe, and output still in that pipe when the job is torn down is lost.
    """
    c = _get_comm()
    if message or details:
        with contextlib.suppress(Exception):
            sys.stderr.write(details + (f"rank {rank()}: {message}\n" if message else ""))
            sys.stderr.flush()
    with contextlib.suppress(Exception):
        sys.stdout.flush()   # keep what rank 0 printed so far
    if c is not None and c.Get_size() > 1:
        time.sleep(_ABORT_GRACE_SECONDS)
        c.Abort(code)
    raise _Aborted(code)


_ABORT_GRACE_SECONDS = 0.5


class _Aborted(SystemExit):
    """The exit :func:`abort` raises after its message is out. MPICH's ``MPI_Abort`` can return
    before the launcher kills the rank (seen under load), and :func:`guard` must then let this
    exit through instead of reporting it as a second error with a traceback."""


@contextlib.contextmanager
def guard() -> Iterator[None]:
    """Turn an exception on any rank into an abort of the whole job with that rank's message.

    With one process the exception propagates unchanged (a normal traceback). With several, the
    failing rank prints its traceback and ``rank r: <Error>: <message>`` to stderr and calls
    ``Abort(1)``; the launcher then ends every rank, so no ``mpiexec`` hangs on a dead peer.
    """
    try:
        yield
    except _Aborted:
        raise
    except BaseException as e:  # noqa: BLE001 - KeyboardInterrupt must abort the job too
        if world_size() <= 1:  # even SystemExit(0): peers would wait forever in their next collective
            raise
        abort(f"{type(e).__name__}: {e}", code=1, details=traceback.format_exc())


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
        self.sizes = [p._data.size for p in params]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(int)
        self.buf = np.empty(int(self.offsets[-1]), dtype=dtype)

    @staticmethod
    def make(params: list[Tensor], bucket_bytes: int = 4 << 20, with_grad: bool = True) -> list[_Bucket]:
        buckets, cur, cur_bytes, cur_dtype = [], [], 0, None
        for p in params:
            if with_grad and not p.requires_grad:
                continue
            dt = np.dtype(p._data.dtype)
            if cur and (dt != cur_dtype or cur_bytes + p._data.nbytes > bucket_bytes):
                buckets.append(_Bucket(cur, cur_dtype))
                cur, cur_bytes = [], 0
            cur.append(p); cur_bytes += p._data.nbytes; cur_dtype = dt
        if cur:
            buckets.append(_Bucket(cur, cur_dtype))
        return buckets

    def _views(self):
        for p, lo, hi in zip(self.params, self.offsets[:-1], self.offsets[1:]):
            yield p, self.buf[lo:hi]

    def pack_data(self) -> None:
        for p, v in self._views():
            v[...] = p._data.reshape(-1)

    def unpack_data(self) -> None:
        for p, v in self._views():
            p._data[...] = v.reshape(p._data.shape)

    def pack_grads(self, weight: float) -> None:
        w = self.dtype.type(weight)   # a float64 weight must not upcast (or re-round) float32 grads
        for p, v in self._views():
            if p.grad is None:
                v[...] = 0
            else:
                np.multiply(p.grad._data.reshape(-1), w, out=v)

    def unpack_grads(self) -> None:
        # Each .grad becomes a view of its slice of the bucket (PyTorch DDP's gradient_as_bucket_view):
        # no copy, and never written in place into an array autograd may share between parameters.
        for p, v in self._views():
            p.grad = Tensor(v.reshape(p._data.shape))


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


def shard_bounds(n: int, k: int, r: int) -> tuple[int, int]:
    """``[lo, hi)`` of rank ``r``'s contiguous share of ``n`` items split ``k`` ways (as ``np.array_split``)."""
    base, extra = divmod(n, k)
    lo = r * base + min(r, extra)
    return lo, lo + base + (r < extra)
