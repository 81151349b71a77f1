"""The experiments behind the findings in docs/performance.md, re-runnable: ``python bench/bench_findings.py``.

1. ``adam``: one Adam update of the 784-512-512-10 MLP's 669,706 parameters (one flat float32 array):
   chainrule's ``optim.Adam`` against a NumPy variant with the bias corrections folded into scalars (as
   PyTorch does), against ``torch.optim.Adam`` default (for-loop) and ``fused=True``. Process CPU time,
   1 thread, medians, alternating.
2. ``memory``: where the step's peak memory (tracemalloc) goes at batch 1024: live after forward, peak in
   backward, and the peak when the engine drops each node from its work list once processed (a monkeypatch
   of ``autograd._run`` made in this process only, to size the suggestion; skipped if ``_run`` changed).
"""

from __future__ import annotations

import gc
import inspect
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


def _peak_step(batch_size: int) -> tuple[float, float]:
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
    tracemalloc.start()
    loss = cross_entropy(model(xt), y)
    after_fwd = tracemalloc.get_traced_memory()[0]
    loss.backward()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del loss
    return after_fwd / 2**20, peak / 2**20


def memory(batch_size: int = 1024) -> str:
    import chainrule.autograd as A
    live, peak = _peak_step(batch_size)
    out = [f"chainrule, batch {batch_size}: array data live after forward {live:.1f} MB, peak during backward "
           f"{peak:.1f} MB (tracemalloc)."]
    src = inspect.getsource(A._run)
    old = "        for t in nodes:\n            ctx = t._ctx\n"
    if old in src:
        patched = src.replace(old, "        for i in range(len(nodes)):\n            t, nodes[i] = nodes[i], None\n"
                                   "            ctx = t._ctx\n")
        orig = A._run
        ns = dict(A.__dict__)
        exec(patched, ns)  # noqa: S102 - an experiment in this process only
        A._run = ns["_run"]
        try:
            _, peak2 = _peak_step(batch_size)
        finally:
            A._run = orig
        out.append(f"With the engine dropping each node from its work list once processed: peak {peak2:.1f} MB.")
    else:
        out.append("(autograd._run changed: the node-release experiment is skipped)")
    return " ".join(out) + "\n"


if __name__ == "__main__":
    from threadpoolctl import threadpool_limits
    with threadpool_limits(1):
        print(adam())
        print(memory())
