"""The experiments behind the findings in docs/performance.md, re-runnable: ``python bench/bench_findings.py``.

1. ``adam``: one Adam update of the 784-512-512-10 MLP's 669,706 parameters (one flat float32 array):
   chainrule's ``optim.Adam`` against a NumPy variant with the bias corrections folded into scalars (as
   PyTorch does), against ``torch.optim.Adam`` default (for-loop) and ``fused=True``. Process CPU time,
   1 thread, medians, alternating.
2. ``memory``: where the step's peak memory (tracemalloc) goes at batch 1024: live after forward, peak in
   backward. Then, at batch 128, the peak split by who allocated it: tracemalloc files NumPy's array data
   under its own domain, so a snapshot taken at the peak (inside the first layer's gradient rule, the
   last big allocation) separates array bytes from Python objects (tensors, nodes, tuples), which torch's
   profiler, counting tensor storage only, never sees; torch's fused-Adam peak (bench_memory.py) beside it.
3. ``adam_two_threads`` (``python bench/bench_findings.py --threads``, not in ``run.py``, which compares
   one thread): with two BLAS threads, the MLP step's compiled Adam update as it is, and split in halves
   over two Python threads (the kernels release the GIL). Wall time, medians.
"""

from __future__ import annotations

import gc
import math
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import workloads as W  # noqa: E402


def adam(reps: int = 40) -> str:
    import torch

    import chainrule as cr
    n = sum(a.size for a in W.init_mlp(W.MLP_SIZES))
    rng = np.random.default_rng(0)
    p0, g0 = rng.standard_normal(n, dtype=np.float32), rng.standard_normal(n, dtype=np.float32) * np.float32(1e-2)

    p = cr.tensor(p0, requires_grad=True)
    p.grad = cr.tensor(g0)
    opt = cr.optim.Adam([p], lr=1e-3)

    b1, b2, lr, eps, chunk = 0.9, 0.999, 1e-3, 1e-8, 32768
    q, m, v = p0.copy(), np.zeros(n, np.float32), np.zeros(n, np.float32)
    s = np.empty(chunk, np.float32)
    t = [0]

    def folded():  # m += (1-b1)(g-m); v = b2 v + (1-b2) g^2; p -= (lr/c1) m / (sqrt(v)/sqrt(c2) + eps)
        t[0] += 1
        step, inv_c2 = lr / (1.0 - b1 ** t[0]), 1.0 / math.sqrt(1.0 - b2 ** t[0])
        for a in range(0, n, chunk):
            b = min(a + chunk, n)
            pa, ga, ma, va, sa = q[a:b], g0[a:b], m[a:b], v[a:b], s[:b - a]
            np.subtract(ga, ma, out=sa); sa *= 1.0 - b1; ma += sa
            np.multiply(ga, ga, out=sa); sa *= 1.0 - b2; va *= b2; va += sa
            np.sqrt(va, out=sa); sa *= inv_c2; sa += eps
            np.divide(ma, sa, out=sa); sa *= step; pa -= sa

    torch.set_num_threads(1)
    tp = [torch.nn.Parameter(torch.from_numpy(p0.copy()))]
    tp[0].grad = torch.from_numpy(g0.copy())
    t_loop, t_fused = torch.optim.Adam(tp, lr=1e-3), torch.optim.Adam(tp, lr=1e-3, fused=True)
    fns = {"chainrule optim.Adam": opt.step, "NumPy, corrections folded": folded,
           "torch Adam (for-loop)": t_loop.step, "torch Adam(fused=True)": t_fused.step}
    times = {k: [] for k in fns}
    for f in fns.values():
        f()
    for _ in range(reps):
        for k, f in fns.items():
            c = time.process_time()
            f()
            times[k].append(time.process_time() - c)
    out = [f"Adam update of {n:,} float32 parameters (process CPU time, 1 thread, median of {reps}):", "",
           "| update | ms | / torch fused |", "|---|---:|---:|"]
    fused = statistics.median(times["torch Adam(fused=True)"])
    for k, ts in times.items():
        out.append(f"| {k} | {1e3 * statistics.median(ts):.2f} | {statistics.median(ts) / fused:.2f} |")
    return "\n".join(out) + "\n"


def _warm_step(batch_size: int):
    """A 784-512-512-10 MLP with Adam after two steps, gradients cleared: (model, input, labels) for
    measuring one steady-state step."""
    import chainrule as cr
    from chainrule.functional import cross_entropy
    model, params, _ = W.cr_mlp(W.MLP_SIZES, W.init_mlp(W.MLP_SIZES))
    opt = cr.optim.Adam(params, lr=1e-3)
    x, y = W.batch(batch_size, W.MLP_SIZES[0])
    xt = cr.tensor(x)
    for _ in range(2):
        opt.zero_grad()
        cross_entropy(model(xt), y).backward()
        opt.step()
    opt.zero_grad()
    gc.collect()
    return model, xt, y


def _peak_step(batch_size: int) -> tuple[float, float]:
    from chainrule.functional import cross_entropy
    model, xt, y = _warm_step(batch_size)
    tracemalloc.start()
    loss = cross_entropy(model(xt), y)
    after_fwd = tracemalloc.get_traced_memory()[0]
    loss.backward()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del loss
    return after_fwd / 2**20, peak / 2**20


def memory(batch_size: int = 1024, split_batch: int = 128) -> str:
    live, peak = _peak_step(batch_size)
    out = [f"chainrule, batch {batch_size}: array data live after forward {live:.1f} MB, peak during backward "
           f"{peak:.1f} MB (tracemalloc)."]
    arrays, objects = _peak_split(split_batch)
    import bench_memory
    torch_peak = bench_memory.measure("torch-fused", split_batch, 1)["peak"]
    out.append(f"Batch {split_batch}, at the peak (the first layer's gradient rule): NumPy array data "
               f"{arrays:,} bytes, Python objects {objects:,} bytes; torch Adam(fused=True)'s peak "
               f"{torch_peak:,} bytes (tensor storage).")
    return " ".join(out) + "\n"


_NUMPY_DOMAIN = 389047  # tracemalloc domain of NumPy's data allocations (numpy/_core/src/multiarray/alloc.c)


def _peak_split(batch_size: int) -> tuple[int, int]:
    """(array bytes, Python-object bytes) allocated since the step began and alive inside the first
    layer's gradient rule, right after its products: the moment of the step's peak."""
    from chainrule import ops
    from chainrule.functional import cross_entropy
    model, xt, y = _warm_step(batch_size)
    snaps, rule = [], ops.linear.rule

    def spy(g, out, x, *args, **kw):
        grads = rule(g, out, x, *args, **kw)
        if x.shape[-1] == W.MLP_SIZES[0]:
            snaps.append(tracemalloc.take_snapshot())
        return grads
    ops.linear.rule = spy
    tracemalloc.start()
    try:
        base = tracemalloc.take_snapshot()
        cross_entropy(model(xt), y).backward()
    finally:
        tracemalloc.stop()
        ops.linear.rule = rule
    numpy = [tracemalloc.DomainFilter(True, _NUMPY_DOMAIN)]
    other = [tracemalloc.DomainFilter(False, _NUMPY_DOMAIN),
             tracemalloc.Filter(False, tracemalloc.__file__)]  # the snapshot's own bookkeeping

    def size(snap, filters):
        return sum(t.size for t in snap.filter_traces(filters).traces)
    return size(snaps[0], numpy) - size(base, numpy), size(snaps[0], other) - size(base, other)


def adam_two_threads(batch_size: int = 128, steps: int = 300) -> str:
    from concurrent.futures import ThreadPoolExecutor

    import chainrule as cr
    from chainrule.functional import cross_entropy
    pool = ThreadPoolExecutor(1)

    def halves(kernel):
        """``kernel`` run on the two halves of its array arguments at once (its scalars unchanged)."""
        def run(*args):
            k = next(i for i, a in enumerate(args) if not isinstance(a, np.ndarray))  # arrays come first
            h = args[0].size // 2
            if h < 1 << 16:
                return kernel(*args)
            done = pool.submit(kernel, *[a[h:] for a in args[:k]], *args[k:])
            kernel(*[a[:h] for a in args[:k]], *args[k:])
            done.result()
        return run

    out = []
    for name, split in (("as it is", False), ("split over two threads", True)):
        model, xt, y = _warm_step(batch_size)
        opt = cr.optim.Adam(model.parameters(), lr=1e-3)
        if opt._kernel is None:
            raise SystemExit("adam_two_threads needs the compiled kernels: pip install -e '.[fast]'")
        opt.zero_grad()
        cross_entropy(model(xt), y).backward()
        opt.step()  # compiles (or loads) the kernel of Adam's default program, "adam"
        if split:
            opt._kernel = {**opt._kernel, "adam": halves(opt._kernel["adam"])}
        times = []
        for _ in range(steps):
            opt.zero_grad()
            cross_entropy(model(xt), y).backward()
            t0 = time.perf_counter()
            opt.step()
            times.append(time.perf_counter() - t0)
        out.append(f"{name}: {1e3 * statistics.median(times[30:]):.3f} ms")
    return f"Adam update after a batch-{batch_size} backward, two threads (wall): " + "; ".join(out) + ".\n"


if __name__ == "__main__":
    from threadpoolctl import threadpool_limits
    if "--threads" in sys.argv:
        with threadpool_limits(2):
            print(adam_two_threads())
    else:
        with threadpool_limits(1):
            print(adam())
            print(memory())
