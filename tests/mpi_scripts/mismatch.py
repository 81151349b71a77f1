"""Rank 1 differs from rank 0 in one thing (`--what rows|features|width|dtype|batch`); cr.distributed.fit
must end the job with one message naming it, not a raw MPI error or a hang."""

import argparse

import numpy as np

import chainrule as cr
import chainrule.distributed as dist

p = argparse.ArgumentParser()
p.add_argument("--what", required=True)
a = p.parse_args()
r = dist.init()
odd = r == 1
n = 39 if odd and a.what == "rows" else 40
d = 4 if odd and a.what == "features" else 3
width = 9 if odd and a.what == "width" else 8
X = np.random.default_rng(0).standard_normal((n, d)).astype(np.float32)
y = np.arange(n) % 2
cr.manual_seed(0)
model = cr.models.MLP([d, width, 2])
if odd and a.what == "dtype":
    model.to(np.float64)
opt = cr.optim.SGD(model.parameters(), lr=0.1)
batch = 7 if odd and a.what == "batch" else 8
dist.fit(model, "cross_entropy", opt, (X, y), epochs=1, batch_size=batch, progress=False)
print("trained", flush=True)
