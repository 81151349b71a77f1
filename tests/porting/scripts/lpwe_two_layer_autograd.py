# The older "Learning PyTorch with examples" two-layer net with autograd: requires_grad weights, w1.grad.zero_().
# Data and weights: drawn with NumPy (same in both runs).
# Tolerance: the loss falls from ~1e7 to ~1e-3 in float32, so the last values are small differences of large
# sums; they are compared with atol=1e-4 on top of rtol=1e-4.
# porting: atol=1e-4
import numpy as np
import torch
from _offline import result

dtype = torch.float
device = torch.device("cpu")

N, D_in, H, D_out = 64, 1000, 100, 10
rng = np.random.default_rng(1)
x = torch.tensor(rng.standard_normal((N, D_in)), device=device, dtype=dtype)
y = torch.tensor(rng.standard_normal((N, D_out)), device=device, dtype=dtype)
w1 = torch.tensor(rng.standard_normal((D_in, H)), device=device, dtype=dtype, requires_grad=True)
w2 = torch.tensor(rng.standard_normal((H, D_out)), device=device, dtype=dtype, requires_grad=True)

learning_rate = 1e-6
for t in range(300):
    y_pred = x.mm(w1).clamp(min=0).mm(w2)
    loss = (y_pred - y).pow(2).sum()
    if t % 50 == 49:
        result(f"loss_{t}", loss.item())
    loss.backward()
    with torch.no_grad():
        w1 -= learning_rate * w1.grad
        w2 -= learning_rate * w2.grad
        w1.grad.zero_()
        w2.grad.zero_()

result("w1_corner", *w1[:2, :3].flatten().tolist())
result("requires_grad", w1.requires_grad, w1.grad is not None, y_pred.requires_grad, y_pred.is_leaf)
