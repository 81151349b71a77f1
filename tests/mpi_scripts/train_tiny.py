"""Train a tiny MLP on synthetic data, either with `chainrule.distributed.fit` (under mpiexec or
alone) or with a plain single-process loop (`--mode ref`), and save the final weights.

tests/test_distributed.py launches this under `mpiexec -n K` and compares the weights with the
reference loop: the same global batches, no sharding, no Allreduce. Fault injection: `--fail-rank r
--fail-step s` makes rank r raise (or `os._exit`) after global step s of the first epoch it runs.
"""

import argparse
import os
import sys

import numpy as np

import chainrule as cr
import chainrule.distributed as dist
from chainrule import functional as F


class TinyMLP:
    """Two linear layers on raw tensors: the test must not depend on chainrule.nn."""

    def __init__(self, d_in, d_hidden, d_out, dtype, p_drop=0.0):
        rng = np.random.default_rng(1234 + dist.rank())   # different on every rank: the broadcast must fix it
        def p(*shape):
            return cr.Tensor((rng.standard_normal(shape) / np.sqrt(shape[-1])).astype(dtype), requires_grad=True)
        self.w1, self.b1, self.w2, self.b2 = p(d_hidden, d_in), p(d_hidden), p(d_out, d_hidden), p(d_out)
        self.p_drop, self.training = p_drop, True

    def parameters(self):
        return [self.w1, self.b1, self.w2, self.b2]

    def train(self, mode=True):
        self.training = mode

    def eval(self):
        self.training = False

    def __call__(self, x):
        h = cr.relu(F.linear(x, self.w1, self.b1))
        return F.linear(F.dropout(h, self.p_drop, self.training), self.w2, self.b2)


class Opt:
    """SGD, SGD with momentum (PyTorch's form) and Adam on ndarrays, with a torch-shaped state_dict."""

    def __init__(self, params, kind, lr):
        self.params, self.kind, self.lr, self.t = params, kind, lr, 0
        self.m = [np.zeros_like(p.data) for p in params]
        self.v = [np.zeros_like(p.data) for p in params]

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        self.t += 1
        for p, m, v in zip(self.params, self.m, self.v):
            g = p.grad.data
            if self.kind == "sgd":
                p.data -= self.lr * g
            elif self.kind == "momentum":
                m *= 0.9; m += g
                p.data -= self.lr * m
            else:
                m *= 0.9; m += 0.1 * g
                v *= 0.999; v += 0.001 * g * g
                m_hat, v_hat = m / (1 - 0.9 ** self.t), v / (1 - 0.999 ** self.t)
                p.data -= (self.lr * m_hat / (np.sqrt(v_hat) + 1e-8)).astype(p.data.dtype)

    def state_dict(self):
        return {"state": {i: {"m": m.copy(), "v": v.copy()} for i, (m, v) in enumerate(zip(self.m, self.v))},
                "param_groups": [{"lr": self.lr, "t": self.t}]}

    def load_state_dict(self, sd):
        for i in range(len(self.params)):
            self.m[i][...] = sd["state"][i]["m"]; self.v[i][...] = sd["state"][i]["v"]
        self.t = sd["param_groups"][0]["t"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["dist", "ref"], default="dist")
    ap.add_argument("--opt", choices=["sgd", "momentum", "adam"], default="sgd")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--l2", type=float, default=0.0)
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--n", type=int, default=101)
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--out", required=True)
    ap.add_argument("--ckpt", default=None)
    ap.add_argument("--checkpoint-every", type=int, default=None)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--fail-rank", type=int, default=-1)
    ap.add_argument("--fail-step", type=int, default=-1)
    ap.add_argument("--fail-mode", choices=["raise", "exit"], default="raise")
    a = ap.parse_args()

    dist.init()
    dtype = np.dtype(a.dtype)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((a.n, 8)).astype(dtype)
    y = (x[:, :3].sum(1) > 0).astype(np.int64) + (x[:, 3] > 1).astype(np.int64)
    lr = 0.01 if a.opt == "adam" else 0.1
    model = TinyMLP(8, 16, 3, dtype, a.dropout)
    opt = Opt(model.parameters(), a.opt, lr)

    def loss_fn(out, target):
        loss = F.cross_entropy(out, target)
        if a.l2:
            loss = loss + a.l2 * ((model.w1 * model.w1).sum() + (model.w2 * model.w2).sum())
        return loss

    if a.mode == "ref":
        # The plain loop: whole global batches, no sampler sharding, no Allreduce.
        rng0 = np.random.default_rng(1234)   # rank 0's initial weights
        for p in model.parameters():
            p.data[...] = (rng0.standard_normal(p.data.shape) / np.sqrt(p.data.shape[-1])).astype(dtype)
        for epoch in range(a.epochs):
            perm = np.random.default_rng([0, epoch]).permutation(a.n)
            for s in range(0, a.n, a.batch):
                i = perm[s:s + a.batch]
                opt.zero_grad()
                loss_fn(model(cr.Tensor(x[i])), cr.Tensor(y[i])).backward()
                opt.step()
        np.savez(a.out, *[p.data for p in model.parameters()])
        return

    def on_step(epoch, step):
        if dist.rank() == a.fail_rank and step == a.fail_step:
            if a.fail_mode == "exit":
                os._exit(7)
            raise RuntimeError(f"injected failure after step {step}")

    hist = dist.fit(model, loss_fn, opt, (x, y), val=(x, y), epochs=a.epochs, batch_size=a.batch, seed=0,
                    checkpoint_dir=a.ckpt, checkpoint_every=a.checkpoint_every, resume=a.resume,
                    verbose=True, on_step=on_step)
    # Replicas must be identical: compare every rank's weights with rank 0's.
    flat = np.concatenate([p.data.ravel().astype(np.float64) for p in model.parameters()])
    spread = dist.allreduce(flat, "max") - dist.allreduce(flat, "min")
    if dist.is_main():
        np.savez(a.out, *[p.data for p in model.parameters()], spread=float(np.abs(spread).max()),
                 world=dist.world_size(), val_loss=np.array(hist["val_loss"]), loss=np.array(hist["loss"]))


if __name__ == "__main__":
    sys.exit(main())
