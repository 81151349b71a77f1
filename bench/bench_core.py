"""Core benchmark: chainrule against PyTorch CPU, side by side in one run.

    python bench/bench_core.py            # full run
    python bench/bench_core.py --quick    # a few seconds, noisier

Measures (a) per-op overhead: forward + backward of ``(a + b).sum()`` on (8, 8) tensors, in
microseconds, and (b) forward + backward of a 784-512-512-10 ReLU MLP with cross-entropy at batch
16, 128 and 1024, in milliseconds. Each measurement is the median over many rounds; in every round
both libraries run the same number of iterations back to back, alternating which goes first, so
drift in machine load hits both. Both libraries use their default thread counts (printed).
Prints a markdown table with both times (median, and the fastest round in parentheses: under a
loaded machine the minimum is the better estimate of uncontended speed) and the ratio of medians.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
import chainrule as cr  # noqa: E402
import chainrule.functional as F  # noqa: E402


def blas_threads() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (threadpoolctl not installed)"
    info = [f"{i['internal_api']}={i['num_threads']}" for i in threadpool_info() if i["user_api"] == "blas"]
    return ", ".join(info) or "unknown"


def per_iter(fn, n: int) -> float:
    """Seconds per call of ``fn``, averaged over ``n`` back-to-back calls."""
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def compare(cr_fn, torch_fn, rounds: int, inner: int, warmup: int = 3) -> tuple[list, list]:
    """Seconds per call for both, one entry per round, over ``rounds`` alternating rounds of ``inner`` calls."""
    for _ in range(warmup):
        cr_fn()
        torch_fn()
    a, b = [], []
    for r in range(rounds):
        if r % 2 == 0:
            a.append(per_iter(cr_fn, inner))
            b.append(per_iter(torch_fn, inner))
        else:
            b.append(per_iter(torch_fn, inner))
            a.append(per_iter(cr_fn, inner))
    return a, b


def op_overhead_case(torch):
    rng = np.random.default_rng(0)
    a0, b0 = rng.standard_normal((8, 8), np.float32), rng.standard_normal((8, 8), np.float32)
    a, b = cr.tensor(a0, requires_grad=True), cr.tensor(b0, requires_grad=True)
    ta, tb = torch.tensor(a0, requires_grad=True), torch.tensor(b0, requires_grad=True)

    def run_cr():
        a.grad = b.grad = None
        (a + b).sum().backward()

    def run_torch():
        ta.grad = tb.grad = None
        (ta + tb).sum().backward()

    run_cr(), run_torch()
    assert np.allclose(a.grad.numpy(), ta.grad.numpy()) and np.allclose(b.grad.numpy(), tb.grad.numpy())
    return run_cr, run_torch


def mlp_case(torch, batch: int):
    rng = np.random.default_rng(1)
    sizes = [784, 512, 512, 10]
    Ws = [(rng.standard_normal((o, i)) * np.sqrt(2.0 / i)).astype(np.float32) for i, o in zip(sizes, sizes[1:])]
    bs = [np.zeros(o, np.float32) for o in sizes[1:]]
    x0 = rng.standard_normal((batch, 784)).astype(np.float32)
    y0 = rng.integers(0, 10, batch)
    params = [cr.tensor(p, requires_grad=True) for pair in zip(Ws, bs) for p in pair]
    tparams = [torch.tensor(p, requires_grad=True) for pair in zip(Ws, bs) for p in pair]
    x, tx, ty = cr.tensor(x0), torch.tensor(x0), torch.tensor(y0)

    def run_cr():
        h = x
        for k in range(0, len(params), 2):
            h = F.linear(h, params[k], params[k + 1])
            if k < len(params) - 2:
                h = cr.relu(h)
        loss = F.cross_entropy(h, y0)
        for p in params:
            p.grad = None
        loss.backward()
        return loss

    def run_torch():
        h = tx
        for k in range(0, len(tparams), 2):
            h = torch.nn.functional.linear(h, tparams[k], tparams[k + 1])
            if k < len(tparams) - 2:
                h = torch.relu(h)
        loss = torch.nn.functional.cross_entropy(h, ty)
        for p in tparams:
            p.grad = None
        loss.backward()
        return loss

    l1, l2 = run_cr(), run_torch()
    assert abs(l1.item() - l2.item()) < 1e-4, (l1.item(), l2.item())
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-3, atol=1e-5)
    return run_cr, run_torch


def setup(description: str, argv=None):
    """Parse ``--quick`` and ``--threads``, pin the threads, print versions and threads: (args, torch).
    Shared by the benchmark scripts that compare with PyTorch in one process."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--quick", action="store_true", help="short run (fewer rounds), for a smoke test")
    ap.add_argument("--threads", type=int, default=None,
                    help="pin both torch and NumPy's BLAS to this many threads (default: both libraries' defaults)")
    args = ap.parse_args(argv)
    import torch

    if args.threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads, user_api="blas")
        torch.set_num_threads(args.threads)
    print(f"chainrule {cr.__version__}, numpy {np.__version__}, torch {torch.__version__}, "
          f"python {platform.python_version()}, {os.cpu_count()} CPUs")
    how = "pinned" if args.threads else "default"
    print(f"threads: torch {torch.get_num_threads()}, numpy BLAS {blas_threads()} ({how}); "
          f"load average {os.getloadavg()[0]:.1f}\n")
    return args, torch


def main(argv=None) -> int:
    args, torch = setup(__doc__.split("\n")[0], argv)
    q = args.quick
    rows = []
    run_cr, run_torch = op_overhead_case(torch)
    c, t = compare(run_cr, run_torch, rounds=9 if q else 41, inner=200 if q else 500)
    rows.append(("(a + b).sum() fwd+bwd, (8, 8)", c, t, 1e6, "us"))
    for batch in (16, 128, 1024):
        run_cr, run_torch = mlp_case(torch, batch)
        inner = max(1, (40 if q else 200) // batch) if batch > 16 else (5 if q else 20)
        rounds = 5 if q else (31 if batch < 1024 else 21)
        c, t = compare(run_cr, run_torch, rounds=rounds, inner=inner, warmup=2)
        rows.append((f"MLP 784-512-512-10 fwd+bwd, batch {batch}", c, t, 1e3, "ms"))
    print("| benchmark | chainrule median (min) | PyTorch median (min) | chainrule / PyTorch (medians) |")
    print("|---|---:|---:|---:|")
    for name, c, t, k, unit in rows:
        mc, mt = statistics.median(c), statistics.median(t)
        print(f"| {name} | {mc * k:.1f} ({min(c) * k:.1f}) {unit} | {mt * k:.1f} ({min(t) * k:.1f}) {unit} | {mc / mt:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
