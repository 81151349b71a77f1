"""Train a small MLP on synthetic data and save the final weights.

`--mode dist` runs `chainrule.distributed.fit` (under `mpiexec -n K`, or alone); `--mode ref` runs the
ordinary single-process `chainrule.train.fit` with the same global batch size: the oracle that
tests/test_distributed.py compares the K-rank weights with. Fault injection: `--fail-rank r
--fail-epoch e --fail-step s` makes rank r raise (or `os._exit`) after batch s of epoch e.
"""

import argparse
import os
import signal
import sys

import numpy as np

import chainrule as cr
import chainrule.distributed as dist
from chainrule import optim
from chainrule.train import Callback
from chainrule.train import fit as plain_fit


def make_optimizer(params, kind):
    lr = 0.01 if kind == "adam" else 0.1
    if kind == "adam":
        return optim.Adam(params, lr=lr)
    return optim.SGD(params, lr=lr, momentum=0.9 if kind == "momentum" else 0.0)


class MLP(cr.models.MLP):
    """chainrule's MLP, casting its input to the weights' dtype: DataLoader hands out float32 batches,
    and the float64 runs check exactness to 1e-10."""

    def forward(self, x):
        return super().forward(x.astype(self.dtype) if x.dtype != self.dtype else x)


class FailAt(Callback):
    def __init__(self, rank, epoch, step, mode):
        self.rank, self.epoch, self.step, self.mode = rank, epoch, step, mode

    def on_batch_end(self, batch, logs):
        if dist.rank() == self.rank and self.trainer.epoch + 1 == self.epoch and batch == self.step:
            if self.mode == "exit":
                os._exit(7)
            if self.mode == "kill":   # as the OOM killer would
                os.kill(os.getpid(), signal.SIGKILL)
            raise RuntimeError(f"injected failure at epoch {self.epoch} batch {batch}")


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
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--bucket-bytes", type=int, default=4 << 20)
    ap.add_argument("--fail-rank", type=int, default=-1)
    ap.add_argument("--fail-epoch", type=int, default=-1)
    ap.add_argument("--fail-step", type=int, default=-1)
    ap.add_argument("--fail-mode", choices=["raise", "exit", "kill"], default="raise")
    a = ap.parse_args()

    dist.init()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((a.n, 8)).astype(np.float32)
    y = (x[:, :3].sum(1) > 0).astype(np.int64) + (x[:, 3] > 1).astype(np.int64)

    # Different initial weights on every rank in dist mode: the start-up broadcast must fix that.
    cr.manual_seed(1234 + (dist.rank() if a.mode == "dist" else 0))
    model = MLP([8, 16, 3], dropout=a.dropout)
    for p in model.parameters():
        p._data = p._data.astype(a.dtype)
    model.dtype = np.dtype(a.dtype)
    opt = make_optimizer(model.parameters(), a.opt)
    penalty = (lambda: cr.nn.l2_penalty(model, a.l2)) if a.l2 else None
    common = dict(epochs=a.epochs, batch_size=a.batch, seed=0, penalty=penalty, progress=False)

    if a.mode == "ref":
        hist = plain_fit(model, "cross_entropy", opt, (x, y), val=(x, y), **common)
        np.savez(a.out, *[p._data for p in model.parameters()], val_loss=np.array(hist["val_loss"]),
                 loss=np.array(hist["loss"]), val_accuracy=np.array(hist["val_accuracy"]))
        return

    resume = a.ckpt if a.resume else None
    hist = dist.fit(model, "cross_entropy", opt, (x, y), val=(x, y), checkpoint_dir=a.ckpt, resume=resume,
                    verbose=True, bucket_bytes=a.bucket_bytes,
                    callbacks=[FailAt(a.fail_rank, a.fail_epoch, a.fail_step, a.fail_mode)], **common)
    # Replicas must be identical: compare every rank's weights with every other's.
    flat = np.concatenate([p._data.ravel().astype(np.float64) for p in model.parameters()])
    spread = dist.allreduce(flat, "max") - dist.allreduce(flat, "min")
    if dist.is_main():
        np.savez(a.out, *[p._data for p in model.parameters()], spread=float(np.abs(spread).max()),
                 world=dist.world_size(), val_loss=np.array(hist["val_loss"]), loss=np.array(hist["loss"]),
                 val_accuracy=np.array(hist["val_accuracy"]))


if __name__ == "__main__":
    sys.exit(main())
