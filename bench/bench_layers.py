"""Convolution layers: chainrule against PyTorch eager on the CPU, side by side in one run.

    python bench/bench_layers.py            # full run
    python bench/bench_layers.py --quick    # a few seconds, noisier
    python bench/bench_layers.py --keep-freed-memory   # glibc keeps freed pages (see keep_freed_memory)

Two training steps (forward, cross-entropy, backward, optimizer step), each with the same initial
weights in both libraries (copied through ``state_dict``; the first losses are checked to agree):

- LeNet-5 on 28 x 28 images at batch 64: conv 1->6 (5x5, padding 2), ReLU, 2x2 max-pool,
  conv 6->16 (5x5), ReLU, 2x2 max-pool, 400-120-84-10 with ReLU; SGD.
- The MNIST-1D CNN (``chainrule.models.CNN1d``, the paper's ConvBase): three Conv1d of 25 channels
  (stride 2) on 40-sample signals and a linear read-out, at batch 100 (the paper's); Adam.

``--keep-freed-memory`` makes glibc keep freed pages in the heap (both libraries, one process): every
multi-MB array then reuses memory instead of faulting in fresh pages. chainrule no longer depends on
it: the im2col columns and col2im sums come from ``ops_conv``'s scratch pool, and with them reused the
rest of a LeNet step stays within glibc's own (dynamic) thresholds, so a step page-faults no more with
the option than without (docs/performance.md, "Layers").

Each figure is the median over alternating rounds (``bench_core.compare``: both libraries run the same
number of steps back to back, alternating which goes first). Prints a markdown table.
"""

from __future__ import annotations

import os
import statistics
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
from bench_core import compare, setup  # noqa: E402

import chainrule as cr  # noqa: E402
from chainrule import models, nn  # noqa: E402


def lenet(lib):
    """LeNet-5 for 28 x 28 inputs in ``lib`` (``chainrule.nn`` or ``torch.nn``): the same layer names."""
    return lib.Sequential(lib.Conv2d(1, 6, 5, padding=2), lib.ReLU(), lib.MaxPool2d(2),
                          lib.Conv2d(6, 16, 5), lib.ReLU(), lib.MaxPool2d(2), lib.Flatten(),
                          lib.Linear(400, 120), lib.ReLU(), lib.Linear(120, 84), lib.ReLU(), lib.Linear(84, 10))


def torch_cnn1d(torch, channels: int = 25):
    tnn = torch.nn
    return tnn.Sequential(tnn.Unflatten(1, (1, 40)), tnn.Conv1d(1, channels, 5, stride=2, padding=1), tnn.ReLU(),
                          tnn.Conv1d(channels, channels, 3, stride=2, padding=1), tnn.ReLU(),
                          tnn.Conv1d(channels, channels, 3, stride=2, padding=1), tnn.ReLU(),
                          tnn.Flatten(), tnn.Linear(channels * 5, 10))


def training_steps(torch, ours, theirs, x0, y0, optimizer: str, lr: float):
    """(chainrule step, torch step) from the same weights; checks the first losses agree."""
    theirs.load_state_dict({k.removeprefix("layers."): torch.tensor(v.numpy()) for k, v in ours.state_dict().items()})
    opt = getattr(cr.optim, optimizer)(ours.parameters(), lr=lr)
    topt = getattr(torch.optim, optimizer)(theirs.parameters(), lr=lr)
    x, tx, ty = cr.tensor(x0), torch.tensor(x0), torch.tensor(y0)

    def run_cr():
        opt.zero_grad()
        loss = cr.functional.cross_entropy(ours(x), y0)
        loss.backward()
        opt.step()
        return loss

    def run_torch():
        topt.zero_grad()
        loss = torch.nn.functional.cross_entropy(theirs(tx), ty)
        loss.backward()
        topt.step()
        return loss

    a, b = run_cr().item(), run_torch().item()
    assert abs(a - b) < 1e-4 * max(1.0, abs(b)), (a, b)
    return run_cr, run_torch


def lenet_case(torch):
    rng = np.random.default_rng(0)
    cr.manual_seed(0)
    x0 = rng.standard_normal((64, 1, 28, 28)).astype(np.float32)
    return training_steps(torch, lenet(nn), lenet(torch.nn), x0, rng.integers(0, 10, 64), "SGD", 0.01)


def cnn1d_case(torch):
    rng = np.random.default_rng(0)
    cr.manual_seed(0)
    x0 = rng.standard_normal((100, 40)).astype(np.float32)
    return training_steps(torch, models.CNN1d(), torch_cnn1d(torch), x0, rng.integers(0, 10, 100), "Adam", 1e-2)


def keep_freed_memory() -> bool:
    """glibc only: keep freed memory in the heap instead of returning it to the OS (``mallopt``
    M_TRIM_THRESHOLD and M_MMAP_THRESHOLD at 1 GiB, what MALLOC_TRIM_THRESHOLD_ / MALLOC_MMAP_THRESHOLD_
    do), so the step's large arrays (im2col columns of several MB) reuse pages instead of faulting in
    fresh ones every step. Process-wide: it applies to both libraries. True if it took effect."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_trim_threshold, 1 << 30)) and bool(libc.mallopt(m_mmap_threshold, 1 << 30))
    except (OSError, AttributeError):
        return False


def blas_report(torch) -> str:
    """The GEMM libraries in use: chainrule's choice (``chainrule._blas``), each BLAS threadpoolctl sees
    (library, version, kernel architecture, threads) and whether torch runs its convolutions by oneDNN."""
    from threadpoolctl import threadpool_info

    from chainrule import _blas

    _blas.matmul(np.ones((64, 64), np.float32), np.ones((64, 64), np.float32))  # makes the choice if pending
    libs = "; ".join(f"{i['internal_api']} {i.get('version')} ({i.get('architecture') or i.get('threading_layer')}, "
                     f"{i['num_threads']} threads)" for i in threadpool_info() if i["user_api"] == "blas")
    lib = "mkl" if _blas.matmul is getattr(_blas, "_mkl_matmul", None) else "numpy"
    return (f"chainrule's GEMMs: {lib} ({_blas._choice['chosen_by']}); BLAS loaded: {libs}; "
            f"torch oneDNN (mkldnn): {torch.backends.mkldnn.is_available()}")


def main(argv=None) -> int:
    keep = "--keep-freed-memory" in (sys.argv[1:] if argv is None else argv)
    argv = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--keep-freed-memory"]
    args, torch = setup(__doc__.split("\n")[0], argv)
    print(blas_report(torch) + "\n")
    if keep:
        print(f"glibc keeps freed memory (mallopt): {keep_freed_memory()}\n")
    q = args.quick
    rows = []
    for name, case, inner in (("LeNet-5 training step, 28x28, batch 64 (SGD)", lenet_case, 10),
                              ("MNIST-1D CNN training step, batch 100 (Adam)", cnn1d_case, 20)):
        run_cr, run_torch = case(torch)
        c, t = compare(run_cr, run_torch, rounds=5 if q else 31, inner=max(1, inner // 5) if q else inner)
        rows.append((name, c, t))
    print("| benchmark | chainrule median (min) | PyTorch median (min) | chainrule / PyTorch (medians) |")
    print("|---|---:|---:|---:|")
    for name, c, t in rows:
        mc, mt = statistics.median(c), statistics.median(t)
        print(f"| {name} | {mc * 1e3:.2f} ({min(c) * 1e3:.2f}) ms | {mt * 1e3:.2f} ({min(t) * 1e3:.2f}) ms "
              f"| {mc / mt:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
