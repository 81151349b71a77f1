"""The GEMMs of one MLP 784-512-512-10 training step, NumPy's BLAS against PyTorch's, shape by shape.

``python bench/bench_gemm.py [--batch 16 128 1024] [--threads 1]``: for each product of the step (3 forward,
3 weight gradients, 2 input gradients; the first layer's input gradient is skipped by both libraries) it
times NumPy ``matmul`` in both orientations (``A @ B`` and ``(B^T @ A^T)^T``, a free transpose) and
``torch.matmul`` on the same arrays, alternating, medians. It says how much of the step's gap to PyTorch is
the BLAS itself (OpenBLAS vs MKL) rather than chainrule's Python. With ``chainrule[mkl]`` installed it also
times ``chainrule._blas`` (MKL's GEMM through ctypes for large products, NumPy below), best orientation.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

SIZES = (784, 512, 512, 10)


def gemms(batch):
    """(name, A shape, B shape, A transposed?, B transposed?) as the step computes them, C-order data."""
    out = []
    for i, (n_in, n_out) in enumerate(zip(SIZES[:-1], SIZES[1:]), 1):
        out.append((f"fwd{i}  x{i} W{i}^T", (batch, n_in), (n_out, n_in), False, True))
    for i, (n_in, n_out) in reversed(list(enumerate(zip(SIZES[:-1], SIZES[1:]), 1))):
        out.append((f"dW{i}  G{i}^T x{i}", (batch, n_out), (batch, n_in), True, False))
        if i > 1:
            out.append((f"dx{i}  G{i} W{i}", (batch, n_out), (n_out, n_in), False, False))
    return out


def bench(batch, reps):
    import torch

    from chainrule import _blas
    mkl = _blas._load()
    rng = np.random.default_rng(0)
    rows, tot = [], {"np": 0.0, "np_best": 0.0, "torch": 0.0, "mkl_best": 0.0}
    for name, sa, sb, ta, tb in gemms(batch):
        A, B = rng.standard_normal(sa, dtype=np.float32), rng.standard_normal(sb, dtype=np.float32)
        a, b = (A.T if ta else A), (B.T if tb else B)
        tA, tB = torch.from_numpy(A), torch.from_numpy(B)
        ta_, tb_ = (tA.T if ta else tA), (tB.T if tb else tB)
        fns = {"np": lambda: np.matmul(a, b), "np_flip": lambda: np.matmul(b.T, a.T).T,
               "torch": lambda: torch.matmul(ta_, tb_)}
        if mkl:
            fns.update(mkl=lambda: _blas._mkl_matmul(a, b), mkl_flip=lambda: _blas._mkl_matmul(b.T, a.T).T)
        inner = max(1, int(2e7 / (2 * a.shape[0] * a.shape[1] * b.shape[1])))
        ts = {k: [] for k in fns}
        for f in fns.values():
            f()
        for _ in range(reps):
            for k, f in fns.items():
                t0 = time.perf_counter()
                for _ in range(inner):
                    f()
                ts[k].append((time.perf_counter() - t0) / inner)
        med = {k: statistics.median(v) for k, v in ts.items()}
        flops = 2 * a.shape[0] * a.shape[1] * b.shape[1]
        rows.append((name, f"{a.shape[0]}x{a.shape[1]} @ {b.shape[0]}x{b.shape[1]}", med, flops))
        tot["np"] += med["np"]
        tot["np_best"] += min(med["np"], med["np_flip"])
        tot["torch"] += med["torch"]
        if mkl:
            tot["mkl_best"] += min(med["mkl"], med["mkl_flip"])
    return rows, tot, mkl


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, nargs="+", default=[16, 128, 1024])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=15)
    a = ap.parse_args(argv)
    import torch
    from threadpoolctl import threadpool_limits
    torch.set_num_threads(a.threads)
    with threadpool_limits(a.threads):
        for batch in a.batch:
            rows, tot, mkl = bench(batch, a.reps)
            extra = " | chainrule MKL best | MKL best / torch" if mkl else ""
            print(f"\n#### GEMMs of the MLP step, batch {batch} ({a.threads} thread(s); us, median of {a.reps})\n")
            print(f"| product | shapes | NumPy A@B | NumPy (B^T A^T)^T | torch | NumPy best / torch | GFLOP/s NumPy best"
                  f"{extra} |")
            print("|---|---|---:|---:|---:|---:|---:|" + ("---:|---:|" if mkl else ""))
            for name, shp, m, fl in rows:
                best = min(m["np"], m["np_flip"])
                cells = (f" | {1e6 * min(m['mkl'], m['mkl_flip']):.0f} | {min(m['mkl'], m['mkl_flip']) / m['torch']:.2f}"
                         if mkl else "")
                print(f"| {name} | {shp} | {1e6 * m['np']:.0f} | {1e6 * m['np_flip']:.0f} | {1e6 * m['torch']:.0f} | "
                      f"{best / m['torch']:.2f} | {fl / best / 1e9:.0f}{cells} |")
            cells = f" | {1e6 * tot['mkl_best']:.0f} | {tot['mkl_best'] / tot['torch']:.2f}" if mkl else ""
            print(f"| **sum** | | {1e6 * tot['np']:.0f} | | {1e6 * tot['torch']:.0f} | "
                  f"{tot['np_best'] / tot['torch']:.2f} (best orientation) | {cells} |")


if __name__ == "__main__":
    main()
