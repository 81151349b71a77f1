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
    mpiexec -n 4 python train.py                # your script, calling cr.distributed.fit
    mpiexec -n 4 chainrule train --distributed --data mnist1d ...          # the `chainrule train` CLI
    mpiexec -n 4 python -m chainrule.distributed train --data mnist1d ...  # the same

Without ``mpiexec`` (or without mpi4py installed) everything here still works as world size 1,
and ``import chainrule`` never imports mpi4py: it is imported lazily by :func:`init`.
"""

from .comm import (INSTALL_HINT, DistributedSampler, GradientAllreducer, abort, allreduce, barrier, broadcast_object,
                   broadcast_optimizer, broadcast_parameters, guard, init, is_initialized, is_main, rank, require_mpi,
                   shard_bounds, world_size)
from .trainer import DistributedTrainer, _dropout_seed, allgather_object, check_consistent, evaluate, fit

__all__ = [
    "init", "rank", "world_size", "is_main", "is_initialized", "barrier", "abort", "require_mpi",
    "allreduce", "broadcast_object", "broadcast_parameters", "broadcast_optimizer",
    "DistributedSampler", "GradientAllreducer", "DistributedTrainer", "guard", "fit", "evaluate", "shard_bounds",
    "allgather_object", "check_consistent",
    "INSTALL_HINT",
]
