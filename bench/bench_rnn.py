"""Recurrent training step: chainrule vs PyTorch eager, a GRU classifier on MNIST-1D.

The model is examples/10_mnist1d_gru.py's: ``nn.GRU(1, H, batch_first=True)`` over the 40 steps of
an MNIST-1D signal (one feature per step), then ``Linear(H, 10)`` on the last hidden state; one step
is forward, cross-entropy, backward and Adam, on batches of B drawn from the training set. Both
libraries start from the same weights. Contenders alternate, round after round; the table gives
medians per step and the ratio chainrule / torch (< 1: chainrule is faster). Both libraries' BLAS
run on ``--threads`` threads (default 1: NumPy's elementwise work is single-threaded; MKL's threads
are limited through threadpoolctl); the clock is process CPU time by default.
``--mode lstm|rnn_tanh`` times an LSTM or an Elman RNN of the same shape instead.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/bench_rnn.py [--hidden 128] [--batch 128]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from bench_optim import _time  # a sibling script: bench/ is on the path when run as python bench/bench_rnn.py

import chainrule as cr


def _models(torch, mode, hidden):
    tcls = {"gru": torch.nn.GRU, "lstm": torch.nn.LSTM, "rnn_tanh": torch.nn.RNN}[mode]
    ccls = {"gru": cr.nn.GRU, "lstm": cr.nn.LSTM, "rnn_tanh": cr.nn.RNN}[mode]
    t_rnn, t_head = tcls(1, hidden, batch_first=True), torch.nn.Linear(hidden, 10)
    c_rnn, c_head = ccls(1, hidden, batch_first=True), cr.nn.Linear(hidden, 10)
    c_rnn.load_state_dict(t_rnn.state_dict())
    c_head.load_state_dict(t_head.state_dict())
    return (t_rnn, t_head), (c_rnn, c_head)


def _last(out):
    return out[:, -1]


def torch_step(torch, rnn, head, xs, ys):
    opt = torch.optim.Adam([*rnn.parameters(), *head.parameters()], lr=1e-3)
    it = iter(range(1 << 62))

    def step():
        i = next(it) % len(xs)
        out = rnn(xs[i])[0]
        loss = torch.nn.functional.cross_entropy(head(out[:, -1]), ys[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss
    return step


def cr_step(rnn, head, xs, ys):
    opt = cr.optim.Adam([*rnn.parameters(), *head.parameters()], lr=1e-3)
    it = iter(range(1 << 62))

    def step():
        i = next(it) % len(xs)
        out = rnn(xs[i])[0]
        loss = cr.functional.cross_entropy(head(_last(out)), ys[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss
    return step


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--mode", choices=["gru", "lstm", "rnn_tanh"], default="gru")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads of both libraries")
    ap.add_argument("--clock", choices=["cpu", "wall"], default="cpu")
    a = ap.parse_args(argv)
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    d = cr.datasets.make_mnist1d()
    n = len(d.X_train) // a.batch
    X = d.X_train[: n * a.batch].astype(np.float32).reshape(n, a.batch, -1, 1)  # (batches, B, 40 steps, 1)
    Y = d.y_train[: n * a.batch].reshape(n, a.batch)
    (tr, th), (cr_rnn, ch) = _models(torch, a.mode, a.hidden)
    steps = {"torch": torch_step(torch, tr, th, [torch.from_numpy(x) for x in X], [torch.from_numpy(y) for y in Y]),
             "chainrule": cr_step(cr_rnn, ch, list(X), list(Y))}
    clock = time.process_time if a.clock == "cpu" else time.perf_counter
    times = {k: [] for k in steps}
    with threadpool_limits(a.threads):
        for s in steps.values():  # warm up: allocations, MKL/OpenBLAS initialisation
            _time(s, 2, clock)
        for _ in range(a.rounds):
            for k, s in steps.items():
                times[k].append(_time(s, a.steps, clock))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{a.mode.upper()} training step, MNIST-1D (T=40, 1 feature), H={a.hidden}, B={a.batch}, "
          f"{a.clock} clock, {a.threads} BLAS thread(s), chainrule BLAS={cr.blas_info()['name']}")
    for k, v in med.items():
        print(f"  {k:10s} {v * 1e3:8.2f} ms/step")
    print(f"  ratio chainrule / torch: {med['chainrule'] / med['torch']:.2f}x")
    return med


if __name__ == "__main__":
    main()
