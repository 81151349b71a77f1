# The older "Learning PyTorch with examples" two-layer net: N=64, D_in=1000, H=100, D_out=10, ReLU, manual
# backprop with mm, t(), clamp and clone. Data and weights: drawn with NumPy (same in both runs).
# Tolerance: the loss falls from ~1e7 to ~1e-3 in float32, so the last values are small differences of large
# sums; they are compared with atol=1e-4 on top of rtol=1e-4.
# porting: atol=1e-4
import numpy as np
import torch
from _offline import result

dtype = torch.float
device = torch.device("cpu")

N, D_in, H, D_out = 64, 1000, 100, 10

rng = np.random.default_rng(0)
x = torch.from_numpy(rng.standard_normal((N, D_in)).astype(np.float32)).to(device)
y = torch.from_numpy(rng.standard_normal((N, D_out)).astype(np.float32)).to(device)
w1 = torch.from_numpy(rng.standard_normal((D_in, H))).type(dtype)
w2 = torch.from_numpy(rng.standard_normal((H, D_out))).to(device, dtype)

learning_rate = 1e-6
for t in range(300):
    # Forward pass: compute predicted y
    h = x.mm(w1)
    h_relu = h.clamp(min=0)
    y_pred = h_relu.mm(w2)

    # Compute and print loss
    loss = (y_pred - y).pow(2).sum().item()
    if t % 50 == 49:
        result(f"loss_{t}", loss)

    # Backprop to compute gradients of w1 and w2 with respect to loss
    grad_y_pred = 2.0 * (y_pred - y)
    grad_w2 = h_relu.t().mm(grad_y_pred)
    grad_h_relu = grad_y_pred.mm(w2.t())
    grad_h = grad_h_relu.clone()
    grad_h[h < 0] = 0
    grad_w1 = x.t().mm(grad_h)

    # Update weights using gradient descent
    w1 -= learning_rate * grad_w1
    w2 -= learning_rate * grad_w2

result("w2_corner", *w2[:2, :3].flatten().tolist())
result("dtypes", str(w1.dtype), str(x.dtype), w1.dim(), w2.numel())
