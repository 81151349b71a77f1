# "Learning PyTorch with examples": fit sin(x) with a third order polynomial, gradients by hand on tensors.
# Weights: the tutorial draws a, b, c, d with torch.randn; here they come from NumPy (same in both runs).
# 1000 steps instead of the tutorial's 2000.
import math

import numpy as np
import torch
from _offline import result

dtype = torch.float
device = torch.device("cpu")

# Create random input and output data
x = torch.linspace(-math.pi, math.pi, 2000, device=device, dtype=dtype)
y = torch.sin(x)

# Randomly initialize weights
a, b, c, d = (torch.tensor(v, device=device, dtype=dtype) for v in np.random.default_rng(0).standard_normal(4))

learning_rate = 1e-6
for t in range(1000):
    # Forward pass: compute predicted y
    y_pred = a + b * x + c * x ** 2 + d * x ** 3

    # Compute and print loss
    loss = (y_pred - y).pow(2).sum().item()
    if t % 100 == 99:
        result(f"loss_{t}", loss)

    # Backprop to compute gradients of a, b, c, d with respect to loss
    grad_y_pred = 2.0 * (y_pred - y)
    grad_a = grad_y_pred.sum()
    grad_b = (grad_y_pred * x).sum()
    grad_c = (grad_y_pred * x ** 2).sum()
    grad_d = (grad_y_pred * x ** 3).sum()

    # Update weights using gradient descent
    a -= learning_rate * grad_a
    b -= learning_rate * grad_b
    c -= learning_rate * grad_c
    d -= learning_rate * grad_d

print(f"Result: y = {a.item()} + {b.item()} x + {c.item()} x^2 + {d.item()} x^3")
result("coefficients", a.item(), b.item(), c.item(), d.item())
