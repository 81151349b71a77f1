# "Learning PyTorch with examples": the polynomial fit with autograd computing the backward pass.
# Weights: drawn with NumPy instead of torch.randn (same in both runs).
# 1000 steps instead of the tutorial's 2000.
import math

import numpy as np
import torch
from _offline import result

dtype = torch.float
device = "cpu"
torch.set_default_device(device)

x = torch.linspace(-math.pi, math.pi, 2000, dtype=dtype)
y = torch.sin(x)

init = np.random.default_rng(1).standard_normal(4)
a = torch.tensor(init[0], dtype=dtype, requires_grad=True)
b = torch.tensor(init[1], dtype=dtype, requires_grad=True)
c = torch.tensor(init[2], dtype=dtype, requires_grad=True)
d = torch.tensor(init[3], dtype=dtype, requires_grad=True)

learning_rate = 1e-6
for t in range(1000):
    y_pred = a + b * x + c * x ** 2 + d * x ** 3
    loss = (y_pred - y).pow(2).sum()
    if t % 100 == 99:
        result(f"loss_{t}", loss.item())

    loss.backward()

    # Manually update weights using gradient descent. Wrap in torch.no_grad()
    # because weights have requires_grad=True, but we don't need to track this in autograd.
    with torch.no_grad():
        a -= learning_rate * a.grad
        b -= learning_rate * b.grad
        c -= learning_rate * c.grad
        d -= learning_rate * d.grad

        # Manually zero the gradients after updating weights
        a.grad = None
        b.grad = None
        c.grad = None
        d.grad = None

print(f"Result: y = {a.item()} + {b.item()} x + {c.item()} x^2 + {d.item()} x^3")
result("coefficients", a.item(), b.item(), c.item(), d.item())
