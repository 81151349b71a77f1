"""Quick start: a two-layer network p(y|x) = softmax(W relu(V x)) learns XOR-like data, written
with nothing but chainrule tensors and autograd. Prints the loss falling."""

import numpy as np

import chainrule as cr
import chainrule.functional as F

cr.manual_seed(0)
rng = np.random.default_rng(0)
X = rng.uniform(-1, 1, size=(512, 2)).astype(np.float32)
y = ((X[:, 0] > 0) ^ (X[:, 1] > 0)).astype(np.int64)  # XOR of the signs: not linearly separable

V = (cr.randn(16, 2) * 0.5).requires_grad_()   # first layer  (hidden x in)
c = cr.zeros(16, requires_grad=True)
W = (cr.randn(2, 16) * 0.5).requires_grad_()   # second layer (classes x hidden)
b = cr.zeros(2, requires_grad=True)
params, lr = [V, c, W, b], 0.5

for step in range(301):
    logits = F.linear(F.linear(cr.tensor(X), V, c).relu(), W, b)
    loss = F.cross_entropy(logits, cr.tensor(y))
    for p in params:
        p.grad = None
    loss.backward()
    with cr.no_grad():
        for p in params:
            p -= lr * p.grad
    if step % 50 == 0:
        acc = (logits.argmax(axis=1).numpy() == y).mean()
        print(f"step {step:3d}  loss {loss.item():.4f}  accuracy {acc:.3f}")
