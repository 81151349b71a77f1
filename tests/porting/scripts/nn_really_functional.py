# "What is torch.nn really?" part 2: torch.nn.functional.cross_entropy replaces log_softmax + nll; then
# nn.Module with nn.Parameter (Mnist_Logistic), model.parameters() and model.zero_grad() in a fit() loop.
# Data: digits upscaled to 28x28, flattened. Weights: drawn with NumPy, loaded into the Parameters (same in both runs).
import math

import numpy as np
import torch
import torch.nn.functional as F
from _offline import digits28, result
from torch import nn

x_train, y_train, x_valid, y_valid = digits28(n_train=1000, n_valid=500)
x_train, y_train, x_valid, y_valid = map(
    torch.tensor, (x_train.reshape(-1, 784), y_train, x_valid.reshape(-1, 784), y_valid)
)
n, c = x_train.shape
bs, lr, epochs = 64, 0.5, 2
w0 = torch.from_numpy(np.random.default_rng(0).standard_normal((784, 10)).astype(np.float32)) / math.sqrt(784)

loss_func = F.cross_entropy

weights = w0.clone().requires_grad_()
bias = torch.zeros(10, requires_grad=True)


def model(xb):
    return xb @ weights + bias


def accuracy(out, yb):
    preds = torch.argmax(out, dim=1)
    return (preds == yb).float().mean()


xb, yb = x_train[0:bs], y_train[0:bs]
print(loss_func(model(xb), yb), accuracy(model(xb), yb))
result("functional_before", loss_func(model(xb), yb).item(), accuracy(model(xb), yb).item())


class Mnist_Logistic(nn.Module):
    def __init__(self):
        super().__init__()
        self.weights = nn.Parameter(torch.randn(784, 10) / math.sqrt(784))
        self.bias = nn.Parameter(torch.zeros(10))

    def forward(self, xb):
        return xb @ self.weights + self.bias


model = Mnist_Logistic()
with torch.no_grad():
    model.weights.copy_(w0)
print(loss_func(model(xb), yb))
result("module_before", loss_func(model(xb), yb).item())


def fit():
    for epoch in range(epochs):
        for i in range((n - 1) // bs + 1):
            start_i = i * bs
            end_i = start_i + bs
            xb = x_train[start_i:end_i]
            yb = y_train[start_i:end_i]
            pred = model(xb)
            loss = loss_func(pred, yb)

            loss.backward()
            with torch.no_grad():
                for p in model.parameters():
                    p -= p.grad * lr
                model.zero_grad()
        result(f"epoch_{epoch}", loss.item())


fit()
print(loss_func(model(xb), yb))
result("module_after", loss_func(model(xb), yb).item())
result("valid", loss_func(model(x_valid), y_valid).item(), accuracy(model(x_valid), y_valid).item())
result("grads_cleared", all(p.grad is None or bool((p.grad == 0).all()) for p in model.parameters()))
