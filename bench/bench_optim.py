"""Optimizer step speed: chainrule vs torch.optim on ~1M float32 parameters in a few tensors.

SGD (plain and momentum), Adagrad, RMSprop and Adam, one step at a time, gradients fixed (the step is
what is timed). chainrule runs twice: its default (the compiled one-pass kernel when numba is
installed, optim/_fused.py) and ``fused=False`` (the NumPy ufunc rule); both give the same bits.
``--elements N`` times one tensor of N elements instead (small tensors show the kernels' call
overhead: plain SGD keeps its ufuncs below 8K elements).
Contenders run alternately, round after round, and the table reports medians per step with the
ratio to chainrule (> 1: chainrule is faster). NumPy's ufuncs are single-threaded, so torch runs
on one thread by default (--torch-threads 2 to change); the clock is process CPU time by default
(on a shared machine wall-clock medians measure the scheduler), --clock wall for wall time.

    python bench/bench_optim.py [--rounds 15] [--steps 20] [--torch-threads 1] [--clock cpu] [--elements N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import chainrule as cr

SHAPES = [(784, 1024), (1024,), (1024, 192), (192,), (192, 10), (10,)]  # 1,002,570 parameters


def _chainrule(opt_name, kw, init, grads, **flags):
    params = [cr.Tensor(x.copy(), requires_grad=True) for x in init]
    for p, g in zip(params, grads):
        p.grad = cr.Tensor(g.copy())
    opt = getattr(cr.optim, opt_name)(params, **kw, **flags)
    opt.step()  # allocate state and scratch outside the timing
    return opt.step


def _torch(torch, opt_name, kw, init, grads, **flags):
    params = [torch.tensor(x.copy(), requires_grad=True) for x in init]
    for p, g in zip(params, grads):
        p.grad = torch.from_numpy(g.copy())
    opt = getattr(torch.optim, opt_name)(params, **kw, **flags)
    opt.step()
    return opt.step


def _time(step, n, clock=time.process_time):
    t0 = clock()
    for _ in range(n):
        step()
    return (clock() - t0) / n


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--torch-threads", type=int, default=1, help="torch threads (default 1, like NumPy's ufuncs)")
    ap.add_argument("--clock", choices=["cpu", "wall"], default="cpu",
                    help="process CPU time (default: robust on a shared, loaded machine) or wall-clock time")
    ap.add_argument("--elements", type=int, default=None, help="time one tensor of this many elements")
    args = ap.parse_args(argv)
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None and args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    rng = np.random.default_rng(0)
    shapes = [(args.elements,)] if args.elements else SHAPES
    init = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    n_params = sum(x.size for x in init)
    cases = [("SGD", dict(lr=1e-2)), ("SGD", dict(lr=1e-2, momentum=0.9)), ("Adagrad", dict(lr=1e-2)),
             ("RMSprop", dict(lr=1e-3)), ("Adam", dict(lr=1e-3))]
    print(f"{n_params:,} float32 parameters in {len(shapes)} tensors; numpy {np.__version__}"
          + (f", torch {torch.__version__} ({torch.get_num_threads()} threads)" if torch else ", torch not installed")
          + f"; {args.clock} time")
    print()
    print("| optimizer | implementation | median ms / step | torch / chainrule |")
    print("|---|---|---|---|")
    for name, kw in cases:
        contenders = {"chainrule": _chainrule(name, kw, init, grads),
                      "chainrule fused=False": _chainrule(name, kw, init, grads, fused=False)}
        if torch is not None:
            for label, flags in (("torch (default)", {}), ("torch foreach=True", {"foreach": True}),
                                 ("torch fused=True", {"fused": True})):
                try:
                    contenders[label] = _torch(torch, name, kw, init, grads, **flags)
                except (RuntimeError, ValueError, TypeError) as e:  # fused not available for this build
                    print(f"| {name} | {label} | unavailable: {str(e).splitlines()[0][:60]} | |")
        times = {k: [] for k in contenders}
        for _ in range(args.rounds):
            for k, step in contenders.items():
                times[k].append(_time(step, args.steps, time.process_time if args.clock == "cpu" else time.perf_counter))
        ours = statistics.median(times["chainrule"])
        for k, ts in times.items():
            med = statistics.median(ts)
            label = name + "".join(f" {a}={b}" for a, b in kw.items() if a != "lr")
            print(f"| {label} | {k} | {med * 1e3:.4f} | {med / ours:.2f} |")


if __name__ == "__main__":
    main()
